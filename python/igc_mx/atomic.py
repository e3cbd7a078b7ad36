"""Write files so that nothing half-written is ever left under a final name.

A file is written under a temporary name in its directory, ``.<name>.<pid>-<random>.tmp``,
and renamed into place when complete (``atomic_path``; ``atomic_paths`` for several
files renamed together, such as record files and their manifest). The writer's process
id in the name tells a temporary file that a killed writer left behind from one still
being written: ``remove_stale_temps`` removes the first kind only.
"""
import contextlib
import os
import re
import secrets

_TEMP = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$')


def _temp_path(final_path):
    directory, name = os.path.split(os.path.abspath(final_path))
    while True:
        path = os.path.join(directory, f'.{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp')
        try:
            # Created like any new file: mode 0666 less the umask (0644 usually).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def remove_stale_temps(directory, select=None):
    """Remove the temporary files in ``directory`` that writers no longer running left
    behind, for the final names ``select(name)`` accepts (all when None). Returns the
    removed paths."""
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry)
        if (match is None or (select is not None and not select(match['name']))
                or _running(int(match['pid']))):
            continue
        path = os.path.join(directory, entry)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(final_path):
    """Yield a temporary path in the same directory; rename it to ``final_path``
    only if the body finishes without raising. The temporary file is removed otherwise.
    Temporary files of ``final_path`` that killed writers left are removed first."""
    final_path = os.fspath(final_path)
    directory = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(final_path)
    remove_stale_temps(directory, lambda n: n == name)
    tmp = _temp_path(final_path)
    try:
        yield tmp
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_directory(directory):
    """Make the renames in ``directory`` durable (where the file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_paths(*final_paths):
    """Like ``atomic_path`` for several files that belong together: yield a list of
    temporary paths, one per final path in the same order, and rename them all into
    place only if the body finishes without raising (all temporary files are removed
    otherwise). The last path seals the set: its old file is removed before any other is
    renamed, and it is renamed last, so a reader that trusts the files only beside the
    last one (a manifest) never finds it beside a mix of old and new files. The
    directories are synced after the renames. Temporary files of the final paths that
    killed writers left are removed first."""
    finals = [os.path.abspath(os.fspath(p)) for p in final_paths]
    if not finals or len(set(finals)) != len(finals):
        raise ValueError(f'atomic_paths needs distinct paths, got {final_paths!r}')
    names = {}
    for final in finals:
        names.setdefault(os.path.dirname(final), set()).add(os.path.basename(final))
    temps = []
    try:
        for directory, wanted in names.items():
            os.makedirs(directory, exist_ok=True)
            remove_stale_temps(directory, wanted.__contains__)
        for final in finals:
            temps.append(_temp_path(final))
        yield list(temps)
        if len(finals) > 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(finals[-1])
        for tmp, final in zip(temps, finals, strict=True):
            os.replace(tmp, final)
        for directory in names:
            _fsync_directory(directory)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
