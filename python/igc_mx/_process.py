"""Worker processes that do not outlive their parent, signals as exceptions or as a
record, and the processes of a job stopped as a whole (no MXNet needed)."""
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

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


@contextlib.contextmanager
def recording_signals(*signals):
    """Inside the block each of ``signals`` is appended to the list it yields instead of
    interrupting the code: the block acts on the first one where it chooses, and what it
    does then (stopping a job) runs to its end whatever arrives meanwhile. The previous
    handlers are back after the block, except where the block set another one."""
    received = []

    def handler(signum, frame):
        received.append(signum)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)


# ----------------------------------------------------------------------------- job processes

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Have Linux re-parent this process's orphaned descendants to it instead of to init
    (prctl(PR_SET_CHILD_SUBREAPER)): a process of a job that left its process group
    (``setsid``) and lost its parent stays a descendant, so that ``stop_processes`` finds
    it. Elsewhere it does nothing."""
    if not sys.platform.startswith('linux'):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def process_table():
    """{pid: (parent pid, process group, state letter)} of every process, from /proc."""
    table = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), int(fields[2]), fields[0].decode())
    return table


def descendants(table, root, exclude=()):
    """The live (not zombie) descendants of ``root`` in ``table``, without the subtrees of
    ``exclude``."""
    children = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        if table[pid][2] != 'Z':
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _send(targets, sig, send):
    alive = False
    for target in targets:
        try:
            send(target, sig)
            alive = True
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def _signal_job(procs, exclude, sig):
    """Send ``sig`` to the process groups led by ``procs`` and to every other descendant
    of this process (but ``exclude``); whether any of them was there to receive it."""
    in_groups = _send([p.pid for p in procs], sig, os.killpg)
    others = descendants(process_table(), os.getpid(), exclude)
    return _send(others, sig, os.kill) or in_groups


def reap_strays(known):
    """Reap the exited children of this process that it did not start (``known`` holds
    the pids it did): descendants re-parented to it (``become_subreaper``)."""
    for pid, (parent, _, state) in process_table().items():
        if parent == os.getpid() and state == 'Z' and pid not in known:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def stop_processes(procs, grace, exclude=()):
    """Stop the process groups led by ``procs`` (Popen objects) and every other
    descendant of this process except ``exclude``: SIGTERM (and SIGCONT, so that stopped
    processes receive it), then SIGKILL for what is left after ``grace`` seconds, repeated
    until nothing is left (a process killed hands its orphans to this process); then reap
    the leaders."""
    known = {p.pid for p in procs} | set(exclude)

    def poll():
        for proc in procs:
            proc.poll()   # reap exited leaders, so that their empty groups vanish
        reap_strays(known)

    if _signal_job(procs, exclude, signal.SIGTERM):
        _signal_job(procs, exclude, signal.SIGCONT)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            poll()
            if not _signal_job(procs, exclude, 0):
                break
            time.sleep(0.1)
    for _ in range(100):
        poll()
        if not _signal_job(procs, exclude, signal.SIGKILL):
            break
        time.sleep(0.05)
    for proc in procs:
        proc.wait()
    reap_strays(known)


# Run in its own session beside a job: it reads the job's process groups from stdin, one
# per line, and when stdin closes without "done" (its launcher died, even by SIGKILL) it
# stops every group: SIGTERM, then SIGKILL after the grace period.
WATCHDOG = """
import os, signal, sys, time
for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN)
grace, groups = float(sys.argv[1]), []
for line in sys.stdin:
    if line.strip() == "done":
        sys.exit(0)
    groups.append(int(line))
def signal_all(sig):
    alive = False
    for group in groups:
        try:
            os.killpg(group, sig)
            alive = True
        except (ProcessLookupError, PermissionError):
            pass
    return alive
signal_all(signal.SIGTERM)
signal_all(signal.SIGCONT)
end = time.monotonic() + grace
while signal_all(0) and time.monotonic() < end:
    time.sleep(0.1)
signal_all(signal.SIGKILL)
"""


class Watchdog:
    """A process beside the job that stops its process groups should this process die
    without doing so (SIGKILL cannot be handled)."""

    def __init__(self, grace):
        self.proc = subprocess.Popen([sys.executable, '-c', WATCHDOG, str(grace)],
                                     stdin=subprocess.PIPE, text=True, start_new_session=True)

    def _write(self, text):
        # a watchdog that someone killed cannot stop the job any more; the job runs on
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(text)
            self.proc.stdin.flush()

    def watch(self, group):
        self._write(f'{group}\n')

    def release(self):
        """The job is stopped: the watchdog leaves without doing anything."""
        self._write('done\n')
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.proc.wait()


class StoppedWatch:
    """Processes of the job stopped (SIGSTOP or a debugger: state T or t) since when."""

    def __init__(self, roles, timeout):
        self.roles, self.timeout = roles, timeout    # roles: {process group: role name}
        self.since = {}

    def check(self, now):
        """(role, pid, seconds) of a process stopped for ``timeout`` seconds, or None."""
        stopped = {pid: group for pid, (_, group, state) in process_table().items()
                   if group in self.roles and state in ('T', 't')}
        self.since = {pid: self.since.get(pid, now) for pid in stopped}
        for pid, start in self.since.items():
            if now - start >= self.timeout:
                return self.roles[stopped[pid]], pid, now - start
        return None
