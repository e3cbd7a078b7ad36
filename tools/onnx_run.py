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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='ONNX file')
    parser.add_argument('images', nargs='?', help='float32 .npy of shape (N, C, H, W)')
    parser.add_argument('-o', '--output', help='save the outputs as .npy')
    parser.add_argument('--benchmark', metavar='BATCHES',
                        help='comma-separated batch sizes to time instead of running images')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs (median reported)')
    parser.add_argument('--min-time', type=float, default=0.05,
                        help='seconds each timed run lasts at least')
    parser.add_argument('--threads', type=int,
                        default=int(os.environ.get('OMP_NUM_THREADS', 0)) or None,
                        help='intra-op threads (default $OMP_NUM_THREADS, else ONNX Runtime)')
    args = parser.parse_args(argv)
    if ort is None:
        parser.error('onnxruntime is not installed here (pip install onnxruntime; '
                     'scripts/side_envs.sh makes .venv-ort)')
    if not os.path.isfile(args.model):
        parser.error(f'model file {args.model} does not exist')
    sess = session(args.model, args.threads)
    if args.benchmark:
        batches = [int(b) for b in args.benchmark.split(',')]
        result = benchmark(sess, batches, args.repeat, args.min_time)
        print(json.dumps({'onnxruntime': ort.__version__, 'threads': args.threads,
                          'result': result}))
        return 0
    if not args.images:
        parser.error('give an IMAGES.npy file or --benchmark BATCHES')
    out = run(sess, np.load(args.images))
    if args.output:
        np.save(args.output, out)
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
