"""Record-file iterators for the two recipes.

Every iterator is split across workers with ``num_parts=kv.num_workers`` and
``part_index=kv.rank``. Record files are checked before MXNet opens them, since
MXNet's own error for a missing or broken file is a C++ abort message.
"""
import os
import struct

import mxnet as mx
import numpy as np

from ..recordio import RECORD_MAGIC

RECORDIO_MAGIC = RECORD_MAGIC   # the name this module used for it

MAKE_REC_HINT = {
    'cifar10': 'igc-make-rec cifar10 <cifar-10-python.tar.gz> {dir}',
    'cifar100': 'igc-make-rec cifar100 <cifar-100-python.tar.gz> {dir}',
    'svhn': 'igc-make-rec svhn <dir with train_32x32.mat, extra_32x32.mat, '
            'test_32x32.mat> {dir}',
    'imagenet': 'igc-make-rec imagenet <ILSVRC2012 image dir> {dir}',
}


class RecordFileError(RuntimeError):
    """A training or validation record file is missing, empty or unreadable."""


def check_rec(path, dataset='cifar10'):
    """Raise RecordFileError naming ``path`` and the command that creates it,
    unless ``path`` is a readable, non-empty MXNet RecordIO file."""
    hint = MAKE_REC_HINT.get(dataset, MAKE_REC_HINT['cifar10']).format(
        dir=os.path.dirname(os.path.abspath(path)))
    if not os.path.isfile(path):
        problem = 'does not exist'
    elif os.path.getsize(path) == 0:
        problem = 'is empty'
    else:
        try:
            with open(path, 'rb') as f:
                head = f.read(4)
        except OSError as err:
            problem = 'cannot be read (%s)' % err
        else:
            if len(head) < 4 or struct.unpack('<I', head)[0] != RECORD_MAGIC:
                problem = 'is not an MXNet RecordIO file'
            else:
                return path
    raise RecordFileError('record file %s %s; create it with: %s' % (path, problem, hint))


def count_records(rec_path):
    """Number of records listed in the ``.idx`` beside ``rec_path``, or None."""
    idx = os.path.splitext(rec_path)[0] + '.idx'
    try:
        with open(idx) as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def _normalize_args(args):
    return dict(mean_r=args.mean_rgb[0], mean_g=args.mean_rgb[1], mean_b=args.mean_rgb[2],
                std_r=args.std_rgb[0], std_g=args.std_rgb[1], std_b=args.std_rgb[2])


class PadCropMirrorIter(mx.io.DataIter):
    """Augmentation type 1 on normalized batches: pad by ``pad`` pixels, take a
    random crop of the original size, mirror with probability 1/2.

    The pad value of channel c is ``(round(mean_c) - mean_c) / std_c``, i.e. the
    original's fill value ``round(mean_c)`` after normalization. MXNet 1.9.1's
    ``ImageRecordIter`` has one ``fill_value`` for all channels, hence this
    wrapper.
    """

    def __init__(self, data_iter, pad, mean_rgb, std_rgb, seed=None):
        super().__init__(data_iter.batch_size)
        self.data_iter = data_iter
        self.pad = pad
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.fill = np.array([(round(m) - m) / s for m, s in zip(mean_rgb, std_rgb)],
                             dtype=np.float32)
        self.rng = np.random.RandomState(seed)

    def reset(self):
        self.data_iter.reset()

    def augment(self, x):
        n, c, h, w = x.shape
        p = self.pad
        padded = np.empty((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype)
        padded[...] = self.fill[:c].reshape(1, c, 1, 1)
        padded[:, :, p:p + h, p:p + w] = x
        out = np.empty_like(x)
        ys = self.rng.randint(0, 2 * p + 1, size=n)
        xs = self.rng.randint(0, 2 * p + 1, size=n)
        flips = self.rng.rand(n) < 0.5
        for i in range(n):
            crop = padded[i, :, ys[i]:ys[i] + h, xs[i]:xs[i] + w]
            out[i] = crop[:, :, ::-1] if flips[i] else crop
        return out

    def next(self):
        batch = self.data_iter.next()
        data = self.augment(batch.data[0].asnumpy())
        return mx.io.DataBatch(data=[mx.nd.array(data, ctx=batch.data[0].context)],
                               label=batch.label, pad=batch.pad, index=batch.index,
                               provide_data=self.provide_data,
                               provide_label=self.provide_label)


class FreshPassIter(mx.io.DataIter):
    """A new iterator from ``make()`` for every pass: each pass reads every record once.

    MXNet 1.9.1's ``ImageRecordIter`` fills its last batch with records from the start
    of the file (``batch.pad`` says how many) and then begins its next pass after those
    records; when its prefetcher has already run to the end, even the pass after a
    ``reset()`` does. Validated after every epoch, each pass from the second on would
    score a different, smaller set of images. Its first pass is always complete.
    """

    def __init__(self, make):
        self._make = make
        self._iter = make()
        self._fresh = True
        super().__init__(self._iter.batch_size)
        self.provide_data = self._iter.provide_data
        self.provide_label = self._iter.provide_label

    def reset(self):
        if not self._fresh:
            self._iter = None   # frees the old iterator and its threads first
            self._iter = self._make()
            self._fresh = True

    def next(self):
        self._fresh = False
        return self._iter.next()


def _common(args, kv):
    """Iterator arguments shared by training and validation: size, worker's part,
    decoding threads, normalization."""
    return dict(data_shape=(3, args.data_shape, args.data_shape),
                num_parts=kv.num_workers if kv else 1, part_index=kv.rank if kv else 0,
                preprocess_threads=args.data_nthreads, **_normalize_args(args))


def small_image_val_iter(args, path, kv=None):
    """The CIFAR-10/100 and SVHN validation iterator: the record's own 32x32 image,
    normalized, in file order, batches of ``args.test_batch_size``."""
    return FreshPassIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=path, batch_size=args.test_batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, **_common(args, kv)))


def small_image_iters(args, kv):
    """CIFAR-10/100 and SVHN (train_model.py). Augmentation types:
    0 none; 1 pad 4 + random crop + random mirror; 2 random crop + random mirror
    without padding (a crop of the record's own size, so a mirror on 32x32 records)."""
    train_path = check_rec(os.path.join(args.data_dir, args.train_dataset), args.dataset)
    val_path = check_rec(os.path.join(args.data_dir, args.val_dataset), args.dataset)
    train = mx.io.ImageRecordIter(
        path_imgrec=train_path, batch_size=args.batch_size, shuffle=True,
        seed=args.rand_seed, rand_crop=args.aug_type == 2, rand_mirror=args.aug_type == 2,
        **_common(args, kv))
    if args.aug_type == 1:
        train = PadCropMirrorIter(train, 4, args.mean_rgb, args.std_rgb,
                                  seed=args.rand_seed + 7919 * kv.rank)
    return train, small_image_val_iter(args, val_path, kv)


# Both ImageNet iterators: never below short side 256; inter_method 9 lets OpenCV pick
# the interpolation (area when shrinking, bicubic when enlarging).
IMAGENET_RESIZE = dict(min_img_size=256, inter_method=9)


def imagenet_val_iter(args, path, kv=None):
    """The ImageNet validation iterator: scale by 0.533 (short side 480 -> 256), centre
    224 crop, normalized, in file order, batches of ``args.test_batch_size``."""
    return FreshPassIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=path, batch_size=args.test_batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, min_random_scale=0.533, max_random_scale=0.533,
        **IMAGENET_RESIZE, **_common(args, kv)))


def imagenet_iters(args, kv):
    """ImageNet (train_imagenet.py), on records with short side 480: random
    scale 0.533-1 (short side 256-480), aspect 0.75-1.25, HSL jitter, random
    224 crop and mirror; validation as ``imagenet_val_iter``. ``--aug-type 0`` turns
    scale, aspect and colour jitter off."""
    train_path = check_rec(os.path.join(args.data_dir, args.train_dataset), 'imagenet')
    val_path = check_rec(os.path.join(args.data_dir, args.val_dataset), 'imagenet')
    aug = args.aug_type > 0
    train = mx.io.ImageRecordIter(
        path_imgrec=train_path, batch_size=args.batch_size, shuffle=True,
        seed=args.rand_seed, rand_crop=True, rand_mirror=True,
        min_random_scale=0.533, max_random_scale=1.0 if aug else 0.533,
        max_aspect_ratio=0.25 if aug else 0.0,
        random_h=36 if aug else 0, random_s=50 if aug else 0, random_l=50 if aug else 0,
        **IMAGENET_RESIZE, **_common(args, kv))
    return train, imagenet_val_iter(args, val_path, kv)


#: the validation iterator of each dataset's recipe
VAL_ITERS = {'cifar10': small_image_val_iter, 'cifar100': small_image_val_iter,
             'svhn': small_image_val_iter, 'imagenet': imagenet_val_iter}
