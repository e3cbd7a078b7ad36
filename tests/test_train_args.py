"""Command lines of the train scripts: every bad option is an argparse-style one-line error
(exit status 2) before anything starts; a loss that turns NaN stops the run."""
import math

import mxnet as mx
import pytest

from igc_mx.training import args as targs

from test_training import train_imagenet, train_model, usage_error

NO_GPU = mx.context.num_gpus() == 0

BAD = [
    # (argv, the message after "error: ")
    (['--batch-size', '0'], "argument --batch-size: expected a positive integer, got '0'"),
    (['--batch-size', '-4'], "argument --batch-size: expected a positive integer, got '-4'"),
    (['--batch-size', '1.5'], "argument --batch-size: expected a positive integer, got '1.5'"),
    (['--test-batch-size', '0'],
     "argument --test-batch-size: expected a positive integer, got '0'"),
    (['--mean-rgb', '1,2'], "argument --mean-rgb: expected 3 comma-separated numbers, got '1,2'"),
    (['--mean-rgb', '1,2,x'], "argument --mean-rgb: expected a finite number, got 'x'"),
    (['--mean-rgb', '1,2,nan'], "argument --mean-rgb: expected a finite number, got 'nan'"),
    (['--std-rgb', '1,0,1'], "argument --std-rgb: expected a positive finite number, got '0'"),
    (['--kv-store', 'bogus'], "argument --kv-store: invalid choice: 'bogus' (choose from "
                              "'local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', "
                              "'dist_async')"),
    (['--lr', 'nan'], "argument --lr: expected a positive finite number, got 'nan'"),
    (['--lr', 'inf'], "argument --lr: expected a positive finite number, got 'inf'"),
    (['--lr', '0'], "argument --lr: expected a positive finite number, got '0'"),
    (['--lr', '-0.1'], "argument --lr: expected a positive finite number, got '-0.1'"),
    (['--lr-factor', '0'], "argument --lr-factor: expected a number in (0, 1], got '0'"),
    (['--lr-factor', '2'], "argument --lr-factor: expected a number in (0, 1], got '2'"),
    (['--lr-steps', '10,x'], "argument --lr-steps: expected a finite number >= 0, got 'x'"),
    (['--lr-steps', '-1'], "argument --lr-steps: expected a finite number >= 0, got '-1'"),
    (['--mom', '1'], "argument --mom: expected a number in [0, 1), got '1'"),
    (['--mom', '-0.1'], "argument --mom: expected a number in [0, 1), got '-0.1'"),
    (['--wd', '-1'], "argument --wd: expected a finite number >= 0, got '-1'"),
    (['--wd', 'nan'], "argument --wd: expected a finite number >= 0, got 'nan'"),
    (['--num-epochs', '0'], "argument --num-epochs: expected a positive integer, got '0'"),
    (['--num-epochs', '-1'], "argument --num-epochs: expected a positive integer, got '-1'"),
    (['--max-batches', '0'], "argument --max-batches: expected a positive integer, got '0'"),
    (['--max-val-batches', '0'],
     "argument --max-val-batches: expected a positive integer, got '0'"),
    (['--network', 'resnet', '--depth', '21'], 'invalid depth 21: valid depths are even '
                                               'numbers >= 8 '),
    (['--depth', '0'], "argument --depth: expected a positive integer, got '0'"),
    (['--primary-partition', '0'],
     "argument --primary-partition: expected a positive integer, got '0'"),
    (['--secondary-partition', '-2'],
     "argument --secondary-partition: expected a positive integer, got '-2'"),
    (['--network-arg', 'foo=1'], "resnet_igc takes no option 'foo'; its options are "),
    (['--network-arg', 'nokeyvalue'],
     "argument --network-arg: expected key=value, got 'nokeyvalue'"),
    (['--data-shape', '0'], "argument --data-shape: expected a positive integer, got '0'"),
    (['--num-classes', '0'], "argument --num-classes: expected a positive integer, got '0'"),
    (['--num-examples', '0'], "argument --num-examples: expected a positive integer, got '0'"),
    (['--data-nthreads', '0'], "argument --data-nthreads: expected a positive integer, got '0'"),
    (['--log-iters', '0'], "argument --log-iters: expected a positive integer, got '0'"),
    (['--checkpoint-epochs', '0'],
     "argument --checkpoint-epochs: expected a positive integer, got '0'"),
    (['--load-epoch', '0'], "argument --load-epoch: expected a positive integer, got '0'"),
    (['--load-epoch', '5', '--num-epochs', '5'],
     '--load-epoch 5 leaves nothing to train: --num-epochs is 5'),
    (['--rand-seed', '-1'], "argument --rand-seed: expected a non-negative integer, got '-1'"),
    (['--gpus', 'x'], "argument --gpus: expected a non-negative integer, got 'x'"),
    (['--gpus', '0,0'], "argument --gpus: expected distinct GPU ids, got '0,0'"),
    (['--kv-store', 'nccl'], '--kv-store nccl needs --gpus'),
    (['--aug-type', '3'], "argument --aug-type: invalid choice: 3 (choose from 0, 1, 2)"),
]


@pytest.mark.parametrize('argv,expected', BAD, ids=[' '.join(a) for a, _ in BAD])
def test_bad_option_is_a_one_line_usage_error(argv, expected, dataset, tmp_path, capsys):
    # a short run, should the option be accepted
    base = ['--data-dir', dataset, '--log-dir', str(tmp_path / 'log'), '--num-epochs', '1',
            '--max-batches', '1', '--max-val-batches', '1', '--network', 'resnet_igc',
            '--depth', '8', '--primary-partition', '4', '--secondary-partition', '2']
    message = usage_error(train_model.main, base + argv, capsys)
    assert message.startswith(expected), message
    assert not (tmp_path / 'log').exists()     # nothing was started


@pytest.mark.parametrize('argv,expected', [
    (['--depth', '50'], 'invalid depth 50: valid ImageNet depths are [18]'),
    (['--network-arg', 'widen=bogus'], "widen='bogus': expected one of "),
    (['--fb-mean', '--mean-rgb', '1,2'],
     "argument --mean-rgb: expected 3 comma-separated numbers, got '1,2'"),
])
def test_bad_imagenet_option_is_a_one_line_usage_error(argv, expected, dataset, tmp_path,
                                                        capsys):
    message = usage_error(train_imagenet.main, ['--data-dir', dataset, '--log-dir',
                                                str(tmp_path / 'log'), *argv], capsys)
    assert message.startswith(expected), message
    assert not (tmp_path / 'log').exists()


@pytest.mark.skipif(not NO_GPU, reason='this machine has a GPU')
def test_gpus_that_are_not_there(dataset, tmp_path, capsys):
    message = usage_error(train_model.main, ['--data-dir', dataset, '--gpus', '0',
                                             '--log-dir', str(tmp_path / 'log')], capsys)
    assert message.startswith('--gpus 0: this machine has 0 GPU(s) visible to MXNet')


@pytest.mark.parametrize('option,value,records', [('--batch-size', '641', 640),
                                                  ('--test-batch-size', '201', 200)])
def test_batch_larger_than_the_records_is_an_error_before_training(option, value, records,
                                                                  dataset, net_dir, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        train_model.main(['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
                          '--log-dir', str(tmp_path / 'log'), '--num-epochs', '1', option,
                          value])
    rec = 'train.rec' if option == '--batch-size' else 'test.rec'
    assert str(exit_.value.code) == 'error: %s %s is larger than the %d records of %s/%s' % (
        option, value, records, dataset, rec)
    assert not (tmp_path / 'log').exists()


def test_a_loss_that_turns_nan_stops_the_run(dataset, net_dir, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        train_model.main(['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
                          '--log-dir', str(tmp_path), '--model-prefix', str(tmp_path / 'm'),
                          '--num-epochs', '3', '--lr', '1e30', '--batch-size', '32',
                          '--max-batches', '6', '--checkpoint-epochs', '1', '--rand-seed', '1',
                          '--data-nthreads', '1'])
    message = str(exit_.value.code)
    assert message.startswith('error: the training loss is nan at epoch 0, batch ')
    assert message.endswith('resume from the last checkpoint with a lower --lr (the initial '
                            'lr is 1e+30)')
    assert not (tmp_path / 'm-0001.params').exists()   # nothing of the diverged epoch


def test_option_types_accept_the_good_values():
    assert targs.rgb('1, 2.5,3') == [1.0, 2.5, 3.0]
    assert targs.epochs('200,300.5') == [200.0, 300.5]
    assert targs.gpu_ids(' 0, 3') == '0,3' and targs.gpu_ids('') == ''
    assert targs.lr_factor('1') == 1.0 and targs.momentum('0') == 0.0
    assert math.isclose(targs.positive_float('1e-5'), 1e-5)
