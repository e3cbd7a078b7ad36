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


def epoch_seed(seed, epoch, rank=0):
    """The seed of one epoch of one worker, from (seed, epoch, rank) alone, as a
    distributed sampler's ``set_epoch`` does: an epoch reads the same order and draws
    the same augmentation whether the run started at epoch 0 or resumed before it."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]) >> 2


class EpochIter(mx.io.DataIter):
    """The training stream, one fresh iterator per epoch: ``make(epoch)`` builds it, and
    ``start(epoch)``, when given, runs before the epoch's first batch.

    ``Module.fit`` calls ``reset()`` once at the end of every epoch, which moves to the
    next epoch. ``ImageRecordIter`` takes its seeds only when it is created, and a reset
    one would start its next pass after the records that padded its last batch, so
    every epoch gets a new one with that epoch's seeds (``epoch_seed``).
    """

    def __init__(self, make, begin_epoch=0, start=None):
        self._make, self._start = make, start
        self.epoch = begin_epoch
        self._iter = make(begin_epoch)
        self._started = False
        super().__init__(self._iter.batch_size)
        self.provide_data = self._iter.provide_data
        self.provide_label = self._iter.provide_label

    def reset(self):
        self.epoch += 1
        self._iter = None   # frees the old iterator and its threads
        self._started = False

    def next(self):
        if not self._started:
            self._started = True
            if self._start is not None:
                self._start(self.epoch)
        if self._iter is None:
            self._iter = self._make(self.epoch)
        return self._iter.next()


def small_image_iters(args, kv):
    """CIFAR-10/100 and SVHN (train_model.py): (``make_train(epoch)``, validation
    iterator). Augmentation types: 0 none; 1 pad 4 + random crop + random mirror;
    2 random crop + random mirror without padding (a crop of the record's own size,
    so a mirror on 32x32 records)."""
    train_path = check_rec(os.path.join(args.data_dir, args.train_dataset), args.dataset)
    val_path = check_rec(os.path.join(args.data_dir, args.val_dataset), args.dataset)
    common = dict(data_shape=(3, args.data_shape, args.data_shape),
                  num_parts=kv.num_workers, part_index=kv.rank,
                  preprocess_threads=args.data_nthreads, **_normalize_args(args))

    def make_train(epoch):
        seed = epoch_seed(args.rand_seed, epoch, kv.rank)
        train = mx.io.ImageRecordIter(
            path_imgrec=train_path, batch_size=args.batch_size, shuffle=True,
            seed=seed, seed_aug=seed, rand_crop=args.aug_type == 2,
            rand_mirror=args.aug_type == 2, **common)
        if args.aug_type == 1:
            train = PadCropMirrorIter(train, 4, args.mean_rgb, args.std_rgb, seed=seed)
        return train

    val = mx.io.ImageRecordIter(
        path_imgrec=val_path, batch_size=args.test_batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, **common)
    return make_train, val


def imagenet_iters(args, kv):
    """ImageNet (train_imagenet.py), on records with short side 480: (``make_train(epoch)``,
    validation iterator). Training: random scale 0.533-1 (short side 256-480), aspect
    0.75-1.25, HSL jitter, random 224 crop and mirror; validation scales by 0.533
    (480 -> 256) and takes the centre 224 crop. ``--aug-type 0`` turns scale, aspect and
    colour jitter off."""
    train_path = check_rec(os.path.join(args.data_dir, args.train_dataset), 'imagenet')
    val_path = check_rec(os.path.join(args.data_dir, args.val_dataset), 'imagenet')
    aug = args.aug_type > 0
    common = dict(data_shape=(3, args.data_shape, args.data_shape),
                  num_parts=kv.num_workers, part_index=kv.rank,
                  preprocess_threads=args.data_nthreads, min_img_size=256,
                  inter_method=9, **_normalize_args(args))

    def make_train(epoch):
        seed = epoch_seed(args.rand_seed, epoch, kv.rank)
        return mx.io.ImageRecordIter(
            path_imgrec=train_path, batch_size=args.batch_size, shuffle=True,
            seed=seed, seed_aug=seed, rand_crop=True, rand_mirror=True,
            min_random_scale=0.533, max_random_scale=1.0 if aug else 0.533,
            max_aspect_ratio=0.25 if aug else 0.0,
            random_h=36 if aug else 0, random_s=50 if aug else 0, random_l=50 if aug else 0,
            **common)

    val = mx.io.ImageRecordIter(
        path_imgrec=val_path, batch_size=args.test_batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False,
        min_random_scale=0.533, max_random_scale=0.533, **common)
    return make_train, val
