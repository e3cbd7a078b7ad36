"""Every CPU benchmark, one after the other, then bench/results/summary.md and
docs/benchmarks.md.

    python bench/run_all.py --torch-python /path/to/torch-env/bin/python [--repeat 5]
    python bench/run_all.py --assemble      # only rebuild the two pages from bench/results

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
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

DOCS = HERE.parent / 'docs' / 'benchmarks.md'

# (script, result stem, title, what the table shows)
BENCHES = [
    ('bench_reorder.py', 'reorder_cpu', 'Reorder: kernel bandwidth and forward+backward',
     'GB/s count bytes read plus written; "copy" is `numpy.copyto` of the same bytes (the '
     'bandwidth limit); "transpose" is MXNet\'s reshape→transpose→reshape, which IGCV3 and '
     'GluonCV use; "torch" is PyTorch\'s `channel_shuffle`.'),
    ('bench_igc.py', 'igc_block_cpu', 'IGC block forward+backward, and planned memory',
     '*default* is what the builders make (GroupConvolution primary conv where `\'auto\'` '
     'picks it, then `InterleavedGroupConv`); *default, Reorders instead of fusion* is the '
     'same primary conv followed by the original Reorder → 1×1 conv → Reorder, so *fusion '
     'gain in default* is what the fusion alone gains once the 3×3 conv is fast; *fused* is '
     'MXNet\'s `Convolution` then `InterleavedGroupConv`; *unfused* is the original Conv → '
     'Reorder → 1×1 conv → Reorder; *convs alone* drops both permutations; the "1x1 part" '
     'columns time only what the fusion replaces. Memory is MXNet\'s executor plan for '
     'forward+backward. *IGCUnit ceiling*: an op fusing the 3×3 and the 1×1 conv could at '
     'most save 4 traversals of the intermediate tensor (it must still write it once for the '
     '1×1 weight gradient), timed as 2 copies of it; the last column is the default block\'s '
     'speed-up if all of that were saved.'),
    ('bench_group_conv.py', 'group_conv', 'GroupConvolution forward+backward, 1 and 2 threads',
     'Against MXNet\'s `Convolution(num_group)` (oneDNN) and PyTorch\'s `conv2d(groups=)`, '
     'in ms. "limit" is a lower bound measured in the same process: the larger of the '
     'tensors\' traffic at copy bandwidth and 3× the multiply-adds at large-GEMM speed.'),
    ('bench_network.py', 'network_cpu', 'Training images/s',
     'Images/s of forward+backward+SGD on one batch, the same network and parameters built '
     'five ways: *default* (the builders\' defaults), *fused* (`group_conv=False`), '
     '*unfused* (`fused=False, group_conv=False`: the original graph), *transpose* (Reorder '
     'as reshape→transpose→reshape) and PyTorch (the unfused graph rebuilt layer by layer: '
     'grouped convs + `channel_shuffle`).'),
    ('bench_inference.py', 'inference_cpu', 'Inference images/s, batch 1 and 32',
     'Images/s of a forward pass at batch 1 and 32: MXNet with the default and the original '
     'graph, ONNX Runtime on the export (`igc-export-onnx`), PyTorch eager on the same '
     'network; each framework in its own process. Details: [after_training.md]'
     '(after_training.md).'),
]
DEFAULT_ENV = {'OMP_NUM_THREADS': '2'}

DOCS_HEADER = """# Benchmarks

Every table below comes from one run of `scripts/bench.sh` (which sets up PyTorch in
`.venv-torch` and runs `bench/run_all.py`): each comparison side by side in one run,
each framework in its own process, `OMP_NUM_THREADS=2`, PyTorch and MXNet both with
`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`, medians of repeated runs. The
raw results, with the machine, are `bench/results/*.json`; `bench/run_all.py` writes
this page from them (`python bench/run_all.py --assemble` rebuilds it alone).

On a shared 2-core VM rows move by 10–30 % from run to run, so read the ratios, not
the last digit. What the numbers mean for each op, and the measurements behind its
design choices: [fused.md](fused.md) (`InterleavedGroupConv`),
[group_conv.md](group_conv.md) (`GroupConvolution` and the `group_conv='auto'` rule).

Developer tools outside that run: `bench/bench_kernels.py OLD.so NEW.so` times each CPU
kernel pass of two or more builds of `libigc_kernels.so` side by side and checks that
they agree; `bench/bench_auto_limit.py --limits 8 16 32 [--case 1]` trains the default
network with several values of the `group_conv='auto'` limit side by side;
`bench/bench_make_rec.py` times `igc-make-rec` against MXNet's `im2rec.py`;
`scripts/gpu_check.sh` (`bench/gpu/check.py`) checks and times the CUDA kernels against
PyTorch on a GPU machine, without MXNet; no GPU has run it yet.
"""


def machine_line(report, stem):
    return (f"{report['cpu']}, {report['cpus']} CPUs, OMP_NUM_THREADS={report['omp_threads']}, "
            f"MXNet {report['mxnet']}, PyTorch {report.get('torch') or '(not run)'}"
            + (f", ONNX Runtime {report['onnxruntime']}" if report.get('onnxruntime') else '')
            + f"; median of {report['repeat']} runs (`{stem}.json`).")


def assemble(out_dir, docs):
    """bench/results/summary.md and ``docs`` from the result files in ``out_dir``."""
    from igc_mx.atomic import atomic_path
    summary, page = [], [DOCS_HEADER]
    for _, stem, title, what in BENCHES:
        table, data = out_dir / f'{stem}.md', out_dir / f'{stem}.json'
        if not table.is_file():
            continue
        report = json.loads(data.read_text())
        summary.append(f"### {title}\n\n{machine_line(report, stem)}\n\n{table.read_text()}")
        about = textwrap.fill(f'`bench/{stem_script(stem)}`. {what}', 88)
        page.append(f"## {title}\n\n{about}\n\n{machine_line(report, stem)}\n\n"
                    f"{table.read_text().rstrip()}\n")
    with atomic_path(out_dir / 'summary.md') as tmp:
        Path(tmp).write_text('\n'.join(summary))
    with atomic_path(docs) as tmp:
        Path(tmp).write_text('\n'.join(page))
    print('[run_all] wrote', out_dir / 'summary.md', 'and', docs)


def stem_script(stem):
    return next(script for script, s, _, _ in BENCHES if s == stem)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument('--only', nargs='*', choices=[b[1] for b in BENCHES],
                        help='run only these (the pages still list every result file)')
    parser.add_argument('--assemble', action='store_true',
                        help='run nothing: rebuild summary.md and the docs page from --out')
    parser.add_argument('--docs', type=Path, default=DOCS,
                        help='the benchmarks page to write (default docs/benchmarks.md)')
    args = parser.parse_args(argv)
    env = {**DEFAULT_ENV, **os.environ, **common.MALLOC_ENV}
    for script, stem, _, _ in BENCHES:
        if args.assemble or (args.only and stem not in args.only):
            continue
        command = [sys.executable, str(HERE / script), '--repeat', str(args.repeat),
                   '--out', str(args.out)]
        if args.torch_python:
            command += ['--torch-python', args.torch_python]
        print('[run_all]', ' '.join(command), flush=True)
        subprocess.run(command, env=env, check=True)
    assemble(args.out, args.docs)


if __name__ == '__main__':
    main()
