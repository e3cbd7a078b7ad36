"""Byte-reproducible MXNet RecordIO datasets from the published downloads (the library
behind ``igc-make-rec``; needs numpy and OpenCV, not MXNet).

Where to add a dataset: a reader in ``readers/`` and one row in ``recipes.DATASETS``.

=====================  =================================================================
module                 its job
=====================  =================================================================
``recipes``            the table of datasets (``DatasetSpec``: reader, classes, image
                       size, channels, default encoding) and the ``Recipe`` of a build
``readers``            one module per source format (``cifar``, ``svhn``, ``imagenet``,
                       ``idx``): a download read into a ``dataset.Dataset``
``dataset``            ``Dataset`` and ``Split``, what a reader returns
``command``            the build command's options, ``BuildRequest``, and the command
                       line that rebuilds a folder
``encoding``           reading, resizing and encoding images (in the workers)
``workers``            the ordered process pool the build, verify and stats share
``build``              writing the splits and the manifest, all committed together
``manifest``           ``manifest.json``: its fields, written and read
``manifest_checks``    what ``verify`` checks beyond checksums: fields, order, headers,
                       source
``verify``             a built folder against its manifest
``stats``              per-channel mean and std of a split
``synthetic_cifar``    a small generated archive in the CIFAR-10 python format
=====================  =================================================================

The RecordIO framing and the image record header are ``igc_mx.recordio``.
"""
