"""Inference speed on the CPU (images/s, class probabilities for a batch of random
images), batch 1 and batch 32 side by side in one run, for one network (same
parameters) run five ways:

  default    MXNet, igc_mx.networks.get_symbol(...): InterleavedGroupConv units and
             GroupConvolution where the 'auto' rule picks it, as trained
  optimized  MXNet, the default graph through igc_mx.inference.optimize: BatchNorm and
             ReLU folded into the convolutions (what tools/evaluate.py and
             igc_mx.inference.Predictor run)
  original   MXNet, the 2017 original's graph: Convolution -> Reorder -> 1x1 conv -> Reorder
  onnx       ONNX Runtime on the default graph exported by igc_mx.onnx (tools/export_onnx.py)
             with each permutation as Reshape -> Transpose -> Reshape; with
             --ort-permutations transpose,conv also 'onnx_conv', the same export with each
             permutation as a 1x1 Conv (tools/export_onnx.py --permutation conv)
  torch      PyTorch eager on the original graph rebuilt layer by layer (bench/torch_side.py),
             in its faster memory format (contiguous or channels_last) at each batch

Each framework runs in its own process: the MXNet variants interleaved in this one,
ONNX Runtime in its environment (tools/onnx_run.py --benchmark), PyTorch in its own.
The 224x224 cases take at most IMAGENET_REPEAT timed runs, to keep the run short.

    OMP_NUM_THREADS=2 python bench/bench_inference.py [--repeat 3] [--torch-python PY]
        [--ort-python PY] [--ort-permutations transpose,conv]

Writes bench/results/inference_cpu.{json,md}. ``--profile CASE`` (a case's label or part
of it, e.g. L100M2) instead prints where MXNet's time goes in that case: milliseconds per
forward pass of each operator type, default and optimized graphs (MXNet's profiler,
operators run one at a time), at ``--profile-batch`` (default 8).
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mxnet as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from igc_mx import inference, networks  # noqa: E402
from igc_mx import onnx as igc_onnx  # noqa: E402

import common  # noqa: E402

REPO = common.HERE.parent
CASES = [
    ('resnet_igc CIFAR L24M2 depth 20', 'resnet_igc', (10, 20, 24, 2), (3, 32, 32)),
    ('IGC-L16M16 ImageNet 224x224', 'resnet_igc_imgnet_d18', (1000, 18, 16, 16), (3, 224, 224)),
    ('IGC-L100M2 ImageNet 224x224', 'resnet_igc_imgnet_d18', (1000, 18, 100), (3, 224, 224)),
]
BATCHES = (1, 32)
MIN_TIME = 0.2      # seconds each timed run lasts at least (one call at the least)
IMAGENET_REPEAT = 2
PERMUTATION_KEYS = {'transpose': 'onnx', 'conv': 'onnx_conv'}
VARIANTS = {'default': {}, 'original': {'fused': False, 'group_conv': False}}


def random_params(symbol, image, seed=0):
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, *image))
    args = {n: mx.nd.array(rng.normal(0, np.sqrt(2 / np.prod(s[1:])) if len(s) > 1 else 0.1, s))
            for n, s in zip(symbol.list_arguments(), arg_shapes, strict=True)
            if n != 'data' and not n.endswith('_label')}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s))
           for n, s in zip(symbol.list_auxiliary_states(), aux_shapes, strict=True)}
    return args, aux


def mxnet_inference(symbol, args, aux, batch, image):
    """A function computing the class probabilities of one fixed random batch."""
    exe = symbol.simple_bind(mx.cpu(), data=(batch, *image), grad_req='null')
    exe.copy_params_from(args, aux)
    exe.arg_dict['data'][:] = np.random.RandomState(1).randn(batch, *image)

    def forward():
        exe.forward(is_train=False)
        exe.outputs[0].wait_to_read()
    return forward


def run_ort(ort_python, model, repeat):
    env = {**os.environ, **common.MALLOC_ENV, 'OMP_NUM_THREADS': str(common.threads())}
    out = subprocess.run([ort_python, str(REPO / 'tools' / 'onnx_run.py'), str(model),
                          '--benchmark', ','.join(map(str, BATCHES)), '--repeat', str(repeat),
                          '--min-time', str(MIN_TIME), '--threads', str(common.threads())],
                         capture_output=True, text=True, env=env, check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return {int(b): v for b, v in answer['result'].items()}, answer['onnxruntime']


def bench_case(label, network, args, image, repeat, torch_python, ort_python, workdir,
               permutations=('transpose',)):
    if image[-1] >= 224:
        repeat = min(repeat, IMAGENET_REPEAT)
    symbols = {v: networks.get_symbol(network, *args, **kw) for v, kw in VARIANTS.items()}
    params = random_params(symbols['original'], image)
    models = {v: (s, *params) for v, s in symbols.items()}
    models['optimized'] = inference.optimize(symbols['default'], *params, (1, *image))
    rows = {b: {'case': label, 'network': network, 'args': list(args), 'batch': b,
                'image': list(image)} for b in BATCHES}
    for batch in BATCHES:
        ms = common.side_by_side({v: mxnet_inference(*model, batch, image)
                                  for v, model in models.items()}, repeat, min_time=MIN_TIME)
        for variant in models:
            rows[batch][f'{variant}_img_s'] = batch / (ms[variant] / 1e3)
    ort_version = None
    for permutation in permutations:
        key, speed = PERMUTATION_KEYS[permutation], None
        if ort_python:
            model = Path(workdir) / f'{network}-{permutation}.onnx'
            igc_onnx.export(symbols['default'], *params, (1, *image), model,
                            permutation=permutation)
            speed, ort_version = run_ort(ort_python, model, repeat)
        for batch in BATCHES:
            rows[batch][f'{key}_img_s'] = speed and speed[batch]
    original = symbols['original']
    arg_shapes, _, _ = original.infer_shape(data=(1, *image))
    torch = common.run_torch(torch_python, {
        'kind': 'inference', 'graph': json.loads(original.tojson()),
        'arg_shapes': dict(zip(original.list_arguments(), arg_shapes, strict=True)),
        'data_shape': list(image), 'batches': list(BATCHES), 'repeat': repeat,
        'min_time': MIN_TIME})
    for batch, row in rows.items():
        # PyTorch's best layout (bench/torch_side.py times both)
        row['torch_img_s'], row['torch_memory_format'] = common.best_format(
            {fmt: speed[str(batch)] for fmt, speed in torch['result'].items()}
        ) if torch else (None, None)
        row['default_vs_original'] = row['default_img_s'] / row['original_img_s']
        row['optimized_vs_default'] = row['optimized_img_s'] / row['default_img_s']
        for variant, other in itertools.product(('default', 'optimized'), ('onnx', 'torch')):
            row[f'{variant}_vs_{other}'] = common.ratio(row[f'{variant}_img_s'],
                                                        row[f'{other}_img_s'])
        if 'conv' in permutations:
            row['transpose_vs_conv'] = common.ratio(row['onnx_img_s'], row['onnx_conv_img_s'])
        row['repeat'] = repeat
    return list(rows.values()), ort_version, torch and torch['torch']


def profile(symbol, args, aux, batch, image, passes=2):
    """{operator type: ms per forward pass} of the bound symbol, from MXNet's profiler."""
    forward = mxnet_inference(symbol, args, aux, batch, image)
    forward()
    mx.profiler.set_config(profile_all=False, profile_symbolic=True,
                           profile_imperative=False, aggregate_stats=True,
                           filename=os.path.join(tempfile.gettempdir(), 'igc_mx_profile.json'))
    mx.profiler.set_state('run')
    for _ in range(passes):
        forward()
    mx.profiler.set_state('stop')
    stats = json.loads(mx.profiler.dumps(format='json', reset=True))['Time']['operator']
    return {op: value['Total'] / passes for op, value in stats.items()}


def print_profile(case, batch):
    """The operator times of ``case`` (part of a label), default and optimized graphs."""
    matches = [c for c in CASES if case in c[0]]
    if len(matches) != 1:
        raise SystemExit(f'--profile {case!r}: expected part of one of '
                         f"{', '.join(c[0] for c in CASES)}")
    label, network, args, image = matches[0]
    symbol = networks.get_symbol(network, *args)
    params = random_params(networks.get_symbol(network, *args, **VARIANTS['original']), image)
    models = {'default': (symbol, *params),
              'optimized': inference.optimize(symbol, *params, (1, *image))}
    print(f'{label}, batch {batch}, {common.threads()} threads: ms per forward pass')
    for name, model in models.items():
        times = profile(*model, batch, image)
        print(f'  {name}: {sum(times.values()):.1f} ms')
        for op, ms in sorted(times.items(), key=lambda kv: -kv[1]):
            print(f'    {op:28s} {ms:9.1f}')


def markdown(rows):
    lines = ['| inference (CPU) | batch | MXNet default img/s | MXNet optimized img/s '
             '| MXNet original img/s | ONNX Runtime img/s | PyTorch img/s '
             '| optimized vs default | optimized vs ONNX Runtime | optimized vs PyTorch '
             '| default vs ONNX Runtime |',
             '|' + '---|' * 11]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['batch']} | {r['default_img_s']:.1f} | "
            f"{r['optimized_img_s']:.1f} | {r['original_img_s']:.1f} | "
            f"{common.fmt(r['onnx_img_s'], '.1f')} | {common.fmt(r['torch_img_s'], '.1f')} | "
            f"{r['optimized_vs_default']:.2f}x | "
            f"**{common.fmt(r['optimized_vs_onnx'], suffix='x')}** | "
            f"**{common.fmt(r['optimized_vs_torch'], suffix='x')}** | "
            f"{common.fmt(r['default_vs_onnx'], suffix='x')} |")
    if 'onnx_conv_img_s' not in rows[0]:
        return '\n'.join(lines) + '\n'
    lines += ['', '| ONNX Runtime, channel permutation as | batch | Reshape+Transpose img/s '
                  '| 1x1 Conv img/s | Transpose vs Conv |', '|' + '---|' * 5]
    for r in rows:
        lines.append(f"| {r['case']} | {r['batch']} | {common.fmt(r['onnx_img_s'], '.1f')} | "
                     f"{common.fmt(r['onnx_conv_img_s'], '.1f')} | "
                     f"{common.fmt(r['transpose_vs_conv'], suffix='x')} |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument('--ort-python', default=os.environ.get('IGC_ORT_PYTHON'),
                        help='python of an environment with onnxruntime (default '
                             '$IGC_ORT_PYTHON; ONNX Runtime columns are left out without it)')
    parser.add_argument('--ort-permutations', type=lambda t: tuple(t.split(',')),
                        default=('transpose',),
                        help='ONNX exports to time: transpose (the default export), conv')
    parser.add_argument('--profile', metavar='CASE',
                        help="print each operator's time in one case (part of its label, "
                             'e.g. L100M2) instead of the table')
    parser.add_argument('--profile-batch', type=int, default=8, help='batch of --profile')
    parser.set_defaults(repeat=3)
    args = parser.parse_args(argv)
    if args.profile:
        # one operator at a time, so that the profiler times each
        os.environ['MXNET_EXEC_BULK_EXEC_INFERENCE'] = '0'
        return print_profile(args.profile, args.profile_batch)
    if set(args.ort_permutations) - set(PERMUTATION_KEYS) or 'transpose' not in \
            args.ort_permutations:
        parser.error(f'--ort-permutations: transpose and optionally conv, got '
                     f'{",".join(args.ort_permutations)}')
    rows, versions = [], {'onnxruntime': None, 'torch': None}
    # the machine's load around the run: other jobs' threads stall every framework's
    # parallel regions, MXNet's most (its OpenMP threads spin-wait)
    load = {'load_average_start': os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as workdir:
        for label, network, net_args, image in CASES:
            case_rows, ort_version, torch_version = bench_case(
                label, network, net_args, image, args.repeat, args.torch_python,
                args.ort_python, workdir, args.ort_permutations)
            rows += case_rows
            versions['onnxruntime'] = ort_version or versions['onnxruntime']
            versions['torch'] = torch_version or versions['torch']
    load['load_average_end'] = os.getloadavg()[0]
    report = {**common.machine(), 'mxnet': mx.__version__, **versions, **load,
              'repeat': args.repeat, 'min_time_s': MIN_TIME, 'results': rows}
    common.write_results(args.out, 'inference_cpu', report, markdown(rows))
    return report


if __name__ == '__main__':
    main()
