"""The ONNX export's converter table (igc_mx.onnx.CONVERTERS), op by op and attribute by
attribute: each case is either exported and computes in ONNX Runtime what MXNet computes
(exported for batch 1, run with batch 2; all cases in one ONNX Runtime process), or
refused with a one-line ExportError naming the op, the node and the attribute. Every
attribute MXNet knows for an op of the table is set by some case."""
import json
import subprocess

import mxnet as mx
import numpy as np
import pytest
from mxnet.operator import get_operator_arguments

from igc_mx import networks, onnx_converters, symbol_attrs
from igc_mx import onnx as igc_onnx
from igc_mx.tools import export_onnx

S = mx.sym
D = S.Variable('data')
IMAGE = (1, 4, 7, 9)


def conv(**kw):
    return S.Convolution(D, name='conv', **{'kernel': (3, 3), 'num_filter': 4, **kw})


def deconv(**kw):
    return S.Deconvolution(D, name='deconv', **{'kernel': (3, 3), 'num_filter': 4, **kw})


def group_conv(**kw):
    return S.GroupConvolution(D, name='gconv', **{'kernel': (3, 3), 'pad': (1, 1),
                                                  'num_filter': 8, 'num_group': 4, **kw})


def pool(**kw):
    return S.Pooling(D, name='pool', **kw)


def head(data, **kw):
    return S.SoftmaxOutput(data, name='softmax', **kw)


def igc_with_everything():
    # the inputs' shapes given: MXNet's extension glue overruns a buffer for an input of
    # unknown shape (README, Using the operators)
    return S.InterleavedGroupConv(D, S.Variable('igc_weight', shape=(8, 4, 1, 1)),
                                  S.Variable('igc_bias', shape=(8,)),
                                  S.relu(D, name='shortcut'), name='igc', primary_partition=4,
                                  secondary_partition=2, no_bias=False, with_residual=True,
                                  act_type='relu')


# Pooling: every type and convention on geometries where 'full' adds a window, the
# padding is asymmetric in effect, or windows hang over the end.
POOL_GEOMETRIES = [((3, 3), (2, 2), (1, 1), (7, 8)), ((2, 2), (2, 2), (0, 0), (5, 7)),
                   ((3, 2), (2, 1), (1, 0), (6, 5))]
POOLS = []
for pool_type, p_value in [('max', None), ('avg', None), ('sum', None), ('lp', 1), ('lp', 2),
                           ('lp', 3)]:
    extra = {} if p_value is None else {'p_value': p_value}
    for convention in ('valid', 'full'):
        for k, s, p, hw in POOL_GEOMETRIES:
            POOLS.append((f'pool-{pool_type}{p_value or ""}-{convention}-k{k[0]}{k[1]}s{s[0]}'
                          f'{s[1]}p{p[0]}{p[1]}',
                          dict(kernel=k, stride=s, pad=p, pool_type=pool_type,
                               pooling_convention=convention, **extra), (1, 3, *hw)))
    POOLS.append((f'pool-{pool_type}{p_value or ""}-global',
                  dict(kernel=(2, 2), pool_type=pool_type, global_pool=True, **extra),
                  (1, 3, 5, 6)))
for count_include_pad in (True, False):
    for convention in ('valid', 'full'):
        for k, s, p, hw in POOL_GEOMETRIES:
            POOLS.append((f'pool-avg-{convention}-k{k[0]}{k[1]}s{s[0]}{s[1]}p{p[0]}{p[1]}-'
                          f'count_include_pad={count_include_pad}',
                          dict(kernel=k, stride=s, pad=p, pool_type='avg',
                               pooling_convention=convention,
                               count_include_pad=count_include_pad), (1, 3, *hw)))

# (case id, symbol builder, input shape): exported and equal to MXNet
EXACT = [
    ('reorder', lambda: S.Reorder(D, branch_factor=2), (1, 8, 3, 5)),
    ('reorder-g1-workspace', lambda: S.Reorder(D, branch_factor=1, workspace=64), (1, 8, 3, 5)),
    ('reorder-gC', lambda: S.Reorder(D, branch_factor=8), (1, 8, 3, 5)),
    ('reorder-2d', lambda: S.Reorder(S.Flatten(D), branch_factor=3), (1, 2, 3, 4)),
    ('gconv-stride-pad-empty', lambda: group_conv(stride='()', pad='()'), (1, 8, 7, 9)),
    ('gconv-stride-none', lambda: group_conv(stride='None'), (1, 8, 7, 9)),
    ('gconv-list-kernel-dilate-layout', lambda: group_conv(kernel='[3,3]', dilate='(1, 1)',
                                                           layout='NCHW'), (1, 8, 7, 9)),
    ('gconv-bias-relu', lambda: group_conv(no_bias='false', act_type='relu', stride=(2, 2)),
     (1, 8, 7, 9)),
    ('gconv-tuning', lambda: group_conv(cudnn_tune='off', cudnn_off=True, workspace=8),
     (1, 8, 7, 9)),
    ('igc', lambda: S.InterleavedGroupConv(D, name='igc', primary_partition=4,
                                           secondary_partition=2), (1, 8, 5, 6)),
    ('igc-bias-residual-relu', igc_with_everything, (1, 8, 5, 6)),
    ('conv', lambda: conv(), IMAGE),
    ('conv-dilate', lambda: conv(dilate=(2, 2)), IMAGE),
    ('conv-stride-pad', lambda: conv(stride=(2, 1), pad=(1, 2)), IMAGE),
    ('conv-empty-tuples', lambda: conv(stride='()', pad='()', dilate='()'), IMAGE),
    ('conv-list-kernel', lambda: conv(kernel='[3,3]'), IMAGE),
    ('conv-no_bias-lowercase', lambda: conv(no_bias='true'), IMAGE),
    ('conv-groups', lambda: conv(kernel=(1, 1), num_group=2), IMAGE),
    ('conv-layout-tuning', lambda: conv(layout='NCHW', cudnn_off=True, cudnn_tune='fastest',
                                        workspace=64), IMAGE),
    ('deconv', lambda: deconv(), IMAGE),
    ('deconv-bias', lambda: deconv(no_bias=False), IMAGE),
    ('deconv-stride-pad-adj', lambda: deconv(stride=(2, 2), pad=(1, 1), adj=(1, 1)), IMAGE),
    ('deconv-dilate', lambda: deconv(kernel=(2, 2), dilate=(2, 2)), IMAGE),
    ('deconv-groups-tuning', lambda: deconv(num_group=2, layout='NCHW', cudnn_tune='off',
                                            cudnn_off=True, workspace=64), IMAGE),
    ('bn', lambda: S.BatchNorm(D, name='bn'), IMAGE),
    ('bn-gamma', lambda: S.BatchNorm(D, name='bn', fix_gamma=False, eps=1e-7), IMAGE),
    ('bn-flags-as-text', lambda: S.BatchNorm(D, name='bn', fix_gamma='0',
                                             use_global_stats='true'), IMAGE),
    ('bn-training-settings', lambda: S.BatchNorm(D, name='bn', fix_gamma=False, momentum=0.5,
                                                 cudnn_off=True, axis=-3, min_calib_range=-1.0,
                                                 max_calib_range=1.0), IMAGE),
    ('bn-output_mean_var', lambda: S.relu(S.BatchNorm(D, name='bn', output_mean_var=True)[0]),
     IMAGE),
    ('bn-2d', lambda: S.BatchNorm(S.Flatten(D), name='bn', fix_gamma=False), (1, 3, 2, 2)),
    *[(f'activation-{a}', lambda a=a: S.Activation(D, act_type=a), IMAGE)
      for a in ('relu', 'sigmoid', 'tanh', 'softrelu', 'softsign')],
    *[(f'op-{op}', lambda op=op: getattr(S, op)(D), IMAGE)
      for op in ('relu', 'sigmoid', 'tanh')],
    ('leaky', lambda: S.LeakyReLU(D, act_type='leaky', slope=0.3), IMAGE),
    ('prelu', lambda: S.LeakyReLU(D, act_type='prelu', name='prelu'), IMAGE),
    ('elu', lambda: S.LeakyReLU(D, act_type='elu', slope=0.7), IMAGE),
    ('selu', lambda: S.LeakyReLU(D, act_type='selu'), IMAGE),
    ('gelu', lambda: S.LeakyReLU(D, act_type='gelu'), IMAGE),
    # rrelu has a second output (its mask): the head reads the first
    ('rrelu', lambda: S.relu(S.LeakyReLU(D, act_type='rrelu', lower_bound=0.1,
                                         upper_bound=0.5)[0]), IMAGE),
    ('clip', lambda: S.clip(D, a_min=-0.5, a_max=0.7), IMAGE),
    *[(name, lambda kw=kw: pool(**kw), shape) for name, kw, shape in POOLS],
    ('pool-default-stride-tuning', lambda: pool(kernel=(3, 3), pool_type='avg', cudnn_off=True,
                                                layout='NCHW'), (1, 3, 6, 6)),
    ('flatten', lambda: S.Flatten(D), IMAGE),
    *[(f'fc-flatten={f}-no_bias={nb}', lambda f=f, nb=nb: S.FullyConnected(
        D, name='fc', num_hidden=6, flatten=f, no_bias=nb), IMAGE)
      for f in (True, False) for nb in (True, False, 'true')],
    ('fc-2d', lambda: S.FullyConnected(S.Flatten(D), name='fc', num_hidden=5), IMAGE),
    *[(f'lrn-{n}', lambda n=n: S.LRN(D, nsize=n), (1, 7, 4, 5)) for n in (1, 3, 5)],
    ('lrn-explicit', lambda: S.LRN(D, nsize=3, alpha=0.5, beta=0.6, knorm=1.5), (1, 7, 4, 5)),
    *[(f'{op}-{tag}', lambda op=op, kw=kw: getattr(S, op)(D, **kw), IMAGE)
      for op in ('softmax', 'log_softmax')
      for tag, kw in [('default', {}), ('axis1', {'axis': 1}), ('axis-2', {'axis': -2}),
                      ('temperature', {'temperature': 2.0, 'dtype': 'float32'}),
                      ('no-length', {'use_length': False})]],
    ('softmax_activation-instance', lambda: S.SoftmaxActivation(D), IMAGE),
    ('softmax_activation-channel', lambda: S.SoftmaxActivation(D, mode='channel'), IMAGE),
    ('dropout', lambda: S.Dropout(D, p=0.5, axes=(2,), cudnn_off=True), IMAGE),
    ('dropout-always-p0', lambda: S.Dropout(D, p=0.0, mode='always'), IMAGE),
    ('cast-float32', lambda: S.relu(S.Cast(D, dtype='float32')), IMAGE),
    ('copies', lambda: S.BlockGrad(S.identity(D)), IMAGE),
    ('concat', lambda: S.Concat(D, S.relu(D), dim=1), IMAGE),
    ('concat-last', lambda: S.Concat(D, S.relu(D), dim=-1), IMAGE),
    ('plus', lambda: D + S.relu(D), IMAGE),
    ('broadcast_add', lambda: S.broadcast_add(D, pool(kernel=(1, 1), global_pool=True)), IMAGE),
    ('add_n', lambda: S.add_n(D, S.relu(D), S.sigmoid(D)), IMAGE),
    *[(op, lambda op=op: getattr(S._internal, op)(D, scalar=2.5, is_int=False), IMAGE)
      for op in onnx_converters.SCALAR_OPS],
    ('scalar-is_int', lambda: S._internal._mul_scalar(D, scalar=3, is_int=True), IMAGE),
    ('slice_axis', lambda: S.slice_axis(D, axis=1, begin=1, end=None), IMAGE),
    ('slice_axis-batch', lambda: S.slice_axis(D, axis=0, begin=0, end=1), IMAGE),
    ('slice_axis-negative', lambda: S.slice_axis(D, axis=-1, begin=-3, end=-1), IMAGE),
    ('head-2d', lambda: head(S.Flatten(D)), IMAGE),
    ('head-preserve_shape', lambda: head(S.relu(D), preserve_shape=True), (1, 3, 4, 9)),
    ('head-multi_output', lambda: head(S.relu(D), multi_output=True), (1, 3, 4, 9)),
    ('head-multi_output-preserve_shape', lambda: head(S.relu(D), multi_output=True,
                                                      preserve_shape=True), (1, 3, 4, 9)),
    ('head-training-settings', lambda: head(S.Flatten(D), use_ignore=True, ignore_label=3,
                                            normalization='valid', out_grad=True,
                                            smooth_alpha=0.1, grad_scale=2.0), IMAGE),
    ('head-normalization-batch', lambda: head(S.Flatten(D), normalization='batch'), IMAGE),
]

# (case id, symbol builder, input shape, the error): refused
REFUSED = [
    ('conv-layout-nhwc', lambda: conv(layout='NHWC'), (1, 7, 9, 4),
     "Convolution 'conv': layout='NHWC': the export takes NCHW (channels first)"),
    ('pool-layout-nhwc', lambda: pool(kernel=(2, 2), layout='NHWC'), (1, 6, 6, 3),
     "Pooling 'pool': layout='NHWC': the export takes NCHW (channels first)"),
    ('pool-windows-in-padding', lambda: pool(kernel=(2, 2), pad=(2, 2)), (1, 3, 5, 5),
     "Pooling 'pool': kernel=(2, 2), stride=(1, 1) and pad=(2, 2) on (5, 5) make windows "
     'that lie wholly in the padding: the export takes windows that overlap the input'),
    ('pool-lp-p4', lambda: pool(kernel=(2, 2), pool_type='lp', p_value=4), (1, 3, 6, 6),
     "Pooling 'pool': p_value='4': expected 1, 2 or 3 (what MXNet computes)"),
    ('deconv-target_shape', lambda: deconv(kernel=(4, 4), stride=(2, 2), target_shape=(14, 18)),
     IMAGE, "Deconvolution 'deconv': target_shape='(14, 18)': not exported; give pad and adj "
            'instead'),
    ('bn-axis', lambda: S.BatchNorm(D, name='bn', axis=3), IMAGE,
     "BatchNorm 'bn': axis='3': the export takes BatchNorm over the channel axis 1"),
    ('lrn-even', lambda: S.LRN(D, nsize=4, name='lrn'), (1, 7, 4, 5),
     "LRN 'lrn': nsize='4': the export takes odd window sizes"),
    ('dropout-always', lambda: S.Dropout(D, p=0.5, mode='always', name='drop'), IMAGE,
     "Dropout 'drop': mode='always': drops values at inference too: the export takes "
     "mode='training' (or p=0)"),
    ('softmax-temperature0', lambda: S.softmax(D, temperature=0.0, name='sm'), IMAGE,
     "softmax 'sm': temperature='0.0': expected a finite non-zero number"),
    # over the batch axis the lengths are a parameter (of shape (C, H, W))
    ('softmax-use_length', lambda: S.softmax(D, S.Variable('length'), use_length=True,
                                             axis=0, name='sm'), IMAGE,
     "softmax 'sm': use_length='True': a length input is not exported"),
    ('softmax_activation-channel-2d', lambda: S.SoftmaxActivation(S.Flatten(D), mode='channel',
                                                                  name='sa'), IMAGE,
     "SoftmaxActivation 'sa': mode='channel': takes inputs of 3 or more axes (MXNet fails on "
     'fewer)'),
    ('head-4d-ambiguous', lambda: head(S.relu(D)), (1, 3, 4, 9),
     "SoftmaxOutput 'softmax': scores of shape (1, 3, 4, 9) with preserve_shape and "
     'multi_output False: MXNet 1.9.1 computes this softmax over the last axis on the CPU '
     '(oneDNN) and over all values of an image elsewhere; set preserve_shape=True (last '
     'axis), or flatten the scores first'),
    ('head-inside', lambda: S.relu(head(S.Flatten(D))), IMAGE,
     "SoftmaxOutput 'softmax': the export takes SoftmaxOutput as the symbol's output only"),
    ('igc-computed-bias', lambda: S.InterleavedGroupConv(
        D, S.Variable('igc_weight', shape=(8, 4, 1, 1)),
        S.relu(S.Variable('b', shape=(8,)), name='b_relu'), name='igc',
        primary_partition=4, secondary_partition=2, no_bias=False), (1, 8, 5, 6),
     "InterleavedGroupConv 'igc': its bias is computed in the graph: the export takes a "
     'parameter'),
    ('cast-float16', lambda: S.Cast(S.Cast(D, dtype='float16', name='half'), dtype='float32'),
     IMAGE, "Cast 'half' computes in float16: the export writes float32 models (a network "
            "built with dtype='float16' is exported from its float32 build, with the same "
            'parameters)'),
    ('softmax-float64', lambda: S.softmax(D, dtype='float64', name='sm'), IMAGE,
     "softmax 'sm' computes in float64"),
    ('float64-input', lambda: S.relu(S.Variable('data', dtype='float64')), IMAGE,
     'input computes in float64'),
    ('two-outputs', lambda: S.Group([S.relu(D, name='a'), S.sigmoid(D, name='b')]), IMAGE,
     'the symbol has 2 outputs (a_output, b_output): the export takes a symbol with one'),
    ('two-data-variables', lambda: S.elemwise_add(S.Variable('data'), S.Variable('data')),
     IMAGE, "the symbol has two inputs named 'data': the export needs one name per node"),
    ('duplicate-names', lambda: S.elemwise_add(S.relu(D, name='r'), S.sigmoid(S.relu(D, name='r'))),
     IMAGE, "the symbol has two nodes named 'r': the export needs one name per node"),
    ('second-output', lambda: S.relu(S.BatchNorm(D, name='bn', output_mean_var=True)[1],
                                     name='r'), IMAGE,
     "relu 'r' reads output 1 of BatchNorm 'bn': the export takes each op's first output only"),
    ('input-as-parameter', lambda: S.elemwise_add(D, S.Variable('other')), IMAGE,
     "'other' has a shape that follows the batch size ((1, 4, 7, 9) for input (1, 4, 7, 9), "
     "(2, 4, 7, 9) for (2, 4, 7, 9)): it is an input, and the export takes one, 'data'"),
    ('unsupported-op', lambda: S.Reshape(D, shape=(0, -1), name='flat'), IMAGE,
     "Reshape 'flat': no ONNX converter for the op Reshape (the export converts "),
]

EXTENSION_ATTRIBUTES = {
    'Reorder': ['branch_factor', 'workspace'],
    'GroupConvolution': ['kernel', 'stride', 'pad', 'num_filter', 'num_group', 'no_bias',
                         'act_type', 'dilate', 'layout', 'workspace', 'cudnn_tune', 'cudnn_off'],
    'InterleavedGroupConv': ['primary_partition', 'secondary_partition', 'no_bias',
                             'with_residual', 'act_type'],
}


def random_params(symbol, shape, rng):
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=shape)
    args = {n: mx.nd.array(rng.uniform(0.5, 1.5, s) if n.endswith('_gamma')
                           else rng.normal(0, 0.5, s))
            for n, s in zip(symbol.list_arguments(), arg_shapes, strict=True)
            if n != 'data' and not n.endswith('_label')}
    aux = {n: mx.nd.array(rng.uniform(0.5, 2, s) if n.endswith('_var') else rng.normal(0, 0.5, s))
           for n, s in zip(symbol.list_auxiliary_states(), aux_shapes, strict=True)}
    return args, aux


def mxnet_forward(symbol, args, aux, images):
    exe = symbol.simple_bind(mx.cpu(), data=images.shape, grad_req='null')
    exe.copy_params_from(args, aux, allow_extra_params=True)
    return exe.forward(is_train=False, data=mx.nd.array(images))[0].asnumpy()


RUN_ALL = """
import sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
for case in sorted(Path(sys.argv[1]).iterdir()):
    try:
        session = ort.InferenceSession(str(case / 'model.onnx'),
                                       providers=['CPUExecutionProvider'])
        np.save(case / 'ort.npy', session.run(None, {'data': np.load(case / 'input.npy')})[0])
    except Exception as err:
        (case / 'ort_error.txt').write_text(f'{type(err).__name__}: {err}')
"""


@pytest.fixture(scope='module')
def exported(tmp_path_factory, ort_python):
    """{case id: (its folder, MXNet's output, the model)} of every EXACT case, each
    exported for batch 1 and run with batch 2 in ONNX Runtime (the folder's ort.npy, or
    ort_error.txt)."""
    root = tmp_path_factory.mktemp('onnx_ops')
    rng = np.random.RandomState(0)
    results = {}
    for k, (case, build, shape) in enumerate(EXACT):
        work = root / f'{k:03d}'
        work.mkdir()
        symbol = build()
        args, aux = random_params(symbol, shape, rng)
        model = igc_onnx.export(symbol, args, aux, shape, work / 'model.onnx')
        images = rng.normal(0, 1, (2, *shape[1:])).astype(np.float32)
        np.save(work / 'input.npy', images)
        results[case] = (work, mxnet_forward(symbol, args, aux, images), model)
    subprocess.run([ort_python, '-c', RUN_ALL, str(root)], check=True, timeout=300)
    return {case: (work, expected, model) for case, (work, expected, model) in results.items()}


@pytest.mark.parametrize('case', [c for c, _, _ in EXACT])
def test_exported_op_equals_mxnet(case, exported):
    work, expected, model = exported[case]
    assert not (work / 'ort_error.txt').exists(), (work / 'ort_error.txt').read_text()
    got = np.load(work / 'ort.npy')
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert [i.name for i in model.graph.input] == ['data']
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'batch'
    output = model.graph.output[0].type.tensor_type.shape.dim
    declared = [d.dim_param or d.dim_value for d in output]
    assert declared == ['batch' if case != 'slice_axis-batch' else 1, *got.shape[1:]]


@pytest.mark.parametrize('case,build,shape,message', REFUSED, ids=[c for c, *_ in REFUSED])
def test_refused(case, build, shape, message):
    symbol = build()
    args, aux = random_params(symbol, shape, np.random.RandomState(0))
    with pytest.raises(igc_onnx.ExportError) as err:
        igc_onnx.to_onnx(symbol, args, aux, shape)
    assert str(err.value).startswith(message) and '\n' not in str(err.value)


def attributes_set(builds):
    """{op: attributes} that the symbols of ``builds`` set on nodes of each op."""
    found = {}
    for build in builds:
        for node in json.loads(build().tojson())['nodes']:
            found.setdefault(node['op'], set()).update(
                k for k in node.get('attrs', {}) if not k.startswith('__'))
    return found


def test_every_op_and_attribute_is_covered():
    """Each op of the table has a case that exports it, and each of its attributes (as
    MXNet lists them) is set by a case that is exported or refused."""
    exact = attributes_set(build for _, build, _ in EXACT)
    table = set(onnx_converters.CONVERTERS)
    assert table <= set(exact), table - set(exact)
    tried = attributes_set([build for _, build, _ in EXACT] + [b for _, b, _, _ in REFUSED])
    for op in [*onnx_converters.CONVERTERS, 'SoftmaxOutput']:
        if op in EXTENSION_ATTRIBUTES:
            known = set(EXTENSION_ATTRIBUTES[op])
        else:
            arguments = get_operator_arguments(op)
            known = {name for name, kind in zip(arguments.names, arguments.types, strict=True)
                     if not kind.startswith('NDArray')}
        assert known <= tried.get(op, set()), (op, known - tried.get(op, set()))


SYMBOL_FILES = {
    'two-outputs': (lambda: S.Group([S.Convolution(D, kernel=(1, 1), num_filter=2, name='a'),
                                     S.sigmoid(D, name='b')]), 2,
                    'the symbol has 2 outputs (a_output, b_output)'),
    'two-data-variables': (lambda: S.elemwise_add(S.Convolution(
        S.Variable('data'), kernel=(1, 1), num_filter=3, name='a'), S.Variable('data')), 2,
        "the symbol has two inputs named 'data'"),
    'float16': (lambda: networks.get_symbol('resnet_igc', 10, 8, 4, 2, dtype='float16'), 2,
                "Cast 'data_float16' computes in float16"),
    'deconvolution': (deconv, 0, None),
    'group-convolution-stride-empty': (lambda: group_conv(stride='()'), 0, None),
}


@pytest.mark.parametrize('case', list(SYMBOL_FILES))
def test_export_command(case, tmp_path, capsys):
    """igc-export-onnx on saved symbols: a refused one is one error line and exit status
    2, with no file written; the others are written (their values: the cases above)."""
    build, status, message = SYMBOL_FILES[case]
    symbol = build()
    shape = (1, 8, 7, 9) if case.startswith(('deconv', 'group')) else (1, 3, 32, 32)
    symbol.save(str(tmp_path / 'net-symbol.json'))
    try:
        args, aux = random_params(symbol, shape, np.random.RandomState(0))
    except mx.base.MXNetError:
        args, aux = {}, {}
    mx.nd.save(str(tmp_path / 'net.params'), {**{'arg:' + k: v for k, v in args.items()},
                                              **{'aux:' + k: v for k, v in aux.items()}})
    argv = [str(tmp_path / 'net-symbol.json'), str(tmp_path / 'net.params'), '-o',
            str(tmp_path / 'net.onnx'), '--input-shape', ','.join(map(str, shape))]
    if status == 0:
        assert export_onnx.main(argv) == 0
        assert (tmp_path / 'net.onnx').exists()
        return
    with pytest.raises(SystemExit) as exit_:
        export_onnx.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == status and len(err) == 1, err
    assert err[0].split(' error: ', 1)[1].startswith(message), err
    assert not (tmp_path / 'net.onnx').exists()


@pytest.mark.parametrize('stride', ['()', '[]', '(2, 1)', '[2,1]'])
def test_shape_reader_reads_strides_as_mxnet(stride):
    """symbol_attrs.shape, the converters' reader of stride, pad, dilate and adj: an empty
    value is the default, as for MXNet's Convolution (None too, which GroupConvolution
    takes: the case gconv-stride-none)."""
    conv = S.Convolution(D, kernel=(3, 3), num_filter=2, stride=stride, name='c')
    attrs = json.loads(conv.tojson())['nodes'][-1]['attrs']
    read = symbol_attrs.shape(attrs, 'stride', (1, 1))
    _, (out,), _ = conv.infer_shape(data=IMAGE)
    assert out[2:] == tuple((n - 3) // s + 1 for n, s in zip(IMAGE[2:], read, strict=True))


def test_optional_and_text_readers():
    assert symbol_attrs.optional(symbol_attrs.integer, {'p': 'None'}, 'p', 7) == 7
    assert symbol_attrs.optional(symbol_attrs.integer, {'p': '3'}, 'p', 7) == 3
    assert symbol_attrs.optional(symbol_attrs.number, {}, 't', 1.0) == 1.0
    with pytest.raises(ValueError, match="attribute p='x' is not an integer"):
        symbol_attrs.optional(symbol_attrs.integer, {'p': 'x'}, 'p', 7)
    assert symbol_attrs.text({'layout': 'None'}, 'layout', 'NCHW') == 'NCHW'
    assert symbol_attrs.text({'layout': 'NHWC'}, 'layout', None) == 'NHWC'
