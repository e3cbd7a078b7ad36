"""igc_mx.rewrite.unfuse_igc: the fast ops back to the 2017 original's ops, the inverse
of fuse_igc (same arguments, same outputs)."""
import json

import mxnet as mx
import numpy as np
import pytest

from igc_mx import networks
from igc_mx.rewrite import count_fused, fuse_igc, unfuse_igc

from conftest import PUBLISHED_SYMBOLS
from test_rewrite import build, structure

CASES = [('resnet_igc', (10, 8, 24, 2)), ('plain_igc', (10, 8, 4, 2)),
         ('resnet_igc_imgnet_d18', (7, 18, 2, 2)), ('resnet_igc_imgnet_d18', (7, 18, 4)),
         ('resnet', (10, 8, 4))]


@pytest.mark.parametrize('network,args', CASES)
@pytest.mark.parametrize('group_conv', ['auto', True, False])
def test_unfuse_gives_the_original_graph(network, args, group_conv):
    original = build(network, *args, fused=False, group_conv=False)
    fast = build(network, *args, group_conv=group_conv)
    unfused = unfuse_igc(fast)
    assert structure(unfused) == structure(original)
    assert count_fused(unfused) == count_fused(unfused, 'GroupConvolution') == 0
    assert structure(fuse_igc(unfused, group_conv)) == structure(fast)
    # the channel count read from the graph or inferred from a data shape: the same
    shape = (1, 3, 224, 224) if 'imgnet' in network else (1, 3, 32, 32)
    assert structure(unfuse_igc(fast, shape)) == structure(original)


def test_unfused_outputs_are_the_fused_outputs():
    fast = networks.get_symbol('resnet_igc', 10, 8, 24, 2)
    unfused = unfuse_igc(fast)
    rng = np.random.RandomState(0)
    arg_shapes, _, aux_shapes = fast.infer_shape(data=(2, 3, 32, 32))
    args = {n: mx.nd.array(rng.normal(0, 0.3, s)) for n, s in
            zip(fast.list_arguments(), arg_shapes, strict=True)}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s)) for n, s in
           zip(fast.list_auxiliary_states(), aux_shapes, strict=True)}
    outs = [sym.bind(mx.cpu(), args, aux_states=aux).forward()[0].asnumpy()
            for sym in (fast, unfused)]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-7)


def test_channels_unknown_without_a_shape():
    x = mx.sym.Variable('data')        # nothing before the fused op says its channels
    fused = mx.sym.InterleavedGroupConv(x, name='u_conv2', primary_partition=2,
                                        secondary_partition=2)
    with pytest.raises(ValueError, match="InterleavedGroupConv 'u_conv2': cannot tell"):
        unfuse_igc(fused)
    unfused = unfuse_igc(fused, (1, 8, 4, 4))
    assert [n['op'] for n in json.loads(unfused.tojson())['nodes']
            if n['op'] not in ('null', '_copy')] == ['Reorder', 'Convolution', 'Reorder']
    assert unfused.list_arguments() == fused.list_arguments()


@pytest.mark.parametrize('row,relpath', PUBLISHED_SYMBOLS, ids=[r for r, _ in PUBLISHED_SYMBOLS])
def test_published_symbols_round_trip(row, relpath, published_models_dir):
    published = mx.sym.load(str(published_models_dir / relpath))
    back = unfuse_igc(fuse_igc(published))
    # same ops, names and wiring (MXNet's defaults such as workspace are not kept)
    assert structure(back, attrs=False) == structure(published, attrs=False)
    assert back.list_arguments() == published.list_arguments()
