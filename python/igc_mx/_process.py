"""Worker processes that do not outlive their parent (no MXNet needed)."""
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
