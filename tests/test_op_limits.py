"""Extreme geometry: every size the ops compute is overflow-checked, so huge
strides work, huge paddings and zero-size dimensions give a clear MXNetError,
and nothing crashes or hangs."""
import mxnet as mx
import numpy as np
import pytest

import igc_mx  # noqa: F401  (loads the ops)
from igc_mx import kernels

HUGE = 2 ** 30
OPS = (mx.nd.GroupConvolution, lambda *a, **k: mx.nd.Convolution(*a, no_bias=True, **k))


def outputs_and_gradients(op, x, w, kwargs, rng):
    """The output and both gradients for a random output gradient drawn from rng."""
    x, w = x.copy(), w.copy()
    x.attach_grad()
    w.attach_grad()
    with mx.autograd.record():
        out = op(x, w, **kwargs)
    out.backward(mx.nd.array(rng.standard_normal(out.shape)))
    return out.asnumpy(), x.grad.asnumpy(), w.grad.asnumpy()


def test_a_stride_far_beyond_the_input_matches_convolution():
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.standard_normal((2, 4, 3, 5)))
    w = mx.nd.array(rng.standard_normal((4, 2, 3, 3)))
    kwargs = dict(kernel=(3, 3), pad=(1, 1), stride=(HUGE, HUGE), num_filter=4, num_group=2)
    ours, theirs = (outputs_and_gradients(op, x, w, kwargs, np.random.default_rng(3))
                    for op in OPS)
    assert ours[0].shape == (2, 4, 1, 1)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('stride', [(3, 1), (1, 5), (7, 7)])
def test_strides_larger_than_the_kernel_match_convolution(stride):
    rng = np.random.default_rng(1)
    x = mx.nd.array(rng.standard_normal((2, 6, 11, 12)))
    w = mx.nd.array(rng.standard_normal((6, 3, 2, 2)))
    kwargs = dict(kernel=(2, 2), pad=(1, 0), stride=stride, num_filter=6, num_group=2)
    ours, theirs = (outputs_and_gradients(op, x, w, kwargs, np.random.default_rng(2))
                    for op in OPS)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('pad', [(HUGE, HUGE), (2 ** 20, 2 ** 20), (1, HUGE)])
def test_a_padding_whose_output_no_tensor_can_hold_is_refused(pad):
    x, w = mx.nd.ones((1, 4, 1, 1)), mx.nd.ones((4, 4, 3, 3))
    with pytest.raises(mx.MXNetError, match=r'more than 2\^31 - 1 elements'):
        mx.nd.GroupConvolution(x, w, kernel=(3, 3), pad=pad, num_filter=4).wait_to_read()


@pytest.mark.parametrize('shape', [(0, 4, 5, 5), (1, 0, 5, 5), (1, 4, 0, 5)])
def test_zero_size_dimensions_name_the_dimension(shape):
    with mx.util.np_shape(True):   # the shape semantics in which 0 is a size, not unknown
        x = mx.nd.ones(shape)
        with pytest.raises(mx.MXNetError, match=r'zero-size dimension \d'):
            mx.nd.GroupConvolution(x, mx.nd.ones((4, 4, 3, 3)), kernel=(3, 3), pad=(1, 1),
                                   num_filter=4).wait_to_read()
        with pytest.raises(mx.MXNetError, match=r'zero-size dimension \d'):
            mx.nd.InterleavedGroupConv(x, mx.nd.ones((4, 2, 1, 1)), primary_partition=2,
                                       secondary_partition=2).wait_to_read()


def test_reorder_passes_an_empty_batch_through_and_refuses_zero_channels():
    with mx.util.np_shape(True):
        assert mx.nd.Reorder(mx.nd.ones((0, 4, 5)), branch_factor=2).shape == (0, 4, 5)
        with pytest.raises(mx.MXNetError, match='Reorder needs C >= 1'):
            mx.nd.Reorder(mx.nd.ones((2, 0, 5)), branch_factor=2).wait_to_read()


def test_kernels_refuse_sizes_beyond_the_element_limit():
    lib = kernels.load()
    big = 2 ** 31
    for args in ((1, big, 1, 1), (2 ** 16, 2 ** 16, 1, 1), (1, 2, 2 ** 16, 2 ** 16)):
        # (batch, channels, inner) products past 2^31 - 1: IGC_TOO_LARGE, nothing touched
        batch, channels, branch, inner = args[0], args[1], 1, args[2] * args[3]
        assert lib.igc_reorder_cpu(8, 16, batch, channels, branch, inner, 0) == 7
    geometry = kernels.ConvGeometry(1, 4, 1, 1, 4, 1, 3, 3, 1, 1, HUGE, HUGE)
    assert lib.igc_group_conv_check(geometry, 0) == 7
    geometry = kernels.ConvGeometry(1, 4, 1, 1, 4, 1, 3, 3, 1, 1, -1, 0)
    assert lib.igc_group_conv_check(geometry, 0) == 1
    assert kernels.status_string(7).startswith('too large')


def _three_ops(shape, rng):
    """(name, call(x, out), x) for each op at an input of `shape` whose output shape
    equals the input's (so that out= may name the input)."""
    C = shape[1]
    w_igc = mx.nd.array(rng.standard_normal((C, C // 2, 1, 1)))
    w_gc = mx.nd.array(rng.standard_normal((C, 2, 3, 3)))
    return [
        ('Reorder', lambda x, out: mx.nd.Reorder(x, branch_factor=2, out=out)),
        ('InterleavedGroupConv', lambda x, out: mx.nd.InterleavedGroupConv(
            x, w_igc, primary_partition=C // 2, secondary_partition=2, out=out)),
        ('GroupConvolution', lambda x, out: mx.nd.GroupConvolution(
            x, w_gc, kernel=(3, 3), pad=(1, 1), num_filter=C, num_group=C // 2, out=out)),
    ]


@pytest.mark.parametrize('op', ['Reorder', 'InterleavedGroupConv', 'GroupConvolution'])
def test_out_naming_an_input_is_refused_and_a_separate_out_is_written(op):
    """The kernels read the input after they start writing the output, so an output
    over an input would be silently wrong: refused, whole or as an overlapping view."""
    rng = np.random.default_rng(7)
    shape = (3, 8, 6, 5)
    name, call = next(c for c in _three_ops(shape, rng) if c[0] == op)
    x = mx.nd.array(rng.standard_normal(shape))
    expected = call(x, None).asnumpy()
    separate = mx.nd.zeros(shape)
    call(x, separate)
    np.testing.assert_array_equal(separate.asnumpy(), expected)
    before = x.asnumpy()
    with pytest.raises(mx.base.MXNetError, match=f'{name}: output 0 shares memory with input 0'):
        call(x, x).wait_to_read()
    stacked = mx.nd.array(rng.standard_normal((4,) + shape[1:]))
    with pytest.raises(mx.base.MXNetError, match='shares memory with input 0'):
        call(stacked[0:3], stacked[1:4]).wait_to_read()
    np.testing.assert_array_equal(x.asnumpy(), before)


@pytest.mark.parametrize('op', ['Reorder', 'InterleavedGroupConv', 'GroupConvolution'])
def test_a_zero_size_dimension_is_named(op):
    rng = np.random.default_rng(8)
    name, call = next(c for c in _three_ops((2, 8, 4, 4), rng) if c[0] == op)
    x = mx.nd.array(np.ones((2, 8, 0, 4), np.float32))
    with pytest.raises(mx.base.MXNetError,
                       match=rf"{name}: input 'data' has shape \(2, 8, 0, 4\), with a "
                             'zero-size dimension 2;'):
        call(x, None).wait_to_read()

