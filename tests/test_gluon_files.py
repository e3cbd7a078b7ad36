"""Files between Module and Gluon: a train_model.py checkpoint (conftest's ``trained``)
loads into the Gluon network and scores what igc-evaluate scores on the same records;
a Gluon export is read by igc-evaluate and igc-export-onnx as a checkpoint, and runs in
ONNX Runtime."""
import mxnet as mx
import numpy as np
import pytest

from igc_mx import gluon as igc_gluon
from igc_mx import model_files, scoring
from igc_mx.tools import evaluate, export_onnx
from igc_mx.training import data

from conftest import TRAINED_BATCH, TRAINED_NETWORK, TRAINED_TEST_IMAGES, run_ort


def score_checkpoint(*argv):
    return evaluate.run([*argv, '--quiet', '--data-nthreads', '1',
                         '--batch-size', str(TRAINED_BATCH)])


def gluon_scores(net, rec):
    """Top-1 and cross-entropy of ``net`` on igc-evaluate's data path: its validation
    iterator and options for cifar10, every image counted once."""
    args = evaluate.build_parser().parse_args(
        ['--data-dir', rec, '--batch-size', str(TRAINED_BATCH), '--data-nthreads', '1'])
    val = data.validation_iter(evaluate.data_config(args))
    metric = mx.metric.CompositeEvalMetric([mx.metric.create('acc'), mx.metric.create('ce')])
    images = 0
    for batch in val:
        probabilities = mx.nd.softmax(net(batch.data[0].as_in_context(mx.cpu())))
        scoring.update_metric(metric, batch.label, [probabilities], batch.pad)
        images += batch.data[0].shape[0] - batch.pad
    values = dict(metric.get_name_value())
    return {'top1': values['accuracy'], 'cross_entropy': values['cross-entropy'],
            'num_images': images}


@pytest.fixture(scope='module')
def checkpoint_scores(trained):
    return score_checkpoint('--prefix', trained.prefix, '--epoch', '2', '--data-dir',
                            trained.rec)


@pytest.mark.parametrize('hybridize', [True, False], ids=['hybridized', 'imperative'])
def test_checkpoint_scores_the_same_in_gluon(trained, checkpoint_scores, hybridize):
    net = igc_gluon.get_model(*TRAINED_NETWORK)
    igc_gluon.load_checkpoint(net, trained.prefix, 2)
    if hybridize:
        net.hybridize()
    got = gluon_scores(net, trained.rec)
    assert got['num_images'] == checkpoint_scores['num_images'] == TRAINED_TEST_IMAGES
    assert got['top1'] == checkpoint_scores['top1']
    assert got['cross_entropy'] == pytest.approx(checkpoint_scores['cross_entropy'], rel=1e-5)


def test_gluon_export_is_a_checkpoint(trained, checkpoint_scores, tmp_path):
    """The checkpoint through Gluon (pretrained=PATH), exported, and scored by
    igc-evaluate, with the fast ops and with the original graph (its rewrite reads the
    layers' names): the checkpoint's scores."""
    net = igc_gluon.get_model(*TRAINED_NETWORK, pretrained=f'{trained.prefix}-0002.params')
    net.hybridize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    prefix = str(tmp_path / 'gluon')
    net.export(prefix, epoch=7)
    for graph in ('default', 'original'):
        got = score_checkpoint('--prefix', prefix, '--epoch', '7', '--data-dir', trained.rec,
                               '--graph', graph)
        assert (got['num_images'], got['top1'], got['top5']) == (
            checkpoint_scores['num_images'], checkpoint_scores['top1'],
            checkpoint_scores['top5'])
        assert got['cross_entropy'] == pytest.approx(checkpoint_scores['cross_entropy'],
                                                     rel=1e-5)


def test_checkpoint_errors_name_the_file(trained):
    net = igc_gluon.get_model(*TRAINED_NETWORK)
    p = trained.prefix
    with pytest.raises(model_files.ModelFileError) as error:
        igc_gluon.load_checkpoint(net, p, 5)
    assert str(error.value) == (f'no checkpoint {p}-0005.params (prefix {p}, epoch 5); saved '
                                'epochs: 1, 2')
    network, num_classes, depth, primary, _ = TRAINED_NETWORK
    other = igc_gluon.get_model(network, num_classes, depth, primary, 4)
    with pytest.raises(model_files.ModelFileError) as error:
        igc_gluon.load_checkpoint(other, p, 2)
    assert str(error.value) == (f"{p}-0002.params: 'g0_conv_weight' has shape (8, 3, 3, 3); "
                                'the network needs (16, 3, 3, 3)')
    with pytest.raises(model_files.ModelFileError, match='does not exist'):
        igc_gluon.get_model(*TRAINED_NETWORK, pretrained=f'{p}-0009.params')


def test_gluon_export_in_onnx_runtime(tmp_path, ort_python):
    """igc-export-onnx reads a Gluon export as a checkpoint; ONNX Runtime computes the
    Gluon network's scores."""
    net = igc_gluon.get_model(*TRAINED_NETWORK)
    net.hybridize()
    images = np.random.RandomState(6).normal(size=(4, 3, 32, 32)).astype(np.float32)
    scores = net(mx.nd.array(images)).asnumpy()
    prefix = str(tmp_path / 'gluon')
    net.export(prefix)
    out = tmp_path / 'gluon.onnx'
    model = export_onnx.run(['--prefix', prefix, '--epoch', '0', '-o', str(out),
                             '--input-shape', '1,3,32,32'])
    assert [o.name for o in model.graph.output] == ['fc']
    got = run_ort(ort_python, out, images, tmp_path)
    np.testing.assert_allclose(got, scores, rtol=1e-4, atol=1e-5 * np.abs(scores).max())
