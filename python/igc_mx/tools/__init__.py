"""The command-line tools. Each module has ``main(argv=None)`` returning the exit status;
``pip install`` puts them on PATH, and ``tools/<name>.py`` runs them from a checkout.

=================== =================== ==============================================
command             module              what
=================== =================== ==============================================
``igc-make-rec``    ``make_rec``        RecordIO datasets from the published downloads;
                                        ``verify``, ``stats`` (``igc_mx.datasets``)
``igc-summary``     ``summary``         parameters and multiply-adds of a network, per
                                        stage; the paper's ImageNet table
``igc-fuse-symbol`` ``fuse_symbol``     a saved symbol rewritten to the fast IGC ops
``igc-plot-curves`` ``plot_curves``     train/test error curves of training logs
``igc-launch``      ``launch``          a distributed job: workers, servers, scheduler
=================== =================== ==============================================

``make_rec``, ``plot_curves`` and ``launch`` need no MXNet.
"""
