"""The training harness: optimizer rule, schedule, data checks, checkpoints,
a real CPU training run, resume, the curve plotter and the synthetic dataset."""
import dataclasses
import math
import os
import pickle
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from igc_mx import networks
from igc_mx.datasets import synthetic_cifar as synthetic
from igc_mx.tools import plot_curves
from igc_mx.training import checkpoint, config, data, optim, records, schedule

from conftest import load_module

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TINY_NET = '''
import mxnet as mx
def get_symbol(num_classes, depth, primary_partition=1, secondary_partition=None, width=8):
    x = mx.sym.Variable('data')
    x = mx.sym.Convolution(x, num_filter=width, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                           name='conv1')
    x = mx.sym.BatchNorm(x, name='bn1')
    x = mx.sym.Activation(x, act_type='relu')
    x = mx.sym.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
    x = mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=num_classes, name='fc')
    return mx.sym.SoftmaxOutput(x, name='softmax')
'''


train_model = load_module('train_model', 'train_model.py')
train_imagenet = load_module('train_imagenet', 'train_imagenet.py')


def resolved(script, argv, top_k=0):
    """The TrainConfig of ``script``'s command line (without the GPU visibility check)."""
    return config.resolve(script.build_parser().parse_args(argv), top_k)


def write_rec(archive, out_dir):
    """train.rec/test.rec (with .idx) from a CIFAR-format archive, packed here
    with mx.recordio so the test does not depend on igc-make-rec."""
    os.makedirs(out_dir, exist_ok=True)
    with tarfile.open(archive) as tar:
        def batch(name):
            return pickle.load(tar.extractfile('cifar-10-batches-py/' + name),
                               encoding='bytes')
        splits = {'train': [batch(f'data_batch_{i}') for i in range(1, 6)],
                  'test': [batch('test_batch')]}
    for split, batches in splits.items():
        x = np.concatenate([b[b'data'] for b in batches]).reshape(-1, 3, 32, 32)
        y = sum((b[b'labels'] for b in batches), [])
        rec = mx.recordio.MXIndexedRecordIO(os.path.join(out_dir, split + '.idx'),
                                            os.path.join(out_dir, split + '.rec'), 'w')
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            bgr = img.transpose(1, 2, 0)[:, :, ::-1]
            header = mx.recordio.IRHeader(0, float(label), i, 0)
            rec.write_idx(i, mx.recordio.pack_img(header, bgr, quality=9, img_fmt='.png'))
        rec.close()
    return out_dir


def tiny_args(dataset, net_dir, out, *extra):
    return ['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
            '--batch-size', '32', '--log-iters', '5', '--rand-seed', '1',
            '--log-dir', str(out), '--data-nthreads', '1', *extra]


# --- optimizer --------------------------------------------------------------

def probe_symbol():
    data = mx.sym.Variable('data')
    x = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name='conv1')
    x = mx.sym.BatchNorm(x, name='bn1')
    offset = mx.sym.Variable('shift_offset', shape=(1, 4, 1, 1),   # no decayed suffix
                             init=mx.init.Zero())
    half = mx.sym.Variable('half_weight', shape=(1, 4, 1, 1), wd_mult=0.5)
    x = mx.sym.broadcast_mul(mx.sym.broadcast_add(x, offset), half)
    x = mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=3, name='fc')
    return mx.sym.SoftmaxOutput(x, name='softmax')


def bound_module(optimizer):
    mod = mx.mod.Module(probe_symbol(), context=mx.cpu())
    mod.bind(data_shapes=[('data', (2, 3, 5, 5))], label_shapes=[('softmax_label', (2,))])
    mod.init_params(optim.initializer())
    mod.init_optimizer(kvstore=None, optimizer=optimizer,
                       optimizer_params={'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-4})
    return mod


def effective_wd(opt):
    return {opt.idx2name[i]: w
            for i, w in zip(opt.idx2name, opt._get_wds(list(opt.idx2name)), strict=True)}


def test_weight_decay_rule_after_module_init():
    wd = effective_wd(bound_module('nesterov')._optimizer)
    assert wd == pytest.approx({
        'conv1_weight': 1e-4, 'conv1_bias': 1e-4, 'bn1_gamma': 1e-4, 'bn1_beta': 1e-4,
        'fc_weight': 1e-4, 'fc_bias': 1e-4, 'shift_offset': 0.0, 'half_weight': 0.5e-4})
    # MXNet's own NAG decays only *_weight and *_gamma: the override is what differs.
    default = effective_wd(bound_module('nag')._optimizer)
    assert default['conv1_bias'] == 0 and default['bn1_beta'] == 0


def test_original_optimizer_attribute_error_cannot_happen():
    class OriginalStyle(mx.optimizer.NAG):  # the 2017 override's access pattern
        def set_wd_mult(self, args_wd_mult):
            if self.sym is not None:
                pass

    sym = probe_symbol()
    idx2name = dict(enumerate(sym.list_arguments()))
    with pytest.raises(AttributeError, match="'sym'"):
        OriginalStyle(sym=sym, param_idx2name=idx2name)
    opt = mx.optimizer.create('nesterov', sym=sym, param_idx2name=idx2name)
    assert isinstance(opt, optim.Nesterov) and not hasattr(opt, 'sym')
    # The dist kvstore pickles the optimizer for its servers: they get a plain NAG
    # (importable during `import mxnet`) carrying the same decay rule.
    clone = pickle.loads(pickle.dumps(opt))
    assert type(clone) is mx.optimizer.NAG and clone.wd_mult == opt.wd_mult


def test_updates_match_numpy_nesterov():
    rng = np.random.RandomState(0)
    lr, mom, wd, rescale = 0.05, 0.9, 1e-2, 1 / 8.
    opt = mx.optimizer.create('nesterov', learning_rate=lr, momentum=mom, wd=wd,
                              rescale_grad=rescale,
                              param_idx2name={0: 'fc_weight', 1: 'fc_offset'})
    updater = mx.optimizer.get_updater(opt)
    w0 = {i: rng.randn(4, 3).astype(np.float32) for i in (0, 1)}
    weights = {i: mx.nd.array(w0[i]) for i in (0, 1)}
    ref = {i: w0[i].astype(np.float64) for i in (0, 1)}
    buf = {i: np.zeros((4, 3)) for i in (0, 1)}
    for _ in range(3):
        for i, decay in ((0, wd), (1, 0.0)):
            g = rng.randn(4, 3).astype(np.float32)
            updater(i, mx.nd.array(g), weights[i])
            # torch-style Nesterov: v = m v + G; w -= lr (G + m v), G = rescale g + wd w
            G = rescale * g + decay * ref[i]
            buf[i] = mom * buf[i] + G
            ref[i] = ref[i] - lr * (G + mom * buf[i])
    for i in (0, 1):
        np.testing.assert_allclose(weights[i].asnumpy(), ref[i], rtol=1e-6, atol=1e-6)


def test_first_update_equals_mxnet_nag():
    rng = np.random.RandomState(1)
    w, g = rng.randn(5, 5).astype(np.float32), rng.randn(5, 5).astype(np.float32)
    out = []
    for name in ('nesterov', 'nag'):
        opt = mx.optimizer.create(name, learning_rate=0.1, momentum=0.9, wd=1e-3,
                                  param_idx2name={0: 'c_weight'})
        weight = mx.nd.array(w)
        mx.optimizer.get_updater(opt)(0, mx.nd.array(g), weight)
        out.append(weight.asnumpy())
    np.testing.assert_array_equal(out[0], out[1])


def test_initializer_values():
    mod = bound_module('nesterov')
    args, aux = mod.get_params()
    assert np.all(args['conv1_bias'].asnumpy() == 0) and np.all(args['fc_bias'].asnumpy() == 0)
    assert np.all(args['bn1_gamma'].asnumpy() == 1) and np.all(args['bn1_beta'].asnumpy() == 0)
    assert np.all(aux['bn1_moving_var'].asnumpy() == 1)   # deliberate: the original set 0
    # gaussian Xavier 'in', magnitude 2 -> std sqrt(2 / fan_in); fan_in = 3*3*3
    mx.random.seed(0)
    w = mx.nd.zeros((256, 3, 3, 3))
    optim.initializer()(mx.init.InitDesc('conv9_weight'), w)
    assert w.asnumpy().std() == pytest.approx(math.sqrt(2 / 27), rel=0.05)
    # fc: uniform Xavier 'in', magnitude 1 -> U(-sqrt(1 / fan_in), sqrt(1 / fan_in))
    w = mx.nd.zeros((64, 300))
    optim.initializer()(mx.init.InitDesc('fc_weight'), w)
    bound = math.sqrt(1 / 300)
    assert np.abs(w.asnumpy()).max() <= bound and np.abs(w.asnumpy()).max() > 0.9 * bound


# --- presets and schedule ---------------------------------------------------

def lrs_at(base, factor, lr_steps, per_epoch, updates):
    sched = schedule.make_scheduler(base, factor, lr_steps, per_epoch)
    return [sched(u) for u in updates]


@pytest.mark.parametrize('dataset_name,epochs,steps,examples', [
    ('cifar10', 400, [200, 300, 350], 50000),
    ('svhn', 40, [20, 30, 35], 604388),
])
def test_small_dataset_schedule(dataset_name, epochs, steps, examples, tmp_path):
    cfg = resolved(train_model, ['--dataset', dataset_name, '--data-dir', str(tmp_path)])
    assert (cfg.run.num_epochs, cfg.optim.lr_steps, cfg.data.num_examples) == \
        (epochs, tuple(steps), examples)
    per_epoch = schedule.epoch_size(cfg.data.num_examples, cfg.data.batch_size)
    assert per_epoch == math.ceil(examples / 64)
    s1, s2, s3 = (s * per_epoch for s in steps)
    got = lrs_at(0.1, 0.1, cfg.optim.lr_steps, per_epoch,
                 [1, s1, s1 + 1, s2, s2 + 1, s3, s3 + 1, epochs * per_epoch])
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])
    # epoch -> lr, the original's resume rule
    assert [schedule.lr_at_epoch(0.1, 0.1, steps, e) for e in (0, steps[0] - 1, steps[0],
                                                              steps[2])] == \
        pytest.approx([0.1, 0.1, 0.01, 1e-4])


def test_presets_fill_only_unset_options(tmp_path):
    cfg = resolved(train_model, ['--dataset', 'svhn', '--data-dir', str(tmp_path)])
    assert (cfg.data.aug_type, cfg.data.val_batch_size, cfg.data.std) == \
        (0, 280, (50.498, 51.259, 50.244))
    cfg = resolved(train_model, ['--dataset', 'cifar100', '--batch-size', '512',
                                 '--num-epochs', '8', '--aug-type', '2',
                                 '--data-dir', str(tmp_path)])
    assert (cfg.network.num_classes, cfg.data.val_batch_size, cfg.run.num_epochs,
            cfg.data.aug_type, cfg.optim.lr_steps, cfg.run.checkpoint_epochs) == \
        (100, 512, 8, 2, (4, 6, 7), 1)
    assert cfg.data.mean == (129.304, 124.070, 112.434)


def test_the_configuration_is_frozen(tmp_path):
    cfg = resolved(train_model, ['--data-dir', str(tmp_path)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.batch_size = 1


def test_no_network_flags_build_the_papers_cifar_network(tmp_path):
    cfg = resolved(train_model, ['--data-dir', str(tmp_path)])
    assert (cfg.network.name, cfg.network.depth, cfg.network.primary_partition,
            cfg.network.secondary_partition) == ('resnet_igc', 20, 24, 2)
    with mx.name.NameManager():
        ours = cfg.network.build().tojson()
    with mx.name.NameManager():
        assert ours == networks.get_symbol('resnet_igc', 10, 20, 24, 2, device='cpu').tojson()


def test_imagenet_schedule(tmp_path):
    cfg = resolved(train_imagenet, ['--data-dir', str(tmp_path), '--network-arg',
                                    'widen=primary'])
    assert (cfg.run.num_epochs, cfg.data.batch_size, cfg.optim.lr_steps,
            cfg.data.val_batch_size, cfg.network.options) == \
        (120, 256, (30, 60, 90), 256, (('device', 'cpu'), ('widen', 'primary')))
    for workers in (1, 2):
        per_epoch = schedule.epoch_size(1281167, 256, workers)
        assert per_epoch == math.ceil(1281167 // workers / 256)
        b = [30 * per_epoch, 60 * per_epoch, 90 * per_epoch]
        got = lrs_at(0.1, 0.1, cfg.optim.lr_steps, per_epoch,
                     [b[0], b[0] + 1, b[1], b[1] + 1, b[2], b[2] + 1, 120 * per_epoch])
        assert got == pytest.approx([0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])


def test_scheduler_restored_at_resume_point():
    per_epoch, steps = 782, [200, 300, 350]
    for epoch in (0, 199, 200, 299, 300, 349, 350, 399):
        fresh = schedule.make_scheduler(0.1, 0.1, steps, per_epoch)
        assert fresh(epoch * per_epoch + 1) == pytest.approx(
            0.1 * 0.1 ** sum(s <= epoch for s in steps))


# --- data --------------------------------------------------------------------

def test_record_file_errors_name_path_and_command(tmp_path):
    missing = tmp_path / 'train.rec'
    with pytest.raises(records.RecordFileError) as err:
        records.check_rec(str(missing), 'cifar10')
    assert str(missing) in str(err.value) and 'does not exist' in str(err.value)
    assert f'igc-make-rec cifar10 <cifar-10-python.tar.gz> {tmp_path}' \
        in str(err.value)
    missing.mkdir()
    with pytest.raises(records.RecordFileError, match='train.rec is not a regular file'):
        records.check_rec(str(missing), 'cifar10')
    missing.rmdir()
    missing.write_bytes(b'')
    with pytest.raises(records.RecordFileError, match='is empty'):
        records.check_rec(str(missing))
    missing.write_bytes(b'not a record file')
    with pytest.raises(records.RecordFileError, match='not an MXNet RecordIO'):
        records.check_rec(str(missing))


def test_missing_rec_cli_message(tmp_path):
    proc = subprocess.run([PY, str(REPO / 'train_model.py'), '--data-dir', str(tmp_path),
                           '--log-dir', str(tmp_path / 'logs')],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'error: record file %s does not exist' % (tmp_path / 'train.rec') in proc.stderr
    assert 'igc-make-rec cifar10' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'logs').exists()


def test_pad_crop_mirror_matches_a_window_of_the_padded_image():
    rng = np.random.RandomState(0)
    x = rng.randn(16, 3, 6, 6).astype(np.float32)
    inner = mx.io.NDArrayIter(x, np.arange(16), batch_size=16)
    mean, std = [125.307, 122.950, 113.865], [62.993, 62.089, 66.705]
    it = data.PadCropMirrorIter(inner, 2, mean, std, seed=0)
    out = next(iter(it)).data[0].asnumpy()
    fill = np.array([(round(m) - m) / s for m, s in zip(mean, std, strict=True)])
    padded = np.stack([np.pad(img, ((0, 0), (2, 2), (2, 2))) for img in x])
    padded[:, :, :2, :] = padded[:, :, -2:, :] = fill[None, :, None, None]
    padded[:, :, :, :2] = padded[:, :, :, -2:] = fill[None, :, None, None]
    offsets, flips = set(), 0
    for i in range(16):
        found = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (0, 1)
                 if np.allclose(out[i], padded[i, :, dy:dy + 6, dx:dx + 6][:, :, ::-1]
                                if f else padded[i, :, dy:dy + 6, dx:dx + 6], atol=1e-6)]
        assert found, f'sample {i} is not a crop of the padded image'
        offsets.add(found[0][:2])
        flips += found[0][2]
    assert len(offsets) > 3 and 0 < flips < 16   # really random


def test_synthetic_cifar_format_and_determinism(tmp_path):
    a = synthetic.write_archive(str(tmp_path / 'a.tar.gz'), 50, 10, seed=5)
    b = synthetic.write_archive(str(tmp_path / 'b.tar.gz'), 50, 10, seed=5)
    assert Path(a).read_bytes() == Path(b).read_bytes()
    with tarfile.open(a) as tar:
        names = sorted(tar.getnames())
        assert names == sorted(['cifar-10-batches-py/' + n for n in
                                ['batches.meta', 'test_batch'] +
                                [f'data_batch_{i}' for i in range(1, 6)]])
        d = pickle.load(tar.extractfile('cifar-10-batches-py/data_batch_1'), encoding='bytes')
        meta = pickle.load(tar.extractfile('cifar-10-batches-py/batches.meta'),
                           encoding='bytes')
    assert d[b'data'].dtype == np.uint8 and d[b'data'].shape == (10, 3072)
    assert all(0 <= v < 10 for v in d[b'labels']) and len(meta[b'label_names']) == 10


# --- training runs ---------------------------------------------------------------

LOG_BATCH = re.compile(r'Epoch\[\d+\] Batch \[\d+\]\tSpeed: \d+\tloss: \d+\.\d{4}\(\d+\.\d{4}\)'
                       r'\ttop1: \d+\.\d{4}\(\d+\.\d{4}\)$')


def epoch_values(text, key):
    return {int(e): float(v) for e, v in re.findall(rf'Epoch\[(\d+)\] {key}=([0-9.]+)', text)}


def test_cpu_training_learns_and_logs(dataset, net_dir, tmp_path):
    mod = train_model.main(tiny_args(dataset, net_dir, tmp_path, '--num-epochs', '4',
                                     '--network-arg', 'width=16', '--checkpoint-epochs', '2'))
    run = tmp_path / 'cifar10' / 'tiny'
    log = (run / 'tiny_d20L24M2_exp1.txt').read_text()
    lines = log.splitlines()
    assert re.search(r'network parameters: \d+\.\d{4}M$', lines[0])
    assert sum(bool(LOG_BATCH.search(line)) for line in lines) == 4 * 4   # 20 batches, every 5
    loss = epoch_values(log, 'Train-cross-entropy')
    acc = epoch_values(log, 'Validation-accuracy')
    assert sorted(loss) == [0, 1, 2, 3] and loss[3] < loss[0] - 0.2
    assert acc[3] > 0.2                                            # chance is 0.1
    assert re.search(r'Epoch\[3\] Time cost=[0-9.]+', log)
    weights = run / 'weights' / 'tiny_d20L24M2_exp1'
    assert sorted(p.name for p in weights.iterdir()) == [
        'tiny_d20L24M2_exp1-0002.params', 'tiny_d20L24M2_exp1-0002.states',
        'tiny_d20L24M2_exp1-0004.params', 'tiny_d20L24M2_exp1-0004.states',
        'tiny_d20L24M2_exp1-symbol.json']
    saved = mx.nd.load(str(weights / 'tiny_d20L24M2_exp1-0004.params'))
    args, _ = mod.get_params()
    np.testing.assert_array_equal(saved['arg:fc_weight'].asnumpy(), args['fc_weight'].asnumpy())
    assert mod.get_params()[0]['conv1_weight'].shape == (16, 3, 3, 3)


def test_resume_restores_lr_and_update_count(dataset, net_dir, tmp_path):
    common = tiny_args(dataset, net_dir, tmp_path, '--num-epochs', '3', '--lr-steps', '1,2',
                       '--max-batches', '4', '--checkpoint-epochs', '1', '--aug-type', '0')
    first = train_model.main(common)
    assert first._optimizer.num_update == 12
    resumed = train_model.main(common + ['--load-epoch', '2'])
    opt = resumed._optimizer
    assert opt.num_update == 12 and opt.learning_rate == pytest.approx(1e-3)
    log = (tmp_path / 'cifar10_noaug' / 'tiny' / 'tiny_d20L24M2_exp1.txt').read_text()
    tail = log[log.index('resumed from'):]
    assert 'lr=0.001 (at epoch 2)' in log and 'Epoch[2] Train-accuracy' in tail
    assert 'Epoch[0]' not in tail and 'Epoch[1]' not in tail
    prefix = str(tmp_path / 'cifar10_noaug' / 'tiny' / 'weights' / 'tiny_d20L24M2_exp1' /
                 'tiny_d20L24M2_exp1')
    _, _, states = checkpoint.load(prefix, 2)
    assert states and os.path.getsize(states) > 0   # the momentum was saved and reloaded


def test_checkpoint_is_atomic(tmp_path, monkeypatch):
    sym = probe_symbol()
    arg = {'fc_weight': mx.nd.ones((3, 4))}
    aux = {'bn1_moving_var': mx.nd.ones(4)}
    prefix = str(tmp_path / 'run')
    checkpoint.save(prefix, 1, sym, arg, aux)
    a, x, states = checkpoint.load(prefix, 1)
    assert a['fc_weight'].asnumpy().sum() == 12 and 'bn1_moving_var' in x and states is None

    def broken_save(path, payload):
        with open(path, 'wb') as f:
            f.write(b'half a file')
        raise OSError('disk full')

    monkeypatch.setattr(mx.nd, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        checkpoint.save(prefix, 2, sym, arg, aux)
    assert sorted(os.listdir(tmp_path)) == ['run-0001.params', 'run-symbol.json']


def test_train_model_without_network_flags_trains_resnet_igc_l24m2(dataset, tmp_path):
    proc = subprocess.run(
        [PY, str(REPO / 'train_model.py'), f'--data-dir={dataset}',
         '--num-epochs', '1', '--max-batches', '2', '--max-val-batches', '1',
         '--batch-size', '16', '--test-batch-size', '16', '--log-iters', '1',
         '--log-dir', str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / 'cifar10' / 'resnet_igc' / 'resnet_igc_d20L24M2_exp1.txt').read_text()
    assert 'Epoch[0] Validation-accuracy=' in log
    from igc_mx.training import logs
    expected = logs.count_params(networks.get_symbol('resnet_igc', 10, 20, 24, 2),
                                 (1, 3, 32, 32))
    assert re.match(rf'\S+ \S+ network parameters: {expected / 1e6:.4f}M', log)


# --- curves --------------------------------------------------------------------

def test_plot_curves_png(tmp_path):
    log = tmp_path / 'a.txt'
    log.write_text('2026-01-01 00:00:00,000 network parameters: 1.0000M\n'
                   'x Epoch[0] Train-accuracy=0.500000\nx Epoch[0] Validation-accuracy=0.400000\n'
                   'x Epoch[1] Train-accuracy=0.750000\nx Epoch[1] Validation-accuracy=nan\n'
                   'x Epoch[1] Train-accuracy=0.800000\n')   # resumed: the last value wins
    curves = plot_curves.parse_log(str(log))
    assert curves['train'] == pytest.approx({1: 50.0, 2: 20.0})
    assert curves['test'] == pytest.approx({1: 60.0})
    out = tmp_path / 'curves.png'
    proc = subprocess.run([PY, str(REPO / 'tools' / 'plot_curves.py'), str(log), str(log),
                           '-o', str(out), '--labels', 'a,b'], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    empty = tmp_path / 'empty.txt'
    empty.write_text('nothing here\n')
    with pytest.raises(ValueError):
        plot_curves.plot([str(empty)], str(tmp_path / 'none.png'))
    assert not (tmp_path / 'none.png').exists()


# --- ImageNet script -------------------------------------------------------------

@pytest.mark.parametrize('argv,millions', [
    (['--primary-partition', '4', '--secondary-partition', '32'], 12.251),       # IGC-L4M32
    (['--primary-partition', '100'], 8.638),              # IGC-L100M2, the original README's
    (['--primary-partition', '16', '--secondary-partition', '16'], 13.528),      # IGC-L16M16
    ([], 8.638),                                          # no flags: IGC-L100M2
    (['--network', 'resnet_imgnet_d18'], 11.690),         # ResNet-18 C=64 by default
    (['--network', 'resnet_imgnet_d18', '--primary-partition', '69'], 13.542),
])
def test_imagenet_network_args_reach_get_symbol(argv, millions, tmp_path):
    from igc_mx.training import logs
    sym = resolved(train_imagenet, argv + ['--data-dir', str(tmp_path)]).network.build()
    # parameter counts of the authors' published symbol files (FACTS.md)
    assert logs.count_params(sym, (1, 3, 224, 224)) / 1e6 == pytest.approx(millions, abs=5e-4)


def usage_error(main, argv, capsys):
    """The one-line message of an argparse-style error (exit status 2) of ``main``."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: ') and 'Traceback' not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(('train_model.py: error: ', 'train_imagenet.py: error: ')), lines
    return lines[-1].split(' error: ', 1)[1]


def test_unknown_network_is_a_one_line_error_listing_the_names(dataset, net_dir, tmp_path,
                                                               capsys):
    message = usage_error(train_model.main, ['--network', 'resnet_ig', '--data-dir', dataset,
                                             '--log-dir', str(tmp_path)], capsys)
    assert message.startswith("unknown network 'resnet_ig': valid names are ")
    assert 'resnet_igc' in message
    # with --network-dir, the directory's modules are valid names too
    message = usage_error(train_model.main, ['--network', 'tin', '--network-dir', net_dir,
                                             '--data-dir', dataset, '--log-dir', str(tmp_path)],
                          capsys)
    assert 'tiny' in message
    message = usage_error(train_model.main, ['--network-dir', str(tmp_path / 'none'),
                                             '--data-dir', dataset, '--log-dir', str(tmp_path)],
                          capsys)
    assert message == 'network directory %s does not exist' % (tmp_path / 'none')
    assert not (tmp_path / 'cifar10').exists()     # nothing was started


def test_imagenet_script_trains_with_top5(dataset, net_dir, tmp_path):
    train_imagenet.main(['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
                         '--train-dataset', 'train.rec', '--val-dataset', 'test.rec',
                         '--num-epochs', '1', '--max-batches', '3', '--max-val-batches', '2',
                         '--batch-size', '16', '--data-shape', '64', '--log-iters', '1',
                         '--rand-seed', '1', '--log-dir', str(tmp_path), '--data-nthreads', '1'])
    log = (tmp_path / 'imagenet' / 'tiny' / 'tiny_d18LM_exp1.txt').read_text()
    assert re.search(r'Epoch\[0\] Batch \[3\]\tSpeed: \d+\tloss: [0-9.]+\([0-9.]+\)\ttop1: '
                     r'[0-9.]+\([0-9.]+\)\ttop5: [0-9.]+\([0-9.]+\)', log)
    assert 'Epoch[0] Validation-top_k_accuracy_5=' in log
    assert 'steps(epochs)=[]' in log        # 1 epoch: no step inside the run
