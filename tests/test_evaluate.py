"""After training: tools/evaluate.py (igc_mx.tools.evaluate) on a checkpoint that
train_model.py wrote (conftest's ``trained``), every image counted once
(igc_mx.scoring), the original graph, and the exported model in ONNX Runtime."""
import json
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import mxnet as mx
import numpy as np
import onnx
import pytest

from igc_mx import onnx as igc_onnx
from igc_mx import scoring
from igc_mx.rewrite import count_fused, fuse_igc
from igc_mx.tools import evaluate
from igc_mx.training import data
from igc_mx.training.config import DataConfig

from conftest import PUBLISHED_SYMBOLS, run_ort
from conftest import TRAINED_BATCH as BATCH
from conftest import TRAINED_TEST_IMAGES as NUM_TEST

REPO = Path(__file__).resolve().parents[1]


def score(*argv):
    return evaluate.run([*argv, '--quiet', '--data-nthreads', '1'])


def logged(log, key):
    return {int(e): v for e, v in re.findall(rf'Epoch\[(\d+)\] Validation-{key}=([0-9.]+)',
                                              log)}


def test_top1_equals_the_training_log(trained, tmp_path):
    accuracy, entropy = logged(trained.log, 'accuracy'), logged(trained.log, 'cross-entropy')
    assert sorted(accuracy) == [0, 1]
    for epoch in (1, 2):
        out = tmp_path / f'{epoch}.json'
        result = score('--prefix', trained.prefix, '--epoch', str(epoch), '--data-dir',
                       trained.rec, '--batch-size', str(BATCH), '--json', str(out))
        saved = json.loads(out.read_text())
        assert saved == result
        assert {'top1', 'top5', 'cross_entropy', 'num_images', 'images_per_s'} <= set(saved)
        assert saved['num_images'] == NUM_TEST
        # the log prints Module.fit's validation metric with '%f'
        assert '{:f}'.format(saved['top1']) == accuracy[epoch - 1]
        assert '{:f}'.format(saved['cross_entropy']) == entropy[epoch - 1]
        assert round(saved['top1'] * NUM_TEST, 9) == int(round(saved['top1'] * NUM_TEST))


def validation_iter(trained, batch_size):
    """The CIFAR-10 recipe's validation iterator over the trained run's test records."""
    return data.validation_iter(DataConfig.for_validation(
        'cifar10', trained.rec + '/test.rec', batch_size, threads=1))


def independent_scores(trained):
    """Top-1, top-5 and cross-entropy of all test images in one batch (no padding),
    from MXNet's own Module, computed with numpy."""
    batch = next(iter(validation_iter(trained, NUM_TEST)))
    assert batch.pad == 0
    sym, args, aux = mx.model.load_checkpoint(trained.prefix, 2)
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(data_shapes=[('data', batch.data[0].shape)],
             label_shapes=[('softmax_label', (NUM_TEST,))], for_training=False)
    mod.set_params(args, aux)
    mod.forward(batch, is_train=False)
    prob = mod.get_outputs()[0].asnumpy()
    labels = batch.label[0].asnumpy().astype(int)
    lines = Path(trained.rec, 'test.lst').read_text().split('\n')
    assert list(labels) == [int(float(line.split('\t')[1])) for line in lines if line]
    top5 = np.argsort(-prob, axis=1)[:, :5]
    return ((prob.argmax(1) == labels).mean(), (top5 == labels[:, None]).any(1).mean(),
            -np.log(prob[np.arange(NUM_TEST), labels] + 1e-12).mean())


@pytest.mark.parametrize('batch', [BATCH, 7, 1000])
def test_every_image_counted_once(trained, batch):
    top1, top5, entropy = independent_scores(trained)
    result = score('--prefix', trained.prefix, '--epoch', '2', '--data-dir', trained.rec,
                   '--batch-size', str(batch))
    assert result['num_images'] == NUM_TEST
    assert result['top1'] == pytest.approx(top1, abs=1e-12)
    assert result['top5'] == pytest.approx(top5, abs=1e-12)
    assert result['cross_entropy'] == pytest.approx(entropy, rel=1e-5)


def test_max_batches(trained):
    result = score('--prefix', trained.prefix, '--epoch', '2', '--data-dir', trained.rec,
                   '--batch-size', '30', '--max-batches', '2')
    assert result['num_images'] == 60


def test_each_validation_pass_reads_every_record(trained):
    # MXNet's ImageRecordIter starts its second pass after the records it padded with
    it = validation_iter(trained, BATCH)
    passes = []
    for _ in range(3):
        it.reset()
        labels = []
        for batch in it:
            labels.extend(batch.label[0].asnumpy()[:BATCH - batch.pad])
        passes.append(labels)
    assert len(passes[0]) == NUM_TEST and passes[1] == passes[0] and passes[2] == passes[0]


def test_score_leaves_out_padding():
    x = mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=3, name='fc')
    sym = mx.sym.SoftmaxOutput(x, name='softmax')
    rng = np.random.RandomState(0)
    images, labels = rng.randn(10, 4).astype(np.float32), rng.randint(0, 3, 10)
    it = mx.io.NDArrayIter(images, labels, batch_size=4, last_batch_handle='pad')
    counts = {}
    for name, cls in (('ours', scoring.Module), ('mxnet', mx.mod.Module)):
        mod = cls(sym, context=mx.cpu())
        mod.bind(data_shapes=it.provide_data, label_shapes=it.provide_label,
                 for_training=False)
        mod.init_params(mx.init.Xavier())
        metric = mx.metric.Accuracy()
        mod.score(it, metric)
        counts[name] = metric.num_inst
        if name == 'ours':
            exe = sym.simple_bind(mx.cpu(), data=(10, 4), grad_req='null')
            exe.copy_params_from(*mod.get_params())
            prob = exe.forward(is_train=False, data=mx.nd.array(images))[0].asnumpy()
            assert metric.get()[1] == pytest.approx((prob.argmax(1) == labels).mean())
    assert counts == {'ours': 10, 'mxnet': 12}


def test_original_graph_gives_the_same_scores(trained, tmp_path):
    common = ['--data-dir', trained.rec, '--batch-size', str(BATCH)]
    default = score('--prefix', trained.prefix, '--epoch', '2', *common)
    original = score('--prefix', trained.prefix, '--epoch', '2', '--graph', 'original', *common)
    # what tools/fuse_symbol.py --group-conv true writes: every primary conv as
    # GroupConvolution
    fused = tmp_path / 'fused-symbol.json'
    fuse_igc(mx.sym.load(trained.prefix + '-symbol.json'), group_conv=True).save(str(fused))
    assert count_fused(mx.sym.load(str(fused)), 'GroupConvolution') == 6
    rewritten = score('--symbol', str(fused), '--params', trained.prefix + '-0002.params',
                      '--graph', 'original', *common)
    for other in (original, rewritten):
        assert other['num_images'] == default['num_images'] == NUM_TEST
        assert (other['top1'], other['top5']) == (default['top1'], default['top5'])
        assert other['cross_entropy'] == pytest.approx(default['cross_entropy'], rel=1e-5)
    assert original['graph'] == 'original' and default['graph'] == 'default'


def test_published_symbol_with_random_params(published_models_dir, trained, tmp_path):
    """ImageNet preprocessing (the records are scaled up to 256, centre 224 crop)."""
    row, relpath = PUBLISHED_SYMBOLS[3]                       # IGC-L16M16
    symbol_file = str(published_models_dir / relpath)
    sym = mx.sym.load(symbol_file)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, 224, 224))
    rng = np.random.RandomState(0)
    params = {f'arg:{n}': mx.nd.array(rng.normal(0, 0.05, s))
              for n, s in zip(sym.list_arguments(), arg_shapes, strict=True)
              if n not in ('data', 'softmax_label')}
    params.update({f'aux:{n}': mx.nd.array(rng.uniform(0.5, 1.5, s))
                   for n, s in zip(sym.list_auxiliary_states(), aux_shapes, strict=True)})
    mx.nd.save(str(tmp_path / 'random.params'), params)
    results = [score('--symbol', symbol_file, '--params', str(tmp_path / 'random.params'),
                     '--dataset', 'imagenet', '--rec', trained.rec + '/test.rec',
                     '--batch-size', '3', '--max-batches', '1', '--graph', graph)
               for graph in ('default', 'original')]
    assert [r['num_images'] for r in results] == [3, 3]
    assert results[0]['top5'] == results[1]['top5']
    assert results[0]['cross_entropy'] == pytest.approx(results[1]['cross_entropy'], rel=1e-4)


def fails(capsys, *argv):
    """The one-line error of ``evaluate argv`` (as the command named evaluate)."""
    with pytest.raises(SystemExit) as exit_, mock.patch.object(sys, 'argv', ['evaluate']):
        score(*argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and 'Traceback' not in err, err
    return err.strip().splitlines()[-1]


def test_bad_input_is_a_one_line_error(trained, tmp_path, capsys):
    p, rec = trained.prefix, trained.rec
    assert fails(capsys, '--prefix', p, '--epoch', '5', '--data-dir', rec) == (
        f'evaluate: error: no checkpoint {p}-0005.params (--prefix {p} --epoch 5); '
        'saved epochs: 1, 2')
    assert fails(capsys, '--prefix', p + 'x', '--epoch', '1', '--data-dir', rec) == (
        f'evaluate: error: no checkpoint symbol file {p}x-symbol.json (--prefix {p}x)')
    assert fails(capsys, '--symbol', p + '-symbol.json', '--params', p + '-0009.params') == (
        f'evaluate: error: parameters file {p}-0009.params does not exist')
    assert fails(capsys, '--prefix', p, '--epoch', '1', '--data-dir', str(tmp_path)) == (
        f'evaluate: error: record file {tmp_path}/test.rec does not exist; create it with: '
        f'igc-make-rec cifar10 <cifar-10-python.tar.gz> {tmp_path}')
    assert 'invalid choice' in fails(capsys, '--prefix', p, '--epoch', '1',
                                     '--dataset', 'bogus')
    assert fails(capsys, '--prefix', p, '--epoch', '1', '--batch-size', '0') == (
        "evaluate: error: argument --batch-size: expected a positive integer, got '0'")
    assert fails(capsys, '--prefix', p, '--epoch', '1', '--batch-size', 'x') == (
        "evaluate: error: argument --batch-size: expected a positive integer, got 'x'")
    assert fails(capsys, '--prefix', p, '--epoch', '1', '--data-dir', rec,
                 '--mean-rgb', '1,2') == (
        'evaluate: error: --mean-rgb has 2 values; the images have 3 channel(s)')
    assert fails(capsys, '--prefix', p, '--epoch', '1', '--data-dir', rec,
                 '--mean-rgb', '1,2,3,4') == (
        'evaluate: error: --mean-rgb has 4 values; the images have 3 channel(s)')
    assert fails(capsys, '--prefix', p, '--epoch', '1', '--std-rgb', '0,1,1') == (
        "evaluate: error: argument --std-rgb: expected a positive finite number, got '0'")
    assert fails(capsys, '--prefix', p) == 'evaluate: error: --prefix needs --epoch'
    # a symbol and parameters that do not belong together
    from igc_mx import networks
    other = tmp_path / 'other-symbol.json'
    networks.get_symbol('resnet_igc', 10, 8, 4, 4).save(str(other))
    assert fails(capsys, '--symbol', str(other), '--params', p + '-0002.params',
                 '--data-dir', rec, '--batch-size', '10') == (
        f"evaluate: error: {p}-0002.params: 'g0_conv_weight' has shape (8, 3, 3, 3); "
        'the symbol expects (16, 3, 3, 3) for input (10, 3, 32, 32)')
    networks.get_symbol('resnet_igc', 10, 14, 4, 2).save(str(other))
    assert re.fullmatch(rf"evaluate: error: {p}-0002.params: no 'g\S+' and \d+ more, "
                        'which the symbol needs',
                        fails(capsys, '--symbol', str(other), '--params', p + '-0002.params',
                              '--data-dir', rec))
    not_json = tmp_path / 'not-symbol.json'
    not_json.write_text('not json')
    assert fails(capsys, '--symbol', str(not_json), '--params', p + '-0002.params',
                 '--data-dir', rec).startswith(
        f'evaluate: error: symbol file {not_json} cannot be read: MXNetError:')


def write_records(path, labels, side=32):
    """A record file (with its .idx) of random side x side PNG images with ``labels``."""
    rng = np.random.RandomState(0)
    rec = mx.recordio.MXIndexedRecordIO(str(path.with_suffix('.idx')), str(path), 'w')
    for i, label in enumerate(labels):
        image = rng.randint(0, 255, (side, side, 3)).astype(np.uint8)
        rec.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, label, i, 0), image,
                                              img_fmt='.png'))
    rec.close()
    return str(path)


@pytest.mark.parametrize('label', [10, 12, -1, 2.5], ids=['=classes', '>classes', 'negative',
                                                       'fraction'])
def test_a_label_that_is_not_a_class_of_the_model_is_a_one_line_error(label, trained, tmp_path,
                                                                      capsys):
    rec = write_records(tmp_path / 'odd.rec', [1, 2, label, 3] * 4)
    offset = int((tmp_path / 'odd.idx').read_text().splitlines()[2].split('\t')[1])
    assert fails(capsys, '--prefix', trained.prefix, '--epoch', '1', '--rec', rec,
                 '--batch-size', '8') == (
        f'evaluate: error: record file {rec}: label {float(label)} at byte {offset} (record 2) '
        'is not a class of the model: it has 10 classes, 0..9')


@pytest.mark.parametrize('side', [28, 40])
def test_records_of_another_image_size_need_data_shape(side, trained, tmp_path, capsys):
    rec = write_records(tmp_path / 'other.rec', [1, 2, 3, 4] * 4, side=side)
    assert fails(capsys, '--prefix', trained.prefix, '--epoch', '1', '--rec', rec,
                 '--batch-size', '8') == (
        f'evaluate: error: record file {rec} holds {side}x{side} images; the cifar10 preset '
        f'reads 32x32 images: pass --data-shape {side} to score the records at another size')
    # stated, the size is taken (the network pools globally)
    result = score('--prefix', trained.prefix, '--epoch', '1', '--rec', rec, '--batch-size',
                   '8', '--data-shape', str(side))
    assert result['num_images'] == 16


def test_commands_exit_with_status_0_after_success(trained, tmp_path, capsys):
    """The console scripts call sys.exit(main()): main returns the exit status, not the
    results (which sys.exit would print to stderr with status 1)."""
    from igc_mx.tools import export_onnx
    assert evaluate.main(['--prefix', trained.prefix, '--epoch', '2', '--data-dir', trained.rec,
                          '--quiet', '--data-nthreads', '1']) == 0
    assert export_onnx.main(['--prefix', trained.prefix, '--epoch', '2', '-o',
                             str(tmp_path / 'net.onnx'), '--input-shape', '1,3,32,32']) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith('model=') and 'ONNX opset' in out[1]


def test_command_line_error_has_no_traceback(trained):
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'evaluate.py'), '--prefix',
                           trained.prefix, '--epoch', '3'], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('evaluate.py: error: no checkpoint')


def test_exported_checkpoint_in_onnx_runtime(trained, tmp_path, ort_python):
    """What a user with only ONNX Runtime gets: the same predictions as evaluate."""
    from igc_mx.tools import export_onnx
    out = tmp_path / 'net.onnx'
    export_onnx.run(['--prefix', trained.prefix, '--epoch', '2', '-o', str(out),
                      '--input-shape', '1,3,32,32'])
    batch = next(iter(validation_iter(trained, NUM_TEST)))
    prob = run_ort(ort_python, out, batch.data[0].asnumpy(), tmp_path)
    labels = batch.label[0].asnumpy().astype(int)
    result = score('--prefix', trained.prefix, '--epoch', '2', '--data-dir', trained.rec,
                   '--batch-size', str(BATCH))
    assert (prob.argmax(1) == labels).mean() == pytest.approx(result['top1'], abs=1e-12)
    assert -np.log(prob[np.arange(NUM_TEST), labels] + 1e-12).mean() == pytest.approx(
        result['cross_entropy'], rel=1e-5)
    assert igc_onnx.op_counts(onnx.load(str(out)))['Transpose'] > 0
