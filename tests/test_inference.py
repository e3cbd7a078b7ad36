"""igc_mx.inference: optimize (BatchNorm and ReLU folded) equals the graph it came from
on the six networks, default and original graphs, with BatchNorm statistics far from
the identity; oneDNN still fuses what it fused; the Predictor; igc-evaluate with and
without --no-optimize; bad input; the optimized graph in ONNX Runtime."""
import json
from collections import Counter

import mxnet as mx
import numpy as np
import pytest
from test_onnx import NETWORKS, export_and_compare

from igc_mx import inference, networks
from igc_mx import onnx as igc_onnx
from igc_mx.model_files import ModelFileError
from igc_mx.rewrite import unfuse_igc
from igc_mx.tools import evaluate

from conftest import random_params

GRAPHS = {'default': {}, 'original': {'fused': False, 'group_conv': False}}


def ops(symbol):
    return Counter(n['op'] for n in json.loads(symbol.tojson())['nodes'] if n['op'] != 'null')


def forward(symbol, args, aux, images):
    exe = symbol.simple_bind(mx.cpu(), data=images.shape, grad_req='null')
    exe.copy_params_from(args, aux)
    return exe.forward(is_train=False, data=mx.nd.array(images))[0].asnumpy()


def assert_same_outputs(symbol, args, aux, optimized, images):
    """Class scores and probabilities of both symbols agree to float32 precision."""
    for head in (lambda s: s.get_children()[0], lambda s: s):
        want = forward(head(symbol), args, aux, images)
        got = forward(head(optimized[0]), *optimized[1:], images)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize('graph', GRAPHS)
@pytest.mark.parametrize('network,args,image', NETWORKS, ids=[f'{n}{a}' for n, a, _ in NETWORKS])
def test_networks_fold_every_batchnorm(network, args, image, graph):
    symbol = networks.get_symbol(network, *args, **GRAPHS[graph])
    params = random_params(symbol, (1, *image))
    optimized = inference.optimize(symbol, *params, (2, *image))
    before, after = ops(symbol), ops(optimized[0])
    assert before['BatchNorm'] > 0 and after['BatchNorm'] == 0
    assert after['_copy'] == 0
    assert not set(optimized[1]) - set(optimized[0].list_arguments())
    assert optimized[2] == {}
    if graph == 'default' and networks.FAMILIES[network].igc:
        # every IGC unit's ReLU runs inside its InterleavedGroupConv
        igc = [n for n in json.loads(optimized[0].tojson())['nodes']
               if n['op'] == 'InterleavedGroupConv']
        relu_units = sum(n['attrs'].get('act_type') == 'relu' for n in igc)
        assert relu_units == before['Activation'] - after['Activation'] > 0
    images = np.random.RandomState(3).randn(2, *image).astype(np.float32)
    assert_same_outputs(symbol, *params, optimized, images)


def every_fold_symbol():
    """Each kind of fold once: a Convolution with a bias and a fix_gamma BatchNorm of
    MXNet's default eps; a GroupConvolution through two Reorders; an
    InterleavedGroupConv with its ReLU; a BatchNorm after pooling, which stays."""
    x = mx.sym.Variable('data')
    x = mx.sym.Convolution(x, name='conv', num_filter=12, kernel=(3, 3), pad=(1, 1))
    x = mx.sym.BatchNorm(x, name='bn0')
    x = mx.sym.GroupConvolution(x, name='gconv', num_filter=12, kernel=(3, 3), stride=(2, 2),
                                pad=(1, 1), num_group=4)
    x = mx.sym.Reorder(mx.sym.Reorder(x, branch_factor=3), branch_factor=4)
    x = mx.sym.BatchNorm(x, name='bn1', fix_gamma=False, eps=2e-5)
    x = mx.sym.InterleavedGroupConv(x, name='igc', primary_partition=2, secondary_partition=3)
    x = mx.sym.Activation(mx.sym.BatchNorm(x, name='bn2', fix_gamma=False), act_type='relu')
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type='avg')
    return mx.sym.BatchNorm(x, name='bn3', fix_gamma=False)


def test_every_kind_of_fold():
    symbol = every_fold_symbol()
    params = random_params(symbol, (1, 3, 9, 7))
    optimized = inference.optimize(symbol, *params, (1, 3, 9, 7))
    assert ops(optimized[0]) == Counter({'Convolution': 1, 'GroupConvolution': 1, 'Reorder': 2,
                                         'InterleavedGroupConv': 1, 'Pooling': 1,
                                         'BatchNorm': 1})
    nodes = {n['name']: n for n in json.loads(optimized[0].tojson())['nodes']}
    assert nodes['igc']['attrs']['act_type'] == 'relu'
    assert sorted(optimized[2]) == ['bn3_moving_mean', 'bn3_moving_var']
    assert optimized[0].list_arguments() == [
        'data', 'conv_weight', 'conv_bias', 'gconv_weight', 'gconv_bias', 'igc_weight',
        'igc_bias', 'bn3_gamma', 'bn3_beta']
    images = np.random.RandomState(4).randn(3, 3, 9, 7).astype(np.float32)
    want = forward(symbol, *params, images)
    got = forward(*optimized, images)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_a_shared_weight_gets_a_folded_copy():
    x = mx.sym.Variable('data')
    w = mx.sym.Variable('w')
    a = mx.sym.BatchNorm(mx.sym.Convolution(x, w, name='a', num_filter=3, kernel=(1, 1),
                                            no_bias=True), name='bn_a')
    b = mx.sym.Convolution(x, w, name='b', num_filter=3, kernel=(1, 1), no_bias=True)
    symbol = a + b
    params = random_params(symbol, (1, 3, 4, 4))
    optimized = inference.optimize(symbol, *params, (1, 3, 4, 4))
    assert optimized[0].list_arguments() == ['data', 'a_weight', 'a_bias', 'w']
    images = np.random.RandomState(5).randn(2, 3, 4, 4).astype(np.float32)
    np.testing.assert_allclose(forward(*optimized, images), forward(symbol, *params, images),
                               rtol=1e-5, atol=1e-5)


def test_an_optimized_graph_is_not_unfused():
    """The original's ops cannot hold the folded bias, sum and ReLU: the rewrite back to
    them refuses instead of dropping them."""
    symbol = networks.get_symbol('resnet_igc', 10, 8, 4, 2)
    optimized = inference.optimize(symbol, *random_params(symbol, (1, 3, 32, 32)),
                                   (1, 3, 32, 32))[0]
    with pytest.raises(ValueError, match="InterleavedGroupConv 'g1_b1_p2_two1_conv2' holds a "
                                         'bias, residual or activation'):
        unfuse_igc(optimized)


def test_gpu_folds_into_convolution_only():
    symbol = every_fold_symbol()
    params = random_params(symbol, (1, 3, 9, 7))
    optimized = inference.optimize(symbol, *params, (1, 3, 9, 7), device='gpu')
    assert ops(optimized[0])['BatchNorm'] == 3 and ops(optimized[0])['Activation'] == 1


def bound_ops(symbol, args, aux, shape):
    exe = symbol.simple_bind(mx.cpu(), data=shape, grad_req='null')
    exe.copy_params_from(args, aux)
    graph = json.loads(exe.get_optimized_symbol().tojson())
    fused = Counter(tuple(sorted(k for k in n.get('attrs', {}) if k.startswith('with_')))
                    for n in graph['nodes'] if n['op'] == '_sg_mkldnn_conv')
    return Counter(n['op'] for n in graph['nodes'] if n['op'] != 'null'), fused


@pytest.mark.parametrize('graph', GRAPHS)
def test_onednn_still_fuses_convolution_with_relu_and_sum(graph, monkeypatch):
    """MXNet's oneDNN subgraph backend (active for inference binds on the CPU) fuses a
    Convolution with the BatchNorm, residual sum and ReLU after it. On the folded graph
    it fuses the same convolutions with the same ReLU and sums, the BatchNorm gone."""
    monkeypatch.delenv('MXNET_SUBGRAPH_BACKEND', raising=False)
    symbol = networks.get_symbol('resnet_igc', 10, 8, 24, 2, **GRAPHS[graph])
    params = random_params(symbol, (1, 3, 32, 32))
    shape = (2, 3, 32, 32)
    before, fused_before = bound_ops(symbol, *params, shape)
    after, fused_after = bound_ops(*inference.optimize(symbol, *params, shape), shape)
    assert before['_sg_mkldnn_conv'] == after['_sg_mkldnn_conv'] > 0
    assert after['BatchNorm'] == 0 and 'Convolution' not in after
    # the stem's conv+bn+relu and the two projections' conv+bn+sum+relu, without the bn
    without_bn = Counter({tuple(k for k in key if k != 'with_bn'): n
                          for key, n in fused_before.items()})
    assert fused_after == without_bn
    assert fused_after[('with_act',)] == 1
    assert fused_after[('with_postsum_act', 'with_sum')] == 2
    assert sum(after.values()) < sum(before.values())


# ----------------------------------------------------------------------------- errors


@pytest.fixture(scope='module')
def small_net():
    symbol = networks.get_symbol('resnet_igc', 10, 8, 4, 2)
    return (symbol, *random_params(symbol, (1, 3, 32, 32)))


def test_bad_input_is_a_clear_error(small_net):
    symbol, args, aux = small_net
    narrow = networks.get_symbol('resnet_imgnet_d18', 10, 18, 8)
    cases = [
        ((mx.sym.Variable('x') * 2, {}, {}, (1, 3, 32, 32)),
         "the symbol has no input called 'data' (its inputs: x)"),
        ((symbol, args, aux, (1, 4, 32, 32)), "'g0_conv_weight' has shape (8, 3, 3, 3); the "
                                              'symbol expects (8, 4, 3, 3)'),
        ((symbol, args, aux, (1, 3, 32)), 'data_shape=(1, 3, 32): expected 4 positive sizes'),
        ((symbol, args, aux, 'x'), "data_shape='x': expected 4 positive sizes"),
        ((symbol, {k: v for k, v in args.items() if k != 'fc_bias'}, aux, (1, 3, 32, 32)),
         "no 'fc_bias', which the symbol needs"),
        ((mx.sym.MakeLoss(symbol.get_children()[0], name='loss'), args, aux, (1, 3, 32, 32)),
         "output 'loss' is a loss (MakeLoss)"),
        ((narrow, *random_params(narrow, (1, 3, 224, 224)), (1, 3, 64, 64)),
         'the symbol does not take input (1, 3, 64, 64)'),      # a 7x7 pooling of 2x2 maps
    ]
    for call, message in cases:
        with pytest.raises(inference.InferenceError) as err:
            inference.optimize(*call)
        assert message in str(err.value) and '\n' not in str(err.value)


# ----------------------------------------------------------------------------- Predictor


@pytest.fixture(scope='module')
def checkpoint(small_net, tmp_path_factory):
    symbol, args, aux = small_net
    prefix = str(tmp_path_factory.mktemp('predictor') / 'net')
    mx.model.save_checkpoint(prefix, 3, symbol, args, aux)
    return prefix


def test_predictor_gives_the_probabilities(checkpoint, small_net):
    predictor = inference.Predictor(checkpoint, 3)
    for batch in (1, 5, 1):
        images = np.random.RandomState(batch).randn(batch, 3, 32, 32)
        got = predictor(images)
        assert got.shape == (batch, 10) and got.dtype == np.float32
        np.testing.assert_allclose(got, forward(*small_net, images.astype(np.float32)),
                                   rtol=1e-5, atol=1e-6)
    plain = inference.Predictor(checkpoint, 3, graph='original', optimized=False)
    np.testing.assert_allclose(plain(images), got, rtol=1e-5, atol=1e-6)


def test_predictor_bad_input(checkpoint):
    predictor = inference.Predictor(checkpoint, 3)
    with pytest.raises(inference.InferenceError, match=r'images of shape \(3, 32, 32\): '
                                                       'expected a batch'):
        predictor(np.zeros((3, 32, 32)))
    with pytest.raises(ModelFileError, match=r"net-0003.params: 'g0_conv_weight' has shape "
                                             r'\(8, 3, 3, 3\); the symbol expects \(8, 1, 3, 3\)'):
        predictor(np.zeros((1, 1, 32, 32)))
    with pytest.raises(ModelFileError, match='saved epochs: 3'):
        inference.Predictor(checkpoint, 4)
    with pytest.raises(inference.InferenceError, match="graph='fast'"):
        inference.Predictor(checkpoint, 3, graph='fast')


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_scores_the_same_with_and_without_optimize(checkpoint, dataset, capsys):
    runs = [evaluate.run(['--prefix', checkpoint, '--epoch', '3', '--data-dir', dataset,
                          '--batch-size', '64', '--quiet', '--data-nthreads', '1', *flag])
            for flag in ([], ['--no-optimize'])]
    rows = capsys.readouterr().out.splitlines()
    assert [r['optimized'] for r in runs] == [True, False]
    assert 'graph=default optimized=yes' in rows[0] and 'optimized=no' in rows[1]
    assert runs[0]['num_images'] == runs[1]['num_images'] == 200
    assert (runs[0]['top1'], runs[0]['top5']) == (runs[1]['top1'], runs[1]['top5'])
    assert runs[0]['cross_entropy'] == pytest.approx(runs[1]['cross_entropy'], rel=1e-5)


# ----------------------------------------------------------------------------- ONNX


def test_optimized_graph_in_onnx_runtime(tmp_path, ort_python):
    """The bias, residual and ReLU of the extension ops export as the Conv's bias, an Add
    and a Relu."""
    symbol = every_fold_symbol()
    optimized = inference.optimize(symbol, *random_params(symbol, (1, 3, 9, 7)), (1, 3, 9, 7))
    model, _ = export_and_compare(*optimized, (3, 9, 7), tmp_path / 'ops', ort_python)
    counts = igc_onnx.op_counts(model)
    assert counts['Conv'] == 3 and counts['Relu'] == 1 and counts['BatchNormalization'] == 1
    symbol = networks.get_symbol('resnet_igc', 10, 8, 8, 2)
    optimized = inference.optimize(symbol, *random_params(symbol, (1, 3, 32, 32)),
                                   (1, 3, 32, 32))
    assert ops(optimized[0])['elemwise_add'] == 2      # the projection blocks' sums
    model, _ = export_and_compare(*optimized, (3, 32, 32), tmp_path / 'net', ort_python)
    assert igc_onnx.op_counts(model)['Add'] == 3        # one residual inside an op


def test_filters_before_a_pooling_are_padded_for_onednn():
    """A 20-filter stem convolution before a max pooling runs with 32 filters, the
    pooling's readers get the 20 real channels."""
    x = mx.sym.Convolution(mx.sym.Variable('data'), name='stem', num_filter=20, kernel=(3, 3),
                           stride=(2, 2), pad=(1, 1), no_bias=True)
    x = mx.sym.Activation(mx.sym.BatchNorm(x, name='bn', fix_gamma=False), act_type='relu')
    x = mx.sym.Pooling(x, name='pool', kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max')
    symbol = mx.sym.GroupConvolution(x, name='gconv', num_filter=20, kernel=(3, 3), num_group=10)
    params = random_params(symbol, (1, 3, 17, 17))
    optimized = inference.optimize(symbol, *params, (1, 3, 17, 17))
    nodes = {n['name']: n for n in json.loads(optimized[0].tojson())['nodes']}
    assert nodes['stem']['attrs']['num_filter'] == '32'
    assert nodes['pool_channels']['op'] == 'slice_axis'
    assert optimized[1]['stem_weight'].shape == (32, 3, 3, 3)
    assert not optimized[1]['stem_weight'][20:].asnumpy().any()
    images = np.random.RandomState(6).randn(2, 3, 17, 17).astype(np.float32)
    want = forward(symbol, *params, images)
    np.testing.assert_allclose(forward(*optimized, images), want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())
