"""Shared by the CPU benchmarks: timing, the PyTorch side process, result files.

Every ratio in bench/results is measured side by side in one run: MXNet variants in
one process, the PyTorch variants in a subprocess of the same run (PyTorch lives in
its own environment; bench/torch_side.py needs no MXNet), one case at a time.
"""
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'
# glibc settings for every benchmark process (MXNet's and PyTorch's): keep freed blocks
# instead of returning them to the OS, so that each step does not page-fault its
# large activations back in. Neither framework's CPU allocator caches on its own.
MALLOC_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '68719476736'}


def median_ms(fn, repeat, min_time=0.05):
    """Median over `repeat` runs of the mean time of one call of `fn`, in ms. Each run
    makes enough calls to last `min_time` seconds (calibrated after one warm-up call).
    `fn` must finish its work before returning (wait for MXNet's engine)."""
    fn()
    start, calls = time.perf_counter(), 0
    while calls < 1 or time.perf_counter() - start < min_time:
        fn()
        calls += 1
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls)
    return statistics.median(runs) * 1e3


def threads():
    return int(os.environ.get('OMP_NUM_THREADS', os.cpu_count()))


def run_torch(torch_python, job):
    """Run `job` (a dict, see torch_side.py) in the PyTorch interpreter; its JSON answer,
    or None when no PyTorch interpreter was given."""
    if not torch_python:
        return None
    env = {**os.environ, **MALLOC_ENV, 'OMP_NUM_THREADS': str(threads())}
    out = subprocess.run([torch_python, str(HERE / 'torch_side.py')], input=json.dumps(job),
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def add_common_args(parser):
    parser.add_argument('--repeat', type=int, default=5,
                        help='timed runs per measurement; the median is reported')
    parser.add_argument('--torch-python', default=os.environ.get('IGC_TORCH_PYTHON'),
                        help='python of an environment with PyTorch (default '
                             '$IGC_TORCH_PYTHON; PyTorch columns are left out without it)')
    parser.add_argument('--out', type=Path, default=RESULTS)


def write_results(out_dir, stem, report, table):
    """bench/results/<stem>.json (everything) and <stem>.md (the table), atomically."""
    from igc_mx.atomic import atomic_path
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / f'{stem}.json') as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1) + '\n')
    with atomic_path(out_dir / f'{stem}.md') as tmp:
        Path(tmp).write_text(table)
    print(table)


def machine():
    import platform
    model = ''
    try:
        model = next(line.split(':', 1)[1].strip()
                     for line in Path('/proc/cpuinfo').read_text().splitlines()
                     if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu': model or platform.machine(), 'cpus': os.cpu_count(),
            'omp_threads': threads()}


def ratio(slow, fast):
    return None if slow is None or fast is None else slow / fast


def fmt(value, spec='.2f', suffix=''):
    return '–' if value is None else f'{value:{spec}}{suffix}'
