"""Ctrl-C while one of the project's commands is still starting ends it with one line.

Each command handles Ctrl-C from its ``main`` on. Before that, while ``import mxnet``
runs (seconds), Python would print a KeyboardInterrupt traceback. When this process
runs one of the commands (an ``igc-*`` console script, or a script of this checkout:
``train_model.py``, ``train_imagenet.py``, ``tools/*.py``), an uncaught
KeyboardInterrupt prints ``<command>: interrupted`` instead and exits with status 130, as
a Ctrl-C does once the command runs. Programs that import igc_mx keep Python's
behaviour. Standard library only: this runs before the package imports MXNet.
"""
import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def running_command(argv0):
    """The name of the command that ``argv0`` (``sys.argv[0]``) runs, or None."""
    if not argv0:
        return None
    script = Path(argv0)
    if script.name.startswith('igc-'):
        return script.name
    if script.suffix != '.py' or not (CHECKOUT / 'train_model.py').is_file():
        return None
    try:
        folder = script.resolve().parent
    except OSError:
        return None
    return script.name if folder in (CHECKOUT, CHECKOUT / 'tools') else None


def quiet_startup_interrupts():
    """Install the one-line report of an uncaught KeyboardInterrupt, for commands only."""
    command = running_command(sys.argv[0] if sys.argv else '')
    if command is None:
        return
    previous = sys.excepthook

    def report(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print(f'{command}: interrupted', file=sys.stderr, flush=True)
            sys.stdout.flush()
            # now, before the interpreter's shutdown: it would end the process by SIGINT
            os._exit(130)
        else:
            previous(kind, value, traceback)
    sys.excepthook = report
