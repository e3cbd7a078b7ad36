"""Start a distributed MXNet job: N workers, S servers and one scheduler.

    igc-launch -n 2 -s 1 [--launcher local] [--timeout 600] \\
        python train_model.py --kv-store dist_sync ...

(also ``python tools/launch.py`` in a checkout)

Every process runs the same command; ``DMLC_ROLE`` tells it what it is. Servers
and the scheduler do their job while ``import mxnet`` runs and exit when the
workers finish. One argument is a shell command line; several are quoted one by one.

Launchers (the scheduler always runs on this machine):
  local  every process on this machine over 127.0.0.1;
  ssh    one process per server and worker on the hosts of --hostfile
         (``host`` or ``host:port`` per line), round robin, by ssh;
  mpi    two mpirun (Open MPI or MPICH) over --hostfile: the servers and the workers;
  slurm  two srun inside an allocation: the servers and the workers.
The launcher watches what runs on this machine (the processes, or the ssh, mpirun and
srun clients): a worker that fails, a server or the scheduler that ends while workers
run, --timeout, a process stopped for --stopped-timeout seconds, or SIGTERM, SIGHUP or
SIGINT stop the job, and nothing it started outlives it.
"""
import argparse
import dataclasses
import ipaddress
import logging
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

from .._process import (
    StoppedWatch,
    Watchdog,
    become_subreaper,
    reap_strays,
    recording_signals,
    stop_processes,
)
from ..training.args import positive_int

LAUNCHERS = ('local', 'ssh', 'mpi', 'slurm')
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# What the launchers set on the processes: an --env of the same name would be overridden
# (or override them and break the job).
LAUNCHER_VARIABLES = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER',
                      'DMLC_NUM_WORKER', 'DMLC_TASK_ID', 'DMLC_JOB_CLUSTER')
NODE_HOST_SET_BY = ('local', 'ssh')
PROGRAMS = {'ssh': 'ssh', 'mpi': 'mpirun', 'slurm': 'srun'}
ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')
DNS_NAME = r'[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?'
HOST_NAME = re.compile(DNS_NAME + r'\Z')
SSH_HOST = re.compile(r'([A-Za-z0-9._-]+@)?' + DNS_NAME + r'\Z')


@dataclasses.dataclass(frozen=True)
class Host:
    name: str
    port: int
    user: str = ''

    @property
    def target(self):
        """What ssh and rsync connect to."""
        return f'{self.user}@{self.name}' if self.user else self.name


@dataclasses.dataclass(frozen=True)
class Job:
    """A distributed job, resolved once from the command line."""
    command: str            # a shell command line
    num_workers: int
    num_servers: int
    launcher: str
    hosts: tuple            # ssh: Host per line of the hostfile
    hostfile: str | None    # mpi: passed to mpirun
    sync_dst_dir: str | None
    host_ip: str | None     # the scheduler's address as the other machines see it
    env: tuple              # (KEY, VALUE) pairs set on every process
    timeout: float | None
    stopped_timeout: float
    program: str | None     # the ssh, mpirun or srun that runs the remote processes
    rsync: str | None       # ssh with --sync-dst-dir
    mpi_env_option: str | None  # how mpirun sets a variable: '-x' (Open MPI), '-env' (MPICH)

    @classmethod
    def from_args(cls, opts):
        """ValueError names an option that does not fit, with what was expected."""
        command = opts.command[1:] if opts.command[:1] == ['--'] else opts.command
        if not command:
            raise ValueError('no command given')
        line = command[0] if len(command) == 1 else shlex.join(command)
        if not line.strip():
            raise ValueError('the command is empty')
        launcher = opts.launcher
        _check_applies(opts, launcher)
        env = tuple(_env_pair(launcher, text) for text in opts.env)
        hosts, hostfile = (), None
        if launcher in ('ssh', 'mpi'):
            if not opts.hostfile:
                raise ValueError(f'--launcher {launcher} needs --hostfile')
            entries, hostfile = read_hostfile(opts.hostfile), opts.hostfile
            if launcher == 'ssh':
                hosts = ssh_hosts(hostfile, entries)
        program = None
        if launcher != 'local':
            program = _program(launcher)
        rsync = _program('ssh', 'rsync') if opts.sync_dst_dir else None
        host_ip = _host_ip(opts.host_ip) if opts.host_ip else None
        return cls(command=line, num_workers=opts.num_workers,
                   num_servers=opts.num_servers or opts.num_workers, launcher=launcher,
                   hosts=hosts, hostfile=hostfile,
                   sync_dst_dir=opts.sync_dst_dir, host_ip=host_ip, env=env,
                   timeout=opts.timeout, stopped_timeout=opts.stopped_timeout,
                   program=program, rsync=rsync,
                   mpi_env_option=mpi_env_option(program) if launcher == 'mpi' else None)


def _check_applies(opts, launcher):
    """Options that only some launchers use are refused elsewhere, not ignored."""
    for option, value, launchers in (('--hostfile', opts.hostfile, ('ssh', 'mpi')),
                                     ('--sync-dst-dir', opts.sync_dst_dir, ('ssh',)),
                                     ('--host-ip', opts.host_ip, ('ssh', 'mpi', 'slurm'))):
        if value is not None and launcher not in launchers:
            raise ValueError(f'{option} applies to --launcher {" or ".join(launchers)}, '
                             f'not {launcher}')


def _env_pair(launcher, text):
    key, _, value = text.partition(':')
    if not ENV_NAME.match(key):
        raise ValueError(f'--env {text!r}: {key!r} is not a variable name (letters, digits '
                         'and _, not starting with a digit)')
    if key in LAUNCHER_VARIABLES or (key == 'DMLC_NODE_HOST' and launcher in NODE_HOST_SET_BY):
        raise ValueError(f'--env {text!r}: {key} is set by the launcher')
    return key, value


def read_hostfile(path):
    """The entries of a hostfile: its lines without blank ones and ``#`` comments, each
    split at blanks. ValueError names the file when it cannot be read or lists none."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise ValueError(f'--hostfile {path}: cannot read it ({err.strerror})') from None
    except UnicodeDecodeError:
        raise ValueError(f'--hostfile {path}: not a text file') from None
    entries = [(number, text.split('#', 1)[0].split()) for number, text in enumerate(lines, 1)]
    entries = [(number, fields) for number, fields in entries if fields]
    if not entries:
        raise ValueError(f'--hostfile {path} lists no host (expected one "host" or '
                         '"host:port" per line)')
    return entries


def ssh_hosts(path, entries):
    """The Hosts of a hostfile's entries: ``host``, ``user@host`` or ``host:port``, an
    MPI-style ``slots=N`` after it ignored."""
    hosts = []
    for number, (first, *more) in entries:
        name, _, port = first.partition(':')
        if (not SSH_HOST.match(name) or (port and not (port.isdigit() and 0 < int(port) < 65536))
                or any(not re.match(r'(max[-_])?slots=\d+\Z', m) for m in more)):
            text = ' '.join([first, *more])
            raise ValueError(f'--hostfile {path}, line {number}: {text!r} is not "host", '
                             '"host:port" or "host slots=N"')
        user, _, name = name.rpartition('@')
        hosts.append(Host(name, int(port) if port else 22, user))
    return tuple(hosts)


def _program(launcher, name=None):
    name = name or PROGRAMS[launcher]
    path = shutil.which(name)
    if path is None:
        raise ValueError(f'--launcher {launcher} runs {name}, which is not on PATH')
    return path


def _host_ip(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        if HOST_NAME.match(text):
            return text
    raise ValueError(f'--host-ip {text!r}: expected an IP address or a host name')


def mpi_env_option(mpirun):
    """'-x' for Open MPI, '-env' for MPICH (and MPICH's derivatives), from mpirun
    --version; ValueError for anything else."""
    try:
        proc = subprocess.run([mpirun, '--version'], capture_output=True, text=True,
                              timeout=30)
        text = proc.stdout + proc.stderr
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ValueError(f'--launcher mpi: {mpirun} --version failed: {err}') from None
    if 'Open MPI' in text or 'OpenRTE' in text:
        return '-x'
    if re.search('mpich|hydra|Intel\\(R\\) MPI', text, re.IGNORECASE):
        return '-env'
    first = text.strip().splitlines()[0] if text.strip() else '(nothing)'
    raise ValueError(f'--launcher mpi: {mpirun} is neither Open MPI nor MPICH (its --version '
                     f'says {first!r})')


# ----------------------------------------------------------------------------- what to run


@dataclasses.dataclass(frozen=True)
class Process:
    """One process to start on this machine."""
    label: str      # how messages name it
    argv: tuple
    env: dict       # set on top of this process's environment
    worker: bool    # the job ends when every worker has


def free_port(host=''):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def guess_host_ip():
    """This machine's address on the network that reaches other machines (no packet is
    sent: connecting a UDP socket only picks the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(('10.255.255.255', 1))
            return s.getsockname()[0]
        except OSError:
            return '127.0.0.1'


def _shell(command):
    return ('/bin/bash', '-c', command)


def plan(job):
    """(the rsync processes to run first, the job's processes)."""
    host_ip = '127.0.0.1' if job.launcher == 'local' else job.host_ip or guess_host_ip()
    common = {'DMLC_PS_ROOT_URI': host_ip, 'DMLC_PS_ROOT_PORT': str(free_port()),
              'DMLC_NUM_SERVER': str(job.num_servers),
              'DMLC_NUM_WORKER': str(job.num_workers), 'DMLC_JOB_CLUSTER': job.launcher,
              **dict(job.env)}
    scheduler = Process('scheduler', _shell(job.command),
                        dict(common, DMLC_ROLE='scheduler', DMLC_TASK_ID='0'), False)
    roles = [('server', i) for i in range(job.num_servers)] + \
        [('worker', i) for i in range(job.num_workers)]
    if job.launcher == 'local':
        return [], [scheduler] + [
            Process(f'{role} {i}', _shell(job.command),
                    dict(common, DMLC_ROLE=role, DMLC_TASK_ID=str(i),
                         DMLC_NODE_HOST='127.0.0.1'), role == 'worker')
            for role, i in roles]
    if job.launcher == 'ssh':
        return _ssh_plan(job, common, scheduler, roles)
    counts = (('server', job.num_servers), ('worker', job.num_workers))
    if job.launcher == 'mpi':
        return [], [scheduler] + [_mpirun(job, common, role, n) for role, n in counts]
    return [], [scheduler] + [
        Process(f'{role}s (srun)', (job.program, f'--nodes={n}', f'--ntasks={n}', '--overlap',
                                    '--kill-on-bad-exit=1', *_shell(job.command)),
                dict(common, DMLC_ROLE=role), role == 'worker') for role, n in counts]


def _ssh_plan(job, common, scheduler, roles):
    directory = job.sync_dst_dir or os.getcwd()
    ssh = (job.program, '-o', 'StrictHostKeyChecking=no', '-o', 'BatchMode=yes')
    sync = [Process(f'rsync to {h.name}', (job.rsync, '-az', '--rsh',
                                           shlex.join([*ssh, '-p', str(h.port)]),
                                           os.getcwd() + '/', f'{h.target}:{directory}'),
                    {}, True)
            for h in dict.fromkeys(job.hosts)] if job.sync_dst_dir else []
    processes = [scheduler]
    for slot, (role, i) in enumerate(roles):
        host = job.hosts[slot % len(job.hosts)]
        env = dict(common, DMLC_ROLE=role, DMLC_TASK_ID=str(i), DMLC_NODE_HOST=host.name)
        remote = (f'cd {shlex.quote(directory)} && exec env '
                  + ' '.join(shlex.quote(f'{k}={v}') for k, v in env.items())
                  + ' ' + shlex.join(_shell(job.command)))
        processes.append(Process(f'{role} {i} (ssh {host.name})',
                                 (*ssh, '-p', str(host.port), host.target, remote),
                                 {}, role == 'worker'))
    return sync, processes


def _mpirun(job, common, role, count):
    env = dict(common, DMLC_ROLE=role)
    if job.mpi_env_option == '-x':
        settings = [a for k, v in env.items() for a in ('-x', f'{k}={v}')]
    else:
        settings = [a for k, v in env.items() for a in ('-env', k, v)]
    return Process(f'{role}s (mpirun)', (job.program, '-n', str(count), *settings,
                                         '--hostfile', job.hostfile, *_shell(job.command)),
                   {}, role == 'worker')


# ----------------------------------------------------------------------------- running it


class JobEnded(Exception):
    """The job stops with this exit status (the message, if any, was logged)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Supervisor:
    """Starts processes, each in its own session and process group, and stops all of them
    (their groups, and whatever else descends from this process) when the job ends."""

    def __init__(self, received, stop_grace):
        self.received, self.stop_grace = received, stop_grace
        self.procs, self.labels = [], {}
        self.watchdog = Watchdog(stop_grace)

    def check_signals(self):
        if self.received:
            logging.error('received %s; stopping the job', signal.Signals(self.received[0]).name)
            raise JobEnded(128 + self.received[0])

    def start(self, process):
        self.check_signals()
        env = dict(os.environ)
        env.update(process.env)
        try:
            proc = subprocess.Popen(process.argv, env=env, start_new_session=True)
        except OSError as err:
            logging.error('cannot start %s (%s): %s', process.label, process.argv[0], err)
            raise JobEnded(1) from None
        self.procs.append(proc)
        self.labels[proc.pid] = process.label
        self.watchdog.watch(proc.pid)
        return proc

    def stop(self):
        try:
            stop_processes(self.procs, self.stop_grace, exclude=(self.watchdog.proc.pid,))
        finally:
            self.watchdog.release()

    def reap(self):
        reap_strays({p.pid for p in self.procs} | {self.watchdog.proc.pid})


def _failure(label, pid, rc):
    if rc < 0:    # the shell's convention, 128 + n, not exit(-n) = 256 - n
        logging.error('%s (pid %d) was killed by signal %d; stopping the job', label, pid, -rc)
        return 128 - rc
    logging.error('%s (pid %d) exited with %d; stopping the job', label, pid, rc)
    return rc


@dataclasses.dataclass(frozen=True)
class Limits:
    timeout: float | None       # the whole job
    stopped_timeout: float      # a process stopped (SIGSTOP) this long; 0: never
    grace: float = 60           # servers and the scheduler after the last worker ends
    helper_end_grace: float = 5  # workers after a server or the scheduler ended


class JobWatch:
    """What ends a running job: each check raises JobEnded with the exit status."""

    def __init__(self, sup, workers, helpers, limits):
        self.sup, self.helpers, self.limits = sup, helpers, limits
        self.pending = list(workers)
        self.start = self.next_stopped_check = time.monotonic()
        self.helper_ended = None           # (process, when) of a helper that left early
        self.stopped = (StoppedWatch({p.pid: sup.labels[p.pid] for p in sup.procs},
                                     limits.stopped_timeout)
                        if limits.stopped_timeout else None)

    def check_workers(self):
        for p in list(self.pending):
            rc = p.poll()
            if rc is not None:
                self.pending.remove(p)
                if rc != 0:
                    raise JobEnded(_failure(self.sup.labels[p.pid], p.pid, rc))

    def check_helpers(self, now):
        for h in self.helpers:
            rc = h.poll()
            if rc not in (None, 0):
                _failure(self.sup.labels[h.pid], h.pid, rc)
                raise JobEnded(1)
            if rc == 0 and self.helper_ended is None:
                self.helper_ended = (h, now)
        # At the end of a job the scheduler may leave moments before the workers do; a
        # server or scheduler gone while workers keep running would leave them waiting.
        if self.helper_ended and now - self.helper_ended[1] > self.limits.helper_end_grace:
            h = self.helper_ended[0]
            logging.error('%s (pid %d) ended while %s still ran, which did not finish within '
                          '%g s; stopping the job', self.sup.labels[h.pid], h.pid,
                          ', '.join(self.sup.labels[p.pid] for p in self.pending),
                          self.limits.helper_end_grace)
            raise JobEnded(1)

    def check_time(self, now):
        if self.limits.timeout is not None and now - self.start > self.limits.timeout:
            logging.error('timed out after %ss; stopping the job', self.limits.timeout)
            raise JobEnded(124)
        if self.stopped is not None and now >= self.next_stopped_check:
            self.next_stopped_check = now + 1
            found = self.stopped.check(now)
            if found:
                logging.error('%s (pid %d) has been stopped for %.0f s (SIGSTOP?); stopping '
                              'the job (--stopped-timeout)', *found)
                raise JobEnded(1)


def supervise(sup, workers, helpers, limits):
    """Watch the job until every worker succeeded (then give the servers and the
    scheduler ``limits.grace`` seconds to leave); JobEnded with the status otherwise."""
    watch = JobWatch(sup, workers, helpers, limits)
    while True:
        sup.check_signals()
        watch.check_workers()
        if not watch.pending:
            break
        now = time.monotonic()
        watch.check_helpers(now)
        watch.check_time(now)
        sup.reap()
        time.sleep(0.2)
    # Servers and the scheduler leave once every worker has finalized.
    end = time.monotonic() + limits.grace
    while any(h.poll() is None for h in helpers) and time.monotonic() < end:
        sup.check_signals()
        time.sleep(0.2)
    if any(h.poll() is None for h in helpers):
        logging.warning('servers still running %gs after the workers ended; killed',
                        limits.grace)


def run_job(job, limits, stop_grace=5):
    """Run ``job``; returns the exit status: 0 when every worker succeeded, a failed
    worker's status (128 + n when signal n killed it), 1 when a server or the scheduler
    failed or ended while workers ran (and these did not finish within
    ``limits.helper_end_grace`` seconds), or a process stayed stopped, 124 on timeout,
    128 + n on signal n (SIGTERM, SIGHUP, SIGINT; later signals change nothing).

    It owns this process: it becomes the subreaper of its descendants, stops every one of
    them (and every process group it started) before it returns, and returns with the
    stop signals ignored, since the status is known and nothing is left to stop. Should
    it be killed (SIGKILL), a watchdog process stops the process groups."""
    with recording_signals(*STOP_SIGNALS) as received:
        become_subreaper()
        sup = Supervisor(received, stop_grace)
        try:
            sync, processes = plan(job)
            if sync:
                _sync(sup, sync)
            started = [(sup.start(p), p.worker) for p in processes]
            supervise(sup, [p for p, w in started if w], [p for p, w in started if not w],
                      limits)
            return 0
        except JobEnded as end:
            return end.status
        finally:
            sup.stop()
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)


def _sync(sup, sync):
    """Run the rsync processes; JobEnded when one fails."""
    procs = [sup.start(p) for p in sync]
    while any(p.poll() is None for p in procs):
        sup.check_signals()
        time.sleep(0.2)
    for p in procs:
        if p.returncode:
            raise JobEnded(_failure(sup.labels[p.pid], p.pid, p.returncode))


def _seconds(text, zero_ok=False):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = 'non-negative' if zero_ok else 'positive'
        raise argparse.ArgumentTypeError(f'expected a {kind} number of seconds, got {text!r}')
    return value


def _env_text(text):
    key, sep, _ = text.partition(':')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY:VALUE, got {text!r}')
    return text


def build_parser():
    parser = argparse.ArgumentParser(
        description='launch a distributed MXNet job (parameter-server kvstore)',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('-n', '--num-workers', type=positive_int, required=True)
    parser.add_argument('-s', '--num-servers', type=positive_int,
                        help='number of servers (default: the number of workers)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='local')
    parser.add_argument('-H', '--hostfile', help='ssh, mpi: the hosts, one per line')
    parser.add_argument('--sync-dst-dir', help='ssh: rsync the current directory there first')
    parser.add_argument('--host-ip', help='ssh, mpi, slurm: the address of this machine (where '
                                          'the scheduler runs) as the hosts see it')
    parser.add_argument('--env', action='append', default=[], type=_env_text,
                        help='KEY:VALUE set on every process (repeatable)')
    parser.add_argument('--timeout', type=_seconds,
                        help='stop the whole job after this many seconds (exit 124)')
    parser.add_argument('--stopped-timeout', type=lambda t: _seconds(t, zero_ok=True),
                        default=60, metavar='SECONDS',
                        help='stop the whole job when one of its processes on this machine '
                             'has been stopped (SIGSTOP) this many seconds (exit 1); 0: never')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='the command every process runs')
    return parser


def main(argv=None):
    parser = build_parser()
    opts = parser.parse_args(argv)
    try:
        job = Job.from_args(opts)
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(format='%(asctime)s launch %(levelname)s %(message)s',
                        level=logging.INFO)
    return run_job(job, Limits(job.timeout, job.stopped_timeout))


if __name__ == '__main__':
    sys.exit(main())
