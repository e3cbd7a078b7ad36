"""Ctrl-C (SIGINT) stops a training run at any point, also where Python would swallow it.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal
arrives. Inside a ``__del__``, such as that of the record iterator which every epoch and
every validation pass frees (MXNet's ``DataIter.__del__`` joins its threads, which takes
a while), the exception is printed as "Exception ignored" and dropped: training went on
to its last epoch and exited with status 0. So the handler records the signal, raises
KeyboardInterrupt unless a finalizer is running (where it would only print a traceback),
and ``check`` raises it at the next batch (training or validation) and when ``fit``
returns.
"""
import signal


def _in_finalizer(frame):
    """Whether ``frame`` or a frame that called it is a ``__del__``, where an exception is
    printed and dropped."""
    while frame is not None:
        if frame.f_code.co_name == '__del__':
            return True
        frame = frame.f_back
    return False


class Interrupts:
    """Context manager: SIGINT raises KeyboardInterrupt and is remembered until the
    context ends; ``check`` (usable as a ``batch_end_callback``) raises KeyboardInterrupt
    when one arrived. Outside the main thread (where no handler can be installed) it only
    checks."""

    def __init__(self):
        self.received = False
        self._previous = None

    def _handle(self, signum, frame):
        self.received = True
        if not _in_finalizer(frame):
            raise KeyboardInterrupt

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:   # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def check(self, param=None):
        if self.received:
            raise KeyboardInterrupt
