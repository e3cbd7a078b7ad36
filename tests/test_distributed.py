"""Distributed training through the parameter-server kvstore on loopback:
2 workers + 1 server + the scheduler, started by tools/launch.py, bounded by timeouts."""
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from igc_mx.tools import launch

from test_training import PY, REPO, TINY_NET, synthetic, write_rec

LAUNCH = str(REPO / 'tools' / 'launch.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    archive = synthetic.write_archive(str(root / 'syn.tar.gz'), num_train=400, num_test=100,
                                      seed=4)
    (root / 'net').mkdir()
    (root / 'net' / 'tiny.py').write_text(TINY_NET)
    return write_rec(archive, str(root / 'rec')), str(root / 'net')


@pytest.mark.parametrize('kv_store', ['dist_sync', 'dist_device_sync'])
def test_two_workers_end_with_identical_weights(setup, tmp_path, kv_store):
    rec, net = setup
    prefix = tmp_path / 'm'
    cmd = [PY, LAUNCH, '-n', '2', '-s', '1', '--launcher', 'local', '--timeout', '150',
           '--env', 'OMP_NUM_THREADS:1',
           PY, str(REPO / 'train_model.py'), '--network', 'tiny', '--network-dir', net,
           '--data-dir', rec, '--kv-store', kv_store, '--num-epochs', '2', '--max-batches', '3',
           '--batch-size', '16', '--log-iters', '1', '--rand-seed', '7', '--data-nthreads', '1',
           '--model-prefix', str(prefix)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rank0 = mx.nd.load(str(tmp_path / 'm-0002.params'))
    rank1 = mx.nd.load(str(tmp_path / 'm-1-0002.params'))
    assert sorted(rank0) == sorted(rank1)
    start = mx.nd.load(str(tmp_path / 'm-0001.params'))
    weights = [key for key in rank0 if key.startswith('arg:')]
    assert 'arg:fc_weight' in weights and 'arg:conv1_weight' in weights
    for key in weights:
        np.testing.assert_array_equal(rank0[key].asnumpy(), rank1[key].asnumpy(), err_msg=key)
    # training happened: epoch 2 differs from epoch 1, and the workers saw different data
    assert not np.array_equal(rank0['arg:fc_weight'].asnumpy(), start['arg:fc_weight'].asnumpy())
    assert not np.array_equal(rank0['aux:bn1_moving_mean'].asnumpy(),
                              rank1['aux:bn1_moving_mean'].asnumpy())
    log0, log1 = (tmp_path / 'm.txt').read_text(), (tmp_path / 'm.rank1.txt').read_text()
    assert 'Node[0] Epoch[1] Train-accuracy=' in log0 and 'Node[1] Epoch[1] Train-accuracy=' in log1
    assert 'rank 1 of 2' in log1
    # 3 batches per epoch on each worker; updates continue across epochs
    assert log0.count('Node[0] Epoch[0] Batch [') == 3


# Each process of a job records its pid, so that a test can check that the launcher
# stopped all of them, not only that it returned.
ROLE_SCRIPT = """import os, sys, time
pids = sys.argv[1]
role, task = os.environ["DMLC_ROLE"], os.environ["DMLC_TASK_ID"]
with open(os.path.join(pids, role + task + ".tmp"), "w") as f:
    f.write(str(os.getpid()))
os.rename(os.path.join(pids, role + task + ".tmp"), os.path.join(pids, role + task))
if role == "worker" and task == "1" and sys.argv[2] in ("fail", "kill"):
    deadline = time.time() + 60     # fail once the other three are running
    while len([n for n in os.listdir(pids) if not n.endswith(".tmp")]) < 4:
        if time.time() > deadline:
            sys.exit(99)
        time.sleep(0.05)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), 9)
    sys.exit(3)
time.sleep(120)
"""


def run_role_job(tmp_path, mode, timeout):
    """Launch 2 workers + 1 server + the scheduler running ROLE_SCRIPT; returns
    (the launcher's CompletedProcess, {role: pid})."""
    script, pids = tmp_path / 'role.py', tmp_path / 'pids'
    script.write_text(ROLE_SCRIPT)
    pids.mkdir()
    proc = subprocess.run([PY, LAUNCH, '-n', '2', '-s', '1', '--timeout', str(timeout),
                           PY, str(script), str(pids), mode],
                          capture_output=True, text=True, timeout=180)
    started = {p.name: int(p.read_text()) for p in pids.iterdir()
               if not p.name.endswith('.tmp')}
    return proc, started


def is_running(pid):
    """True for a live process; False once it is gone or a zombie (killed, not reaped)."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != 'Z'


@pytest.mark.parametrize('mode,status,message', [('fail', 3, 'exited with 3'),
                                                  ('kill', 128 + 9, 'was killed by signal 9')])
def test_failed_worker_stops_the_job(tmp_path, mode, status, message):
    proc, started = run_role_job(tmp_path, mode, timeout=150)
    assert proc.returncode == status, proc.stderr
    assert message in proc.stderr
    # every process had started; the launcher killed the three that would sleep on
    assert sorted(started) == ['scheduler0', 'server0', 'worker0', 'worker1']
    assert [role for role, pid in started.items() if is_running(pid)] == []


def test_hung_job_times_out(tmp_path):
    proc, started = run_role_job(tmp_path, 'hang', timeout=8)
    assert proc.returncode == 124, proc.stderr
    assert 'timed out after 8' in proc.stderr
    assert started   # the processes ran, and none outlived the launcher
    assert [role for role, pid in started.items() if is_running(pid)] == []


FAKE_SRUN = '''#!/bin/bash
# Stand-in for slurm's srun: run -n copies of the command on this machine.
n=1
while [[ "$1" == -* ]]; do
  case "$1" in -n) n=$2; shift 2;; -N) shift 2;; *) shift;; esac
done
pids=()
for ((i=0; i<n; i++)); do "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait $p || rc=$?; done; exit $rc
'''


def test_slurm_launcher_through_dmlc_tracker(setup, tmp_path):
    """The ssh/mpi/slurm path: the wheel's dmlc_tracker (patched for Python >= 3.9)
    starts the scheduler here and the job through srun (a local stand-in)."""
    rec, net = setup
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    env = dict(os.environ, PATH='{}:{}'.format(bin_dir, os.environ['PATH']), OMP_NUM_THREADS='1')
    cmd = [PY, LAUNCH, '-n', '2', '-s', '1', '--launcher', 'slurm', '--host-ip', '127.0.0.1',
           '--env', 'DMLC_NODE_HOST:127.0.0.1',
           PY, str(REPO / 'train_model.py'), '--network', 'tiny', '--network-dir', net,
           '--data-dir', rec, '--kv-store', 'dist_sync', '--num-epochs', '1',
           '--max-batches', '2', '--batch-size', '16', '--rand-seed', '7',
           '--data-nthreads', '1', '--model-prefix', str(tmp_path / 'm')]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank0 = mx.nd.load(str(tmp_path / 'm-0001.params'))
    rank1 = mx.nd.load(str(tmp_path / 'm-1-0001.params'))
    weights = [key for key in rank0 if key.startswith('arg:')]
    assert sorted(rank0) == sorted(rank1) and 'arg:fc_weight' in weights
    for key in weights:
        np.testing.assert_array_equal(rank0[key].asnumpy(), rank1[key].asnumpy(), err_msg=key)


def start_role_job(tmp_path, *launch_args, compound=False):
    """Start the launcher (2 workers + 1 server + the scheduler running ROLE_SCRIPT, which
    sleeps) without waiting for it; returns (Popen, {role: pid}) once all four run.
    ``compound``: each role runs a shell line whose command is a child of bash."""
    script, pids = tmp_path / 'role.py', tmp_path / 'pids'
    script.write_text(ROLE_SCRIPT)
    pids.mkdir()
    command = [PY, str(script), str(pids), 'hang']
    if compound:
        command = [shlex.join(command) + ' && true']
    proc = subprocess.Popen([PY, LAUNCH, '-n', '2', '-s', '1', *launch_args, *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = {}
    deadline = time.monotonic() + 120
    while len(started) < 4 and time.monotonic() < deadline and proc.poll() is None:
        started = {p.name: int(p.read_text()) for p in pids.iterdir()
                   if not p.name.endswith('.tmp')}
        time.sleep(0.1)
    assert len(started) == 4, proc.communicate(timeout=60)
    return proc, started


def running_after(started, patience=60):
    """The roles still running once they all stopped or ``patience`` seconds passed."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and any(is_running(p) for p in started.values()):
        time.sleep(0.1)
    return [role for role, pid in started.items() if is_running(pid)]


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signalled_launcher_stops_every_process(tmp_path, sig):
    proc, started = start_role_job(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f'received {sig.name}; stopping the job' in err
    assert running_after(started) == []


def test_killed_launcher_leaves_no_orphans(tmp_path):
    # SIGKILL cannot be handled: the watchdog beside the job stops it, also the processes
    # that are children of each role's shell
    proc, started = start_role_job(tmp_path, compound=True)
    proc.kill()
    proc.communicate(timeout=60)
    assert running_after(started) == []


def test_stopped_worker_stops_the_job(tmp_path):
    proc, started = start_role_job(tmp_path, '--stopped-timeout', '2')
    os.kill(started['worker1'], signal.SIGSTOP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert re.search(r'worker 1 \(pid \d+\) has been stopped for \d+ s \(SIGSTOP\?\); stopping '
                     r'the job \(--stopped-timeout\)', err), err
    assert running_after(started) == []


@pytest.mark.parametrize('argv,message', [
    (['-n', '0'], "argument -n/--num-workers: expected a positive integer, got '0'"),
    (['-n', '2', '-s', '-1'], "argument -s/--num-servers: expected a positive integer, "
                              "got '-1'"),
    (['-n', '2', '--timeout', '0'], "argument --timeout: expected a positive number of "
                                    "seconds, got '0'"),
    (['-n', '2', '--timeout', 'nan'], "argument --timeout: expected a positive number of "
                                      "seconds, got 'nan'"),
    (['-n', '2', '--stopped-timeout', '-5'], "argument --stopped-timeout: expected a "
                                             "non-negative number of seconds, got '-5'"),
    (['-n', '2', '--env', 'NOVALUE'], "argument --env: expected KEY:VALUE, got 'NOVALUE'"),
    (['-n', '2'], 'no command given'),
    (['-n', '2', '--launcher', 'ssh', 'true'], '--launcher ssh needs --hostfile'),
])
def test_bad_launch_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        launch.main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(' error: ' + message)
