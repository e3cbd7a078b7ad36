"""GroupConvolution against MXNet's own Convolution(num_group=..., no_bias=True):
values, both gradients, grad_req='add', symbols and checkpoints, the C ABI of
the kernels, and errors."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import igc_mx  # noqa: F401  (loads the op library)
from igc_mx import kernels

from conftest import BLOCK_MXNET

# (batch, channels, height, width, filters, groups, kernel, stride, pad)
SHAPES = [
    (2, 48, 32, 32, 48, 24, (3, 3), (1, 1), (1, 1)),   # CIFAR L24M2, 2 channels per group
    (2, 96, 16, 16, 96, 24, (3, 3), (2, 2), (1, 1)),   # stride 2, 4 per group
    (3, 24, 9, 7, 24, 24, (3, 3), (1, 1), (1, 1)),     # depthwise, odd sizes
    (2, 64, 11, 13, 64, 8, (3, 3), (2, 2), (0, 0)),    # 8 per group, stride 2, no padding
    (2, 64, 10, 10, 64, 4, (3, 3), (1, 1), (0, 0)),    # 16 per group
    (2, 32, 7, 9, 64, 8, (3, 3), (2, 2), (1, 1)),      # twice the filters (width-changing unit)
    (2, 16, 6, 5, 16, 4, (1, 1), (1, 1), (0, 0)),      # 1x1
    (2, 16, 7, 7, 32, 8, (1, 1), (2, 2), (0, 0)),      # 1x1 stride 2 (projection shortcut)
    (2, 12, 5, 5, 6, 3, (3, 3), (1, 1), (2, 2)),       # padding wider than the kernel's reach
    (1, 64, 12, 11, 32, 2, (5, 5), (2, 2), (2, 2)),    # general: 32 per group, 5x5
    (2, 6, 8, 9, 6, 3, (2, 3), (1, 2), (0, 1)),        # general: uneven kernel, stride, pad
    (1, 4, 1, 1, 8, 2, (1, 1), (1, 1), (0, 0)),        # 1x1 pixels
    (2, 8, 4, 4, 8, 1, (3, 3), (3, 3), (1, 1)),        # one group, stride 3
    (2, 20, 9, 9, 44, 4, (3, 3), (1, 1), (1, 1)),      # 5 in, 11 filters per group: partial blocks
    (3, 40, 7, 7, 40, 4, (3, 3), (1, 1), (1, 1)),      # 10 per group on 7x7 (ImageNet stage 4)
    (3, 40, 6, 6, 40, 40, (3, 3), (1, 1), (1, 1)),     # 40 groups: weight grad in one image block
    # Stride-2 rows split into column phases by vector shuffles (2 x 16 floats at a
    # time with AVX-512), then element by element: odd width, padding 1 and 2.
    (1, 8, 5, 37, 8, 4, (3, 3), (2, 2), (1, 1)),
    (1, 6, 4, 70, 6, 2, (5, 5), (2, 2), (2, 2)),
]
IDS = ['x'.join(map(str, s[:6])) + f'_k{s[6][0]}{s[6][1]}s{s[7][0]}{s[7][1]}p{s[8][0]}{s[8][1]}'
       for s in SHAPES]
TOLERANCE = {'float32': dict(rtol=1e-4, atol=1e-4), 'float64': dict(rtol=1e-10, atol=1e-10)}


def conv_params(shape):
    _, _, _, _, f, g, k, s, p = shape
    return dict(kernel=k, stride=s, pad=p, num_filter=f, num_group=g)


def arrays(shape, dtype, seed=0):
    n, c, h, w, f, g, k, _, _ = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)).astype(dtype),
            rng.standard_normal((f, c // g, *k)).astype(dtype))


def run(op, x, w, head, grad_req='write', repeats=1, **params):
    """Output, data grad and weight grad of op(x, w) under autograd."""
    dtype = x.dtype
    data, weight = mx.nd.array(x, dtype=dtype), mx.nd.array(w, dtype=dtype)
    data.attach_grad(grad_req)
    weight.attach_grad(grad_req)
    for _ in range(repeats):
        with mx.autograd.record():
            out = op(data, weight, **params)
        out.backward(mx.nd.array(head, dtype=dtype))
    return out.asnumpy(), data.grad.asnumpy(), weight.grad.asnumpy()


def convolution(data, weight, **params):
    return mx.nd.Convolution(data, weight, no_bias=True, **params)


def out_shape(shape):
    n, _, h, w, f, _, k, s, p = shape
    return (n, f, (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('shape', SHAPES, ids=IDS)
def test_matches_convolution(shape, dtype):
    x, w = arrays(shape, dtype)
    head = np.random.default_rng(1).standard_normal(out_shape(shape)).astype(dtype)
    ours = run(mx.nd.GroupConvolution, x, w, head, **conv_params(shape))
    theirs = run(convolution, x, w, head, **conv_params(shape))
    for name, a, b in zip(('output', 'data grad', 'weight grad'), ours, theirs, strict=True):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, err_msg=name, **TOLERANCE[dtype])


def test_definition_by_loops():
    # The sum written out, independent of MXNet's Convolution.
    n, c, h, w, f, g, kh, kw, s, p = 1, 4, 5, 6, 6, 2, 3, 2, 2, 1
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c // g, kh, kw))
    y = mx.nd.GroupConvolution(mx.nd.array(x, dtype='float64'), mx.nd.array(wt, dtype='float64'),
                               kernel=(kh, kw), stride=(s, s), pad=(p, p), num_filter=f,
                               num_group=g).asnumpy()
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    expected = np.zeros((n, f, oh, ow))
    for o in range(f):
        group = o // (f // g)
        for ci in range(c // g):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[0, group * (c // g) + ci, i * s:i * s + kh, j * s:j * s + kw]
                    expected[0, o, i, j] += (patch * wt[o, ci]).sum()
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_numeric_gradient():
    data, weight = mx.sym.var('data'), mx.sym.var('weight')
    sym = mx.sym.GroupConvolution(data, weight, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                                  num_filter=4, num_group=2)
    rng = np.random.default_rng(3)
    loc = {'data': rng.standard_normal((1, 4, 5, 4)), 'weight': rng.standard_normal((4, 2, 3, 3))}
    mx.test_utils.check_numeric_gradient(sym, loc, dtype=np.float64, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('shape', [SHAPES[0], SHAPES[3]], ids=[IDS[0], IDS[3]])
def test_grad_req_add_accumulates(shape):
    x, w = arrays(shape, 'float64')
    head = np.random.default_rng(4).standard_normal(out_shape(shape))
    _, dx, dw = run(mx.nd.GroupConvolution, x, w, head, grad_req='add', repeats=3,
                    **conv_params(shape))
    _, dx1, dw1 = run(convolution, x, w, head, **conv_params(shape))
    np.testing.assert_allclose(dx, 3 * dx1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, 3 * dw1, rtol=1e-10, atol=1e-10)


def test_symbol_grad_req_add():
    shape = SHAPES[1]
    params = conv_params(shape)
    x, w = arrays(shape, 'float32')
    head = np.random.default_rng(5).standard_normal(out_shape(shape)).astype('float32')
    sym = mx.sym.GroupConvolution(mx.sym.var('data'), name='u', **params)
    exe = sym.simple_bind(mx.cpu(), data=x.shape, grad_req='add')
    exe.grad_dict['u_weight'][:] = 1
    exe.grad_dict['data'][:] = 0
    for _ in range(2):
        exe.forward(is_train=True, data=x, u_weight=w)
        exe.backward(mx.nd.array(head))
    _, dx, dw = run(convolution, x, w, head, **params)
    np.testing.assert_allclose(exe.grad_dict['data'].asnumpy(), 2 * dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(exe.grad_dict['u_weight'].asnumpy(), 1 + 2 * dw,
                               rtol=1e-4, atol=1e-4)


def test_symbol_names_shapes_and_checkpoints_match_convolution():
    # Same parameter names and shapes as Convolution: checkpoints interchange.
    params = dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), num_filter=16, num_group=8)
    data = mx.sym.var('data')
    ours = mx.sym.GroupConvolution(data, name='g1_conv1', **params)
    theirs = mx.sym.Convolution(data, name='g1_conv1', no_bias=True, **params)
    assert ours.list_arguments() == theirs.list_arguments() == ['data', 'g1_conv1_weight']
    assert ours.infer_shape(data=(2, 8, 6, 6)) == theirs.infer_shape(data=(2, 8, 6, 6))
    rng = np.random.default_rng(6)
    args = {'g1_conv1_weight': mx.nd.array(rng.standard_normal((16, 1, 3, 3)))}
    x = mx.nd.array(rng.standard_normal((2, 8, 6, 6)))
    outputs = []
    for sym in (ours, theirs):
        mod = mx.mod.Module(sym, label_names=None)
        mod.bind(data_shapes=[('data', x.shape)], for_training=False)
        mod.set_params(args, {})
        mod.forward(mx.io.DataBatch([x]), is_train=False)
        outputs.append(mod.get_outputs()[0].asnumpy())
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_symbol_json_round_trip():
    sym = mx.sym.GroupConvolution(mx.sym.var('data'), name='c', kernel=(3, 3), pad=(1, 1),
                                  num_filter=4, num_group=2)
    loaded = mx.sym.load_json(sym.tojson())
    assert loaded.list_arguments() == ['data', 'c_weight']
    assert loaded.infer_shape(data=(1, 4, 5, 5))[1] == [(1, 4, 5, 5)]


def test_convolution_keywords_accepted():
    x, w = mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((4, 2, 3, 3))
    y = mx.nd.GroupConvolution(x, w, kernel=(3, 3), num_filter=4, num_group=2, no_bias=True,
                               dilate=(1, 1), layout='NCHW', workspace=512, cudnn_off=True,
                               cudnn_tune='off')
    assert y.shape == (1, 4, 3, 3) and float(y[0, 0, 0, 0].asscalar()) == 18


@pytest.mark.parametrize('kernel', [' [3 , 3] ', '(3,3,)', '(3, 3)', '[3,3]'])
def test_tuple_spellings_mxnet_accepts(kernel):
    x, w = mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((4, 2, 3, 3))
    y = mx.nd.GroupConvolution(x, w, kernel=kernel, num_filter=4, num_group=2)
    assert y.shape == mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=4, num_group=2,
                                        no_bias=True).shape == (1, 4, 3, 3)


@pytest.mark.parametrize('params,data_shape,weight_shape,message', [
    (dict(num_group=5), (1, 8, 5, 5), (8, 2, 3, 3), 'channels C=8'),
    (dict(num_group=4, num_filter=6), (1, 8, 5, 5), (6, 2, 3, 3),
     'num_filter=6 is not divisible by num_group=4'),
    (dict(), (1, 8, 5, 5), (8, 4, 3, 3), 'weight shape (8,4,3,3) does not match (8,2,3,3)'),
    (dict(foo=1), (1, 8, 5, 5), (8, 2, 3, 3), "unknown parameter 'foo'"),
    (dict(), (1, 8, 5), (8, 2, 3, 3), 'data must be 4-dimensional'),
    (dict(), (1, 8, 5, 5, 5), (8, 2, 3, 3), 'data must be 4-dimensional'),
    (dict(no_bias='maybe'), (1, 8, 5, 5), (8, 2, 3, 3), "no_bias='maybe' is not a boolean"),
    (dict(act_type='tanh'), (1, 8, 5, 5), (8, 2, 3, 3), "act_type='tanh' is not supported"),
    (dict(dilate=(2, 2)), (1, 8, 5, 5), (8, 2, 3, 3), "dilate='(2, 2)'"),
    (dict(layout='NHWC'), (1, 8, 5, 5), (8, 2, 3, 3), "layout='NHWC'"),
    (dict(kernel=(3,)), (1, 8, 5, 5), (8, 2, 3, 3), "kernel='(3,)' must have 2 values"),
    (dict(kernel=(7, 7)), (1, 8, 5, 5), (8, 2, 7, 7), 'kernel=(7,7) does not fit'),
    (dict(stride=(0, 1)), (1, 8, 5, 5), (8, 2, 3, 3), "stride='(0, 1)' is out of range"),
    (dict(pad=(-1, 0)), (1, 8, 5, 5), (8, 2, 3, 3), "pad='(-1, 0)' is out of range"),
    (dict(num_group=0), (1, 8, 5, 5), (8, 2, 3, 3), 'num_group=0 is out of range'),
    (dict(num_filter='x'), (1, 8, 5, 5), (8, 2, 3, 3), "num_filter='x' is not an integer"),
    # blanks inside a number, as MXNet's Convolution refuses them (not read as 11 or 10)
    (dict(kernel='(1 1, 1)'), (1, 8, 5, 5), (8, 2, 3, 3),
     "kernel='(1 1, 1)' is not a tuple of integers"),
    (dict(pad='(1 0, 0)'), (1, 8, 5, 5), (8, 2, 3, 3), "pad='(1 0, 0)' is not a tuple"),
    (dict(stride='(,1)'), (1, 8, 5, 5), (8, 2, 3, 3), "stride='(,1)' is not a tuple"),
    (dict(pad=(2 ** 31, 1)), (1, 8, 5, 5), (8, 2, 3, 3),
     "pad='(2147483648, 1)' is out of range: each value must be in [0, 2147483647]"),
    (dict(pad=(2 ** 62, 1)), (1, 8, 5, 5), (8, 2, 3, 3),
     "pad='(4611686018427387904, 1)' is out of range"),
    (dict(workspace=' '), (1, 8, 5, 5), (8, 2, 3, 3), "workspace=' ' is not an integer"),
    (dict(cudnn_tune='garbage'), (1, 8, 5, 5), (8, 2, 3, 3), "cudnn_tune='garbage' is not one"),
    (dict(cudnn_off='maybe'), (1, 8, 5, 5), (8, 2, 3, 3), "cudnn_off='maybe' is not a boolean"),
])
def test_bad_parameters_raise(params, data_shape, weight_shape, message):
    full = dict(kernel=(3, 3), num_filter=8, num_group=4)
    full.update(params)
    with pytest.raises(mx.MXNetError) as error:
        mx.nd.GroupConvolution(mx.nd.ones(data_shape), mx.nd.ones(weight_shape),
                               **full).wait_to_read()
    assert message in str(error.value)
    assert str(error.value).count('GroupConvolution:') == 1  # no stale messages


@pytest.mark.parametrize('dtype', ['float16', 'int32'])
def test_unsupported_dtypes_raise(dtype):
    with pytest.raises(mx.MXNetError, match='float16|int32'):
        mx.nd.GroupConvolution(mx.nd.ones((1, 4, 3, 3), dtype=dtype),
                               mx.nd.ones((4, 2, 3, 3), dtype=dtype),
                               kernel=(3, 3), num_filter=4, num_group=2).wait_to_read()


def test_mismatched_dtypes_raise():
    sym = mx.sym.GroupConvolution(mx.sym.var('data'), mx.sym.var('w'), kernel=(3, 3),
                                  num_filter=4, num_group=2)
    with pytest.raises(mx.MXNetError, match='dtypes differ: float32 and float64'):
        sym.infer_type(data='float32', w='float64')
    assert sym.infer_type(data='float64')[0] == [np.float64, np.float64]   # weight follows


def test_missing_weight_is_a_type_error_for_ndarrays():
    with pytest.raises(TypeError, match="missing input 'weight'"):
        mx.nd.GroupConvolution(mx.nd.ones((1, 4, 3, 3)), kernel=(3, 3), num_filter=4,
                               num_group=2)


# ---- the kernels through their C ABI, without MXNet --------------------------

def test_kernels_alone_match_convolution():
    shape = SHAPES[3]
    x, w = arrays(shape, 'float64')
    head = np.random.default_rng(7).standard_normal(out_shape(shape))
    y_ref, dx_ref, dw_ref = run(convolution, x, w, head, **conv_params(shape))
    geometry = kernels.conv_geometry(x.shape, w.shape, shape[5], shape[7], shape[8])
    y, dx, dw = (np.full(a.shape, np.nan) for a in (y_ref, x, w))
    kernels.group_conv('forward', geometry, x, w, y, 'float64')
    kernels.group_conv('backward_data', geometry, head, w, dx, 'float64')
    kernels.group_conv('backward_weight', geometry, head, x, dw, 'float64')
    for a, b in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    assert kernels.cpu_isa() in ('avx512', 'avx2', 'generic')


def test_kernels_empty_batch_zeroes_the_weight_grad():
    geometry = kernels.ConvGeometry(0, 4, 5, 5, 4, 2, 3, 3, 1, 1, 1, 1)
    dw = np.full((4, 2, 3, 3), np.nan, dtype='float32')
    empty = np.zeros((0, 4, 5, 5), dtype='float32')
    kernels.group_conv('backward_weight', geometry, empty, empty, dw, 'float32')
    assert not dw.any()


@pytest.mark.parametrize('fields,dtype,status', [
    (dict(groups=3), 'float32', 1),          # 4 channels, 3 groups
    (dict(filters=6, groups=4), 'float32', 1),
    (dict(kernel_h=9), 'float32', 1),        # does not fit
    (dict(stride_w=0), 'float32', 1),
    (dict(pad_h=-1), 'float32', 1),
    (dict(), 'float16', 2),                  # GPU only
])
def test_kernels_reject_bad_arguments(fields, dtype, status):
    values = dict(batch=1, channels=4, height=5, width=5, filters=4, groups=2, kernel_h=3,
                  kernel_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1)
    values.update(fields)
    geometry = kernels.ConvGeometry(**values)
    buf = np.zeros(1024, dtype=dtype)
    with pytest.raises(ValueError, match=f'status {status} '):
        kernels.group_conv('forward', geometry, buf, buf[:100], buf[200:], dtype)


# Runs the kernels in a fresh process (the variant is chosen once per process), through
# igc_mx.kernels without MXNet so that it starts fast.
VARIANT_SCRIPT = BLOCK_MXNET + '''
import numpy as np
from igc_mx import kernels
kernels.load(sys.argv[1])
x, w, head = (np.load(sys.argv[2])[k] for k in ('x', 'w', 'head'))
geometry = kernels.conv_geometry(x.shape, w.shape, 4, stride=(2, 1), pad=(1, 0))
outputs = {'y': np.empty_like(head), 'dx': np.empty_like(x), 'dw': np.empty_like(w)}
for name, a, b, out in (('forward', x, w, 'y'), ('backward_data', head, w, 'dx'),
                        ('backward_weight', head, x, 'dw')):
    kernels.group_conv(name, geometry, a, b, outputs[out], 'float32')
np.savez(sys.argv[3], isa=kernels.cpu_isa(), **outputs)
'''


@pytest.mark.parametrize('isa', ['generic', 'avx2'])
def test_every_instruction_set_variant_matches_convolution(isa, tmp_path):
    # This machine picks the widest variant; IGC_MX_CPU_ISA forces the others.
    shape = (3, 16, 9, 11, 8, 4, (3, 3), (2, 1), (1, 0))
    x, w = arrays(shape, 'float32')
    head = np.random.default_rng(8).standard_normal(out_shape(shape)).astype('float32')
    y_ref, dx_ref, dw_ref = run(convolution, x, w, head, **conv_params(shape))
    np.savez(tmp_path / 'in.npz', x=x, w=w, head=head)
    subprocess.run([sys.executable, '-c', VARIANT_SCRIPT, kernels.load()._name,
                    str(tmp_path / 'in.npz'), str(tmp_path / 'out.npz')], check=True,
                   timeout=120, env={**os.environ, 'IGC_MX_CPU_ISA': isa})
    out = np.load(tmp_path / 'out.npz')
    if isa == 'avx2' and str(out['isa']) == 'generic':
        pytest.skip('this CPU has no AVX2')
    assert str(out['isa']) == isa
    for name, ref in (('y', y_ref), ('dx', dx_ref), ('dw', dw_ref)):
        np.testing.assert_allclose(out[name], ref, rtol=1e-4, atol=1e-4, err_msg=name)
