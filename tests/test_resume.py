"""Checkpoints and resume: a resumed run equals the uninterrupted one bit for bit, a
checkpoint is complete or absent, and a resume without optimizer states is refused
unless asked for."""
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from igc_mx import atomic
from igc_mx.atomic import atomic_path
from igc_mx.training import checkpoint

from test_training import train_model


@pytest.fixture(scope='module')
def small(dataset, net_dir):
    """(record dir, network dir): the session's synthetic records and tiny network."""
    return dataset, net_dir


def run_args(small, prefix, *extra):
    rec, net = small
    return ['--network', 'tiny', '--network-dir', net, '--data-dir', rec,
            '--batch-size', '32', '--max-batches', '4', '--max-val-batches', '1', '--lr-steps', '3',
            '--checkpoint-epochs', '1', '--rand-seed', '5', '--data-nthreads', '2',
            '--log-iters', '100', '--model-prefix', str(prefix), *extra]


def saved(prefix, epoch):
    """({name: array} of the .params file, {index: [arrays]} of the .states file)."""
    params = {k: v.asnumpy() for k, v in mx.nd.load(checkpoint.params_file(prefix, epoch)).items()}
    with open(checkpoint.states_file(prefix, epoch), 'rb') as f:
        states = pickle.loads(f.read())

    def arrays(state):
        if state is None:
            return []
        if isinstance(state, (tuple, list)):
            return [a for s in state for a in arrays(s)]
        return [state.asnumpy()]
    return params, {i: arrays(s) for i, s in states.items()}


@pytest.mark.parametrize('aug_type', ['1', '2'])   # numpy pad/crop/mirror; MXNet's crop/mirror
def test_resumed_run_equals_the_uninterrupted_run_bit_for_bit(small, tmp_path, aug_type):
    straight = tmp_path / 'a' / 'm'
    train_model.main(run_args(small, straight, '--num-epochs', '4', '--aug-type', aug_type))
    resumed = tmp_path / 'b' / 'm'
    train_model.main(run_args(small, resumed, '--num-epochs', '2', '--aug-type', aug_type))
    train_model.main(run_args(small, resumed, '--num-epochs', '4', '--aug-type', aug_type,
                              '--load-epoch', '2'))
    params_a, states_a = saved(straight, 4)
    params_b, states_b = saved(resumed, 4)
    assert sorted(params_a) == sorted(params_b)
    assert 'aux:bn1_moving_mean' in params_a and 'arg:conv1_weight' in params_a
    for key in params_a:
        np.testing.assert_array_equal(params_a[key], params_b[key], err_msg=key)
    assert sorted(states_a) == sorted(states_b) and len(states_a) == 6
    for index in states_a:
        assert len(states_a[index]) == len(states_b[index]) == 1    # the momentum
        for a, b in zip(states_a[index], states_b[index], strict=True):
            assert np.any(a != 0)
            np.testing.assert_array_equal(a, b, err_msg=f'state {index}')
    # the epochs between really differ (otherwise the test could not fail)
    params_2, _ = saved(straight, 2)
    assert not np.array_equal(params_2['arg:conv1_weight'], params_a['arg:conv1_weight'])


# --- checkpoints: complete or absent ----------------------------------------------

def tiny_symbol():
    x = mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=3, name='fc')
    return mx.sym.SoftmaxOutput(x, name='softmax')


class KilledWhileSavingStates:
    """A module whose optimizer states are half written when the process dies."""

    def save_optimizer_states(self, path):
        with open(path, 'wb') as f:
            f.write(b'half of the momentum')
        raise KeyboardInterrupt


def test_a_checkpoint_interrupted_before_its_states_are_written_is_absent(tmp_path):
    prefix = str(tmp_path / 'm')
    arg = {'fc_weight': mx.nd.ones((3, 4)), 'fc_bias': mx.nd.zeros(3)}
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(prefix, 3, tiny_symbol(), arg, {}, module=KilledWhileSavingStates())
    # the .params file makes a checkpoint: it is written last
    assert sorted(os.listdir(tmp_path)) == ['m-symbol.json']


def dead_pid():
    proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_stale_temporary_files_of_killed_writes_are_removed(tmp_path):
    dead = dead_pid()
    names = {
        f'.m-0002.params.{dead}-0123abcd.tmp': False,        # a killed save: removed
        f'.m-0002.states.{dead}-89abcdef.tmp': False,
        f'.m-symbol.json.{dead}-00000000.tmp': False,
        f'.m-0002.params.{os.getpid()}-11111111.tmp': True,  # a live writer's: kept
        f'.m-1-0002.params.{dead}-22222222.tmp': True,       # rank 1's files: its own
        f'.other-0002.params.{dead}-33333333.tmp': True,     # another run's
        'notes.txt': True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    atomic.remove_stale_temps(*checkpoint.owned_by(str(tmp_path / 'm')))
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, kept in names.items() if kept)
    # any atomic write cleans up after killed writes of the same file
    with atomic_path(tmp_path / 'notes.txt') as tmp:
        (tmp_path / f'.notes.txt.{dead}-44444444.tmp').write_bytes(b'x')
        with open(tmp, 'w') as f:
            f.write('new')
    with atomic_path(tmp_path / 'notes.txt') as tmp, open(tmp, 'w') as f:
        f.write('newer')
    assert not (tmp_path / f'.notes.txt.{dead}-44444444.tmp').exists()
    assert (tmp_path / 'notes.txt').read_text() == 'newer'


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600)])
def test_checkpoint_files_get_the_usual_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        prefix = str(tmp_path / 'm')
        checkpoint.save(prefix, 1, tiny_symbol(), {'fc_weight': mx.nd.ones((3, 4))}, {})
    finally:
        os.umask(old)
    for name in ('m-symbol.json', 'm-0001.params'):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name


def test_float16_parameters_are_saved_as_float32(tmp_path):
    prefix = str(tmp_path / 'm')
    w = np.random.RandomState(0).randn(3, 4).astype(np.float16)
    checkpoint.save(prefix, 1, tiny_symbol(), {'fc_weight': mx.nd.array(w, dtype='float16')},
                    {'bn_moving_var': mx.nd.ones(3, dtype='float32')})
    saved = mx.nd.load(checkpoint.params_file(prefix, 1))
    assert saved['arg:fc_weight'].dtype == np.float32
    np.testing.assert_array_equal(saved['arg:fc_weight'].asnumpy(), w.astype(np.float32))


# --- resume refusals ---------------------------------------------------------------

@pytest.fixture(scope='module')
def two_epochs(small, tmp_path_factory):
    """The prefix of a 2-epoch run with checkpoints after each epoch."""
    prefix = tmp_path_factory.mktemp('two') / 'm'
    train_model.main(run_args(small, prefix, '--num-epochs', '2', '--aug-type', '0'))
    return prefix


def resume_error(small, prefix, *extra):
    with pytest.raises(SystemExit) as exit_:
        train_model.main(run_args(small, prefix, '--num-epochs', '3', '--aug-type', '0',
                                  '--load-epoch', '2', *extra))
    return str(exit_.value.code)


def copy_run(prefix, to):
    to.mkdir()
    for p in prefix.parent.iterdir():
        if p.name.startswith('m-'):
            shutil.copy(p, to / p.name)
    return to / 'm'


def test_resume_without_optimizer_states_is_refused_unless_asked(small, two_epochs, tmp_path):
    prefix = copy_run(two_epochs, tmp_path / 'run')
    os.remove(checkpoint.states_file(str(prefix), 2))
    message = resume_error(small, prefix)
    assert message == (
        f'error: {checkpoint.params_file(str(prefix), 2)} has no optimizer states '
        f'({checkpoint.states_file(str(prefix), 2)}): resuming would restart the momentum at 0, '
        'which the uninterrupted run did not do; pass --resume-without-states to resume so '
        'anyway')
    assert not os.path.exists(checkpoint.params_file(str(prefix), 3))
    mod = train_model.main(run_args(small, prefix, '--num-epochs', '3', '--aug-type', '0',
                                    '--load-epoch', '2', '--resume-without-states'))
    assert mod._optimizer.num_update == 12
    log = (tmp_path / 'run' / 'm.txt').read_text()
    assert 'has no optimizer states beside it: the momentum restarts at 0' in log
    assert os.path.exists(checkpoint.params_file(str(prefix), 3))


def test_damaged_or_foreign_checkpoints_are_one_line_errors(small, two_epochs, tmp_path):
    prefix = copy_run(two_epochs, tmp_path / 'run')
    params = checkpoint.params_file(str(prefix), 2)
    message = resume_error(small, prefix, '--network-arg', 'width=16')
    assert message.startswith(f'error: checkpoint {params} does not fit this network: ')
    assert 'bn1_beta is (8,), the network needs (16,)' in message
    states = checkpoint.states_file(str(prefix), 2)
    with open(states, 'r+b') as f:
        f.truncate(20)
    assert resume_error(small, prefix).startswith(
        f'error: optimizer states {states} are not readable (')
    with open(params, 'r+b') as f:
        f.truncate(100)
    message = resume_error(small, prefix)
    assert message.startswith(f'error: checkpoint {params} is not readable (')
    assert '\n' not in message
    assert resume_error(small, prefix, '--load-epoch', '7', '--num-epochs', '8') == (
        f'error: no checkpoint {checkpoint.params_file(str(prefix), 7)} to resume from '
        f'(--model-prefix {prefix} --load-epoch 7)')


def test_optimizer_states_of_another_network_are_a_one_line_error(small, two_epochs, tmp_path):
    wider = tmp_path / 'wide' / 'm'
    train_model.main(run_args(small, wider, '--num-epochs', '2', '--aug-type', '0',
                              '--network-arg', 'width=16'))
    prefix = copy_run(two_epochs, tmp_path / 'run')
    states = checkpoint.states_file(str(prefix), 2)
    shutil.copy(checkpoint.states_file(str(wider), 2), states)
    assert resume_error(small, prefix) == (
        f'error: optimizer states {states} do not fit this network: the state of conv1_weight '
        'has shape (16, 3, 3, 3), the parameter (8, 3, 3, 3)')
    assert not os.path.exists(checkpoint.params_file(str(prefix), 3))


def test_a_checkpoint_that_is_not_finite_is_not_resumed_from(small, two_epochs, tmp_path):
    prefix = copy_run(two_epochs, tmp_path / 'run')
    params = checkpoint.params_file(str(prefix), 2)
    states = checkpoint.states_file(str(prefix), 2)
    good_states = Path(states).read_bytes()
    with open(states, 'rb') as f:
        content = pickle.load(f)
    content[5][:] = np.nan       # the momentum of one parameter
    with open(states, 'wb') as f:
        pickle.dump(content, f)
    assert resume_error(small, prefix).startswith(
        f'error: optimizer states {states} hold NaN or infinite values (the state of ')
    Path(states).write_bytes(good_states)
    saved = mx.nd.load(params)
    saved['aux:bn1_moving_var'][1] = np.inf
    mx.nd.save(params, saved)
    assert resume_error(small, prefix) == (
        f'error: checkpoint {params} holds NaN or infinite values (bn1_moving_var): a run '
        'resumed from it would train on them; resume from an earlier checkpoint with a lower '
        '--lr')
    assert not os.path.exists(checkpoint.params_file(str(prefix), 3))
