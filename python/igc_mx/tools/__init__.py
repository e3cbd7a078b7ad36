"""The command-line tools. Each module's ``main(argv=None)`` returns the exit status; the
console scripts of pyproject.toml (``igc-make-rec``, ``igc-evaluate``, ...) name them, and
``tools/<name>.py`` runs them from a checkout. The README's Tools table lists them.

``make_rec``, ``plot_curves`` and ``launch`` need no MXNet.
"""
