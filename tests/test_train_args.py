"""Command lines of the train scripts: every bad option is an argparse-style one-line error
(exit status 2) before anything starts; a loss that turns NaN stops the run; float16 is
wired to the network, the optimizer and the checkpoints."""
import errno
import io
import math
import os

import mxnet as mx
import numpy as np
import pytest

from igc_mx.training import args as targs
from igc_mx.training import checkpoint, fit, logs

from test_training import TINY_NET, resolved, train_imagenet, train_model, usage_error

NO_GPU = mx.context.num_gpus() == 0

BAD = [
    # (argv, the message after "error: ")
    (['--batch-size', '0'], "argument --batch-size: expected a positive integer, got '0'"),
    (['--batch-size', '-4'], "argument --batch-size: expected a positive integer, got '-4'"),
    (['--batch-size', '1.5'], "argument --batch-size: expected a positive integer, got '1.5'"),
    (['--test-batch-size', '0'],
     "argument --test-batch-size: expected a positive integer, got '0'"),
    (['--mean-rgb', '1,2'], '--mean-rgb has 2 values; the images have 3 channel(s)'),
    (['--std-rgb', '1,2,3,4'], '--std-rgb has 4 values; the images have 3 channel(s)'),
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
    (['--lr-steps', '10,x'], "argument --lr-steps: expected an epoch > 0, got 'x'"),
    (['--lr-steps', '-1'], "argument --lr-steps: expected an epoch > 0, got '-1'"),
    (['--lr-steps', '0'], "argument --lr-steps: expected an epoch > 0, got '0'"),
    (['--lr-steps', '1,1'], "argument --lr-steps: expected strictly increasing epochs, got "
                            "'1,1'"),
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
    (['--network-arg', 'fused=maybe'], "g1_b1_p2_two1: fused='maybe': expected True, False "
                                       'or None'),
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
    (['--dtype', 'float16'],
     '--dtype float16 needs --gpus: the CPU kernels compute in float32 and float64'),
    (['--dtype', 'float64'], "argument --dtype: invalid choice: 'float64' (choose from "
                             "'float32', 'float16')"),
    (['--kv-store', 'nccl'], '--kv-store nccl needs --gpus'),
    (['--network-arg', 'dtype=float16'],
     '--network-arg dtype=float16 needs --gpus: the CPU kernels compute in float32'),
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
    (['--fb-mean', '--mean-rgb', '1,2'], '--mean-rgb has 2 values; the images have 3 '
                                         'channel(s)'),
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
    assert str(exit_.value.code) == (
        f'error: {option} {value} is larger than the {records} records of {dataset}/{rec}')
    assert not (tmp_path / 'log').exists()


ARGUMENTS = 'num_classes, depth, primary_partition=1, secondary_partition=None'
USER_NETWORKS = [
    # (module name, source, the message after "error: ", {} formatted with the module's path)
    ('broken_syntax', 'def get_symbol(num_classes, depth\n',
     "--network-dir {dir}: {path} cannot be imported: SyntaxError: '(' was never closed "
     '(broken_syntax.py, line 1)'),
    ('broken_import', 'import no_such_module_here\n',
     "--network-dir {dir}: {path} cannot be imported: ModuleNotFoundError: No module named "
     "'no_such_module_here'"),
    ('raising', f'def get_symbol({ARGUMENTS}):\n    raise RuntimeError("builder broke")\n',
     '--network raising: get_symbol of {path} failed: RuntimeError: builder broke'),
    ('no_builder', 'x = 1\n',
     '--network no_builder: {path} defines no get_symbol(num_classes, depth, '
     'primary_partition, secondary_partition)'),
    ('not_a_symbol', f'def get_symbol({ARGUMENTS}):\n    return 42\n',
     '--network not_a_symbol: get_symbol returned int 42, expected an mx.sym.Symbol'),
    ('headless', TINY_NET.replace("return mx.sym.SoftmaxOutput(x, name='softmax')", 'return x'),
     "--network headless: the network ends in FullyConnected; training expects one "
     "SoftmaxOutput named 'softmax' (label softmax_label), e.g. "
     "mx.sym.SoftmaxOutput(scores, name='softmax')"),
    ('seven_classes', TINY_NET.replace('num_hidden=num_classes', 'num_hidden=7'),
     '--network seven_classes outputs (1, 7) for an image of shape (1, 3, 32, 32); the dataset '
     'has 10 classes, so (1, 10) was expected (does get_symbol use its num_classes argument?)'),
]


@pytest.mark.parametrize('name,source,expected', USER_NETWORKS,
                         ids=[n for n, _, _ in USER_NETWORKS])
def test_a_network_dir_module_that_cannot_train_is_a_one_line_usage_error(
        name, source, expected, dataset, tmp_path, capsys):
    folder = tmp_path / 'nets'
    folder.mkdir()
    path = folder / f'{name}.py'
    path.write_text(source)
    message = usage_error(train_model.main, [
        '--network', name, '--network-dir', str(folder), '--data-dir', dataset,
        '--log-dir', str(tmp_path / 'log'), '--num-epochs', '1'], capsys)
    assert message == expected.format(dir=folder, path=path)
    assert not (tmp_path / 'log').exists()


@pytest.mark.parametrize('kv_store', ['dist_sync', 'dist_device_sync', 'dist_async'])
def test_a_distributed_kvstore_without_the_launcher_is_a_one_line_usage_error(
        kv_store, dataset, net_dir, tmp_path, monkeypatch, capsys):
    for name in ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER',
                 'DMLC_NUM_WORKER'):
        monkeypatch.delenv(name, raising=False)
    message = usage_error(train_model.main, [
        '--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
        '--log-dir', str(tmp_path / 'log'), '--num-epochs', '1', '--kv-store', kv_store], capsys)
    assert message == (
        f'--kv-store {kv_store} runs inside a distributed job, and DMLC_ROLE, DMLC_PS_ROOT_URI, '
        'DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER are not set: start the command '
        'with igc-launch (e.g. igc-launch -n 2 -s 1 --launcher local python train_model.py '
        '...), or use --kv-store device on one machine')


@pytest.mark.parametrize('option', ['--log-file', '--model-prefix'])
def test_a_log_or_checkpoint_that_cannot_be_written_is_a_one_line_error(option, dataset,
                                                                        net_dir, tmp_path,
                                                                        capsys):
    not_a_folder = tmp_path / 'file'
    not_a_folder.write_text('')
    target = tmp_path if option == '--log-file' else not_a_folder / 'm'   # a folder; under a file
    message = usage_error(train_model.main, [
        '--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
        '--log-dir', str(tmp_path / 'log'), '--num-epochs', '1', '--max-batches', '1',
        option, str(target)], capsys)
    if option == '--log-file':
        assert message == (f'--log-file {tmp_path} is a folder: only a regular file or a new '
                           'path is written, so it is left as it is')
    else:
        assert message == (f'checkpoint file {target}-symbol.json lies under {not_a_folder}, '
                           'which is a file, not a folder')


def test_a_log_file_on_a_full_disk_stops_the_run(dataset, net_dir, tmp_path, monkeypatch,
                                                 capsys):
    """Every write to the log fails with ENOSPC (a full disk): logging's default would print
    a traceback per line and let the run finish with status 0."""
    class Full(io.TextIOBase):
        def writable(self):
            return True

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(logs._FileHandler, '_open', lambda self: Full())
    log = tmp_path / 'run.txt'
    with pytest.raises(SystemExit) as exit_:
        train_model.main(['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
                          '--model-prefix', str(tmp_path / 'm'), '--log-file', str(log),
                          '--num-epochs', '1', '--max-batches', '1', '--data-nthreads', '1'])
    assert exit_.value.code == f'error: cannot write {log}: No space left on device'
    assert 'Logging error' not in capsys.readouterr().err
    assert not (tmp_path / 'm-0001.params').exists()


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


# --- float16 ---------------------------------------------------------------------

def float16_config(dataset, tmp_path, *extra):
    """The configuration of a float16 run on GPU 0, as main() resolves it (the GPU check is
    left out: this machine may have none)."""
    return resolved(train_model, [
        '--data-dir', dataset, '--gpus', '0', '--dtype', 'float16', '--network', 'resnet_igc',
        '--depth', '8', '--primary-partition', '4', '--secondary-partition', '2',
        '--log-dir', str(tmp_path), *extra])


def test_float16_run_builds_a_float16_network_and_a_multi_precision_optimizer(dataset,
                                                                              tmp_path):
    cfg = float16_config(dataset, tmp_path)
    sym = cfg.network.build()
    arg_types, _, aux_types = sym.infer_type(data=np.float32)
    types = dict(zip(sym.list_arguments(), arg_types, strict=True))
    assert types['data'] == np.float32                    # the iterators' batches
    assert types['g0_conv_weight'] == np.float16          # computed in float16
    assert types['g0_bn_gamma'] == np.float32              # BatchNorm keeps float32
    assert set(aux_types) == {np.float32}
    assert sym.infer_type(data=np.float32)[1] == [np.float32]   # scores cast back
    params = fit.optimizer_params(cfg.optim, None, 0)
    assert params['multi_precision'] is True
    opt = mx.optimizer.create('nesterov', **params)
    weight = mx.nd.ones((2, 2), dtype='float16')
    state = opt.create_state_multi_precision(0, weight)
    assert state[1].dtype == np.float32                   # the float32 master weight
    assert fit.optimizer_params(resolved(train_model, ['--data-dir', dataset]).optim, None,
                                0)['multi_precision'] is False


def test_float32_checkpoint_loads_into_a_float16_module_and_saves_as_float32(dataset, tmp_path):
    sym = float16_config(dataset, tmp_path).network.build()
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(data_shapes=[('data', (2, 3, 32, 32))], label_shapes=[('softmax_label', (2,))])
    rng = np.random.RandomState(0)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(2, 3, 32, 32))
    arg32 = {n: mx.nd.array(rng.randn(*s))
             for n, s in zip(sym.list_arguments(), arg_shapes, strict=True)
             if n not in ('data', 'softmax_label')}
    aux32 = {n: mx.nd.array(rng.rand(*s)) for n, s in zip(sym.list_auxiliary_states(),
                                                          aux_shapes, strict=True)}
    mod.init_params(arg_params=arg32, aux_params=aux32)
    args16, aux = mod.get_params()
    assert args16['g0_conv_weight'].dtype == np.float16
    np.testing.assert_array_equal(args16['g0_conv_weight'].asnumpy(),
                                  arg32['g0_conv_weight'].asnumpy().astype(np.float16))
    prefix = str(tmp_path / 'm')
    checkpoint.save(prefix, 1, sym, args16, aux)
    arg_back, aux_back, _ = checkpoint.load(prefix, 1)
    assert {v.dtype for v in arg_back.values()} == {np.float32}
    np.testing.assert_array_equal(arg_back['g0_conv_weight'].asnumpy(),
                                  arg32['g0_conv_weight'].asnumpy().astype(np.float16)
                                  .astype(np.float32))


def test_option_types_accept_the_good_values():
    assert targs.numbers('1, 2.5,3') == [1.0, 2.5, 3.0]
    assert targs.epochs('200,300.5') == [200.0, 300.5]
    assert targs.gpu_ids(' 0, 3') == (0, 3) and targs.gpu_ids('') == ()
    assert targs.lr_factor('1') == 1.0 and targs.momentum('0') == 0.0
    assert math.isclose(targs.positive_float('1e-5'), 1e-5)
