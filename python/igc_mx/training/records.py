"""Record files checked before MXNet opens them.

MXNet's own error for a missing or broken record file is a C++ abort message, so the
training and validation files are walked first: the RecordIO framing and image header of
every record (one small read per record), the ``.idx`` beside the file, and a few images
spread over the file, which must decode. Every problem is a ``RecordFileError`` naming the
file, the byte and record, and the ``igc-make-rec`` command that rebuilds it. This module
needs no MXNet.
"""
import json
import os

import cv2
import numpy as np

from ..image_headers import ImageHeaderError, TruncatedHeader, image_info
from ..recordio import (
    IR_HEADER,
    RecordIOError,
    check_index,
    read_record,
    scan_records,
    unpack_image_record,
)

MAKE_REC_HINT = {
    'cifar10': 'igc-make-rec cifar10 <cifar-10-python.tar.gz> {dir}',
    'cifar100': 'igc-make-rec cifar100 <cifar-100-python.tar.gz> {dir}',
    'svhn': 'igc-make-rec svhn <dir with train_32x32.mat, extra_32x32.mat, '
            'test_32x32.mat> {dir}',
    'imagenet': 'igc-make-rec imagenet <ILSVRC2012 image dir> {dir}',
    'fashion-mnist': 'igc-make-rec fashion-mnist /usr/share/datasets/fashion-mnist {dir}',
    'mnist': 'igc-make-rec mnist <dir with the four MNIST IDX files> {dir}',
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


def error(path, problem, dataset, verb='rebuild'):
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
        raise error(path, what, dataset, 'create')
    if os.path.getsize(path) == 0:
        raise error(path, 'is empty', dataset, 'create')
    try:
        offsets = scan_records(path, num_classes)
    except OSError as err:
        raise error(path, f'cannot be read ({err})', dataset) from None
    except RecordIOError as err:
        if err.offset == 0 and 'magic' in err.problem:
            raise error(path, 'is not an MXNet RecordIO file', dataset, 'create') from None
        raise error(path, f'is damaged: {err}', dataset) from None
    idx = os.path.splitext(path)[0] + '.idx'
    if os.path.exists(idx):
        try:
            check_index(idx, offsets)
        except (OSError, ValueError) as err:
            raise error(path, f'has an index {idx} that does not match it: {err}',
                         dataset) from None
    picks = np.unique(np.linspace(0, len(offsets) - 1, min(DECODE_SAMPLE, len(offsets)))
                      .round().astype(int))
    for record in picks:
        image = unpack_image_record(read_record(path, offsets[record]))[3]
        if cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR) is None:
            raise error(path, f'holds an image that does not decode at byte {offsets[record]} '
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


def count_records(rec_path):
    """Number of records listed in the ``.idx`` beside ``rec_path``, or None."""
    idx = os.path.splitext(rec_path)[0] + '.idx'
    try:
        with open(idx) as f:
            return sum(1 for line in f if line.strip())
    except (OSError, UnicodeDecodeError):
        return None
