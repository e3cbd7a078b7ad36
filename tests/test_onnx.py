"""ONNX export (igc_mx.onnx, tools/export_onnx.py) checked in ONNX Runtime: each test
exports here, runs tools/onnx_run.py in the ONNX Runtime environment on saved inputs
(conftest.run_ort) and compares with MXNet's outputs."""
import subprocess
import sys
from pathlib import Path
from unittest import mock

import mxnet as mx
import numpy as np
import onnx
import pytest

from igc_mx import networks, onnx_converters
from igc_mx import onnx as igc_onnx
from igc_mx.tools import export_onnx

from conftest import PUBLISHED_SYMBOLS, random_params, reorder_reference, run_ort

REPO = Path(__file__).resolve().parents[1]
STANDARD_OPS = {'Conv', 'BatchNormalization', 'Relu', 'Reshape', 'Transpose', 'Add',
                'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Flatten', 'Gemm', 'Softmax'}


def mxnet_forward(symbol, args, aux, images):
    exe = symbol.simple_bind(mx.cpu(), data=images.shape, grad_req='null')
    exe.copy_params_from(args, aux, allow_extra_params=True)
    return exe.forward(is_train=False, data=mx.nd.array(images))[0].asnumpy()


def assert_clean_graph(model, batch_dim=True):
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    assert [i.name for i in graph.input] == ['data']          # no initializer listed
    assert constants and not constants & {i.name for i in graph.input}
    ops = {n.op_type for n in graph.node}
    assert ops <= STANDARD_OPS, ops - STANDARD_OPS
    assert all(n.domain in ('', 'ai.onnx') for n in graph.node)
    used = {name for n in graph.node for name in n.input}
    assert constants <= used                                    # nothing left over
    if batch_dim:
        assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'batch'
        assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == 'batch'


def export_and_compare(symbol, args, aux, image_shape, tmp_path, ort_python, batch=3,
                       export_batch=1, rtol=1e-4, **export_kwargs):
    """Export for batch ``export_batch``, run a batch of ``batch`` in both runtimes; the
    outputs agree to float32 precision (rtol, and an atol of 1e-5 of the largest
    output: deep nets with random weights have large scores)."""
    path = tmp_path / 'model.onnx'
    model = igc_onnx.export(symbol, args, aux, (export_batch, *image_shape), path,
                            **export_kwargs)
    assert_clean_graph(model)
    images = np.random.RandomState(7).randn(batch, *image_shape).astype(np.float32)
    if export_kwargs.get('logits'):
        symbol = igc_onnx.split_head(symbol)[0]
    expected = mxnet_forward(symbol, args, aux, images)
    got = run_ort(ort_python, path, images, tmp_path)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-5 * np.abs(expected).max())
    return model, expected


def test_channel_permutation_is_reorder():
    x = np.arange(2 * 12 * 2 * 3, dtype=np.float32).reshape(2, 12, 2, 3)
    for g in (1, 2, 3, 4, 12):
        np.testing.assert_array_equal(x[:, onnx_converters.channel_permutation(12, g)],
                                      reorder_reference(x, g))


def ops_symbol(fix_gamma):
    """Reorder, GroupConvolution (stride 2, padding), InterleavedGroupConv and BatchNorm
    on a non-square map."""
    x = mx.sym.Variable('data')
    x = mx.sym.Reorder(x, branch_factor=3, name='shuffle')
    x = mx.sym.GroupConvolution(x, name='gconv', num_filter=12, kernel=(3, 3), stride=(2, 2),
                                pad=(1, 1), num_group=4, no_bias=True)
    x = mx.sym.InterleavedGroupConv(x, name='igc', primary_partition=4, secondary_partition=3)
    x = mx.sym.BatchNorm(x, name='bn', fix_gamma=fix_gamma, eps=2e-5)
    return mx.sym.Reorder(x, branch_factor=2, name='shuffle_out')


@pytest.mark.parametrize('permutation', igc_onnx.PERMUTATIONS)
def test_extension_ops_in_onnx_runtime(permutation, tmp_path, ort_python):
    image = (12, 9, 7)
    symbol = ops_symbol(fix_gamma=False)
    args, aux = random_params(symbol, (1, *image))
    model, _ = export_and_compare(symbol, args, aux, image, tmp_path, ort_python,
                                  permutation=permutation)
    ops = igc_onnx.op_counts(model)
    permutations = 4          # two Reorders, and two inside InterleavedGroupConv
    assert ops['Conv'] == 2 + (permutations if permutation == 'conv' else 0)
    assert ops.get('Transpose', 0) == (permutations if permutation == 'transpose' else 0)


def test_fix_gamma_batchnorm_uses_gamma_one(tmp_path, ort_python):
    symbol = ops_symbol(fix_gamma=True)
    args, aux = random_params(symbol, (1, 12, 8, 8))
    assert not np.allclose(args['bn_gamma'].asnumpy(), 1)     # MXNet ignores it
    export_and_compare(symbol, args, aux, (12, 8, 8), tmp_path, ort_python)


# the six networks, small; the ImageNet ones need 224x224 (a 7x7 average pooling)
NETWORKS = [
    ('plain', (10, 5, 4), (3, 32, 32)),
    ('plain_igc', (10, 5, 4, 2), (3, 32, 32)),
    ('resnet', (10, 8, 4), (3, 32, 32)),
    ('resnet_igc', (10, 8, 24, 2), (3, 32, 32)),       # two slabs in stage 2 and 3
    ('resnet_imgnet_d18', (10, 18, 4), (3, 224, 224)),
    ('resnet_igc_imgnet_d18', (10, 18, 2, 2), (3, 224, 224)),    # keep L, double M
    ('resnet_igc_imgnet_d18', (10, 18, 4), (3, 224, 224)),       # keep M=2, double L
]


@pytest.mark.parametrize('network,args,image', NETWORKS,
                         ids=[f'{n}{a}' for n, a, _ in NETWORKS])
def test_networks_in_onnx_runtime(network, args, image, tmp_path, ort_python):
    default = networks.get_symbol(network, *args)
    original = networks.get_symbol(network, *args, fused=False, group_conv=False)
    params = random_params(original, (1, *image))
    outputs = []
    for name, symbol in (('default', default), ('original', original)):
        out = tmp_path / name
        out.mkdir()
        model, expected = export_and_compare(symbol, *params, image, out, ort_python,
                                             logits=True)
        assert model.graph.output[0].name == networks.FAMILIES[network].head.fc
        outputs.append(expected)
    # the two graphs are one network
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)


def test_probabilities_output(tmp_path, ort_python):
    symbol = networks.get_symbol('resnet_igc', 10, 8, 4, 2)
    args, aux = random_params(symbol, (1, 3, 32, 32))
    model, expected = export_and_compare(symbol, args, aux, (3, 32, 32), tmp_path,
                                         ort_python, batch=4, rtol=1e-5)
    assert model.graph.output[0].name == 'softmax'
    np.testing.assert_allclose(expected.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize('row,relpath', PUBLISHED_SYMBOLS, ids=[r for r, _ in PUBLISHED_SYMBOLS])
def test_published_symbols_in_onnx_runtime(row, relpath, published_models_dir, tmp_path,
                                           ort_python):
    symbol = mx.sym.load(str(published_models_dir / relpath))
    params = random_params(symbol, (1, 3, 224, 224))
    export_and_compare(symbol, *params, (3, 224, 224), tmp_path, ort_python, batch=2,
                       logits=True)


def test_cli_export_and_errors(tmp_path, ort_python, capsys):
    symbol = networks.get_symbol('plain_igc', 10, 5, 4, 2)
    args, aux = random_params(symbol, (1, 3, 32, 32))
    prefix = str(tmp_path / 'net')
    symbol.save(prefix + '-symbol.json')
    mx.nd.save(prefix + '-0003.params', {**{'arg:' + k: v for k, v in args.items()},
                                         **{'aux:' + k: v for k, v in aux.items()}})
    out = tmp_path / 'net.onnx'
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'export_onnx.py'),
                           '--prefix', prefix, '--epoch', '3', '-o', str(out),
                           '--input-shape', '1,3,32,32'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'{out}: ONNX opset' in proc.stdout and 'softmax [batch, 10]' in proc.stdout
    images = np.random.RandomState(3).randn(5, 3, 32, 32).astype(np.float32)
    np.testing.assert_allclose(run_ort(ort_python, out, images, tmp_path),
                               mxnet_forward(symbol, args, aux, images), rtol=1e-5, atol=1e-6)

    def fails(*argv):
        with pytest.raises(SystemExit) as exit_, \
                mock.patch.object(sys, 'argv', ['export_onnx']):
            export_onnx.main([*argv, '-o', str(tmp_path / 'bad.onnx')])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and 'Traceback' not in err, err
        assert not (tmp_path / 'bad.onnx').exists()
        return err.strip().splitlines()[-1]

    assert fails('--prefix', prefix, '--epoch', '4', '--input-shape', '1,3,32,32') == (
        f'export_onnx: error: no checkpoint {prefix}-0004.params (--prefix {prefix} '
        '--epoch 4); saved epochs: 3')
    assert 'expected four positive sizes N,C,H,W' in fails(
        prefix + '-symbol.json', prefix + '-0003.params', '--input-shape', '1,3,32')
    assert fails(prefix + '-symbol.json', '--input-shape', '1,3,32,32') == (
        'export_onnx: error: give a model: --prefix P --epoch N, or a symbol file and a '
        'params file')
    other = tmp_path / 'other-symbol.json'
    networks.get_symbol('plain_igc', 10, 5, 8, 2).save(str(other))
    assert fails(str(other), prefix + '-0003.params', '--input-shape', '1,3,32,32') == (
        f"export_onnx: error: {prefix}-0003.params: 'g0_conv_weight' has shape (8, 3, 3, 3); "
        'the symbol expects (16, 3, 3, 3) for input (1, 3, 32, 32)')
    assert fails(str(other), str(tmp_path / 'none.params'), '--input-shape', '1,3,32,32') == (
        f'export_onnx: error: parameters file {tmp_path / "none.params"} does not exist')


def test_unsupported_op_is_an_export_error():
    x = mx.sym.Reorder(mx.sym.Variable('data'), branch_factor=2)
    symbol = mx.sym.im2col(x, kernel=(2, 2))
    with pytest.raises(igc_onnx.ExportError, match='im2col'):
        igc_onnx.to_onnx(symbol, {}, {}, (1, 4, 3, 3))


def test_onnx_is_the_onnx_package():
    # igc_mx.onnx must not shadow the ONNX package inside igc_mx
    assert onnx.__file__ != igc_onnx.__file__ and hasattr(onnx, 'ModelProto')
    assert igc_onnx.onnx is onnx
