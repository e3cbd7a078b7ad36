"""Every CPU benchmark, one after the other, then bench/results/summary.md.

    python bench/run_all.py --torch-python /path/to/torch-env/bin/python [--repeat 5]

Each benchmark runs in its own process with OMP_NUM_THREADS=2 (unless set) and
bench/common.MALLOC_ENV, the same for MXNet and PyTorch. Run it on an otherwise idle
machine: OpenMP threads that spin-wait for a core another process holds stall every
parallel region (OMP_WAIT_POLICY=PASSIVE avoids the worst of it, but slows the
small parallel regions of every framework, ours by up to 2x).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

BENCHES = [('bench_reorder.py', 'reorder_cpu', 'Reorder: kernel bandwidth and forward+backward'),
           ('bench_igc.py', 'igc_block_cpu', 'IGC block forward+backward, and planned memory'),
           ('bench_group_conv.py', 'group_conv', 'GroupConvolution forward+backward, 1 and 2 threads'),
           ('bench_network.py', 'network_cpu', 'Training images/s'),
           ('bench_inference.py', 'inference_cpu', 'Inference images/s, batch 1 and 32')]
DEFAULT_ENV = {'OMP_NUM_THREADS': '2'}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument('--only', nargs='*', choices=[b[1] for b in BENCHES],
                        help='run only these (the summary still lists every result file)')
    args = parser.parse_args(argv)
    env = {**DEFAULT_ENV, **os.environ, **common.MALLOC_ENV}
    for script, stem, _ in BENCHES:
        if args.only and stem not in args.only:
            continue
        command = [sys.executable, str(HERE / script), '--repeat', str(args.repeat),
                   '--out', str(args.out)]
        if args.torch_python:
            command += ['--torch-python', args.torch_python]
        print('[run_all]', ' '.join(command), flush=True)
        subprocess.run(command, env=env, check=True)

    parts = []
    for _, stem, title in BENCHES:
        table, data = args.out / f'{stem}.md', args.out / f'{stem}.json'
        if table.is_file():
            report = json.loads(data.read_text())
            parts.append(f"### {title}\n\n{report['cpu']}, {report['cpus']} CPUs, "
                         f"OMP_NUM_THREADS={report['omp_threads']}, MXNet {report['mxnet']}, "
                         f"PyTorch {report.get('torch') or '(not run)'}"
                         + (f", ONNX Runtime {report['onnxruntime']}" if report.get('onnxruntime')
                            else '') + "; median of "
                         f"{report['repeat']} runs (`{stem}.json`).\n\n{table.read_text()}")
    from igc_mx.atomic import atomic_path
    with atomic_path(args.out / 'summary.md') as tmp:
        Path(tmp).write_text('\n'.join(parts))
    print('[run_all] wrote', args.out / 'summary.md')


if __name__ == '__main__':
    main()
