"""Checkpoints and resume: a resumed run equals the uninterrupted one bit for bit, a
checkpoint is complete or absent, and a resume without optimizer states is refused
unless asked for."""
import pickle

import mxnet as mx
import numpy as np
import pytest

from igc_mx.training import checkpoint

from test_training import TINY_NET, synthetic, train_model, write_rec


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """(record dir, network dir): 256 training and 64 test images, the tiny network."""
    root = tmp_path_factory.mktemp('resume')
    archive = synthetic.write_archive(str(root / 'syn.tar.gz'), num_train=256, num_test=64,
                                      seed=11)
    (root / 'net').mkdir()
    (root / 'net' / 'tiny_resume.py').write_text(TINY_NET)   # a name of its own
    return write_rec(archive, str(root / 'rec')), str(root / 'net')


def run_args(small, prefix, *extra):
    rec, net = small
    return ['--network', 'tiny_resume', '--network-dir', net, '--data-dir', rec,
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
        for a, b in zip(states_a[index], states_b[index]):
            assert np.any(a != 0)
            np.testing.assert_array_equal(a, b, err_msg='state %d' % index)
    # the epochs between really differ (otherwise the test could not fail)
    params_2, _ = saved(straight, 2)
    assert not np.array_equal(params_2['arg:conv1_weight'], params_a['arg:conv1_weight'])
