"""The IGC block on the CPU, forward+backward, side by side in one run:

  default    what the builders make: 3x3 GroupConvolution where 'auto' picks it (<= 16
             filters per group, else Convolution) -> InterleavedGroupConv(L, M)
  default_unfused  the same 3x3 conv -> Reorder(L) -> 1x1 conv (M groups) -> Reorder(M):
             what fusion gains once the 3x3 conv is fast
  fused      3x3 conv (L groups) -> InterleavedGroupConv(L, M)
  unfused    3x3 conv -> Reorder(L) -> 1x1 conv (M groups) -> Reorder(M)   (the original)
  transpose  the same with reshape->transpose->reshape for each Reorder (IGCV3, GluonCV)
  convs      the two convolutions alone, no permutation (the limit of any fusion)
  torch      PyTorch: grouped convs + channel_shuffle

and the memory that MXNet's executor plans for forward+backward of the block, fused
against unfused (its own "Total N MB allocated": activations, gradients, workspace).
The "1x1 part" columns time the part that fusion replaces on its own (fused op against
Reorder -> 1x1 conv -> Reorder), without the 3x3 convolution, which costs the same in
every variant.

"IGCUnit ceiling" bounds what fusing the 3x3 conv and the fused 1x1 conv into one op
(the intermediate kept in cache, never written out) could gain over the default
block: such an op still writes the intermediate once (the 1x1 weight gradient needs
it), so at most it saves reading it once forward and writing and twice reading its
gradient backward, 4 traversals = 2 copies of the tensor, timed here.

    OMP_NUM_THREADS=2 python bench/bench_igc.py [--repeat 5] [--torch-python PY]

Writes bench/results/igc_block_cpu.{json,md}.
"""
import argparse
import re
import sys
from pathlib import Path

import mxnet as mx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import igc_mx  # noqa: E402, F401
from igc_mx import blocks  # noqa: E402

import common  # noqa: E402

# (name, (N, C, H, W), L, M): IGC units of the paper's networks at small batches.
CASES = [
    ('CIFAR L24M2 stage 1, b32', (32, 48, 32, 32), 24, 2),
    ('CIFAR L24M2 stage 3, b32', (32, 192, 8, 8), 24, 8),
    ('ImageNet L4M32 stage 1, b8', (8, 128, 56, 56), 4, 32),
    ('ImageNet L16M16 stage 1, b8', (8, 256, 56, 56), 16, 16),
    ('ImageNet L100M2 stage 1, b8', (8, 200, 56, 56), 100, 2),
]
VARIANTS = ('default', 'default_unfused', 'fused', 'unfused', 'transpose', 'convs', 'fused_part',
            'unfused_part')


def shuffle(x, g, variant):
    if variant == 'unfused_part':   # raw: no identity after the data variable
        return mx.sym.Reorder.raw(x, branch_factor=g)
    if variant == 'transpose':
        x = mx.sym.reshape(x, shape=(0, -4, g, -1, -2))
        return mx.sym.reshape(mx.sym.transpose(x, axes=(0, 2, 1, 3, 4)), shape=(0, -3, -2))
    return x if variant == 'convs' else mx.sym.Reorder(x, branch_factor=g)


def block(variant, channels, L, M):
    y = mx.sym.Variable('data')
    if not variant.endswith('_part'):
        conv = blocks.primary_conv_op('auto' if variant.startswith('default') else False,
                                      channels // L)
        y = conv(y, name='conv1', num_filter=channels, kernel=(3, 3), pad=(1, 1), num_group=L,
                 no_bias=True)
    weight = mx.sym.Variable('conv2_weight')
    if variant == 'fused_part':
        return mx.sym.InterleavedGroupConv.raw(y, weight, name='conv2', primary_partition=L,
                                               secondary_partition=M)
    if variant in ('fused', 'default'):
        return mx.sym.InterleavedGroupConv(y, weight, name='conv2', primary_partition=L,
                                           secondary_partition=M)
    y = mx.sym.Convolution(shuffle(y, L, variant), weight, name='conv2', num_filter=channels,
                           kernel=(1, 1), num_group=M, no_bias=True)
    return shuffle(y, M, variant)


def bind(variant, shape, L, M):
    exe = block(variant, shape[1], L, M).simple_bind(mx.cpu(), data=shape, grad_req='write')
    for arr in exe.arg_arrays:
        arr[:] = mx.nd.random.normal(shape=arr.shape)
    return exe


def planned_mb(exe):
    return int(re.findall(r'Total (\d+) MB allocated', exe.debug_str())[-1])


def bench_case(name, shape, L, M, repeat):
    row = {'case': name, 'shape': list(shape), 'L': L, 'M': M}
    head = mx.nd.random.normal(shape=shape)
    executors = {variant: bind(variant, shape, L, M) for variant in VARIANTS}

    def step(exe):
        exe.forward(is_train=True)
        exe.backward(head)
        mx.nd.waitall()
    src, dst = mx.nd.random.normal(shape=shape), mx.nd.zeros(shape)

    def copy():
        src.copyto(dst)
        dst.wait_to_read()
    times = common.side_by_side({**{v: lambda e=exe: step(e) for v, exe in executors.items()},
                                 'intermediate_copy': copy}, repeat)
    row['intermediate_copy_ms'] = times['intermediate_copy']
    saved = 2 * times['intermediate_copy']
    row['igcunit_ceiling'] = times['default'] / max(times['default'] - saved, 1e-9)
    for variant in VARIANTS:
        row[f'{variant}_ms'] = times[variant]
    for variant in ('fused', 'unfused'):
        row[f'{variant}_planned_mb'] = planned_mb(executors[variant])
    row['fused_vs_unfused'] = row['unfused_ms'] / row['fused_ms']
    row['default_vs_unfused'] = row['unfused_ms'] / row['default_ms']
    row['default_fusion'] = row['default_unfused_ms'] / row['default_ms']
    row['fused_vs_transpose'] = row['transpose_ms'] / row['fused_ms']
    row['fused_over_convs'] = row['fused_ms'] / row['convs_ms']
    row['memory_fused_over_unfused'] = row['fused_planned_mb'] / row['unfused_planned_mb']
    row['part_fused_vs_unfused'] = row['unfused_part_ms'] / row['fused_part_ms']
    return row


def markdown(rows):
    lines = ['| block (fwd+bwd) | default ms | default vs unfused | default, Reorders instead '
             'of fusion ms | fusion gain in default | fused ms | unfused ms | '
             'transpose ms | convs alone ms | '
             'torch ms | fused vs unfused | fused vs transpose | fused vs torch | '
             'fused / convs alone | memory fused / unfused (MB) | 1x1 part fused / unfused ms '
             '| 1x1 part fused vs unfused | IGCUnit ceiling: 2 copies of the intermediate ms '
             '| IGCUnit ceiling vs default |',
             '|' + '---|' * 19]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['default_ms']:.2f} | **{r['default_vs_unfused']:.2f}x** | "
            f"{r['default_unfused_ms']:.2f} | **{r['default_fusion']:.2f}x** | "
            f"{r['fused_ms']:.2f} | {r['unfused_ms']:.2f} | "
            f"{r['transpose_ms']:.2f} | {r['convs_ms']:.2f} | {common.fmt(r['torch_ms'])} | "
            f"**{r['fused_vs_unfused']:.2f}x** | {r['fused_vs_transpose']:.2f}x | "
            f"{common.fmt(r['fused_vs_torch'], suffix='x')} | {r['fused_over_convs']:.2f} | "
            f"{r['fused_planned_mb']} / {r['unfused_planned_mb']} | "
            f"{r['fused_part_ms']:.2f} / {r['unfused_part_ms']:.2f} | "
            f"**{r['part_fused_vs_unfused']:.2f}x** | {2 * r['intermediate_copy_ms']:.2f} | "
            f"{r['igcunit_ceiling']:.2f}x |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    args = parser.parse_args(argv)
    rows = [bench_case(*case, repeat=args.repeat) for case in CASES]
    torch = common.run_torch(args.torch_python, {
        'kind': 'block', 'repeat': args.repeat,
        'cases': [{'shape': shape, 'L': L, 'M': M} for _, shape, L, M in CASES]})
    for i, row in enumerate(rows):
        row['torch_ms'] = torch['result'][i] if torch else None
        row['fused_vs_torch'] = common.ratio(row['torch_ms'], row['fused_ms'])
    report = {**common.machine(), 'mxnet': mx.__version__,
              'torch': torch and torch['torch'], 'repeat': args.repeat, 'results': rows}
    common.write_results(args.out, 'igc_block_cpu', report, markdown(rows))
    return report


if __name__ == '__main__':
    main()
