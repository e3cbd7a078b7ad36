"""Write files so that nothing half-written is ever left under a final name."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(final_path):
    """Yield a temporary path in the same directory; rename it to ``final_path``
    only if the body finishes without raising. The temporary file is removed otherwise."""
    final_path = os.fspath(final_path)
    directory = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(final_path) + '.',
                               suffix='.tmp', dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
