"""Start a distributed MXNet job: N workers, S servers and one scheduler.

    igc-launch -n 2 -s 1 [--launcher local] [--timeout 600] \\
        python train_model.py --kv-store dist_sync ...

(also ``python tools/launch.py`` in a checkout)

Every process runs the same command; ``DMLC_ROLE`` tells it what it is. Servers
and the scheduler do their job while ``import mxnet`` runs and exit when the
workers finish.

Launchers:
  local  all processes on this machine over 127.0.0.1 (run here, not through
         dmlc_tracker, so that a failing worker stops the job, --timeout bounds it,
         a process stopped for --stopped-timeout seconds ends it, and SIGTERM,
         SIGHUP or SIGINT to the launcher, or its death, stops every process);
  ssh    one process per line of --hostfile (``host[:port]``), by ssh;
  mpi    mpirun (Open MPI or MPICH) over --hostfile;
  slurm  srun inside an allocation.
ssh, mpi and slurm go through ``dmlc_tracker``, the tracker that ships in the
mxnet wheel, made to work on Python >= 3.9 (it calls ``Thread.isAlive``).
"""
import argparse
import dataclasses
import logging
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from .._process import Signalled, raise_on_signals
from ..training.args import positive_int


def free_port(host='127.0.0.1'):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# Run in its own session beside the job: it reads the job's process groups from stdin,
# one per line, and when stdin closes without "done" (the launcher died, even by SIGKILL)
# it stops every group: SIGTERM, then SIGKILL after the grace period.
WATCHDOG = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
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


def stop_groups(procs, grace):
    """Stop every process of the process groups led by ``procs``: SIGTERM (and SIGCONT,
    so that stopped processes receive it), SIGKILL for what is left after ``grace``
    seconds; then reap the leaders."""
    def signal_all(sig):
        alive = False
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
                alive = True
            except (ProcessLookupError, PermissionError):
                pass
        return alive
    if signal_all(signal.SIGTERM):
        signal_all(signal.SIGCONT)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            for proc in procs:
                proc.poll()   # reap exited leaders, so that their empty groups vanish
            if not signal_all(0):
                break
            time.sleep(0.1)
        signal_all(signal.SIGKILL)
    for proc in procs:
        proc.wait()


def group_members(groups):
    """{pid: (process group, state letter)} of the live processes in ``groups``, from /proc."""
    members = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
        except OSError:
            continue
        state, group = fields[0].decode(), int(fields[2])
        if group in groups:
            members[int(entry)] = (group, state)
    return members


class StoppedWatch:
    """Processes of the job stopped (SIGSTOP or a debugger: state T or t) since when."""

    def __init__(self, roles, timeout):
        self.roles, self.timeout = roles, timeout    # roles: {process group: role name}
        self.since = {}

    def check(self, now):
        """(role, pid, seconds) of a process stopped for ``timeout`` seconds, or None."""
        stopped = {pid: group for pid, (group, state) in group_members(self.roles).items()
                   if state in ('T', 't')}
        self.since = {pid: self.since.get(pid, now) for pid in stopped}
        for pid, start in self.since.items():
            if now - start >= self.timeout:
                return self.roles[stopped[pid]], pid, now - start
        return None


def launch_local(command, num_workers, num_servers, timeout=None, extra_env=None,
                 grace=60, stopped_timeout=60, stop_grace=5):
    """Run the job on this machine; returns the exit status: 0 when every worker
    succeeded, a failed worker's status (128 + n when signal n killed it), 124 on
    timeout, 1 when a process stayed stopped for ``stopped_timeout`` seconds (0: never),
    128 + n on signal n (SIGTERM, SIGHUP, SIGINT), which stops the job. Should the
    launcher die without stopping it (SIGKILL), a watchdog process stops it."""
    port = free_port()
    base = dict(os.environ)
    base.update(extra_env or {})
    base.update({'DMLC_PS_ROOT_URI': '127.0.0.1', 'DMLC_PS_ROOT_PORT': str(port),
                 'DMLC_NUM_SERVER': str(num_servers), 'DMLC_NUM_WORKER': str(num_workers),
                 'DMLC_NODE_HOST': '127.0.0.1', 'DMLC_JOB_CLUSTER': 'local'})
    # One argument is a shell command line; several are quoted one by one.
    cmd = command[0] if len(command) == 1 else shlex.join(command)
    with raise_on_signals(signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        watchdog = subprocess.Popen([sys.executable, '-c', WATCHDOG, str(stop_grace)],
                                    stdin=subprocess.PIPE, text=True, start_new_session=True)
        procs, roles = [], {}

        def start(role, task_id):
            env = dict(base, DMLC_ROLE=role, DMLC_TASK_ID=str(task_id))
            # Its own session and process group: the job's processes, with their children,
            # are stopped group by group, and a terminal's signals reach only the launcher.
            proc = subprocess.Popen(cmd, shell=True, executable='/bin/bash', env=env,
                                    start_new_session=True)
            procs.append(proc)
            roles[proc.pid] = f'{role} {task_id}'
            watchdog.stdin.write(f'{proc.pid}\n')
            watchdog.stdin.flush()
            return proc

        try:
            helpers = [start('scheduler', 0)] + [start('server', i) for i in range(num_servers)]
            workers = [start('worker', i) for i in range(num_workers)]
            return _supervise(workers, helpers, timeout, grace,
                              StoppedWatch(roles, stopped_timeout) if stopped_timeout else None)
        except Signalled as stop:
            logging.error('received %s; stopping the job', stop)
            return 128 + stop.signum
        finally:
            try:
                stop_groups(procs, stop_grace)
            finally:
                watchdog.stdin.write('done\n')
                watchdog.stdin.close()
                watchdog.wait()


def _supervise(workers, helpers, timeout, grace, watch):
    deadline = None if timeout is None else time.monotonic() + timeout
    next_watch = time.monotonic()
    pending = list(workers)
    while pending:
        for p in list(pending):
            rc = p.poll()
            if rc is not None:
                pending.remove(p)
                if rc < 0:   # the shell's convention, 128 + n, not exit(-n) = 256 - n
                    logging.error('worker (pid %d) was killed by signal %d; stopping the job',
                                  p.pid, -rc)
                    return 128 - rc
                if rc != 0:
                    logging.error('worker (pid %d) exited with %d; stopping the job', p.pid, rc)
                    return rc
        if any(h.poll() not in (None, 0) for h in helpers):
            logging.error('a server or the scheduler failed; stopping the job')
            return 1
        now = time.monotonic()
        if deadline is not None and now > deadline:
            logging.error('timed out after %ss; stopping the job', timeout)
            return 124
        if watch is not None and now >= next_watch:
            next_watch = now + 1
            found = watch.check(now)
            if found:
                logging.error('%s (pid %d) has been stopped for %.0f s (SIGSTOP?); stopping '
                              'the job (--stopped-timeout)', *found)
                return 1
        time.sleep(0.2)
    # Servers and the scheduler leave once every worker has finalized.
    end = time.monotonic() + grace
    while any(h.poll() is None for h in helpers) and time.monotonic() < end:
        time.sleep(0.2)
    if any(h.poll() is None for h in helpers):
        logging.warning('servers still running %ds after the workers ended; killed', grace)
    return 0


@dataclasses.dataclass(frozen=True)
class Job:
    """A distributed job, resolved once from the command line."""
    command: tuple
    num_workers: int
    num_servers: int
    launcher: str
    hostfile: str | None
    sync_dst_dir: str | None
    host_ip: str | None
    env: tuple              # (KEY, VALUE) pairs set on every process
    timeout: float | None
    stopped_timeout: float

    @classmethod
    def from_args(cls, opts):
        """ValueError names an option that does not fit."""
        command = tuple(opts.command[1:] if opts.command[:1] == ['--'] else opts.command)
        if not command:
            raise ValueError('no command given')
        if opts.launcher in ('ssh', 'mpi') and not opts.hostfile:
            raise ValueError(f'--launcher {opts.launcher} needs --hostfile')
        return cls(command=command, num_workers=opts.num_workers,
                   num_servers=opts.num_servers or opts.num_workers, launcher=opts.launcher,
                   hostfile=opts.hostfile, sync_dst_dir=opts.sync_dst_dir,
                   host_ip=opts.host_ip,
                   env=tuple(tuple(kv.split(':', 1)) for kv in opts.env),
                   timeout=opts.timeout, stopped_timeout=opts.stopped_timeout)


def launch_tracker(job):
    """ssh, mpi or slurm through the wheel's dmlc_tracker."""
    if not hasattr(threading.Thread, 'isAlive'):  # removed in Python 3.9
        threading.Thread.isAlive = threading.Thread.is_alive
    from dmlc_tracker import opts as dmlc_opts
    from dmlc_tracker import tracker
    args = ['--cluster', job.launcher, '--num-workers', str(job.num_workers),
            '--num-servers', str(job.num_servers)]
    if job.hostfile:
        args += ['--host-file', job.hostfile]
    if job.sync_dst_dir:
        args += ['--sync-dst-dir', job.sync_dst_dir]
    if job.host_ip:
        args += ['--host-ip', job.host_ip]
        guess = tracker.get_host_ip
        tracker.get_host_ip = lambda host_ip=None: guess(job.host_ip)
    command = list(job.command)
    if job.env:  # set on the remote side
        command = ['env'] + [f'{key}={value}' for key, value in job.env] + command
    dopts = dmlc_opts.get_opts(args + ['--'] + command)
    if job.launcher == 'ssh':
        from dmlc_tracker import ssh as backend
    elif job.launcher == 'mpi':
        from dmlc_tracker import mpi as backend
    else:
        from dmlc_tracker import slurm as backend
    backend.submit(dopts)
    return 0


def _seconds(text, zero_ok=False):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = 'non-negative' if zero_ok else 'positive'
        raise argparse.ArgumentTypeError(f'expected a {kind} number of seconds, got {text!r}')
    return value


def _env_pair(text):
    key, sep, _ = text.partition(':')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY:VALUE, got {text!r}')
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='launch a distributed MXNet job (parameter-server kvstore)',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('-n', '--num-workers', type=positive_int, required=True)
    parser.add_argument('-s', '--num-servers', type=positive_int,
                        help='number of servers (default: the number of workers)')
    parser.add_argument('--launcher', choices=['local', 'ssh', 'mpi', 'slurm'], default='local')
    parser.add_argument('-H', '--hostfile', help='hosts for ssh and mpi, one per line')
    parser.add_argument('--sync-dst-dir', help='ssh: rsync the current directory there first')
    parser.add_argument('--host-ip', help='address of this machine as seen by the nodes')
    parser.add_argument('--env', action='append', default=[], type=_env_pair,
                        help='KEY:VALUE set on every process (repeatable)')
    parser.add_argument('--timeout', type=_seconds,
                        help='local: stop the whole job after this many seconds (exit 124)')
    parser.add_argument('--stopped-timeout', type=lambda t: _seconds(t, zero_ok=True),
                        default=60, metavar='SECONDS',
                        help='local: stop the whole job when one of its processes has been '
                             'stopped (SIGSTOP) this many seconds (exit 1); 0: never')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='the command every process runs')
    opts = parser.parse_args(argv)
    try:
        job = Job.from_args(opts)
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(format='%(asctime)s launch %(levelname)s %(message)s',
                        level=logging.INFO)
    if job.launcher == 'local':
        return launch_local(job.command, job.num_workers, job.num_servers, job.timeout,
                            dict(job.env), stopped_timeout=job.stopped_timeout)
    return launch_tracker(job)

if __name__ == '__main__':
    sys.exit(main())
