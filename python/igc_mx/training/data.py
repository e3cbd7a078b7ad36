"""Record-file iterators for the two recipes.

Every iterator is split across workers with ``num_parts=kv.num_workers`` and
``part_index=kv.rank``. Record files are checked before MXNet opens them, since
MXNet's own error for a missing or broken file is a C++ abort message: the RecordIO
framing and image headers of every record (a walk over the headers, one small read
per record), the ``.idx`` beside it, and that a few images spread over the file
decode. An image that still fails to decode during training stops the run with a
RecordFileError naming the first record whose image header is broken.
"""
import json
import os

import cv2
import mxnet as mx
import numpy as np

from ..image_headers import ImageHeaderError, TruncatedHeader, image_info
from ..model_files import error_line
from ..recordio import (
    IR_HEADER,
    RECORD_MAGIC,
    RecordIOError,
    check_index,
    read_record,
    scan_records,
    unpack_image_record,
)

RECORDIO_MAGIC = RECORD_MAGIC   # the name this module used for it

MAKE_REC_HINT = {
    'cifar10': 'igc-make-rec cifar10 <cifar-10-python.tar.gz> {dir}',
    'cifar100': 'igc-make-rec cifar100 <cifar-100-python.tar.gz> {dir}',
    'svhn': 'igc-make-rec svhn <dir with train_32x32.mat, extra_32x32.mat, '
            'test_32x32.mat> {dir}',
    'imagenet': 'igc-make-rec imagenet <ILSVRC2012 image dir> {dir}',
}
DECODE_SAMPLE = 8   # images decoded by check_rec, spread evenly over the file
# A file whose images all have sound headers while one does not decode is searched by
# decoding every image when it has at most this many records (CIFAR, SVHN's test set).
LOCATE_BY_DECODING = 100_000


class RecordFileError(RuntimeError):
    """A training or validation record file is missing, empty, damaged or unreadable."""


def rebuild_command(path, dataset='cifar10'):
    """The command that (re)builds the record files of ``path``'s folder: the one its
    igc-make-rec manifest recorded, else the dataset's generic one."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        with open(os.path.join(directory, 'manifest.json'), encoding='utf-8') as f:
            command = json.load(f).get('command')
    except (OSError, ValueError, AttributeError):
        command = None
    if isinstance(command, str) and command.startswith('igc-make-rec '):
        return command
    return MAKE_REC_HINT.get(dataset, MAKE_REC_HINT['cifar10']).format(dir=directory)


def _error(path, problem, dataset, verb='rebuild'):
    return RecordFileError(f'record file {path} {problem}; {verb} it with: '
                           f'{rebuild_command(path, dataset)}')


def check_rec(path, dataset='cifar10', num_classes=None):
    """``path``, once ``record_count`` found nothing wrong with it."""
    record_count(path, dataset, num_classes)
    return path


def record_count(path, dataset='cifar10', num_classes=None):
    """The number of records of ``path``. RecordFileError naming ``path``, what is wrong
    (with the byte offset and record number of a damaged record) and the command that
    rebuilds it, unless ``path`` is a complete MXNet RecordIO file of single-label image
    records (labels in 0..num_classes-1 when given), its ``.idx`` (if any) lists exactly
    its records, and a sample of its images decodes."""
    if not os.path.isfile(path):
        what = 'is not a regular file' if os.path.exists(path) else 'does not exist'
        raise _error(path, what, dataset, 'create')
    if os.path.getsize(path) == 0:
        raise _error(path, 'is empty', dataset, 'create')
    try:
        offsets = scan_records(path, num_classes)
    except OSError as err:
        raise _error(path, f'cannot be read ({err})', dataset) from None
    except RecordIOError as err:
        if err.offset == 0 and 'magic' in err.problem:
            raise _error(path, 'is not an MXNet RecordIO file', dataset, 'create') from None
        raise _error(path, f'is damaged: {err}', dataset) from None
    idx = os.path.splitext(path)[0] + '.idx'
    if os.path.exists(idx):
        try:
            check_index(idx, offsets)
        except (OSError, ValueError) as err:
            raise _error(path, f'has an index {idx} that does not match it: {err}',
                         dataset) from None
    picks = np.unique(np.linspace(0, len(offsets) - 1, min(DECODE_SAMPLE, len(offsets)))
                      .round().astype(int))
    for record in picks:
        image = unpack_image_record(read_record(path, offsets[record]))[3]
        if cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR) is None:
            raise _error(path, f'holds an image that does not decode at byte {offsets[record]} '
                               f'(record {record})', dataset)
    return len(offsets)


def check_batch(path, records, batch_size, option, num_workers):
    """RecordFileError unless every worker's part of ``path`` fills a batch:
    ``ImageRecordIter`` stops with a C++ check otherwise."""
    if batch_size > records // num_workers:
        each = f' that each of the {num_workers} workers reads' if num_workers > 1 else ''
        raise RecordFileError(f'{option} {batch_size} is larger than the '
                              f'{records // num_workers} records of {path}{each}')


def _image_head(f, offset, size):
    """The first ``size`` bytes of the image of the record at ``offset``."""
    f.seek(offset)
    head = f.read(8 + IR_HEADER.size + 4 + size)
    if len(head) < 8 + IR_HEADER.size or (int.from_bytes(head[4:8], 'little') >> 29) != 0:
        return unpack_image_record(read_record(f.name, offset))[3][:size]
    flag = IR_HEADER.unpack_from(head, 8)[0]
    return head[8 + IR_HEADER.size + 4 * flag:]


def find_broken_image(path):
    """(record, offset, problem) of the first record of ``path`` whose image does not
    decode, or None: first by its header (a few KB read per record), then, in files of
    up to LOCATE_BY_DECODING records, by decoding every image."""
    offsets = scan_records(path)
    with open(path, 'rb') as f:
        for record, offset in enumerate(offsets):
            size = 4096
            while True:
                try:
                    image_info(_image_head(f, offset, size))
                    break
                except TruncatedHeader:
                    if size >= 1 << 22:
                        return record, offset, 'image header longer than 4 MB'
                    size *= 16
                except ImageHeaderError as err:
                    return record, offset, str(err)
    if len(offsets) > LOCATE_BY_DECODING:
        return None
    for record, offset in enumerate(offsets):
        image = unpack_image_record(read_record(path, offset))[3]
        if cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR) is None:
            return record, offset, 'its image data is damaged'
    return None


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
            raise _error(self.path, problem, self.dataset) from None

    def reset(self):
        self._checked(self.data_iter.reset)

    def next(self):
        return self._checked(self.data_iter.next)


def count_records(rec_path):
    """Number of records listed in the ``.idx`` beside ``rec_path``, or None."""
    idx = os.path.splitext(rec_path)[0] + '.idx'
    try:
        with open(idx) as f:
            return sum(1 for line in f if line.strip())
    except (OSError, UnicodeDecodeError):
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
        self.fill = np.array([(round(m) - m) / s for m, s in zip(mean_rgb, std_rgb, strict=True)],
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


def _common(args, kv):
    """Iterator arguments shared by training and validation: size, worker's part,
    decoding threads, normalization."""
    return dict(data_shape=(3, args.data_shape, args.data_shape),
                num_parts=kv.num_workers if kv else 1, part_index=kv.rank if kv else 0,
                preprocess_threads=args.data_nthreads, **_normalize_args(args))


def checked_paths(args, kv, dataset):
    """The training and validation record files of ``args``, checked (``check_rec``), and
    each worker's share of them at least one batch. A test batch the preset chose
    (``args.cap_test_batch``) is first capped at each worker's share."""
    train = os.path.join(args.data_dir, args.train_dataset)
    check_batch(train, record_count(train, dataset, args.num_classes), args.batch_size,
                '--batch-size', kv.num_workers)
    val = os.path.join(args.data_dir, args.val_dataset)
    records = record_count(val, dataset, args.num_classes)
    if getattr(args, 'cap_test_batch', False):
        args.test_batch_size = max(1, min(args.test_batch_size, records // kv.num_workers))
    check_batch(val, records, args.test_batch_size, '--test-batch-size', kv.num_workers)
    return train, val


def small_image_val_iter(args, path, kv=None):
    """The CIFAR-10/100 and SVHN validation iterator: the record's own 32x32 image,
    normalized, in file order, batches of ``args.test_batch_size``."""
    return CheckedIter(lambda: FreshPassIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=path, batch_size=args.test_batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, **_common(args, kv))), path,
        getattr(args, 'dataset', 'cifar10'))


def small_image_iters(args, kv):
    """CIFAR-10/100 and SVHN (train_model.py): (``make_train(epoch)``, validation
    iterator). Augmentation types: 0 none; 1 pad 4 + random crop + random mirror;
    2 random crop + random mirror without padding (a crop of the record's own size,
    so a mirror on 32x32 records)."""
    train_path, val_path = checked_paths(args, kv, args.dataset)

    def make_train(epoch):
        seed = epoch_seed(args.rand_seed, epoch, kv.rank)
        train = CheckedIter(lambda: mx.io.ImageRecordIter(
            path_imgrec=train_path, batch_size=args.batch_size, shuffle=True,
            seed=seed, seed_aug=seed, rand_crop=args.aug_type == 2,
            rand_mirror=args.aug_type == 2, **_common(args, kv)), train_path, args.dataset)
        if args.aug_type == 1:
            train = PadCropMirrorIter(train, 4, args.mean_rgb, args.std_rgb, seed=seed)
        return train

    return make_train, small_image_val_iter(args, val_path, kv)


# Both ImageNet iterators: never below short side 256; inter_method 9 lets OpenCV pick
# the interpolation (area when shrinking, bicubic when enlarging).
IMAGENET_RESIZE = dict(min_img_size=256, inter_method=9)


def imagenet_val_iter(args, path, kv=None):
    """The ImageNet validation iterator: scale by 0.533 (short side 480 -> 256), centre
    224 crop, normalized, in file order, batches of ``args.test_batch_size``."""
    return CheckedIter(lambda: FreshPassIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=path, batch_size=args.test_batch_size, shuffle=False,
        rand_crop=False, rand_mirror=False, min_random_scale=0.533, max_random_scale=0.533,
        **IMAGENET_RESIZE, **_common(args, kv))), path, 'imagenet')


def imagenet_iters(args, kv):
    """ImageNet (train_imagenet.py), on records with short side 480: (``make_train(epoch)``,
    validation iterator). Training: random scale 0.533-1 (short side 256-480), aspect
    0.75-1.25, HSL jitter, random 224 crop and mirror; validation as
    ``imagenet_val_iter``. ``--aug-type 0`` turns scale, aspect and colour jitter off."""
    train_path, val_path = checked_paths(args, kv, 'imagenet')
    aug = args.aug_type > 0

    def make_train(epoch):
        seed = epoch_seed(args.rand_seed, epoch, kv.rank)
        return CheckedIter(lambda: mx.io.ImageRecordIter(
            path_imgrec=train_path, batch_size=args.batch_size, shuffle=True,
            seed=seed, seed_aug=seed, rand_crop=True, rand_mirror=True,
            min_random_scale=0.533, max_random_scale=1.0 if aug else 0.533,
            max_aspect_ratio=0.25 if aug else 0.0,
            random_h=36 if aug else 0, random_s=50 if aug else 0, random_l=50 if aug else 0,
            **IMAGENET_RESIZE, **_common(args, kv)), train_path, 'imagenet')

    return make_train, imagenet_val_iter(args, val_path, kv)


#: the validation iterator of each dataset's recipe
VAL_ITERS = {'cifar10': small_image_val_iter, 'cifar100': small_image_val_iter,
             'svhn': small_image_val_iter, 'imagenet': imagenet_val_iter}
