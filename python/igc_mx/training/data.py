"""Record-file iterators for the two recipes, configured by a ``DataConfig``.

Every iterator is split across workers with ``num_parts=kv.num_workers`` and
``part_index=kv.rank``. The record files are checked first (``records``); an image that
still fails to decode during training stops the run with a RecordFileError naming the
first record whose image header is broken.
"""
import os

import mxnet as mx
import numpy as np

from ..model_files import error_line
from .records import RecordFileError, check_batch, error, find_broken_image, record_count


class CheckedIter(mx.io.DataIter):
    """The ``ImageRecordIter`` of ``path`` that ``make()`` creates, whose decoding errors
    (an MXNetError out of OpenCV, also while it is created: it reads its first batch
    then) become a RecordFileError naming the record."""

    def __init__(self, make, path, dataset):
        self.path, self.dataset = path, dataset
        self.data_iter = self._checked(make)
        super().__init__(self.data_iter.batch_size)
        self.provide_data = self.data_iter.provide_data
        self.provide_label = self.data_iter.provide_label

    def _checked(self, call):
        try:
            return call()
        except mx.base.MXNetError as err:
            mxnet_says = error_line(err)
            if 'OpenCV' not in mxnet_says and 'decod' not in mxnet_says.lower():
                raise RecordFileError(f'record file {self.path} could not be read: '
                                      f'MXNet: {mxnet_says}') from None
            found = find_broken_image(self.path)
            if found is None:
                folder = os.path.dirname(os.path.abspath(self.path))
                problem = (f'holds an image that does not decode (MXNet: {mxnet_says}); '
                           f'`igc-make-rec verify {folder}` finds it')
            else:
                record, offset, why = found
                problem = (f'holds an image that does not decode at byte {offset} '
                           f'(record {record}): {why}')
            raise error(self.path, problem, self.dataset) from None

    def reset(self):
        self._checked(self.data_iter.reset)

    def next(self):
        return self._checked(self.data_iter.next)


def _normalization(data):
    """ImageRecordIter's per-channel normalization arguments (r, g, b order)."""
    out = {}
    for channel, mean, std in zip('rgb', data.mean, data.std, strict=False):
        out[f'mean_{channel}'], out[f'std_{channel}'] = mean, std
    return out


class PadCropMirrorIter(mx.io.DataIter):
    """Augmentation type 1 on normalized batches: pad by ``pad`` pixels, take a
    random crop of the original size, mirror with probability 1/2.

    The pad value of channel c is ``(round(mean_c) - mean_c) / std_c``, i.e. the
    original's fill value ``round(mean_c)`` after normalization. MXNet 1.9.1's
    ``ImageRecordIter`` has one ``fill_value`` for all channels, hence this
    wrapper.
    """

    def __init__(self, data_iter, pad, mean, std, seed=None):
        super().__init__(data_iter.batch_size)
        self.data_iter = data_iter
        self.pad = pad
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.fill = np.array([(round(m) - m) / s for m, s in zip(mean, std, strict=True)],
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
    one would start its next pass after the records that padded its last batch (see
    ``FreshPassIter``), so every epoch gets a new one with that epoch's seeds
    (``epoch_seed``).
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


def _common(data, kv):
    """Iterator arguments shared by training and validation: size, worker's part,
    decoding threads, normalization."""
    return dict(data_shape=data.image_shape,
                num_parts=kv.num_workers if kv else 1, part_index=kv.rank if kv else 0,
                preprocess_threads=data.threads, **_normalization(data))


def checked_records(data, num_workers=1):
    """The validation batch of ``data``'s run, once its record files are checked
    (``records.record_count``) and each worker's share of them fills at least one batch.
    A validation batch the preset chose is capped at each worker's share."""
    check_batch(data.train_rec, record_count(data.train_rec, data.dataset, data.num_classes),
                data.batch_size, '--batch-size', num_workers)
    records = record_count(data.val_rec, data.dataset, data.num_classes)
    batch = data.val_batch_size
    if data.val_batch_from_preset:
        batch = max(1, min(batch, records // num_workers))
    check_batch(data.val_rec, records, batch, '--test-batch-size', num_workers)
    return batch


def _small_image_val(data, batch_size, kv):
    """CIFAR-10/100, SVHN: the record's own image, normalized, in file order."""
    return CheckedIter(lambda: FreshPassIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=data.val_rec, batch_size=batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, **_common(data, kv))), data.val_rec, data.dataset)


#: the pad of augmentation type 1 (pad, random crop of the original size, mirror)
PAD = 4


def _small_image_train(data, seed, kv):
    """CIFAR-10/100 and SVHN training: ``make(epoch)``. Augmentation types: 0 none; 1 pad 4
    + random crop + random mirror; 2 random crop + random mirror without padding (a crop of
    the record's own size, so a mirror on 32x32 records)."""
    def make(epoch):
        epoch_rng = epoch_seed(seed, epoch, kv.rank)
        train = CheckedIter(lambda: mx.io.ImageRecordIter(
            path_imgrec=data.train_rec, batch_size=data.batch_size, shuffle=True,
            seed=epoch_rng, seed_aug=epoch_rng, rand_crop=data.aug_type == 2,
            rand_mirror=data.aug_type == 2, **_common(data, kv)), data.train_rec, data.dataset)
        if data.aug_type == 1:
            train = PadCropMirrorIter(train, PAD, data.mean, data.std, seed=epoch_rng)
        return train
    return make


# Both ImageNet iterators: never below short side 256; inter_method 9 lets OpenCV pick
# the interpolation (area when shrinking, bicubic when enlarging).
IMAGENET_RESIZE = dict(min_img_size=256, inter_method=9)


def _imagenet_val(data, batch_size, kv):
    """ImageNet: scale by 0.533 (short side 480 -> 256), centre 224 crop, normalized, in
    file order."""
    return CheckedIter(lambda: FreshPassIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=data.val_rec, batch_size=batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, min_random_scale=0.533, max_random_scale=0.533,
        **IMAGENET_RESIZE, **_common(data, kv))), data.val_rec, data.dataset)


def _imagenet_train(data, seed, kv):
    """ImageNet training on records with short side 480: ``make(epoch)``. Random scale
    0.533-1 (short side 256-480), aspect 0.75-1.25, HSL jitter, random 224 crop and
    mirror; ``--aug-type 0`` turns scale, aspect and colour jitter off."""
    aug = data.aug_type > 0

    def make(epoch):
        epoch_rng = epoch_seed(seed, epoch, kv.rank)
        return CheckedIter(lambda: mx.io.ImageRecordIter(
            path_imgrec=data.train_rec, batch_size=data.batch_size, shuffle=True,
            seed=epoch_rng, seed_aug=epoch_rng, rand_crop=True, rand_mirror=True,
            min_random_scale=0.533, max_random_scale=1.0 if aug else 0.533,
            max_aspect_ratio=0.25 if aug else 0.0,
            random_h=36 if aug else 0, random_s=50 if aug else 0, random_l=50 if aug else 0,
            **IMAGENET_RESIZE, **_common(data, kv)), data.train_rec, data.dataset)
    return make


#: each preset's readers (``Preset.iterators``): (training ``make(epoch)``, validation)
READERS = {'small': (_small_image_train, _small_image_val),
           'imagenet': (_imagenet_train, _imagenet_val)}


def validation_iter(data, batch_size=None, kv=None):
    """The validation iterator of ``data``'s recipe over ``data.val_rec`` (batches of
    ``batch_size``, default ``data.val_batch_size``)."""
    return READERS[data.iterators][1](data, batch_size or data.val_batch_size, kv)


def training_iters(data, seed, kv):
    """(``make_train(epoch)``, validation iterator) of ``data``'s recipe, after the
    record files are checked (``checked_records``); ``seed`` seeds every epoch's order and
    augmentation (``epoch_seed``)."""
    val_batch = checked_records(data, kv.num_workers)
    return (READERS[data.iterators][0](data, seed, kv),
            validation_iter(data, val_batch, kv))
