"""Check the CUDA kernels against PyTorch on a GPU, then time them against
PyTorch/cuDNN and a device-to-device copy at the IGC stages of shapes.py.
Needs PyTorch with CUDA and the kernels-only library (scripts/gpu_check.sh
builds it); never MXNet.

    python3 bench/gpu/check.py --library build/libigc_kernels.so --out DIR

References run with TF32 off (torch.backends.cudnn.allow_tf32 and
torch.backends.cuda.matmul.allow_tf32 False), so float32 is compared with
float32, and the cuDNN timings are of true float32 as well. Writes DIR/gpu_check.json
and DIR/gpu_check.md; exits 1 if any check fails.

    python3 bench/gpu/check.py --library .../libigc_kernels_emulated.so --device cpu \\
        --batch 1 --no-timing

is a dry run on a machine without a GPU: the emulated CUDA kernels on CPU tensors.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'python'))
from igc_mx import kernels  # noqa: E402
from igc_mx.atomic import atomic_path  # noqa: E402
from shapes import STAGES  # noqa: E402

DTYPES = (torch.float32, torch.float64, torch.float16)
# Error relative to the reference's largest value.
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 1e-2}
# Small shapes in every dtype: odd sizes, stride 2, many slabs, batch 1.
SMALL_IGC = [((3, 30, 5, 7), 5, 3), ((1, 16, 9, 9), 2, 2), ((2, 1600, 3, 3), 800, 2),
             ((4, 64, 16, 16), 16, 4)]
SMALL_GROUP_CONV = [((3, 12, 13, 11), 12, 4, 3, 2, 0), ((1, 16, 9, 7), 32, 2, 3, 2, 1),
                    ((2, 64, 17, 34), 64, 2, 3, 1, 1), ((2, 8, 10, 9), 8, 8, 3, 4, 1),
                    ((1, 6, 15, 14), 6, 3, 7, 2, 3)]


DEVICE = 'cuda'


def stream():
    return torch.cuda.current_stream().cuda_stream if DEVICE == 'cuda' else None


def synchronize():
    if DEVICE == 'cuda':
        torch.cuda.synchronize()


def time_ms(fn, budget_s=0.05):
    """Median milliseconds of fn() over at least 10 timed calls (and about
    budget_s), after 3 warm-up calls; CUDA events on the current stream."""
    for _ in range(3):
        fn()
    synchronize()
    times, start = [], time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < budget_s:
        if DEVICE == 'cuda':
            begin, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            begin.record()
            fn()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end))
        else:
            begin = time.perf_counter()
            fn()
            times.append((time.perf_counter() - begin) * 1e3)
        if len(times) >= 200:
            break
    return sorted(times)[len(times) // 2]


def error(ours, reference):
    ours, reference = ours.double(), reference.double()
    return ((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def workspace(nbytes):
    return torch.empty(max(int(nbytes), 1), dtype=torch.uint8, device=DEVICE)


class Igc:
    """InterleavedGroupConv on torch tensors through the kernels."""

    def __init__(self, lib, shape, L, M, dtype):
        self.lib, self.L, self.M, self.dtype = lib, L, M, dtype
        self.space = workspace(kernels.interleaved_conv_workspace(
            shape, L, M, str(dtype).replace('torch.', ''), lib=lib))

    def __call__(self, pass_name, a, b, c):
        kernels.interleaved_conv(pass_name, a, b, c, self.L, self.M, device='cuda',
                                 lib=self.lib, workspace=self.space, stream=stream())


class GroupConv:
    def __init__(self, lib, shape, filters, groups, kernel, stride, pad, dtype):
        self.lib, self.dtype = lib, dtype
        self.geometry = kernels.ConvGeometry(*shape, filters, groups, kernel, kernel, stride,
                                             stride, pad, pad)
        self.space = workspace(kernels.group_conv_workspace(
            self.geometry, str(dtype).replace('torch.', ''), lib=lib))

    def __call__(self, pass_name, a, b, c):
        kernels.group_conv(pass_name, self.geometry, a, b, c, device='cuda', lib=self.lib,
                           workspace=self.space, stream=stream())


def unfused_igc(x, w, L, M):
    return F.channel_shuffle(F.conv2d(F.channel_shuffle(x, L), w, groups=M), M)


def reference_grads(fn, x, w, dy):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = fn(x, w)
    y.backward(dy)
    return y.detach(), x.grad, w.grad


def check_passes(op, x, w, dy, reference):
    """Largest error of op's three passes (into NaN-filled outputs) against
    reference(x, w) and its autograd gradients for dy, computed in float32 when
    the kernels run float16."""
    want = reference_grads(reference, x, w, dy)
    xs, ws, dys = (t.to(op.dtype) for t in (x, w, dy))
    got = [torch.full_like(dys, float('nan')), torch.full_like(xs, float('nan')),
           torch.full_like(ws, float('nan'))]
    op('forward', xs, ws, got[0])
    op('backward_data', dys, ws, got[1])
    op('backward_weight', dys, xs, got[2])
    synchronize()
    return max(error(g, r) for g, r in zip(got, want, strict=True))


def random(gen, dtype, *shape):
    """Normal samples, in float32 for a float16 run (the reference's precision)."""
    return torch.randn(shape, device=DEVICE, generator=gen,
                       dtype=torch.float32 if dtype is torch.float16 else dtype)


def check_igc(lib, shape, L, M, dtype):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x, w, dy = random(gen, dtype, *shape), random(gen, dtype, shape[1], shape[1] // M, 1, 1), \
        random(gen, dtype, *shape)
    return check_passes(Igc(lib, shape, L, M, dtype), x, w, dy,
                        lambda a, b: unfused_igc(a, b, L, M))


def check_group_conv(lib, shape, filters, groups, kernel, stride, pad, dtype):
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    conv = lambda a, b: F.conv2d(a, b, stride=stride, padding=pad, groups=groups)  # noqa: E731
    x = random(gen, dtype, *shape)
    w = random(gen, dtype, filters, shape[1] // groups, kernel, kernel)
    dy = random(gen, dtype, *conv(x, w).shape)
    return check_passes(GroupConv(lib, shape, filters, groups, kernel, stride, pad, dtype),
                        x, w, dy, conv)


def check_reorder(lib, shape, branch_factor, dtype):
    gen = torch.Generator(device=DEVICE).manual_seed(2)
    x = torch.randn(shape, device=DEVICE, dtype=torch.float32, generator=gen).to(dtype)
    y = torch.full_like(x, float('nan'))
    kernels.reorder(x, y, branch_factor, device='cuda', lib=lib, stream=stream())
    synchronize()
    return 0.0 if torch.equal(y, F.channel_shuffle(x, branch_factor)) else 1.0


def checks(lib, batch=None):
    rows = []

    def record(op, case, dtype, err):
        ok = err <= TOLERANCE[dtype]
        rows.append({'op': op, 'case': case, 'dtype': str(dtype).replace('torch.', ''),
                     'error': err, 'ok': ok})
        print(f'{"ok  " if ok else "FAIL"} {op} {case} {dtype}: {err:.2e}', flush=True)

    for dtype in DTYPES:
        for shape, L, M in SMALL_IGC:
            record('InterleavedGroupConv', f'{shape} L={L} M={M}', dtype,
                   check_igc(lib, shape, L, M, dtype))
        for case in SMALL_GROUP_CONV:
            record('GroupConvolution', str(case), dtype, check_group_conv(lib, *case, dtype))
        for shape, g in (((3, 12, 5, 7), 3), ((2, 6, 1, 3), 2), ((5, 9, 1, 1), 9)):
            record('Reorder', f'{shape} branch_factor={g}', dtype,
                   check_reorder(lib, shape, g, dtype))
    for dtype in (torch.float32, torch.float16):
        for s in STAGES:
            shape = (batch or s.batch, s.channels, s.side, s.side)
            record('InterleavedGroupConv', s.label, dtype, check_igc(lib, shape, s.L, s.M, dtype))
            record('GroupConvolution', s.label, dtype,
                   check_group_conv(lib, shape, s.channels, s.L, 3, 1, 1, dtype))
            record('Reorder', s.label, dtype, check_reorder(lib, shape, s.L, dtype))
    return rows


def timings(lib, stage, dtype, batch=None):
    """Milliseconds of our kernels and of their PyTorch/cuDNN counterparts."""
    shape = (batch or stage.batch, stage.channels, stage.side, stage.side)
    L, M, C = stage.L, stage.M, stage.channels
    x = torch.randn(shape, device=DEVICE, dtype=dtype)
    y, dy = torch.empty_like(x), torch.randn(shape, device=DEVICE, dtype=dtype)
    t = {'copy': time_ms(lambda: y.copy_(x))}
    t['reorder'] = time_ms(lambda: kernels.reorder(x, y, L, device='cuda', lib=lib,
                                                   stream=stream()))
    t['torch channel_shuffle'] = time_ms(lambda: F.channel_shuffle(x, L))
    # InterleavedGroupConv against the graph it replaces: Reorder, cuDNN's 1x1
    # grouped conv and its two gradients, Reorder (what MXNet's own graph runs).
    w = torch.randn(C, C // M, 1, 1, device=DEVICE, dtype=dtype)
    dw = torch.empty_like(w)
    igc = Igc(lib, shape, L, M, dtype)
    for pass_name, a, b, c in (('forward', x, w, y), ('backward_data', dy, w, y),
                               ('backward_weight', dy, x, dw)):
        t[f'igc {pass_name}'] = time_ms(lambda: igc(pass_name, a, b, c))
    t['cudnn 1x1 forward'] = time_ms(lambda: F.conv2d(x, w, groups=M))
    t['cudnn 1x1 backward_data'] = time_ms(
        lambda: torch.nn.grad.conv2d_input(shape, w, dy, groups=M))
    t['cudnn 1x1 backward_weight'] = time_ms(
        lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, groups=M))
    # GroupConvolution against cuDNN's grouped 3x3 conv.
    wg = torch.randn(C, C // L, 3, 3, device=DEVICE, dtype=dtype)
    dwg = torch.empty_like(wg)
    gc = GroupConv(lib, shape, C, L, 3, 1, 1, dtype)
    for pass_name, a, b, c in (('forward', x, wg, y), ('backward_data', dy, wg, y),
                               ('backward_weight', dy, x, dwg)):
        t[f'group_conv {pass_name}'] = time_ms(lambda: gc(pass_name, a, b, c))
    t['cudnn 3x3 forward'] = time_ms(lambda: F.conv2d(x, wg, padding=1, groups=L))
    t['cudnn 3x3 backward_data'] = time_ms(
        lambda: torch.nn.grad.conv2d_input(shape, wg, dy, padding=1, groups=L))
    t['cudnn 3x3 backward_weight'] = time_ms(
        lambda: torch.nn.grad.conv2d_weight(x, wg.shape, dy, padding=1, groups=L))
    return t


def summary(t, nbytes):
    """The comparisons the GPU defaults follow (igc_mx.devices), per stage."""
    passes = ('forward', 'backward_data', 'backward_weight')
    igc = sum(t[f'igc {p}'] for p in passes)
    # The original unit: Reorder, conv, Reorder forward; the same backward, the
    # data gradient through both Reorders.
    unfused = sum(t[f'cudnn 1x1 {p}'] for p in passes) + 4 * t['reorder']
    ours = sum(t[f'group_conv {p}'] for p in passes)
    cudnn = sum(t[f'cudnn 3x3 {p}'] for p in passes)
    return {'reorder GB/s': 2 * nbytes / t['reorder'] / 1e6,
            'copy GB/s': 2 * nbytes / t['copy'] / 1e6,
            'reorder vs copy': t['copy'] / t['reorder'],
            'fused unit ms': igc, 'unfused unit ms': unfused,
            'fused vs unfused': unfused / igc,
            'group_conv ms': ours, 'cudnn ms': cudnn, 'group_conv vs cudnn': cudnn / ours}


def markdown(report):
    lines = [f"GPU check on {report['device']} (PyTorch {report['torch']}, CUDA "
             f"{report['cuda']}): {report['passed']} checks passed, {report['failed']} failed. "
             'References with TF32 off; times are medians of CUDA-event timings (ms).', '']
    head = ('| stage | dtype | Reorder vs copy | fused unit vs Reorder+cuDNN 1x1+Reorder | '
            'GroupConvolution vs cuDNN | fused unit ms | unfused ms | GroupConv ms | cuDNN ms |')
    lines += [head, '|' + '---|' * 9]
    for row in report['timings']:
        s = row['summary']
        lines.append(f"| {row['stage']} | {row['dtype']} | {s['reorder vs copy']:.2f}x | "
                     f"{s['fused vs unfused']:.2f}x | {s['group_conv vs cudnn']:.2f}x | "
                     f"{s['fused unit ms']:.3f} | {s['unfused unit ms']:.3f} | "
                     f"{s['group_conv ms']:.3f} | {s['cudnn ms']:.3f} |")
    lines += ['', 'Per pass (ms):', '']
    keys = list(report['timings'][0]['ms']) if report['timings'] else []
    lines += ['| stage | dtype | ' + ' | '.join(keys) + ' |', '|' + '---|' * (len(keys) + 2)]
    for row in report['timings']:
        lines.append(f"| {row['stage']} | {row['dtype']} | " +
                     ' | '.join(f"{row['ms'][k]:.3f}" for k in keys) + ' |')
    failed = [c for c in report['checks'] if not c['ok']]
    if failed:
        lines += ['', 'Failed checks:', ''] + [f"- {c['op']} {c['case']} {c['dtype']}: "
                                                f"{c['error']:.2e}" for c in failed]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--library', type=Path, required=True, help='libigc_kernels.so (CUDA)')
    parser.add_argument('--out', type=Path, default=REPO / 'bench' / 'results')
    parser.add_argument('--no-timing', action='store_true')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'],
                        help='cpu: a dry run with libigc_kernels_emulated.so on CPU tensors')
    parser.add_argument('--batch', type=int, help='batch of every stage (default: its own)')
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    lib = kernels.load(args.library)
    rows = checks(lib, args.batch)
    name = torch.cuda.get_device_name() if DEVICE == 'cuda' else 'CPU (emulated CUDA kernels)'
    report = {'device': name, 'torch': torch.__version__,
              'cuda': torch.version.cuda, 'tf32': False, 'checks': rows,
              'passed': sum(r['ok'] for r in rows), 'failed': sum(not r['ok'] for r in rows),
              'timings': []}
    if not args.no_timing:
        for dtype in (torch.float32, torch.float16):
            for stage in STAGES:
                t = timings(lib, stage, dtype, args.batch)
                nbytes = (args.batch or stage.batch) * stage.channels * stage.side ** 2 * (
                    4 if dtype is torch.float32 else 2)
                report['timings'].append({'stage': stage.label,
                                          'dtype': str(dtype).replace('torch.', ''),
                                          'ms': t, 'summary': summary(t, nbytes)})
                print(stage.label, dtype, report['timings'][-1]['summary'], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for path, text in ((args.out / 'gpu_check.json', json.dumps(report, indent=1)),
                       (args.out / 'gpu_check.md', markdown(report))):
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
    print(f"{report['passed']} passed, {report['failed']} failed")
    return 1 if report['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
