"""Record files are checked before MXNet's C++ iterator opens them: a damaged file is a
one-line error naming the path, the byte and record, and the command that rebuilds it,
never an abort; an image that does not decode during training names its record."""
import os
import struct
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from igc_mx import recordio
from igc_mx.training import records

from test_training import REPO, train_model

PY = sys.executable
NUM_CLASSES = 10


def png(rng):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


def write_records(path, payloads, idx=True):
    """A .rec of ``payloads`` (and its .idx); returns the record offsets."""
    offsets, pos = [], 0
    with open(path, 'wb') as f:
        for payload in payloads:
            framed = recordio.frame_record(payload)
            offsets.append(pos)
            f.write(framed)
            pos += len(framed)
    if idx:
        with open(os.path.splitext(path)[0] + '.idx', 'w') as f:
            f.writelines(f'{i}\t{o}\n' for i, o in enumerate(offsets))
    return offsets


def image_records(n, seed=0):
    rng = np.random.default_rng(seed)
    return [recordio.pack_image_record(i, i % NUM_CLASSES, png(rng)) for i in range(n)]


@pytest.fixture
def rec_dir(tmp_path):
    """train.rec (64 images, with .idx) and test.rec (32 images) in tmp_path."""
    write_records(str(tmp_path / 'train.rec'), image_records(64, 0))
    write_records(str(tmp_path / 'test.rec'), image_records(32, 1))
    return tmp_path


def write(path, blob):
    with open(path, 'wb') as f:
        f.write(bytes(blob))


def _set_length(blob, at, word):
    blob[at + 4:at + 8] = struct.pack('<I', word)


def _length_too_small(blob, offsets):
    word = struct.unpack_from('<I', blob, offsets[3] + 4)[0] - 40
    _set_length(blob, offsets[3], word)
    return offsets[3] + 8 + word + (-word % 4), 4     # the walk lands inside a payload


def _garbage_appended(blob, offsets):
    blob += b'\x0a\x23\xd7\xce' + b'\x01'
    return len(blob) - 5, len(offsets)


def _label(value):
    def put(blob, offsets):
        struct.pack_into('<f', blob, offsets[3] + 8 + 4, value)
    return put


def _truncate(keep):
    def cut(blob, offsets):
        del blob[offsets[3] + keep:]
    return cut


#: kind -> edit(blob, offsets) of the fourth record, returning (byte, record) where the check
#: must report the damage, or None for the record's own start (offsets[3], record 3)
DAMAGE = {
    'truncated in a payload': _truncate(100),
    'truncated in a header': _truncate(5),
    'magic overwritten': lambda blob, offsets: blob.__setitem__(
        slice(offsets[3], offsets[3] + 4), b'\0\0\0\0'),
    'length too large': lambda blob, offsets: _set_length(blob, offsets[3], (1 << 29) - 1),
    'length too small': _length_too_small,
    'continuation flag out of sequence': lambda blob, offsets: _set_length(
        blob, offsets[3], struct.unpack_from('<I', blob, offsets[3] + 4)[0] | (2 << 29)),
    'garbage appended': _garbage_appended,
    'label out of range': _label(12.0),
    'fractional label': _label(2.5),
    'NaN label': _label(float('nan')),
    'several labels': lambda blob, offsets: struct.pack_into('<I', blob, offsets[3] + 8, 3),
}


def damage(path, offsets, kind):
    """Damage the record file ``path`` in one of many ways (DAMAGE); returns (byte, record)
    where the check must report it."""
    with open(path, 'rb') as f:
        blob = bytearray(f.read())
    where = DAMAGE[kind](blob, offsets)
    write(path, blob)
    return where if where is not None else (offsets[3], 3)


FRAMING = ['truncated in a payload', 'truncated in a header', 'magic overwritten',
           'length too large', 'length too small', 'continuation flag out of sequence',
           'garbage appended', 'label out of range', 'fractional label', 'NaN label',
           'several labels']


@pytest.mark.parametrize('with_idx', [True, False])
@pytest.mark.parametrize('kind', FRAMING)
def test_damaged_framing_names_path_byte_record_and_command(tmp_path, kind, with_idx):
    path = str(tmp_path / 'train.rec')
    offsets = write_records(path, image_records(12), idx=with_idx)
    byte, record = damage(path, offsets, kind)
    with pytest.raises(records.RecordFileError) as err:
        records.check_rec(path, 'cifar10', NUM_CLASSES)
    message = str(err.value)
    assert message.startswith(f'record file {path} is damaged: ')
    assert f'at byte {byte} (record {record})' in message
    assert message.endswith('; rebuild it with: igc-make-rec cifar10 '
                            f'<cifar-10-python.tar.gz> {tmp_path}')
    assert '\n' not in message


@pytest.mark.parametrize('kind,problem', [
    ('missing line', 'it lists 11 records, the .rec file holds 12'),
    ('extra line', 'it lists 13 records, the .rec file holds 12'),
    ('wrong offset', 'line 4 gives offset 17, where no record starts'),
    ('not numbers', "line 2 is not 'key<TAB>offset'"),
    ('repeated key', 'line 5 repeats key 0'),
])
def test_index_that_does_not_match_its_records(tmp_path, kind, problem):
    path = str(tmp_path / 'train.rec')
    offsets = write_records(path, image_records(12))
    lines = [f'{i}\t{o}\n' for i, o in enumerate(offsets)]
    if kind == 'missing line':
        del lines[5]
    elif kind == 'extra line':
        lines.append(f'12\t{offsets[2]}\n')
    elif kind == 'wrong offset':
        lines[3] = '3\t17\n'
    elif kind == 'not numbers':
        lines[1] = f'1 {offsets[1]}\n'
    else:
        lines[4] = f'0\t{offsets[4]}\n'
    (tmp_path / 'train.idx').write_text(''.join(lines))
    with pytest.raises(records.RecordFileError) as err:
        records.check_rec(path, 'cifar10', NUM_CLASSES)
    assert str(err.value) == (
        f"record file {path} has an index {tmp_path / 'train.idx'} that does not match it: "
        f'{problem}; rebuild it with: igc-make-rec cifar10 <cifar-10-python.tar.gz> {tmp_path}')


def test_the_rebuild_command_is_the_manifests(rec_dir):
    (rec_dir / 'manifest.json').write_text(f'{{"command": "igc-make-rec cifar10 a.tar.gz {rec_dir} '
                                           '--seed 3"}')
    path = str(rec_dir / 'train.rec')
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) - 3)
    with pytest.raises(records.RecordFileError,
                       match=f'; rebuild it with: igc-make-rec cifar10 a.tar.gz {rec_dir} '
                             '--seed 3$'):
        records.check_rec(path)


def test_a_sampled_image_that_does_not_decode(tmp_path):
    path = str(tmp_path / 'train.rec')
    payloads = image_records(12)
    payloads[0] = recordio.pack_image_record(0, 0, b'not an image at all')
    write_records(path, payloads)
    with pytest.raises(records.RecordFileError) as err:
        records.check_rec(path, 'cifar10', NUM_CLASSES)
    assert str(err.value).startswith(f'record file {path} holds an image that does not decode at '
                                     'byte 0 (record 0); rebuild it with: ')


def test_image_that_fails_during_training_names_its_record(rec_dir, tmp_path):
    # record 5 is not among the images check_rec decodes; its PNG header is broken
    payloads = image_records(64)
    image = bytearray(payloads[5])
    image[recordio.IR_HEADER.size + 12:recordio.IR_HEADER.size + 16] = b'XXXX'  # not IHDR
    payloads[5] = bytes(image)
    offsets = write_records(str(rec_dir / 'train.rec'), payloads)
    picks = np.linspace(0, 63, records.DECODE_SAMPLE).round()
    assert 5 not in picks
    with pytest.raises(SystemExit) as exit_:
        train_model.main(['--network', 'resnet', '--depth', '8', '--primary-partition', '4',
                          '--data-dir', str(rec_dir), '--batch-size', '16',
                          '--num-epochs', '1', '--log-dir', str(tmp_path / 'log'),
                          '--data-nthreads', '1', '--rand-seed', '0'])
    assert str(exit_.value.code) == (
        f"error: record file {rec_dir / 'train.rec'} holds an image that does not decode at "
        f'byte {offsets[5]} (record 5): PNG without an IHDR chunk first; rebuild it with: '
        f'igc-make-rec cifar10 <cifar-10-python.tar.gz> {rec_dir}')


def test_train_script_on_a_truncated_file_exits_with_one_line(rec_dir, tmp_path):
    path = rec_dir / 'train.rec'
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) * 2 // 3)
    proc = subprocess.run([PY, str(REPO / 'train_model.py'), '--data-dir', str(rec_dir),
                           '--network', 'resnet', '--depth', '8', '--primary-partition', '4',
                           '--batch-size', '16', '--num-epochs', '1', '--data-nthreads', '1',
                           '--log-dir', str(tmp_path / 'log')],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f'error: record file {path} is damaged: '), lines[-3:]
    assert 'terminate called' not in proc.stderr and 'Traceback' not in proc.stderr


FUZZ = textwrap.dedent('''
    import os, random, sys
    import mxnet as mx
    import igc_mx
    from igc_mx.training import data, records
    src, work = sys.argv[1], sys.argv[2]
    blob = open(src, 'rb').read()
    rng = random.Random(0)
    for case in range(int(sys.argv[3])):
        damaged = bytearray(blob)
        how = case % 3
        if how == 0:      # truncated anywhere
            del damaged[rng.randrange(1, len(blob)):]
        elif how == 1:    # a header word of a record overwritten with random bytes
            pos = 4 * rng.randrange(len(blob) // 4)
            damaged[pos:pos + 4] = rng.randbytes(4)
        else:             # a random run of bytes overwritten
            pos = rng.randrange(len(blob))
            damaged[pos:pos + 64] = rng.randbytes(64)[:len(damaged) - pos]
        path = os.path.join(work, f'case{case}.rec')
        with open(path, 'wb') as f:
            f.write(bytes(damaged))
        try:
            records.check_rec(path, 'cifar10', 10)
        except records.RecordFileError:
            print('refused', case, flush=True)
            continue
        try:
            it = data.CheckedIter(lambda: mx.io.ImageRecordIter(
                path_imgrec=path, data_shape=(3, 32, 32), batch_size=8, preprocess_threads=1),
                path, 'cifar10')
            for _ in it:
                pass
            print('read', case, flush=True)
        except records.RecordFileError:
            print('refused while reading', case, flush=True)
''')


def test_randomly_damaged_files_never_abort_the_process(tmp_path):
    """Whatever the damage, the file is refused with a RecordFileError or MXNet reads it:
    the process never dies in MXNet's C++ reader."""
    src = str(tmp_path / 'src.rec')
    write_records(src, image_records(24), idx=False)
    cases = 60
    proc = subprocess.run([PY, '-c', FUZZ, src, str(tmp_path), str(cases)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
    outcomes = proc.stdout.split()
    assert len(proc.stdout.splitlines()) == cases
    assert outcomes.count('refused') > cases // 2
