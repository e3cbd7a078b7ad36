"""Whole-network training speed of CIFAR resnet_igc (depth 20, L=24, M=2, batch
32, 32x32): MXNet with the primary convolutions as Convolution (the original),
as GroupConvolution where it is faster ('auto') and everywhere ('all'), against
the same network in PyTorch. Each variant runs in its own process with the same
thread count; PyTorch with its allocator tuned (see FACTS: 'Benchmarking').

    .venv/bin/python bench/bench_igc_network.py [--out bench/results] [--threads 1,2]
        [--steps 10] [--repeats 5] [--torch-python /work/venv-torch5/bin/python]

A step is forward + backward + a Nesterov SGD update (momentum 0.9, wd 1e-4) on
one synthetic batch. img/s = batch / median step time over --repeats runs of
--steps steps each. Writes igc_network.json and igc_network.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NETWORK = dict(network='resnet_igc', num_classes=10, depth=20, primary_partition=24,
               secondary_partition=2)
BATCH = 32
TORCH_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '68719476736'}
MXNET_VARIANTS = {'mxnet Convolution': False, 'mxnet GroupConvolution auto': 'auto',
                  'mxnet GroupConvolution all': True}


def median_step_seconds(step, steps, repeats):
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    times.sort()
    return times[len(times) // 2]


# ---- MXNet worker ----------------------------------------------------------------

def mxnet_worker(group_conv, steps, repeats):
    import mxnet as mx

    import igc_mx  # noqa: F401
    from igc_mx import networks
    sym = networks.get_symbol(**NETWORK, group_conv=group_conv)
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(data_shapes=[('data', (BATCH, 3, 32, 32))],
             label_shapes=[('softmax_label', (BATCH,))])
    mod.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    mod.init_optimizer(optimizer='nag', optimizer_params=dict(
        learning_rate=0.1, momentum=0.9, wd=1e-4, rescale_grad=1.0 / BATCH))
    batch = mx.io.DataBatch([mx.nd.random.normal(shape=(BATCH, 3, 32, 32))],
                            [mx.nd.array(mx.nd.random.randint(0, 10, (BATCH,)))])

    def step():
        mod.forward_backward(batch)
        mod.update()
        mx.nd.waitall()

    seconds = median_step_seconds(step, steps, repeats)
    params = sum(v.size for v in mod.get_params()[0].values())
    return {'img_per_s': BATCH / seconds, 'step_ms': 1e3 * seconds, 'params': int(params),
            'mxnet': mx.__version__}


def layout_json():
    from igc_mx import networks
    _, stem, stages = networks.layout(NETWORK['network'], NETWORK['depth'],
                                      NETWORK['primary_partition'],
                                      NETWORK['secondary_partition'])
    return json.dumps({'stem': stem, 'stages': [[s.blocks, s.width, s.stride, s.groups]
                                                for s in stages]})


# ---- PyTorch worker: the same network, layer for layer ----------------------------

def torch_worker(layout, threads, steps, repeats):
    import torch
    from torch import nn
    torch.set_num_threads(threads)

    def shuffle(x, groups):  # Reorder(groups)
        n, c, h, w = x.shape
        return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    class IGCUnit(nn.Module):
        def __init__(self, cin, cout, stride, L, secondary, relu):
            super().__init__()
            self.L, self.secondary, self.relu = L, secondary, relu
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, groups=L, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 1, groups=secondary, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=2e-5, momentum=0.1)

        def forward(self, x):
            x = shuffle(self.conv1(x), self.L)
            x = self.bn(shuffle(self.conv2(x), self.secondary))
            return torch.relu(x) if self.relu else x

    class Block(nn.Module):
        def __init__(self, kin, width, stride, L):
            super().__init__()
            # resnet_igc's first unit uses kin/L secondary groups (see networks.py).
            self.unit1 = IGCUnit(kin, width, stride, L, kin // L, True)
            self.unit2 = IGCUnit(width, width, 1, L, width // L, False)
            self.proj = None if kin == width else nn.Sequential(
                nn.Conv2d(kin, width, 1, stride, groups=L, bias=False),
                nn.BatchNorm2d(width, eps=2e-5, momentum=0.1))

        def forward(self, x):
            shortcut = x if self.proj is None else self.proj(x)
            return torch.relu(shortcut + self.unit2(self.unit1(x)))

    stem = layout['stem']
    layers = [nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem, eps=2e-5),
              nn.ReLU()]
    kin = stem
    for blocks, width, stride, L in layout['stages']:
        for b in range(blocks):
            layers.append(Block(kin, width, stride if b == 0 else 1, L))
            kin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(kin, NETWORK['num_classes'])]
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4,
                          nesterov=True)
    x = torch.randn(BATCH, 3, 32, 32)
    y = torch.randint(0, NETWORK['num_classes'], (BATCH,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    seconds = median_step_seconds(step, steps, repeats)
    return {'img_per_s': BATCH / seconds, 'step_ms': 1e3 * seconds,
            'params': sum(p.numel() for p in model.parameters()), 'torch': torch.__version__}


# ---- driver -------------------------------------------------------------------------

def run_worker(python, args, extra_env, threads):
    env = {**os.environ, **extra_env, 'OMP_NUM_THREADS': str(threads)}
    result = subprocess.run([python, __file__, *args], env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f'worker {args} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--torch-python', default='/work/venv-torch5/bin/python')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--group-conv', default='False', help=argparse.SUPPRESS)
    parser.add_argument('--layout', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == 'mxnet':
        group_conv = {'False': False, 'True': True}.get(args.group_conv, args.group_conv)
        print(json.dumps(mxnet_worker(group_conv, args.steps, args.repeats)))
        return 0
    if args.worker == 'torch':
        print(json.dumps(torch_worker(json.loads(args.layout), int(args.threads), args.steps,
                                      args.repeats)))
        return 0

    runs = {}
    lines = [f"resnet_igc depth 20, L=24, M=2, batch {BATCH}, CIFAR 32x32, training steps "
             f"(forward + backward + Nesterov update), each variant in its own process; "
             f"median of {args.repeats} runs of {args.steps} steps, on a machine shared "
             f"with other jobs.", '']
    for threads in (int(t) for t in args.threads.split(',')):
        common = ['--threads', str(threads), '--steps', str(args.steps),
                  '--repeats', str(args.repeats)]
        rows = {}
        for name, group_conv in MXNET_VARIANTS.items():
            rows[name] = run_worker(sys.executable, ['--worker', 'mxnet', '--group-conv',
                                                     str(group_conv), *common], {}, threads)
            print(threads, name, rows[name], flush=True)
        rows['pytorch'] = run_worker(args.torch_python, ['--worker', 'torch', '--layout',
                                                         layout_json(), *common], TORCH_ENV,
                                     threads)
        print(threads, 'pytorch', rows['pytorch'], flush=True)
        runs[threads] = rows
        torch_rate = rows['pytorch']['img_per_s']
        lines += [f'**{threads} thread(s)**', '',
                  '| variant | img/s | ms/step | vs PyTorch | parameters |',
                  '|---|---|---|---|---|']
        for name, row in rows.items():
            lines.append(f"| {name} | {row['img_per_s']:.1f} | {row['step_ms']:.1f} "
                         f"| {row['img_per_s'] / torch_rate:.2f}x | {row['params']:,} |")
        lines.append('')
    report = {'network': NETWORK, 'batch': BATCH, 'steps': args.steps,
              'repeats': args.repeats, 'runs': runs,
              'command': f'.venv/bin/python bench/bench_igc_network.py --threads {args.threads}'}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'igc_network.json').write_text(json.dumps(report, indent=1) + '\n')
    (args.out / 'igc_network.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
