"""Registers, shared memory, spills and resident blocks per multiprocessor of every
CUDA kernel, from the compiler (no GPU needed): each src/operator/*.cu is compiled
once for sm_80 and sm_90 with `nvcc -Xptxas -v --keep`, ptxas's report is read
for each kernel and its PTX for the kernel's __launch_bounds__.

    python bench/gpu/resources.py            check and print the table
    python bench/gpu/resources.py --write    also replace it in docs/gpu_kernels.md

Exits 1 when a kernel spills registers, declares no __launch_bounds__, or uses more
registers than lets the blocks per multiprocessor its __launch_bounds__ promises
reside (or fewer than 2, counting its shared memory). tests/test_build.py applies
the same checks to the compile of its CMake build, and requires the table in the
docs to be the one that compile gives.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / 'src' / 'operator'
DOCS = REPO / 'docs' / 'gpu_kernels.md'
BEGIN, END = '<!-- resources: begin -->', '<!-- resources: end -->'
ARCHS = (80, 90)
#: the per-multiprocessor limits of the occupancy rules for sm_80 and sm_90:
#: registers (allocated per warp in units of 256, over 4 sub-partitions), shared
#: memory at its largest carve-out (each block also takes 1 KiB reserved by the
#: driver, all in units of 128 bytes), threads and blocks
MULTIPROCESSOR = {80: dict(registers=65536, shared=167936, threads=2048, blocks=32),
                  90: dict(registers=65536, shared=233472, threads=2048, blocks=32)}
RESERVED_SHARED, SHARED_UNIT, REGISTER_UNIT, SUB_PARTITIONS = 1024, 128, 256, 4
#: the most dynamic shared memory one launch of a kernel takes (bytes), by kernel
#: name and dtype's accumulator size, as the planners of group_conv_cuda.cu allow:
#: staged tiles of at most kMaxSharedBytes, and kTapsPerThread x kThreads sums.
#: tests/test_cuda_emulated.py checks every emulated launch against it.
MAX_DYNAMIC_SHARED = {
    'group_conv_cuda.cu: forward_kernel': lambda acc: 32 << 10,
    'group_conv_cuda.cu: backward_data_kernel': lambda acc: 32 << 10,
    'group_conv_cuda.cu: weight_grad_kernel': lambda acc: 8 * 256 * acc,
}

Kernel = namedtuple('Kernel', 'name arch registers shared spill_stores spill_loads stack '
                              'max_threads min_blocks')


def find_nvcc():
    for candidate in (os.environ.get('CUDACXX'), shutil.which('nvcc'),
                      '/usr/local/cuda/bin/nvcc'):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def compile_sources(nvcc, keep_dir, sources=None):
    """ptxas's report of compiling each source (in parallel) for ARCHS, keeping the
    PTX in keep_dir."""
    sources = sources or sorted(SOURCES.glob('*.cu'))
    gencode = [f'-gencode=arch=compute_{a},code=sm_{a}' for a in ARCHS]

    def one(source):
        result = subprocess.run(
            [nvcc, '-std=c++17', '-O3', *gencode, '-Xptxas=-v', '--keep',
             f'--keep-dir={keep_dir}', '-I', str(SOURCES), '-c', str(source),
             '-o', str(Path(keep_dir) / f'{source.stem}.o')],
            capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f'nvcc failed on {source.name}:\n{result.stderr}')
        return result.stderr

    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        return '\n'.join(pool.map(one, sources))


def source_of(symbol):
    """The .cu file of a kernel in an anonymous namespace (its mangled name holds
    the file name), else cuda_common.cuh (the shared kernels)."""
    match = re.search(r'_GLOBAL__N__\w+?_(\d+)_', symbol)
    if not match:
        return 'cuda_common.cuh'
    name = symbol[match.end():match.end() + int(match.group(1))]
    return name[:-3] + '.cu' if name.endswith('_cu') else name


def demangle(symbols):
    filt = shutil.which('c++filt')
    if filt is None:
        return {s: s for s in symbols}
    out = subprocess.run([filt], input='\n'.join(symbols), capture_output=True, text=True,
                         check=True).stdout.splitlines()
    return dict(zip(symbols, out, strict=True))


def short_name(demangled):
    """kernel<template arguments> without namespaces, return type or parameters."""
    text = demangled.replace('(anonymous namespace)::', '').replace('igc::cuda::', '')
    text = re.sub(r'^void ', '', text)
    depth = 0
    for i, char in enumerate(text):
        depth += {'<': 1, '>': -1}.get(char, 0)
        if char == '(' and depth == 0:
            text = text[:i]
            break
    return (text.replace('(igc::Pass)0', 'kForward').replace('(igc::Pass)1', 'kBackwardData')
            .replace('unsigned long', 'uint64_t').replace('unsigned int', 'uint32_t')
            .replace('unsigned short', 'uint16_t'))


def launch_bounds(ptx_texts):
    """{mangled kernel: (max threads, min blocks)} from .maxntid and .minnctapersm."""
    bounds = {}
    for text in ptx_texts:
        for match in re.finditer(r'\.entry (\S+)\((.*?)\{', text, re.S):
            body = match.group(2)
            threads = re.search(r'\.maxntid (\d+), (\d+), (\d+)', body)
            blocks = re.search(r'\.minnctapersm (\d+)', body)
            bounds[match.group(1)] = (
                int(threads.group(1)) * int(threads.group(2)) * int(threads.group(3))
                if threads else None, int(blocks.group(1)) if blocks else None)
    return bounds


def parse(log, ptx_texts):
    """[Kernel] for each kernel and architecture of ARCHS in ptxas's report, with
    the launch bounds of its PTX; each kernel once (a kernel of a shared header is
    compiled in several files)."""
    entries, current, entry = {}, None, None
    for line in log.splitlines():
        compiling = re.search(r"Compiling entry function '(\S+)' for 'sm_(\d+)'", line)
        if compiling:
            current = entry = (compiling.group(1), int(compiling.group(2)))
            entries.setdefault(current, {})
            continue
        properties = re.search(r'Function properties for (\S+)', line)
        if properties:  # of the entry, or of a device function it calls
            current = entry if entry and properties.group(1) == entry[0] else None
        if current is None:
            continue
        spills = re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores, '
                           r'(\d+) bytes spill loads', line)
        if spills:
            entries[current].update(stack=int(spills.group(1)), spill_stores=int(spills.group(2)),
                                    spill_loads=int(spills.group(3)))
        used = re.search(r'Used (\d+) registers', line)
        if used:
            smem = re.search(r'(\d+) bytes smem', line)
            entries[current].update(registers=int(used.group(1)),
                                    shared=int(smem.group(1)) if smem else 0)
    bounds = launch_bounds(ptx_texts)
    names = demangle(sorted({symbol for symbol, _ in entries}))
    kernels = {}
    for (symbol, arch), info in entries.items():
        if arch not in ARCHS:
            continue
        name = f'{source_of(symbol)}: {short_name(names[symbol])}'
        threads, blocks = bounds.get(symbol, (None, None))
        kernels[name, arch] = Kernel(name, arch, info['registers'], info['shared'],
                                     info.get('spill_stores', 0), info.get('spill_loads', 0),
                                     info.get('stack', 0), threads, blocks)
    return sorted(kernels.values())


def accumulator_bytes(name):
    return 8 if '<double' in name else 4


def max_dynamic_shared(name):
    for prefix, size in MAX_DYNAMIC_SHARED.items():
        if name.startswith(prefix + '<'):
            return size(accumulator_bytes(name))
    return 0


def threads_of(kernel):
    """Threads per block: its launch bounds' (the kernels launch at most that many),
    or CUDA's most."""
    return kernel.max_threads or 1024


def blocks_by_registers(kernel):
    """Blocks whose registers fit a multiprocessor: registers are allocated per warp
    (rounded up to REGISTER_UNIT), warps fill the sub-partitions' register files."""
    sm = MULTIPROCESSOR[kernel.arch]
    per_warp = -(-kernel.registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    warps_per_sm = sm['registers'] // SUB_PARTITIONS // per_warp * SUB_PARTITIONS
    return warps_per_sm // -(-threads_of(kernel) // 32)


def resident_blocks(kernel):
    """(blocks of the kernel that one multiprocessor holds at once, what limits it),
    with threads_of() threads per block and its most dynamic shared memory."""
    sm = MULTIPROCESSOR[kernel.arch]
    shared = kernel.shared + max_dynamic_shared(kernel.name) + RESERVED_SHARED
    shared = -(-shared // SHARED_UNIT) * SHARED_UNIT
    limits = {'registers': blocks_by_registers(kernel), 'shared memory': sm['shared'] // shared,
              'threads': sm['threads'] // threads_of(kernel), 'blocks': sm['blocks']}
    least = min(limits.values())
    return least, next(name for name, value in limits.items() if value == least)


def problems(kernels):
    """What breaks the rules above, one line each."""
    found = []
    for k in kernels:
        where = f'{k.name} (sm_{k.arch})'
        if k.spill_stores or k.spill_loads:
            found.append(f'{where}: {k.spill_stores} bytes spill stores, {k.spill_loads} bytes '
                         'spill loads; expected none')
        if k.max_threads is None or k.min_blocks is None:
            found.append(f'{where}: no __launch_bounds__(threads, blocks per multiprocessor)')
            continue
        if blocks_by_registers(k) < k.min_blocks:
            found.append(f'{where}: {k.registers} registers per thread let '
                         f'{blocks_by_registers(k)} blocks of {k.max_threads} threads reside; '
                         f'its __launch_bounds__ promise {k.min_blocks}')
        blocks, limit = resident_blocks(k)
        if blocks < 2:
            found.append(f'{where}: {blocks} resident block per multiprocessor ({limit}); '
                         'expected at least 2')
    return found


def markdown(kernels):
    rows = {}
    for k in kernels:
        rows.setdefault(k.name, {})[k.arch] = k
    lines = ['| kernel | launch bounds | registers sm_80 / sm_90 | static shared bytes | '
             'dynamic shared bytes, at most | spill bytes | resident blocks / SM, sm_80 / '
             'sm_90 (limit) |', '|---|---|---|---|---|---|---|']
    for name, by_arch in sorted(rows.items()):
        a, b = by_arch[80], by_arch[90]
        (ra, limit_a), (rb, limit_b) = resident_blocks(a), resident_blocks(b)
        limits = limit_a if limit_a == limit_b else f'{limit_a} / {limit_b}'
        lines.append(f'| `{name}` | {a.max_threads}, {a.min_blocks} | {a.registers} / '
                     f'{b.registers} | {b.shared} | {max_dynamic_shared(name)} | '
                     f'{a.spill_stores + b.spill_stores} | {ra} / {rb} ({limits}) |')
    return '\n'.join(lines) + '\n'


def from_compile(log, keep_dir):
    ptx = [p.read_text() for p in sorted(Path(keep_dir).glob('*_cuda.compute_*.ptx'))]
    return parse(log, ptx)


def docs_table(text=None):
    """The table between the markers of docs/gpu_kernels.md."""
    text = DOCS.read_text() if text is None else text
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip() + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--write', action='store_true',
                        help=f'replace the table in {DOCS.relative_to(REPO)}')
    args = parser.parse_args(argv)
    nvcc = find_nvcc()
    if nvcc is None:
        sys.exit('resources.py needs nvcc (on PATH, or CUDACXX=/path/to/nvcc)')
    with tempfile.TemporaryDirectory() as keep:
        kernels = from_compile(compile_sources(nvcc, keep), keep)
    table = markdown(kernels)
    print(table)
    if args.write:
        text = DOCS.read_text()
        head, rest = text.split(BEGIN, 1)
        DOCS.write_text(head + BEGIN + '\n' + table + END + rest.split(END, 1)[1])
        print(f'[resources] wrote {DOCS.relative_to(REPO)}')
    found = problems(kernels)
    for line in found:
        print(f'[resources] {line}', file=sys.stderr)
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
