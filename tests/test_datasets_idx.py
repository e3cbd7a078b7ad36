"""igc-make-rec mnist / fashion-mnist: the four IDX files (gzipped or not) to grey PNG
records, and MXNet's ImageRecordIter reading them.

References are independent of the tool: IDX files written here (or the real
Fashion-MNIST download) parsed with numpy, MXNet's RecordIO reader and ImageRecordIter,
cv2's decoder.
"""
import gzip
import hashlib
import json
import shutil
import struct

import cv2
import mxnet as mx
import numpy as np
import pytest

from igc_mx.tools import make_rec

from conftest import read_idx

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
RECORD_FILES = [f"{s}.{e}" for s in ("train", "test") for e in ("rec", "idx", "lst")]


def idx_bytes(array, type_byte=0x08):
    """An IDX file of ``array``: two zero bytes, the type, the dimension count, the sizes."""
    array = np.asarray(array, np.uint8)
    return (bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())


def write_source(folder, arrays, gz=True):
    """The four IDX files of ``arrays`` ({split: (images, labels)}) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images_name, labels_name) in NAMES.items():
        for name, array in ((images_name, arrays[split][0]), (labels_name, arrays[split][1])):
            data = idx_bytes(array)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
    return folder


def records(out_dir, split):
    """{key: (label, header id, decoded image)} and the keys in file order, through MXNet's
    reader and cv2.imdecode(IMREAD_UNCHANGED)."""
    reader = mx.recordio.MXIndexedRecordIO(str(out_dir / f"{split}.idx"),
                                           str(out_dir / f"{split}.rec"), "r")
    found = {}
    for key in reader.keys:
        header, image = mx.recordio.unpack(reader.read_idx(key))
        found[key] = (header.label, header.id,
                      cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED))
    reader.close()
    return found, list(found)


def build(dataset, source, out, *options):
    return make_rec.main([dataset, str(source), str(out), "--workers", "1", "--quiet",
                          *options])


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(28)
    return {split: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                    rng.integers(0, 10, n, dtype=np.uint8))
            for split, n in (("train", 40), ("test", 12))}


@pytest.fixture(scope="module")
def source(arrays, tmp_path_factory):
    return write_source(tmp_path_factory.mktemp("idx") / "src", arrays)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx_out") / "rec"
    assert build("mnist", source, out) == 0
    return out


def test_grey_png_records_hold_the_exact_pixels_labels_and_order(arrays, source, built):
    for split, (images, labels) in arrays.items():
        found, order = records(built, split)
        assert sorted(found) == list(range(len(labels)))
        for key, (label, header_id, image) in found.items():
            assert label == labels[key] and header_id == key
            assert image.shape == (28, 28)            # one channel: a grey PNG
            np.testing.assert_array_equal(image, images[key])
        expected = (np.random.Generator(np.random.PCG64(0)).permutation(len(labels))
                    if split == "train" else np.arange(len(labels)))
        assert order == expected.tolist()
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["classes"] == [str(d) for d in range(10)] and manifest["num_classes"] == 10
    assert manifest["splits"]["test"]["class_counts"] == \
        np.bincount(arrays["test"][1], minlength=10).tolist()
    assert manifest["recipe"]["decode_flag"] == "cv2.IMREAD_GRAYSCALE (1 channel)"
    files = {f["name"]: f["sha256"] for f in manifest["source"]["files"]}
    assert files == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in sorted(source.iterdir())}
    first = (built / "train.lst").read_text().splitlines()[0].split("\t")
    key = int(np.random.Generator(np.random.PCG64(0)).permutation(40)[0])
    assert first == [str(key), f"{arrays['train'][1][key]:f}", f"train-images-idx3-ubyte.gz/{key}"]


def test_unpacked_files_and_more_workers_give_the_same_bytes(arrays, built, tmp_path):
    """Byte reproducibility, shown on a small source: a rebuild from the unpacked files
    with two workers equals the first build in every record file."""
    raw = write_source(tmp_path / "raw", arrays, gz=False)
    out = tmp_path / "again"
    assert make_rec.main(["fashion-mnist", str(raw), str(out), "--workers", "2", "--quiet"]) == 0
    for name in RECORD_FILES:
        if name.endswith(".lst"):   # its sources name the files: .gz or not
            assert (out / name).read_text() == (built / name).read_text().replace(".gz/", "/")
        else:
            assert (out / name).read_bytes() == (built / name).read_bytes(), name
    assert json.loads((out / "manifest.json").read_text())["classes"][0] == "T-shirt/top"


def test_verify_stats_and_the_source_check(arrays, source, built, tmp_path, capsys):
    assert make_rec.main(["verify", str(built), "--workers", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"verify OK: {built}: 52 records")
    assert make_rec.main(["stats", str(built), "--json", "--workers", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    pixels = arrays["train"][0].astype(np.float64)
    np.testing.assert_allclose(result["mean_grey"], [pixels.mean()], rtol=1e-12)
    np.testing.assert_allclose(result["std_grey"], [pixels.std()], rtol=1e-12)
    moved = tmp_path / "moved"
    shutil.copytree(source, moved)
    labels = bytearray(gzip.decompress((moved / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[8] = (labels[8] + 1) % 10
    (moved / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels), mtime=0))
    assert make_rec.main(["verify", str(built), "--workers", "1", "--no-decode",
                          "--source", str(moved)]) == 1
    assert f"source file {moved}/t10k-labels-idx1-ubyte.gz: SHA-256 differs" in \
        capsys.readouterr().err


def test_image_record_iter_decodes_grey_records(arrays, built):
    """MXNet 1.9.1 decodes with cv2.imdecode(flag 0) for data_shape (1, H, W) and flag 1
    (colour) for (3, H, W); normalization is (x - mean_c) / std_c per output channel c,
    so one channel uses mean_r/std_r only."""
    images = arrays["test"][0].astype(np.float32)

    def batch(shape, **normalize):
        it = mx.io.ImageRecordIter(path_imgrec=str(built / "test.rec"),
                                   path_imgidx=str(built / "test.idx"), data_shape=shape,
                                   batch_size=12, shuffle=False, preprocess_threads=1,
                                   **normalize)
        return next(iter(it)).data[0].asnumpy()
    np.testing.assert_array_equal(batch((1, 28, 28))[:, 0], images)
    colour = batch((3, 28, 28))
    for c in range(3):
        np.testing.assert_array_equal(colour[:, c], images)
    grey = batch((1, 28, 28), mean_r=72.94, std_r=90.02, mean_g=1e3, std_g=7.0, mean_b=5.0)
    np.testing.assert_allclose(grey[:, 0], (images - 72.94) / 90.02, rtol=0, atol=1e-5)
    per_channel = batch((3, 28, 28), mean_r=10, std_r=2, mean_g=20, std_g=4, mean_b=30, std_b=5)
    for c, (mean, std) in enumerate([(10, 2), (20, 4), (30, 5)]):
        np.testing.assert_allclose(per_channel[:, c], (images - mean) / std, atol=1e-5)


def cut(data):
    return data[:len(data) // 2]


def flip(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def regz(edit):
    return lambda data: gzip.compress(edit(gzip.decompress(data)), mtime=0)


def header(magic=None, dims=None):
    def edit(data):
        ndim = data[3]
        head = bytearray(data[:4 + 4 * ndim])
        if magic is not None:
            head[:4] = magic
        if dims is not None:
            head[4:] = struct.pack(f">{ndim}I", *dims)
        return bytes(head) + data[4 + 4 * ndim:]
    return edit


# (file, edit of its bytes, what the one-line error says after the file's path)
DAMAGES = [
    ("train-images-idx3-ubyte.gz", cut, "cannot read the gzip stream (Compressed file ended "
                                        "before the end-of-stream marker was reached)"),
    ("t10k-images-idx3-ubyte.gz", flip, "cannot read the gzip stream ("),
    ("train-labels-idx1-ubyte.gz", lambda d: d + b"garbage", "cannot read the gzip stream ("),
    ("train-images-idx3-ubyte.gz", regz(lambda d: d[:-5]),
     "31355 bytes of data, the header's shape 40x28x28 needs 31360 (file cut short?)"),
    ("t10k-labels-idx1-ubyte.gz", regz(lambda d: d + b"\0"),
     "13 bytes of data, the header's shape 12 needs 12"),
    ("train-images-idx3-ubyte.gz", regz(header(magic=b"\0\0\x08\x01")),
     "IDX magic number 0x00000801, expected 0x00000803 (images: unsigned bytes in 3 "
     "dimensions)"),
    ("train-labels-idx1-ubyte.gz", regz(header(magic=b"\0\0\x0b\x01")),
     "IDX magic number 0x00000b01, expected 0x00000801 (labels: unsigned bytes in 1 "
     "dimension)"),
    ("t10k-images-idx3-ubyte.gz", regz(lambda d: d[:3]),
     "3 bytes, too short for the header of an IDX file of images (16 bytes)"),
    ("t10k-images-idx3-ubyte.gz", regz(header(dims=(12, 32, 28))),
     "9408 bytes of data, the header's shape 12x32x28 needs 10752 (file cut short?)"),
    ("train-labels-idx1-ubyte.gz", regz(lambda d: header(dims=(39,))(d)[:-1]),
     "holds 40 images, "),
    ("t10k-labels-idx1-ubyte.gz", regz(lambda d: d[:8 + 3] + b"\x0a" + d[12:]),
     "label 10 at item 3, expected 0..9"),
]


DAMAGE_IDS = ["gzip-cut", "gzip-flipped", "gzip-trailing-garbage", "data-cut", "data-extra",
              "images-magic", "labels-type", "header-cut", "header-shape", "count-mismatch",
              "label-above-9"]


@pytest.mark.parametrize("name,edit,message", DAMAGES, ids=DAMAGE_IDS)
def test_damaged_idx_files_are_one_line_errors_naming_the_file(source, tmp_path, capsys, name,
                                                                edit, message):
    damaged = tmp_path / "src"
    shutil.copytree(source, damaged)
    path = damaged / name
    path.write_bytes(edit(path.read_bytes()))
    assert build("fashion-mnist", damaged, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.startswith("make_rec: error: ") and err.count("\n") == 1, err
    named = str(damaged / "train-images-idx3-ubyte.gz") if "images, " in message else str(path)
    assert f"{named}: {message}" in err or f"{named} {message}" in err, err
    assert not (tmp_path / "out").exists()


def test_images_of_another_size_and_a_missing_file(source, arrays, tmp_path, capsys):
    odd = {split: (np.zeros((len(labels), 32, 32), np.uint8), labels)
           for split, (_, labels) in arrays.items()}
    folder = write_source(tmp_path / "odd", odd)
    assert build("mnist", folder, tmp_path / "out") == 1
    assert f"{folder}/train-images-idx3-ubyte.gz: images of 32x32 pixels, expected 28x28" \
        in capsys.readouterr().err
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert build("mnist", folder, tmp_path / "out") == 1
    assert capsys.readouterr().err == (
        f"make_rec: error: mnist SOURCE {str(folder)!r} not usable: expected a folder holding "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte, each gzipped (.gz) or not (missing: "
        "t10k-labels-idx1-ubyte)\n")


# ------------------------------------------------------------------- the real Fashion-MNIST

@pytest.fixture(scope="module")
def fashion_mnist(fashion_mnist_dir, fashion_mnist_records):
    """The real download's records (built once for the session) and its arrays read here."""
    out = fashion_mnist_records
    source = {split: (read_idx(fashion_mnist_dir / f"{images}.gz"),
                      read_idx(fashion_mnist_dir / f"{labels}.gz"))
              for split, (images, labels) in NAMES.items()}
    return out, source


def test_real_fashion_mnist_counts_and_label_histograms(fashion_mnist):
    out, source = fashion_mnist
    manifest = json.loads((out / "manifest.json").read_text())
    for split, count in (("train", 60000), ("test", 10000)):
        labels = source[split][1]
        assert manifest["splits"][split]["count"] == count == len(labels)
        assert manifest["splits"][split]["class_counts"] == \
            np.bincount(labels, minlength=10).tolist()
        with open(out / f"{split}.lst") as f:
            listed = np.array([float(line.split("\t")[1]) for line in f], np.int64)
        assert np.bincount(listed, minlength=10).tolist() == \
            np.bincount(labels, minlength=10).tolist()


def test_real_fashion_mnist_records_decode_to_the_idx_pixels(fashion_mnist):
    out, source = fashion_mnist
    for split, keys in (("train", (0, 1, 29999, 59999)), ("test", (0, 4321, 9999))):
        reader = mx.recordio.MXIndexedRecordIO(str(out / f"{split}.idx"),
                                               str(out / f"{split}.rec"), "r")
        for key in keys:
            header, image = mx.recordio.unpack(reader.read_idx(key))
            decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(decoded, source[split][0][key])
            assert header.label == source[split][1][key] and header.id == key
        reader.close()


def test_real_fashion_mnist_verifies(fashion_mnist, capsys):
    out, _ = fashion_mnist
    assert make_rec.main(["verify", str(out), "--workers", "2"]) == 0
    assert "verify OK" in capsys.readouterr().out


def test_real_fashion_mnist_stats_equal_numpy(fashion_mnist, capsys):
    """On the first 5000 records of train (of the shuffled order): their IDX images."""
    out, source = fashion_mnist
    assert make_rec.main(["stats", str(out), "--limit", "5000", "--json", "--workers", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    keys = np.random.Generator(np.random.PCG64(0)).permutation(60000)[:5000]
    pixels = source["train"][0][keys].astype(np.float64)
    np.testing.assert_allclose(result["mean_grey"], [pixels.mean()], rtol=1e-12)
    np.testing.assert_allclose(result["std_grey"], [pixels.std()], rtol=1e-12)
