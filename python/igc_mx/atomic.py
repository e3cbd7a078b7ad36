"""Write files so that nothing half-written is ever left under a final name, and nothing
but a regular file is ever replaced.

A file is written under a temporary name in its directory, ``.<name>.<pid>-<random>.tmp``,
and renamed into place when complete (``atomic_path``; ``atomic_paths`` for several
files renamed together, such as record files and their manifest). The writer's process
id in the name tells a temporary file that a killed writer left behind from one still
being written: ``remove_stale_temps`` removes the first kind only.

Every writer goes through ``check_target`` first: an output is a regular file or a new
path. A rename would silently turn a device, a FIFO or a symbolic link into a regular
file (and a link's target would keep its old content), and a folder, or a path under a
file, cannot be written at all; a tool that overwrote one of its own inputs (the
checkpoint it reads, through any path or link) would destroy it. Each of these is a
``TargetError`` naming the path and what it is, raised before anything is written.
"""
import contextlib
import os
import re
import secrets
import stat

_TEMP = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$')


class TargetError(OSError):
    """An output path that must not be written; the message names it and says why. An
    OSError, so that writers which report write failures report these too."""


_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISLNK, 'a symbolic link'),
          (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
          (stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISSOCK, 'a socket'))


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return 'not a regular file'


def _identity(path):
    """(device, inode) of the file ``path`` names, links followed; None when there is
    none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _file_above(path):
    """The nearest existing ancestor of ``path`` when it is not a folder, else None."""
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.lexists(parent):
            return None if os.path.isdir(parent) else parent
        above = os.path.dirname(parent)
        if above == parent:
            return None
        parent = above


def check_target(path, inputs=(), what='output'):
    """Raise TargetError unless ``path`` is an existing regular file or a new path (under
    folders, or where folders can be made), and is none of ``inputs``: the same file is
    found through any path, hard link or symbolic link (device and inode). ``what`` names
    the path in the message, e.g. the option that gave it."""
    path = os.fspath(path)
    label = f'{what} {path}'
    own = _identity(path)
    if own is not None:
        for source in inputs:
            if source is not None and _identity(source) == own:
                same = '' if os.path.abspath(source) == os.path.abspath(path) else \
                    f' (the input {source})'
                raise TargetError(f'{label} is one of the inputs{same}: writing it would '
                                  'destroy what is read; give a new path')
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        above = _file_above(path)
        if above is not None:
            raise TargetError(f'{label} lies under {above}, which is a file, not a folder') \
                from None
        return
    if not stat.S_ISREG(mode):
        raise TargetError(f'{label} is {_kind(mode)}: only a regular file or a new path is '
                          'written, so it is left as it is')


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
def atomic_path(final_path, inputs=(), what='output'):
    """Yield a temporary path in the same directory; rename it to ``final_path``
    only if the body finishes without raising. The temporary file is removed otherwise.
    ``check_target(final_path, inputs, what)`` comes first; then the temporary files of
    ``final_path`` that killed writers left are removed."""
    final_path = os.fspath(final_path)
    check_target(final_path, inputs, what)
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
def atomic_paths(*final_paths, inputs=()):
    """Like ``atomic_path`` for several files that belong together: yield a list of
    temporary paths, one per final path in the same order, and rename them all into
    place only if the body finishes without raising (all temporary files are removed
    otherwise). The last path seals the set: its old file is removed before any other is
    renamed, and it is renamed last, so a reader that trusts the files only beside the
    last one (a manifest) never finds it beside a mix of old and new files. The
    directories are synced after the renames. Every path must pass ``check_target`` with
    ``inputs``; temporary files of the final paths that killed writers left are removed
    first."""
    finals = [os.path.abspath(os.fspath(p)) for p in final_paths]
    if not finals or len(set(finals)) != len(finals):
        raise ValueError(f'atomic_paths needs distinct paths, got {final_paths!r}')
    for final in finals:
        check_target(final, inputs)
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
