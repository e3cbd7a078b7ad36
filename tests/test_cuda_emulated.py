"""Every CUDA entry point, run on the CPU, against the CPU kernels.

libigc_kernels_emulated.so compiles src/operator/*.cu with the host compiler
against src/operator/cuda_emulation.h: each block's threads are fibers with a
real __syncthreads() barrier, run in an order that exposes a missing barrier,
with shared memory that starts as NaN; every load and store is checked against
the buffers of the call and the shared memory of the block, and for races
between threads. scripts/test.sh rebuilds it, so an edit to a .cu file is tested
by `scripts/test.sh tests/test_cuda_emulated.py`.

Besides the results in float32, float64 and float16, the tests show that they
would catch the GPU bugs that matter: dropping any one __syncthreads() of any
.cu file is a race naming the kernel, one thread skipping its share of the work
makes a case fail, two threads doing one thread's work is a race, and an access
one element past either end of any buffer or of the dynamic shared memory is an
out-of-bounds error naming the kernel, the thread and the offset.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from igc_mx import kernels

from conftest import load_module, reorder_reference

SOURCES = Path(__file__).resolve().parents[1] / 'src' / 'operator'
DTYPES = ('float32', 'float64', 'float16')
# Tolerance relative to the largest reference value. float16 results are rounded
# to float16 (sums run in float32), float32 sums differ from the CPU's in order.
RTOL = {'float32': 2e-5, 'float64': 1e-12, 'float16': 3e-3}


@pytest.fixture(scope='module')
def emu():
    lib = kernels.load_emulated()
    lib.igc_emu_reset()
    yield lib
    lib.igc_emu_reset()


def close(result, reference, dtype):
    result = np.asarray(result, dtype='float64')
    reference = np.asarray(reference, dtype='float64')
    scale = max(1.0, float(np.abs(reference).max(initial=0)))
    np.testing.assert_allclose(result, reference, rtol=0, atol=RTOL[dtype] * scale)


def inputs(rng, dtype, *shapes):
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def cpu_inputs(arrays):
    """The CPU kernels run float32/float64: float16 inputs go in as float64."""
    return [a.astype('float64') if a.dtype == np.float16 else a for a in arrays]


# ---- Reorder -----------------------------------------------------------------

# (shape, branch_factor): row sizes of 2 to 16+ bytes for every copy width,
# odd sizes, batch 1, 2-D and 5-D inputs
REORDER_CASES = [((2, 12, 5, 7), 3), ((1, 64, 4, 4), 8), ((3, 6, 1), 2), ((40, 96), 4),
                 ((2, 6, 2, 3, 2), 6), ((5, 9, 1, 1), 9), ((4, 10, 3), 1)]


def run_reorder(emu, x, branch_factor):
    y = np.full_like(x, np.nan)
    kernels.reorder(x, y, branch_factor, device='cuda', lib=emu)
    return y


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape,branch_factor', REORDER_CASES)
def test_reorder(emu, shape, branch_factor, dtype):
    x, = inputs(np.random.default_rng(1), dtype, shape)
    np.testing.assert_array_equal(run_reorder(emu, x, branch_factor),
                                  reorder_reference(x, branch_factor))


def test_reorder_unaligned_pointers(emu):
    # Views one float16 into a buffer: only the 2-byte copy is allowed.
    base = np.random.default_rng(2).standard_normal(2 * 12 * 8 + 1).astype('float16')
    x = base[1:].reshape(2, 12, 8)
    np.testing.assert_array_equal(run_reorder(emu, x, 4), reorder_reference(x, 4))


# ---- InterleavedGroupConv ----------------------------------------------------

# (N, C, H, W, L, M): channels per group K = C/M, slabs S = K/L
IGC_CASES = [
    (2, 48, 8, 8, 24, 2),      # CIFAR L24M2 stage 3: K = 24
    (1, 32, 5, 7, 4, 8),       # batch 1, odd map, K = 4
    (3, 16, 3, 3, 2, 2),       # several slabs: K = 8, S = 4
    (2, 12, 6, 5, 1, 6),       # K = 2
    (2, 64, 7, 7, 16, 4),      # K = 16, S = 1 (IGC-L16M16-like)
    (1, 200, 3, 3, 100, 2),    # K = 100
    (1, 1600, 2, 1, 100, 2),   # K = 800
    (4, 24, 1, 1, 3, 4),       # 1x1 maps, many images
    (3, 32, 30, 31, 4, 4),     # weight gradient in 2 chunks, split inside an image
]


def three_passes(run, x, w, dy, out_like, workspace_bytes):
    """(y, dx, dw) from run(pass, a, b, c, workspace) for the forward, data-gradient
    and weight-gradient passes, into NaN-filled outputs; on the emulated device the
    weight gradient gets a NaN-filled workspace of the size its query asks for."""
    y, dx, dw = np.full_like(out_like, np.nan), np.full_like(x, np.nan), np.full_like(w, np.nan)
    run('forward', x, w, y, None)
    run('backward_data', dy, w, dx, None)
    workspace = None
    if workspace_bytes is not None:
        assert workspace_bytes >= 0
        workspace = np.full(max(workspace_bytes, 1), 0xff, dtype=np.uint8)
    run('backward_weight', dy, x, dw, workspace)
    return y, dx, dw


def igc_passes(lib, device, x, w, dy, L, M):
    size = kernels.interleaved_conv_workspace(x.shape, L, M, x.dtype.name, lib=lib) \
        if device == 'cuda' else None
    return three_passes(lambda p, a, b, c, space: kernels.interleaved_conv(
        p, a, b, c, L, M, device=device, lib=lib, workspace=space), x, w, dy, x, size)


def check_interleaved_conv(emu, case, dtype, seed=3):
    n, c, h, w_, L, M = case
    x, w, dy = inputs(np.random.default_rng(seed), dtype, (n, c, h, w_), (c, c // M),
                      (n, c, h, w_))
    got = igc_passes(emu, 'cuda', x, w, dy, L, M)
    want = igc_passes(kernels.load(), 'cpu', *cpu_inputs((x, w, dy)), L, M)
    for a, b in zip(got, want, strict=True):
        close(a, b, dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', IGC_CASES, ids=str)
def test_interleaved_conv(emu, case, dtype):
    check_interleaved_conv(emu, case, dtype)


# ---- GroupConvolution --------------------------------------------------------

# (N, C, H, W, F, groups, kernel, stride, pad)
GROUP_CONV_CASES = [
    (2, 48, 8, 8, 48, 24, 3, 1, 1),     # CIFAR stage 3: 2 per group
    (1, 16, 9, 7, 32, 2, 3, 2, 1),      # widening, stride 2, odd map, batch 1
    (3, 12, 13, 11, 12, 4, 3, 2, 0),    # odd sizes, no padding
    (2, 32, 9, 9, 64, 8, 1, 2, 0),      # 1x1 stride 2
    (2, 16, 11, 10, 16, 2, 5, 1, 2),    # 5x5, 8 per group
    (1, 6, 15, 14, 6, 3, 7, 2, 3),      # 7x7 stride 2 pad 3
    (2, 8, 10, 9, 8, 8, 3, 4, 1),       # stride larger than the kernel, depthwise
    (1, 64, 6, 6, 64, 2, 3, 1, 1),      # 32 per group
    (1, 64, 17, 34, 64, 2, 3, 1, 1),    # 32 per group on a wide map: several staged steps
    (2, 16, 12, 12, 16, 2, 3, 1, 1),    # 8 per group, weight gradient in 2 chunks
]


def geometry_of(case):
    n, c, h, w, f, groups, k, s, p = case
    return kernels.ConvGeometry(n, c, h, w, f, groups, k, k, s, s, p, p)


def out_shape(case):
    n, c, h, w, f, groups, k, s, p = case
    return n, f, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


def group_conv_passes(lib, device, case, x, w, dy):
    g = geometry_of(case)
    size = kernels.group_conv_workspace(g, x.dtype.name, lib=lib) if device == 'cuda' else None
    return three_passes(lambda p, a, b, c, space: kernels.group_conv(
        p, g, a, b, c, device=device, lib=lib, workspace=space), x, w, dy, dy, size)


def check_group_conv(emu, case, dtype, seed=4):
    n, c, h, w_, f, groups, k = case[:7]
    x, w, dy = inputs(np.random.default_rng(seed), dtype, (n, c, h, w_),
                      (f, c // groups, k, k), out_shape(case))
    got = group_conv_passes(emu, 'cuda', case, x, w, dy)
    want = group_conv_passes(kernels.load(), 'cpu', case, *cpu_inputs((x, w, dy)))
    for a, b in zip(got, want, strict=True):
        close(a, b, dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', GROUP_CONV_CASES, ids=str)
def test_group_conv(emu, case, dtype):
    check_group_conv(emu, case, dtype)


# ---- grid-stride loops, empty inputs, bad arguments ----------------------------

def test_grid_stride_loops_wrap(emu):
    # With at most 2 blocks per grid axis, every kernel loops over the rest.
    emu.igc_emu_cap_grid(2)
    try:
        for shape, branch_factor in REORDER_CASES[:3]:
            x, = inputs(np.random.default_rng(5), 'float32', shape)
            np.testing.assert_array_equal(run_reorder(emu, x, branch_factor),
                                          reorder_reference(x, branch_factor))
        for case in IGC_CASES[:3]:
            check_interleaved_conv(emu, case, 'float32')
        for case in GROUP_CONV_CASES[:3]:
            check_group_conv(emu, case, 'float32')
    finally:
        emu.igc_emu_cap_grid(0)


def test_empty_batch_zeroes_the_weight_gradients(emu):
    case = (0, 8, 5, 5, 8, 4, 3, 1, 1)
    x = np.zeros((0, 8, 5, 5), 'float32')
    dw = np.full((8, 2, 3, 3), np.nan, 'float32')
    g = geometry_of(case)
    size = kernels.group_conv_workspace(g, 'float32', lib=emu)
    kernels.group_conv('backward_weight', g, x, x, dw, device='cuda', lib=emu,
                       workspace=np.zeros(max(size, 1), np.uint8))
    assert not dw.any()
    dw = np.full((8, 4), np.nan, 'float32')
    size = kernels.interleaved_conv_workspace(x.shape, 2, 2, 'float32', lib=emu)
    kernels.interleaved_conv('backward_weight', x, x, dw, 2, 2, device='cuda', lib=emu,
                             workspace=np.zeros(max(size, 1), np.uint8))
    assert not dw.any()


def test_bad_arguments_are_refused_before_any_launch(emu):
    x = np.zeros((2, 12, 4, 4), 'float32')
    with pytest.raises(ValueError, match='bad shape'):
        kernels.interleaved_conv('forward', x, x, x, 5, 2, device='cuda', lib=emu)
    with pytest.raises(ValueError, match='bad shape'):
        kernels.reorder(x, np.empty_like(x), 5, device='cuda', lib=emu)
    g = geometry_of((2, 12, 4, 4, 12, 5, 3, 1, 1))       # 5 groups do not divide 12
    with pytest.raises(ValueError, match='bad shape'):
        kernels.group_conv('forward', g, x, x, x, device='cuda', lib=emu)


def test_a_workspace_smaller_than_asked_is_refused(emu):
    case = GROUP_CONV_CASES[-1]
    g = geometry_of(case)
    size = kernels.group_conv_workspace(g, 'float32', lib=emu)
    assert size > 0, f'{case}: expected a weight gradient in chunks'
    x = np.zeros(case[:4], 'float32')
    dw = np.zeros((case[4], case[1] // case[5], case[6], case[6]), 'float32')
    with pytest.raises(ValueError, match='workspace'):
        kernels.group_conv('backward_weight', g, np.zeros(out_shape(case), 'float32'), x, dw,
                           device='cuda', lib=emu, workspace=np.zeros(size - 1, np.uint8))


# ---- the emulation's own checks ----------------------------------------------

@pytest.mark.parametrize('grid,block,big_shared,early,error', [
    ((3, 1, 1), (64, 2, 1), 0, -1, ''),
    ((1, 1, 1), (1025, 1, 1), 0, -1, 'at most 1024 threads per block'),
    ((1, 1, 1), (32, 32, 2), 0, -1, 'at most 1024 threads per block'),
    ((1, 65536, 1), (32, 1, 1), 0, -1, 'grid y and z <= 65535'),
    ((1, 1, 65536), (32, 1, 1), 0, -1, 'grid y and z <= 65535'),
    ((1, 1, 1), (32, 1, 1), 1, -1, "more than CUDA's 48 KiB of static shared memory"),
    ((2, 1, 1), (64, 1, 1), 0, 5, r'thread \(5,0,0\) returned while thread .* waits'),
])
def test_emulated_launches_enforce_cuda_limits(emu, grid, block, big_shared, early, error):
    text = emu.igc_emu_self_test(*grid, *block, big_shared, early).decode()
    if error:
        assert re.search(error, text), text
    else:
        assert text == ''


# ---- the emulation's memory and race checks --------------------------------------

#: bug_kernel's planted bugs (cuda_emulation.cc) and what the launch must report
PLANTED_BUGS = {
    'load past the end': r"thread \(63,0,0\) reads 4 bytes at byte offset 252 of global buffer "
                         r"'in' \(252 bytes\): out of bounds",
    'load before the start': r"thread \(0,0,0\) reads 4 bytes at byte offset -4 of global "
                             r"buffer 'in' \(256 bytes\): out of bounds",
    'store past the end': r"thread \(63,0,0\) writes 4 bytes at byte offset 252 of global "
                          r"buffer 'out' \(252 bytes\): out of bounds",
    'shared index past the end': r'thread \(63,0,0\) indexes a shared array of 64 elements '
                                 r'with 64: out of bounds',
    'dynamic shared past the end': r'thread \(63,0,0\) writes 4 bytes at byte offset 256 of '
                                   r'dynamic shared memory \(256 bytes\): out of bounds',
    'shared write-write race': r'thread \(\d,0,0\) writes byte offset 0 of a __shared__ '
                               r'variable \(256 bytes\), '
                               r'which thread \(\d,0,0\) wrote in the same phase \(before the '
                               r'first __syncthreads\(\)\): a shared-memory race',
    'shared read-write race': r'thread \(\d,0,0\) (reads|writes) byte offset 20 of a '
                              r'__shared__ variable \(256 bytes\), which thread \(\d,0,0\) '
                              r'(wrote|read) in the same phase .*: a shared-memory race',
    'global write-write race': r"thread \(\d,0,0\) writes byte offset 0 of global buffer 'out' "
                               r'.*, which thread \(\d,0,0\) of block \(0,0,0\) wrote in the same '
                               r'phase .*: a global-memory race',
    'blocks write one element': r"block \(\d,0,0\), thread \(0,0,0\) writes byte offset 0 of "
                                r"global buffer 'out' .*, which thread \(0,0,0\) of block "
                                r'\(\d,0,0\) wrote in the same launch \(nothing orders the '
                                r'blocks of a launch\): a global-memory race',
    'unregistered buffer': r'thread \(\d+,0,0\) writes 4 bytes at address 0x[0-9a-f]+, which '
                           r'lies in no device buffer of the call',
}


@pytest.mark.parametrize('bug', sorted(PLANTED_BUGS))
def test_a_planted_bug_is_a_launch_error_naming_kernel_thread_and_offset(emu, bug):
    text = emu.igc_emu_bug_test(bug.encode()).decode()
    assert text.startswith(('an illegal memory access was encountered: bug_kernel: block ',
                            'unspecified launch failure: bug_kernel: block ')), text
    assert re.search(PLANTED_BUGS[bug], text), text


@pytest.mark.parametrize('case', ['no bug', 'atomics'])
def test_ordered_accesses_and_atomics_are_not_races(emu, case):
    assert emu.igc_emu_bug_test(case.encode()).decode() == ''


# ---- the tests catch missing barriers, idle threads, races and bad accesses -----

def check_reorder(emu, case):
    x, = inputs(np.random.default_rng(6), 'float32', case[0])
    np.testing.assert_array_equal(run_reorder(emu, x, case[1]), reorder_reference(x, case[1]))


#: every check that runs the kernels of one .cu file, in float32
CHECKS = {'reorder_cuda.cu': (check_reorder, REORDER_CASES),
          'igc_conv_cuda.cu': (lambda emu, c: check_interleaved_conv(emu, c, 'float32'),
                               IGC_CASES),
          'group_conv_cuda.cu': (lambda emu, c: check_group_conv(emu, c, 'float32'),
                                 GROUP_CONV_CASES)}


def first_failure(emu, source):
    """The first of the source's checks that fails (a wrong result or a launch error),
    run as they are, then with at most 2 blocks per grid axis (so that blocks loop):
    (case, error), or None when every check passes."""
    check, cases = CHECKS[source]
    try:
        for cap in (0, 2):
            emu.igc_emu_cap_grid(cap)
            for case in cases:
                try:
                    check(emu, case)
                except (AssertionError, ValueError) as error:
                    return case, error
    finally:
        emu.igc_emu_cap_grid(0)
    return None


def code_lines(path):
    """(line number, text) of each line, comments blanked."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        yield number, line.split('//')[0]


BARRIERS = [(path.name, number) for path in sorted(SOURCES.glob('*.cu'))
            for number, line in code_lines(path) if '__syncthreads()' in line]
LAUNCHES = sorted({(path.name, match.group(1).strip())
                   for path in SOURCES.glob('*.cu')
                   for match in re.finditer(r'IGC_LAUNCH\(\s*(\(.*?\)|[\w:<>]+)\s*,',
                                            path.read_text())})


def launch_error(failure, source, kind):
    """The text of a failure that must be a launch error of `kind` ('race' or 'out of
    bounds') naming a kernel of `source`."""
    assert failure is not None, f'no case of {source} fails'
    case, error = failure
    text = str(error)
    assert isinstance(error, ValueError) and kind in text, f'{case}: {text}'
    assert any(kernel + ': block (' in text for name, kernel in LAUNCHES if name == source), \
        f'{case}: the error names no kernel of {source}: {text}'
    return text


def test_every_kernel_and_barrier_is_reached(emu):
    emu.igc_emu_reset()
    for source in CHECKS:
        assert first_failure(emu, source) is None
    launched = {line.split('\t')[0] for line in emu.igc_emu_launches().decode().splitlines()}
    for source, kernel in LAUNCHES:
        assert kernel in launched, f'no case launches {kernel} ({source})'
    for source, line in BARRIERS:
        assert emu.igc_emu_barrier_hits(source.encode(), line) > 0, f'{source}:{line}'


@pytest.mark.parametrize('source,line', BARRIERS)
def test_dropping_a_barrier_is_a_race(emu, source, line):
    emu.igc_emu_drop_barrier(source.encode(), line)
    try:
        launch_error(first_failure(emu, source), source, 'race')
    finally:
        emu.igc_emu_reset()


@pytest.mark.parametrize('block,thread', [(0, 0), (-1, -1)])
@pytest.mark.parametrize('source,kernel', LAUNCHES)
def test_a_thread_skipping_its_work_fails_a_case(emu, source, kernel, block, thread):
    emu.igc_emu_skip_thread(kernel.encode(), block, thread)
    try:
        assert first_failure(emu, source) is not None, \
            f'no case fails with {kernel} thread skipped'
    finally:
        emu.igc_emu_reset()


@pytest.mark.parametrize('source,kernel', LAUNCHES)
def test_two_threads_doing_one_threads_work_is_a_race(emu, source, kernel):
    # Thread 1 of block 0 runs as thread 0: both write what thread 0 writes.
    emu.igc_emu_alias_thread(kernel.encode(), 0, 1, 0)
    try:
        text = launch_error(first_failure(emu, source), source, 'race')
        assert text.split(': block (')[0].endswith(kernel), text
    finally:
        emu.igc_emu_reset()


#: a small case per source that launches every kernel of its file (the weight
#: gradients in chunks), and the roles of the arrays its passes touch
BUFFER_CASES = {
    'reorder_cuda.cu': (REORDER_CASES[0], ('src', 'dst')),
    'igc_conv_cuda.cu': ((2, 16, 8, 16, 4, 4), ('data', 'weight', 'out', 'out_grad',
                                               'data_grad', 'weight_grad', 'workspace')),
    'group_conv_cuda.cu': (GROUP_CONV_CASES[-1], ('data', 'weight', 'out', 'out_grad',
                                                  'data_grad', 'weight_grad', 'workspace')),
}


def test_the_buffer_cases_split_the_weight_gradients(emu):
    n, c, h, w, L, M = BUFFER_CASES['igc_conv_cuda.cu'][0]
    assert kernels.interleaved_conv_workspace((n, c, h, w), L, M, 'float32', lib=emu) > 0
    conv = geometry_of(BUFFER_CASES['group_conv_cuda.cu'][0])
    assert kernels.group_conv_workspace(conv, 'float32', lib=emu) > 0


@pytest.mark.parametrize('front,back', [(4, 0), (0, 4)], ids=['before the start', 'past the end'])
@pytest.mark.parametrize('source,role', [(source, role) for source, (_, roles)
                                         in BUFFER_CASES.items() for role in roles])
def test_an_access_outside_a_buffer_names_kernel_thread_and_offset(emu, source, role, front,
                                                                   back):
    # The buffer registered one float shorter than the array: the kernel's access of
    # the array's first or last element is outside it.
    emu.igc_emu_trim_buffer(role.encode(), front, back)
    case, _ = BUFFER_CASES[source]
    try:
        check, _ = CHECKS[source]
        try:
            check(emu, case)
            failure = None
        except (AssertionError, ValueError) as error:
            failure = case, error
        text = launch_error(failure, source, 'out of bounds')
    finally:
        emu.igc_emu_reset()
    offset = '-4' if front else r'\d+'
    assert re.search(r'block \(\d+,\d+,\d+\), thread \(\d+,\d+,\d+\) (reads|writes) \d+ bytes '
                     rf"at byte offset {offset} of global buffer '{role}' \(\d+ bytes\): out "
                     'of bounds', text), text


def one_group_conv_pass(emu, case, pass_name):
    """One pass of GroupConvolution on the emulated device, float32."""
    g = geometry_of(case)
    rng = np.random.default_rng(7)
    x, w, dy = inputs(rng, 'float32', case[:4], (case[4], case[1] // case[5], case[6], case[6]),
                      out_shape(case))
    a, b, out = {'forward': (x, w, np.empty_like(dy)),
                 'backward_data': (dy, w, np.empty_like(x)),
                 'backward_weight': (dy, x, np.empty_like(w))}[pass_name]
    size = kernels.group_conv_workspace(g, 'float32', lib=emu)
    kernels.group_conv(pass_name, g, a, b, out, device='cuda', lib=emu,
                       workspace=np.zeros(max(size, 1), np.uint8))


@pytest.mark.parametrize('pass_name', kernels.PASSES)
def test_group_conv_kernels_use_all_the_dynamic_shared_memory_they_get(emu, pass_name):
    # One float less than the launch asks for: the kernel's last element is outside.
    emu.igc_emu_trim_dynamic_shared(4)
    try:
        with pytest.raises(ValueError, match=r'kernel<T, R\w?>\): block \(\d+,\d+,\d+\), thread '
                                             r'\(\d+,\d+,\d+\) (reads|writes) \d+ bytes at byte '
                                             r'offset \d+ of dynamic shared memory \(\d+ bytes\): '
                                             'out of bounds'):
            one_group_conv_pass(emu, GROUP_CONV_CASES[1], pass_name)
    finally:
        emu.igc_emu_reset()


@pytest.mark.parametrize('thread', [1, 71, 72, 143, 144, 200, 255])
def test_every_thread_of_the_group_conv_weight_gradient_works(emu, thread):
    # 2 channels per group: 3 register tiles of 85 or 86 replicas, each with pixels
    # of its own; a thread that does not run leaves its share out of the sum.
    emu.igc_emu_skip_thread(b'(weight_grad_kernel<T, RF>)', 0, thread)
    try:
        with pytest.raises(AssertionError):
            check_group_conv(emu, GROUP_CONV_CASES[0], 'float32')
    finally:
        emu.igc_emu_reset()


class Planned:
    """An array for plan-only launches: shape, dtype and a pointer never read."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.ctypes = type('Pointer', (), {'data': 1 << 40})()


def load_resources():
    return load_module('resources', 'bench/gpu/resources.py')


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_dynamic_shared_memory_is_at_most_what_the_resource_table_counts(emu, dtype):
    # The test cases and 3x3 convolutions of up to 32 channels per group on
    # 56x56 maps at batch 64, planned but not run.
    limits = load_resources().MAX_DYNAMIC_SHARED
    acc = np.dtype(dtype).itemsize
    cases = GROUP_CONV_CASES + [(64, c, 56, 56, c, c // g, 3, 1, 1)
                                for c, g in ((200, 2), (256, 16), (128, 32))]
    emu.igc_emu_reset()
    emu.igc_emu_plan_only(1)
    try:
        for case in cases:
            g = geometry_of(case)
            w = Planned((case[4], case[1] // case[5], case[6], case[6]), dtype)
            x, y = Planned(case[:4], dtype), Planned(out_shape(case), dtype)
            space = Planned((max(kernels.group_conv_workspace(g, dtype, lib=emu), 1),), 'uint8')
            for pass_name, (a, b, out) in {'forward': (x, w, y), 'backward_data': (y, w, x),
                                           'backward_weight': (y, x, w)}.items():
                kernels.group_conv(pass_name, g, a, b, out, device='cuda', lib=emu,
                                   workspace=space)
        launches = emu.igc_emu_launches().decode().splitlines()
    finally:
        emu.igc_emu_reset()
    most = {}
    for line in launches:
        name, dims = line.split('\t')
        base = name.strip('()').split('<')[0].replace('igc::cuda::', '')
        most[base] = max(most.get(base, 0), int(dims.split()[-1]))
    assert set(most) == {'forward_kernel', 'backward_data_kernel', 'weight_grad_kernel',
                         'sum_chunks_kernel'}
    for base, bytes_ in most.items():
        limit = limits.get(f'group_conv_cuda.cu: {base}', lambda acc: 0)(acc)
        assert bytes_ <= limit, f'{base}: {bytes_} bytes of dynamic shared memory, table: {limit}'


def test_the_fault_lists_are_not_empty():
    assert {name for name, _ in LAUNCHES} == {p.name for p in SOURCES.glob('*.cu')}
    assert BARRIERS
    assert ('group_conv_cuda.cu', '(weight_grad_kernel<T, RF>)') in LAUNCHES
