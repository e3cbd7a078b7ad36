"""Shared by the CPU benchmarks: timing, the PyTorch side process, result files.

Every ratio in bench/results is measured side by side in one run: the MXNet variants
of a case in one process with their timed runs interleaved, the PyTorch variant in a
subprocess of the same run (PyTorch lives in its own environment; bench/torch_side.py
needs no MXNet).
"""
import contextlib
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


def side_by_side(fns, repeat, min_time=0.05):
    """{name: ms} for the functions of the dict `fns`: the median over `repeat` runs of
    the mean time of one call, each run making enough calls to last `min_time` seconds
    (calibrated after a warm-up call). The runs are interleaved (a, b, c, a, b, c, ...)
    so that a change in the machine's load hits every function alike and their ratios
    stay meaningful. Each function must finish its work before returning (wait for
    MXNet's engine)."""
    calls = {}
    for name, fn in fns.items():
        fn()
        start, calls[name] = time.perf_counter(), 0
        while calls[name] < 1 or time.perf_counter() - start < min_time:
            fn()
            calls[name] += 1
    runs = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            runs[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(r) * 1e3 for name, r in runs.items()}


def call_seconds(fn, repeat, min_time=0.05, best=False):
    """Median (or with ``best``, the least) over ``repeat`` runs of the mean time of one
    call, each run making enough calls to last ``min_time`` seconds (calibrated after a
    warm-up call). For one function alone; ``side_by_side`` compares several."""
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
    return min(runs) if best else statistics.median(runs)


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


def best_format(by_format):
    """(the best value, its memory format) of PyTorch's {memory format: speed}."""
    fmt = max(by_format, key=by_format.get)
    return by_format[fmt], fmt


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
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(':', 1)[1].strip()
                     for line in Path('/proc/cpuinfo').read_text().splitlines()
                     if line.startswith('model name'))
    return {'cpu': model or platform.machine(), 'cpus': os.cpu_count(),
            'omp_threads': threads()}


def ratio(slow, fast):
    return None if slow is None or fast is None else slow / fast


def fmt(value, spec='.2f', suffix=''):
    return '–' if value is None else f'{value:{spec}}{suffix}'
