"""Write a small synthetic dataset in the CIFAR-10 python format.

    python tools/make_synthetic_cifar.py OUT.tar.gz [--num-train N] [--num-test N] [--seed S]
    python -m igc_mx.datasets.synthetic_cifar OUT.tar.gz ...

The archive holds ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` and
``batches.meta``, pickled dicts as in the real archive (``b'data'``: uint8
(N, 3072), red, green and blue planes of 32x32 images; ``b'labels'``), so every
tool that reads CIFAR-10 reads it. Each class is a shape (disk, square,
triangle, ring, stripes in three directions, plus, cross, checkerboard) drawn in
a class-dependent hue at a random place, size and brightness over a random
background with pixel noise: learnable, but not trivially. The archive's bytes
depend only on the arguments; it is written atomically. Needs numpy, not MXNet.
"""
import argparse
import gzip
import io
import pickle
import sys
import tarfile

import numpy as np

from ..atomic import atomic_path

SIDE = 32
CLASSES = ['disk', 'square', 'triangle', 'ring', 'h_stripes', 'v_stripes', 'd_stripes',
           'plus', 'cross', 'checker']


def _masks(labels, rng):
    """(N, 32, 32) bool foreground masks of each label's shape."""
    n = len(labels)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    cy = rng.uniform(11, 21, n).astype(np.float32)[:, None, None]
    cx = rng.uniform(11, 21, n).astype(np.float32)[:, None, None]
    r = rng.uniform(6, 10, n).astype(np.float32)[:, None, None]
    period = rng.uniform(4, 7, n).astype(np.float32)[:, None, None]
    dy, dx = yy[None] - cy, xx[None] - cx
    inside = np.maximum(np.abs(dy), np.abs(dx)) <= r          # bounding square
    dist = np.sqrt(dy ** 2 + dx ** 2)
    width = np.maximum(1.5, r / 3)
    shapes = [
        dist <= r,                                              # disk
        inside,                                                 # square
        (dy <= r) & (np.abs(dx) <= (dy + r) / 2),               # triangle, apex up
        (dist <= r) & (dist >= r * 0.55),                       # ring
        inside & ((yy[None] % period) < period / 2),            # horizontal stripes
        inside & ((xx[None] % period) < period / 2),            # vertical stripes
        inside & (((yy[None] + xx[None]) % period) < period / 2),  # diagonal stripes
        inside & ((np.abs(dy) <= width) | (np.abs(dx) <= width)),  # plus
        inside & ((np.abs(dy - dx) <= width) | (np.abs(dy + dx) <= width)),  # cross
        inside & (((yy[None] // 4) + (xx[None] // 4)) % 2 == 0),  # checkerboard
    ]
    stacked = np.stack(shapes)                                  # (10, N, 32, 32)
    return stacked[labels, np.arange(n)]


def _hsv_to_rgb(h, s, v):
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in
                      [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]])
    return table[i, np.arange(len(h))]


def make_images(labels, rng):
    """uint8 (N, 3072) rows, channel planes R, G, B, for the given labels."""
    n = len(labels)
    labels = np.asarray(labels)
    hue = (labels / 10.0 + rng.normal(0, 0.04, n)) % 1.0
    fg = _hsv_to_rgb(hue, rng.uniform(0.5, 1.0, n), rng.uniform(0.55, 1.0, n)) * 255
    bg = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0, 0.35, n), rng.uniform(0.1, 0.6, n)) * 255
    mask = _masks(labels, rng)[:, None]                         # (N, 1, 32, 32)
    img = np.where(mask, fg[:, :, None, None], bg[:, :, None, None])
    img = img + rng.normal(0, 18, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8).reshape(n, 3 * SIDE * SIDE)


def make_split(num, rng):
    labels = rng.permutation(np.arange(num) % len(CLASSES))
    return make_images(labels, rng), [int(v) for v in labels]


def _batch(name, data, labels):
    return {b'batch_label': name.encode(), b'labels': labels, b'data': data,
            b'filenames': [f'synthetic_{name.split()[0]}_{i:05d}.png'.encode()
                           for i in range(len(labels))]}


def write_archive(out, num_train=5000, num_test=1000, seed=0):
    rng = np.random.RandomState(seed)
    train, train_labels = make_split(num_train, rng)
    test, test_labels = make_split(num_test, rng)
    files = {}
    bounds = np.linspace(0, num_train, 6).astype(int)
    for k in range(5):
        a, b = bounds[k], bounds[k + 1]
        files[f'data_batch_{k + 1}'] = _batch(f'training batch {k + 1} of 5',
                                                  train[a:b], train_labels[a:b])
    files['test_batch'] = _batch('testing batch 1 of 1', test, test_labels)
    files['batches.meta'] = {b'label_names': [c.encode() for c in CLASSES],
                             b'num_cases_per_batch': int(bounds[1] - bounds[0]),
                             b'num_vis': 3 * SIDE * SIDE}
    with atomic_path(out) as tmp, open(tmp, 'wb') as raw, \
            gzip.GzipFile(filename='', mode='wb', fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode='w') as tar:
        for name in sorted(files):
            blob = pickle.dumps(files[name], protocol=2)
            info = tarfile.TarInfo('cifar-10-batches-py/' + name)
            info.size, info.mtime, info.mode = len(blob), 0, 0o644
            tar.addfile(info, io.BytesIO(blob))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', help='output .tar.gz')
    parser.add_argument('--num-train', type=int, default=5000)
    parser.add_argument('--num-test', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_train < 5 or args.num_test < 1:
        parser.error('need --num-train >= 5 and --num-test >= 1')
    write_archive(args.out, args.num_train, args.num_test, args.seed)
    print(f'wrote {args.out}: {args.num_train} train, {args.num_test} test images')
    return 0


if __name__ == '__main__':
    sys.exit(main())
