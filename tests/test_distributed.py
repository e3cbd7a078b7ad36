"""Distributed training through the parameter-server kvstore on loopback:
2 workers + 1 server + the scheduler, started by tools/launch.py, bounded by timeouts.
(The launcher's supervision of a job: test_launch_jobs.py; its options:
test_launch_errors.py.)"""
import os
import subprocess

import mxnet as mx
import numpy as np
import pytest

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


FAKE_SRUN = '''#!/bin/bash
# Stand-in for slurm's srun: --ntasks copies of the command on this machine.
n=1
while [[ "$1" == -* ]]; do
  case "$1" in --ntasks=*) n=${1#--ntasks=}; shift;; *) shift;; esac
done
pids=()
for ((i=0; i<n; i++)); do "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait $p || rc=$?; done; exit $rc
'''


def test_slurm_launcher_trains(setup, tmp_path):
    """The remote launchers' path: the scheduler runs here, the servers and the workers
    through srun (a local stand-in)."""
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
