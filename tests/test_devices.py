"""The builders' choice of ops by device (igc_mx.devices), and float16 symbols."""
import json
from collections import Counter

import mxnet as mx
import pytest

import igc_mx  # noqa: F401  (loads the ops)
from igc_mx import devices, networks

from test_training import resolved, train_model

FAST_OPS = ('InterleavedGroupConv', 'GroupConvolution')
# (network, arguments, data shape)
NETWORKS = [
    ('plain_igc', dict(num_classes=10, depth=8, primary_partition=8, secondary_partition=2),
     (1, 3, 32, 32)),
    ('resnet_igc', dict(num_classes=10, depth=20, primary_partition=24, secondary_partition=2),
     (1, 3, 32, 32)),
    ('resnet_igc_imgnet_d18', dict(primary_partition=16, secondary_partition=16),
     (1, 3, 224, 224)),
    ('resnet_igc_imgnet_d18', dict(primary_partition=100), (1, 3, 224, 224)),
    ('resnet', dict(num_classes=10, depth=20, primary_partition=16), (1, 3, 32, 32)),
    ('resnet_imgnet_d18', dict(), (1, 3, 224, 224)),
]


def json_of(build, *args, **kwargs):
    """The symbol's JSON, built with fresh automatic names (_plus0, ...)."""
    with mx.name.NameManager():
        return build(*args, **kwargs).tojson()


def ops(symbol):
    return Counter(node['op'] for node in json.loads(symbol.tojson())['nodes'])


def parameters(symbol, data_shape):
    args, _, aux = symbol.infer_shape(data=data_shape)
    return (dict(zip(symbol.list_arguments(), args, strict=True)),
            dict(zip(symbol.list_auxiliary_states(), aux, strict=True)))


@pytest.mark.parametrize('name,arguments,data_shape', NETWORKS)
def test_gpu_symbols_use_the_original_ops_until_a_gpu_measured_faster(name, arguments,
                                                                       data_shape):
    cpu = networks.get_symbol(name, device='cpu', **arguments)
    gpu = networks.get_symbol(name, device='gpu', **arguments)
    assert not any(ops(gpu)[op] for op in FAST_OPS)
    if 'igc' in name:
        assert ops(cpu)['InterleavedGroupConv'] > 0 and ops(gpu)['Reorder'] > 0
        assert ops(cpu)['Reorder'] == 0
    # the same parameters either way: checkpoints move between CPU and GPU runs
    assert parameters(cpu, data_shape) == parameters(gpu, data_shape)
    # the CPU choice is the builders' default
    assert json_of(networks.get_symbol, name, device='cpu', **arguments) == \
        json_of(networks.get_symbol, name, **arguments)


def test_a_measured_gpu_shape_gets_the_fast_op(monkeypatch):
    # resnet_igc L24M2: stage 1 units are (C=48, L=24, M=2), 2 filters per group
    monkeypatch.setattr(devices, 'GPU_FUSED_UNITS', frozenset({(48, 24, 2)}))
    monkeypatch.setattr(devices, 'GPU_GROUP_CONVS', frozenset({(96, 24)}))
    symbol = networks.get_symbol('resnet_igc', 10, 20, 24, 2, device='gpu')
    nodes = json.loads(symbol.tojson())['nodes']
    fused = {n['name'] for n in nodes if n['op'] == 'InterleavedGroupConv'}
    grouped = {n['name'] for n in nodes if n['op'] == 'GroupConvolution'}
    # stage 1: 3 blocks x 2 units of 48 channels (the first unit's M is kin/L = 2 too)
    assert fused == {f'g1_b{b}_p2_two{u}_conv2' for b in (1, 2, 3) for u in (1, 2)}
    assert grouped and all(name.startswith('g2_') for name in grouped)


def test_explicit_choices_win_over_the_device():
    symbol = networks.get_symbol('resnet_igc', 10, 20, 24, 2, device='gpu', fused=True,
                                 group_conv=True)
    assert ops(symbol)['InterleavedGroupConv'] == 18 and ops(symbol)['Reorder'] == 0


def test_an_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device='tpu'"):
        networks.get_symbol('resnet_igc', 10, 20, 24, 2, device='tpu')


@pytest.mark.parametrize('gpus,device', [('', 'cpu'), ('0', 'gpu'), ('0,1', 'gpu')])
def test_the_train_scripts_build_for_the_device_of_gpus(gpus, device, tmp_path):
    cfg = resolved(train_model, ['--data-dir', str(tmp_path), '--gpus', gpus])
    assert cfg.run.device == device
    assert json_of(cfg.network.build) == \
        json_of(networks.get_symbol, 'resnet_igc', 10, 20, 24, 2, device=device)


def test_float16_symbols_cast_in_and_out():
    symbol = networks.get_symbol('resnet_igc', 10, 20, 24, 2, device='gpu', dtype='float16')
    arg_types, out_types, aux_types = symbol.infer_type(data='float32')
    types = dict(zip(symbol.list_arguments(), arg_types, strict=True))
    assert out_types == [types['data']]                       # float32 scores
    assert types['g1_b1_p2_two1_conv1_weight'].__name__ == 'float16'
    assert types['g1_b1_p2_two1_bn_gamma'].__name__ == 'float32'   # BatchNorm stays float32
    assert all(t.__name__ == 'float32' for t in aux_types)
    with pytest.raises(ValueError, match="dtype='bfloat16'"):
        networks.get_symbol('resnet_igc', 10, 20, 24, 2, dtype='bfloat16')


def test_saved_symbols_are_rewritten_for_the_device(monkeypatch):
    from igc_mx.rewrite import fuse_igc
    original = networks.get_symbol('resnet_igc', 10, 20, 24, 2, fused=False, group_conv=False)
    assert ops(fuse_igc(original, device='cpu'))['InterleavedGroupConv'] == 18
    assert not any(ops(fuse_igc(original, device='gpu'))[op] for op in FAST_OPS)
    monkeypatch.setattr(devices, 'GPU_FUSED_UNITS', frozenset({(48, 24, 2)}))
    monkeypatch.setattr(devices, 'GPU_GROUP_CONVS', frozenset({(96, 24)}))
    rewritten = ops(fuse_igc(original, device='gpu'))
    built = ops(networks.get_symbol('resnet_igc', 10, 20, 24, 2, device='gpu'))
    assert rewritten['InterleavedGroupConv'] == built['InterleavedGroupConv'] == 6
    assert rewritten['GroupConvolution'] == built['GroupConvolution'] > 0
