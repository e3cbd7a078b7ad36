#!/usr/bin/env python
"""Run an exported model in ONNX Runtime: needs only onnxruntime and numpy.

    python tools/onnx_run.py MODEL.onnx IMAGES.npy [-o OUT.npy]
        IMAGES.npy: float32 (N, C, H, W), normalized as in training. Prints the top-5
        classes of each image, or with -o saves the outputs.
    python tools/onnx_run.py MODEL.onnx --benchmark 1,32 [--repeat 5] [--threads 2]
        images/s for each batch size, as one JSON line (bench/bench_inference.py).

No MXNet and no igc_mx here: the model holds standard ONNX ops only.
"""
import argparse
import functools
import json
import os
import statistics
import sys
import time

import numpy as np

try:
    import onnxruntime as ort
except ImportError:  # main() says so after parsing, so that --help works without it
    ort = None


def session(path, threads=None):
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def run(sess, images):
    (data,) = sess.get_inputs()
    return sess.run(None, {data.name: np.ascontiguousarray(images, dtype=np.float32)})[0]


def median_ms(fn, repeat, min_time):
    """Median over ``repeat`` runs of the mean time of one call, each run making enough
    calls to last ``min_time`` seconds (bench/common.side_by_side's rule; a warm-up call
    that alone lasts ``min_time`` stands for the calibration)."""
    start = time.perf_counter()
    fn()
    calls = 1
    if time.perf_counter() - start < min_time:
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


def benchmark(sess, batches, repeat, min_time, seed=0):
    """{batch: images/s} on random inputs of the model's input shape."""
    shape = [d for d in sess.get_inputs()[0].shape[1:]]
    rng = np.random.RandomState(seed)
    result = {}
    for batch in batches:
        images = rng.randn(batch, *shape).astype(np.float32)
        result[batch] = batch / (median_ms(functools.partial(run, sess, images), repeat,
                                           min_time) / 1e3)
    return result


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
    return value


def positive_number(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}')
    return value


def batch_sizes(text):
    try:
        return [positive_int(b) for b in text.split(',')]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f'expected positive batch sizes separated by commas, '
                                         f'got {text!r}') from None


def default_threads():
    """$OMP_NUM_THREADS when it is a positive integer, else None (ONNX Runtime's choice)."""
    text = os.environ.get('OMP_NUM_THREADS', '')
    return int(text) if text.isdigit() and int(text) > 0 else None


def first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def load_images(parser, path, sess):
    """The images of ``path`` as float32, checked against the model's input."""
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        parser.error(f'cannot read images from {path}: {first_line(err)}')
    (data,) = sess.get_inputs()
    sizes = [d if isinstance(d, int) else None for d in data.shape]
    if (images.dtype.kind not in 'fiu' or images.ndim != len(sizes)
            or any(s is not None and s != n for s, n in zip(sizes[1:], images.shape[1:],
                                                           strict=True))):
        wanted = ', '.join('N' if s is None else str(s) for s in sizes)
        parser.error(f'{path} holds {images.dtype} images of shape {images.shape}; the model '
                     f'takes ({wanted})')
    return images


def save(path, array):
    """``array`` to the .npy file ``path``, written under a temporary name and renamed, so
    that an interrupted run leaves no truncated file (igc_mx.atomic's rule, without
    igc_mx)."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f'.{os.path.basename(path)}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='ONNX file')
    parser.add_argument('images', nargs='?', help='float32 .npy of shape (N, C, H, W)')
    parser.add_argument('-o', '--output', help='save the outputs as .npy')
    parser.add_argument('--benchmark', metavar='BATCHES', type=batch_sizes,
                        help='comma-separated batch sizes to time instead of running images')
    parser.add_argument('--repeat', type=positive_int, default=5,
                        help='timed runs (median reported)')
    parser.add_argument('--min-time', type=positive_number, default=0.05,
                        help='seconds each timed run lasts at least')
    parser.add_argument('--threads', type=positive_int, default=default_threads(),
                        help='intra-op threads (default $OMP_NUM_THREADS, else ONNX Runtime)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if ort is None:
        parser.error('onnxruntime is not installed here (pip install onnxruntime; '
                     'scripts/side_envs.sh makes .venv-ort)')
    if not os.path.isfile(args.model):
        parser.error(f'model file {args.model} does not exist')
    try:
        sess = session(args.model, args.threads)
    except Exception as err:  # ONNX Runtime raises its own error classes
        parser.error(f'ONNX Runtime cannot load {args.model}: {first_line(err)}')
    if args.benchmark:
        result = benchmark(sess, args.benchmark, args.repeat, args.min_time)
        print(json.dumps({'onnxruntime': ort.__version__, 'threads': args.threads,
                          'result': result}))
        return 0
    if not args.images:
        parser.error('give an IMAGES.npy file or --benchmark BATCHES')
    try:
        out = run(sess, load_images(parser, args.images, sess))
    except Exception as err:  # ONNX Runtime raises its own error classes
        parser.error(f'ONNX Runtime cannot run {args.model} on {args.images}: '
                     f'{first_line(err)}')
    if args.output:
        save(args.output, out)
        print(f'{args.output}: outputs of shape {out.shape}')
        return 0
    if out.ndim != 2:
        parser.error(f'the outputs have shape {out.shape}, not (N, classes): save them with -o')
    for i, scores in enumerate(out):
        top = np.argsort(-scores)[:5]
        print(i, ' '.join(f'{c}:{scores[c]:.4f}' for c in top))
    return 0


if __name__ == '__main__':
    sys.exit(main())
