"""Worker processes that do not outlive their parent, and signals as exceptions (no MXNet
needed)."""
import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
# The signals that stop a command: its own handlers (raise_on_signals, Python's SIGINT)
# turn them into exceptions; its worker processes must not run those handlers.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


@contextlib.contextmanager
def starting_workers():
    """Start worker processes inside this block, each calling ``become_worker`` first.

    A forked child inherits its parent's Python signal handlers, which only set a flag
    that the interpreter acts on between bytecodes: a worker blocked in a lock or a pipe
    when SIGTERM comes would raise its parent's exception there (a traceback), or, when
    the signal lands just before the wait, never act on it (its parent then waits for it
    forever). The stop signals are therefore blocked here, so that a child starts with
    them pending rather than handled, until ``become_worker`` has given them their
    default actions. Signals that come meanwhile reach this process when the block ends.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def become_worker(parent_pid):
    """First call in a worker process started inside ``starting_workers``: it dies with
    its parent, ignores SIGINT (Ctrl-C reaches the whole process group; the parent stops
    its workers), and SIGTERM or SIGHUP end it at once, without running Python code."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in STOP_SIGNALS[1:]:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


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
