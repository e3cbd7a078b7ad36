"""Worker processes that do not outlive their parent, and signals as exceptions (no MXNet
needed)."""
import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid, sig=signal.SIGKILL):
    """Have Linux send ``sig`` to this process when its parent (``parent_pid``) exits,
    through prctl(PR_SET_PDEATHSIG); exit at once if the parent is already gone. Elsewhere
    it does nothing."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)


class Signalled(BaseException):
    """A signal that ``raise_on_signals`` turned into an exception (its name is the
    message)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def raise_on_signals(*signals):
    """Inside the block each of ``signals`` raises Signalled, so that the code under it
    can clean up and exit; the previous handlers are back after the block."""
    def handler(signum, frame):
        raise Signalled(signum)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
