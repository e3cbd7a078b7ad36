"""Environment variables set for a block of code (no MXNet needed)."""
import contextlib
import os


@contextlib.contextmanager
def environ(**values):
    """Set the variables ``values`` inside the block; restore the old ones after it."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
