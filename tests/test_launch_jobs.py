"""igc-launch's supervision of a job (tools/launch.py): every process of the job records its
pid, and each test checks the launcher's exit status and message and that nothing it
started is left running: failing and killed workers, timeouts, sequences of signals
against jobs slow or unwilling to die, processes that leave their process group, a killed
launcher, a stopped worker, servers and schedulers that end early, and the ssh, mpi and
slurm launchers through stand-ins for ssh, mpirun and srun."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = str(REPO / 'tools' / 'launch.py')
# The launcher needs no MXNet; without its import it starts in a fraction of a second.
FAST = {'IGC_MX_NO_MXNET': '1'}

# Behaviour by mode (a comma-separated list in argv[2]) and role.
ROLE_SCRIPT = r"""import os, signal, subprocess, sys, time
pids, modes = sys.argv[1], sys.argv[2].split(",")
role, task = os.environ["DMLC_ROLE"], os.environ.get("DMLC_TASK_ID", "0")
def record(name, pid):
    with open(os.path.join(pids, name + ".tmp"), "w") as f:
        f.write(str(pid))
    os.rename(os.path.join(pids, name + ".tmp"), os.path.join(pids, name))
def started():
    return [n for n in os.listdir(pids) if not n.endswith(".tmp") and "-" not in n]
def wait_for_all():
    deadline = time.time() + 60
    while len(started()) < 4:
        if time.time() > deadline:
            sys.exit(99)
        time.sleep(0.05)
record(role + task, os.getpid())
if "stubborn" in modes:          # SIGTERM ignored: only SIGKILL ends it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "slow" in modes:              # ends a second after SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), os._exit(0)))
if "escape" in modes and role == "worker":   # a child in its own session
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             start_new_session=True)
    record(role + task + "-escaped", child.pid)
if role == "worker" and task == "1" and ("fail" in modes or "kill" in modes):
    wait_for_all()
    if "kill" in modes:
        os.kill(os.getpid(), 9)
    sys.exit(3)
if role == "server" and "server-ends" in modes:
    wait_for_all()
    sys.exit(0)
if "succeed" in modes:           # workers finish; the others leave once they have
    wait_for_all()
    if role == "worker":
        record("done-" + task, os.getpid())
        sys.exit(0)
    while len([n for n in os.listdir(pids) if n.startswith("done-")]) < 2:
        time.sleep(0.05)
    sys.exit(0)
time.sleep(120)
"""


def is_running(pid):
    """True for a live process; False once it is gone or a zombie (killed, not reaped)."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != 'Z'


def recorded(pids):
    return {p.name: int(p.read_text()) for p in pids.iterdir() if not p.name.endswith('.tmp')}


def running_after(started, patience=0.0):
    """The processes still running once all stopped or ``patience`` seconds passed;
    those left are killed."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and any(is_running(p) for p in started.values()):
        time.sleep(0.1)
    left = sorted(name for name, pid in started.items() if is_running(pid))
    for name in left:
        os.kill(started[name], signal.SIGKILL)
    return left


class Job:
    """The launcher running ROLE_SCRIPT with 2 workers and 1 server, in the background."""

    def __init__(self, tmp_path, modes, *launch_args, env=None, command=None):
        script, self.pids = tmp_path / 'role.py', tmp_path / 'pids'
        script.write_text(ROLE_SCRIPT)
        self.pids.mkdir()
        command = command or [sys.executable, str(script), str(self.pids), modes]
        self.stderr_path = tmp_path / 'stderr'
        # the job's processes inherit the launcher's stderr: a file, so that reading it
        # never waits for a process the launcher failed to stop
        with open(self.stderr_path, 'w') as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, LAUNCH, '-n', '2', '-s', '1', *launch_args, *command],
                stdout=subprocess.DEVNULL, stderr=stderr,
                env=dict(os.environ, **FAST, **(env or {})))

    def wait_started(self, count=4):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if len([n for n in recorded(self.pids) if '-' not in n]) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f'the job did not start: {self.stderr_path.read_text()}')

    def finish(self, timeout=60):
        """(exit status, the launcher's error lines, stderr)."""
        self.proc.wait(timeout=timeout)
        err = self.stderr_path.read_text()
        return self.proc.returncode, re.findall(r' launch ERROR (.*)', err), err


@pytest.mark.parametrize('modes,status,message', [
    ('fail', 3, r'worker 1 \(pid \d+\) exited with 3; stopping the job'),
    ('kill', 128 + 9, r'worker 1 \(pid \d+\) was killed by signal 9; stopping the job')])
def test_failed_worker_stops_the_job(tmp_path, modes, status, message):
    job = Job(tmp_path, modes, '--timeout', '100')
    rc, errors, err = job.finish()
    assert rc == status, err
    assert len(errors) == 1 and re.fullmatch(message, errors[0]), err
    started = recorded(job.pids)
    assert sorted(started) == ['scheduler0', 'server0', 'worker0', 'worker1']
    assert running_after(started) == []


def test_hung_job_times_out(tmp_path):
    job = Job(tmp_path, 'hang', '--timeout', '3')
    rc, errors, err = job.finish()
    assert rc == 124 and errors == ['timed out after 3.0s; stopping the job'], err
    assert running_after(recorded(job.pids)) == []


FOLLOWING = {signal.SIGTERM: [signal.SIGINT, signal.SIGHUP],
             signal.SIGHUP: [signal.SIGTERM, signal.SIGINT],
             signal.SIGINT: [signal.SIGINT, signal.SIGTERM]}


@pytest.mark.parametrize('first', list(FOLLOWING), ids=lambda s: s.name)
def test_signals_while_the_job_stops(tmp_path, first):
    """The first signal stops the job; those that come while its processes take their
    time to end change nothing."""
    job = Job(tmp_path, 'slow')
    job.wait_started()
    job.proc.send_signal(first)
    for sig in FOLLOWING[first]:
        time.sleep(0.2)
        job.proc.send_signal(sig)
    rc, errors, err = job.finish()
    assert 'Traceback' not in err, err
    assert rc == 128 + first and errors == [f'received {first.name}; stopping the job'], err
    assert running_after(recorded(job.pids)) == []


def test_stubborn_job_and_escaped_processes_are_killed(tmp_path):
    """Processes that ignore SIGTERM get SIGKILL after the stop's grace (5 s), whatever
    signals come meanwhile; processes that left their process group are stopped too."""
    job = Job(tmp_path, 'stubborn,escape')
    job.wait_started(count=4)
    start = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    job.proc.send_signal(signal.SIGINT)
    rc, errors, err = job.finish()
    assert rc == 143 and errors == ['received SIGTERM; stopping the job'], err
    assert time.monotonic() - start >= 5           # SIGKILL came after the grace only
    started = recorded(job.pids)
    assert sorted(n for n in started if 'escaped' in n) == ['worker0-escaped',
                                                            'worker1-escaped']
    assert running_after(started) == []


def test_killed_launcher_leaves_no_orphans(tmp_path):
    # SIGKILL cannot be handled: the watchdog beside the job stops it, also the processes
    # that are children of each role's shell
    script, pids = tmp_path / 'role.py', tmp_path / 'pids'
    job = Job(tmp_path, 'hang', command=[
        shlex.join([sys.executable, str(script), str(pids), 'hang']) + ' && true'])
    job.wait_started()
    job.proc.kill()
    job.proc.wait(timeout=60)
    assert running_after(recorded(job.pids), patience=30) == []


def test_stopped_worker_stops_the_job(tmp_path):
    job = Job(tmp_path, 'hang', '--stopped-timeout', '2')
    job.wait_started()
    os.kill(recorded(job.pids)['worker1'], signal.SIGSTOP)
    rc, errors, err = job.finish()
    assert rc == 1, err
    assert len(errors) == 1 and re.fullmatch(
        r'worker 1 \(pid \d+\) has been stopped for \d+ s \(SIGSTOP\?\); stopping the job '
        r'\(--stopped-timeout\)', errors[0]), err
    assert running_after(recorded(job.pids)) == []


def test_server_that_ends_early_stops_the_job(tmp_path):
    """Workers would wait for the server forever: once it has ended (status 0) and they
    are still running 5 s later, the launcher stops them."""
    job = Job(tmp_path, 'server-ends')
    rc, errors, err = job.finish()
    assert rc == 1, err
    assert len(errors) == 1 and re.fullmatch(
        r'server 0 \(pid \d+\) ended while worker 0, worker 1 still ran, which did not finish '
        r'within 5 s; stopping the job', errors[0]), err
    assert running_after(recorded(job.pids)) == []


# Stand-ins that run the processes on this machine, as the real ones would on the hosts.
FAKE_SSH = r'''#!/bin/bash
while [[ "$1" == -* ]]; do case "$1" in -o|-p) shift 2;; *) shift;; esac; done
echo "$1" >> "$FAKE_LOG"; shift      # the host
exec bash -c "$*"
'''
# mpirun and srun --kill-on-bad-exit end every process once one fails
RUN_N = r'''
pids=(); for ((i=0; i<n; i++)); do env "${envs[@]}" DMLC_TASK_ID=$i "$@" & pids+=($!); done
for p in "${pids[@]}"; do
  wait -n; rc=$?
  if [ $rc != 0 ]; then kill "${pids[@]}" 2>/dev/null; exit $rc; fi
done
'''
FAKE_MPIRUN = r'''#!/bin/bash
[ "$1" = "--version" ] && { echo "mpirun (Open MPI) 4.1.2"; exit 0; }
n=1; envs=()
while [[ "$1" == -* ]]; do
  case "$1" in -n) n=$2; shift 2;; -x) envs+=("$2"); shift 2;;
  --hostfile) echo "hostfile $2" >> "$FAKE_LOG"; shift 2;; *) shift;; esac
done
''' + RUN_N
FAKE_SRUN = r'''#!/bin/bash
n=1; envs=()
while [[ "$1" == -* ]]; do
  case "$1" in --ntasks=*) n=${1#--ntasks=}; shift;;
  --nodes=*|--overlap|--kill-on-bad-exit=1) shift;; *) echo "srun: $1?" >&2; exit 9;; esac
done
''' + RUN_N
FAKES = {'ssh': ('ssh', FAKE_SSH), 'mpi': ('mpirun', FAKE_MPIRUN),
         'slurm': ('srun', FAKE_SRUN)}


@pytest.mark.parametrize('launcher', ['ssh', 'mpi', 'slurm'])
@pytest.mark.parametrize('modes,status', [('succeed', 0), ('fail', 3)])
def test_remote_launchers(tmp_path, launcher, modes, status):
    program, text = FAKES[launcher]
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / program).write_text(text)
    (bin_dir / program).chmod(0o755)
    (tmp_path / 'hosts').write_text('node-a\n# a comment\nme@node-b:2222\n')
    hosts = ['--hostfile', str(tmp_path / 'hosts')] if launcher != 'slurm' else []
    env = {'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'FAKE_LOG': str(tmp_path / 'log')}
    job = Job(tmp_path, modes, '--launcher', launcher, '--host-ip', '127.0.0.1',
              '--timeout', '100', *hosts, env=env)
    rc, errors, err = job.finish()
    assert rc == status, err
    started = recorded(job.pids)
    assert {'scheduler0', 'server0', 'worker0', 'worker1'} <= set(started), err
    assert running_after(started) == []
    if status:
        assert len(errors) == 1 and 'exited with 3; stopping the job' in errors[0], err
    if launcher == 'ssh':     # servers, then workers, round robin over the hosts
        assert sorted((tmp_path / 'log').read_text().split()) == ['me@node-b', 'node-a',
                                                                  'node-a']
    if launcher == 'mpi':
        assert (tmp_path / 'log').read_text().split() == ['hostfile', str(tmp_path / 'hosts')] * 2


@pytest.mark.parametrize('rsync_status', [0, 23])
def test_ssh_sync_runs_first(tmp_path, rsync_status):
    """--sync-dst-dir: one rsync per host before the job, which runs there; a failed
    rsync ends the launch with its status."""
    bin_dir, target = tmp_path / 'bin', tmp_path / 'dst'
    bin_dir.mkdir()
    target.mkdir()
    (bin_dir / 'ssh').write_text(FAKE_SSH)
    (bin_dir / 'rsync').write_text('#!/bin/bash\necho "rsync ${@: -1}" >> "$FAKE_LOG"\n'
                                   f'exit {rsync_status}\n')
    for name in ('ssh', 'rsync'):
        (bin_dir / name).chmod(0o755)
    (tmp_path / 'hosts').write_text('node-a\nme@node-b:2222\n')
    env = {'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'FAKE_LOG': str(tmp_path / 'log')}
    job = Job(tmp_path, 'succeed', '--launcher', 'ssh', '--host-ip', '127.0.0.1',
              '--hostfile', str(tmp_path / 'hosts'), '--sync-dst-dir', str(target),
              '--timeout', '100', env=env)
    rc, errors, err = job.finish()
    assert rc == rsync_status, err
    log = (tmp_path / 'log').read_text().split('\n')
    assert sorted(log[:2]) == [f'rsync me@node-b:{target}', f'rsync node-a:{target}']
    if rsync_status:
        assert len(errors) == 1 and re.fullmatch(
            r'rsync to node-(a|b) \(pid \d+\) exited with 23; stopping the job', errors[0]), err
        assert recorded(job.pids) == {}
    else:
        assert sorted(log[2:-1]) == ['me@node-b', 'node-a', 'node-a']
