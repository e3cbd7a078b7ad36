"""Tests for igc-make-rec (igc_mx.datasets, run through igc_mx.tools.make_rec) on small
inputs written in the real published formats.

References are independent of the tool: source pixels/labels generated here,
MXNet's own RecordIO reader/writer and ImageRecordIter, cv2/mx decoders, numpy.
"""
import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile

import cv2
import mxnet as mx
import numpy as np
import pytest
import scipy.io

from igc_mx import recordio
from igc_mx.datasets import build
from igc_mx.tools import make_rec

FINAL_NAMES = ([f"{s}.{e}" for s in ("train", "test") for e in ("rec", "idx", "lst")]
               + ["manifest.json"])


# ----------------------------------------------------------------------------- inputs

def cifar_batch(rng, n, label_keys):
    rgb = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    batch = {b"data": rgb.transpose(0, 3, 1, 2).reshape(n, 3072)}  # R plane, G plane, B plane
    for key, num_classes in label_keys.items():
        batch[key] = rng.integers(0, num_classes, size=n).tolist()
    return batch, rgb


def write_tarball(path, folder, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.fixture(scope="session")
def cifar10(tmp_path_factory):
    """cifar-10-python.tar.gz with 5x24 train and 30 test images; returns (path, source arrays)."""
    root = tmp_path_factory.mktemp("cifar10_src")
    rng = np.random.default_rng(10)
    members, train_rgb, train_y = {}, [], []
    for i in range(1, 6):
        batch, rgb = cifar_batch(rng, 24, {b"labels": 10})
        members[f"data_batch_{i}"] = batch
        train_rgb.append(rgb)
        train_y += batch[b"labels"]
    test_batch, test_rgb = cifar_batch(rng, 30, {b"labels": 10})
    members["test_batch"] = test_batch
    members["batches.meta"] = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    path = root / "cifar-10-python.tar.gz"
    write_tarball(path, "cifar-10-batches-py", members)
    return path, {"train": (np.concatenate(train_rgb), np.array(train_y)),
                  "test": (test_rgb, np.array(test_batch[b"labels"]))}


@pytest.fixture(scope="session")
def cifar10_built(cifar10, tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar10_out")
    assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", "1", "--quiet"]) == 0
    return out


@pytest.fixture
def jpeg_tree(tmp_path):
    """ImageNet-style train/<class>/, val/<class>/ with 40x30 JPEGs and one corrupt file."""
    rng = np.random.default_rng(3)
    root = tmp_path / "imagenet_src"
    for split, per_class in (("train", 4), ("val", 2)):
        for cls in ("n02", "n01", "n03"):  # deliberately unsorted creation order
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                noise = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
                image = cv2.GaussianBlur(noise, (5, 5), 0)
                cv2.imwrite(str(folder / f"img{i}.JPEG"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    corrupt = root / "train" / "n03" / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    return root, corrupt


def read_with_mxnet(out_dir, split):
    """{key: (label, header id, RGB via mx.image.imdecode, BGR via cv2)} and file order of keys."""
    reader = mx.recordio.MXIndexedRecordIO(str(out_dir / f"{split}.idx"),
                                           str(out_dir / f"{split}.rec"), "r")
    records, order = {}, []
    for key in reader.keys:
        header, image_bytes = mx.recordio.unpack(reader.read_idx(key))
        rgb = mx.image.imdecode(image_bytes).asnumpy()
        bgr = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR)
        records[key] = (header.label, header.id, rgb, bgr)
        order.append(key)
    reader.close()
    return records, order


def file_bytes(folder, names=FINAL_NAMES[:-1]):
    return {n: (folder / n).read_bytes() for n in names}


# ----------------------------------------------------------------------------- content

def test_cifar10_png_exact_rgb_roundtrip_labels_and_seeded_order(cifar10, cifar10_built):
    _, source = cifar10
    for split in ("train", "test"):
        rgb_src, labels_src = source[split]
        records, order = read_with_mxnet(cifar10_built, split)
        assert sorted(records) == list(range(len(labels_src)))
        for key, (label, header_id, rgb, bgr) in records.items():
            assert label == labels_src[key] and header_id == key
            np.testing.assert_array_equal(rgb, rgb_src[key])
            np.testing.assert_array_equal(bgr, rgb_src[key][:, :, ::-1])
        expected = (np.random.Generator(np.random.PCG64(0)).permutation(len(labels_src))
                    if split == "train" else np.arange(len(labels_src)))
        assert order == expected.tolist()
    manifest = json.loads((cifar10_built / "manifest.json").read_text())
    assert manifest["splits"]["train"]["count"] == 120
    assert manifest["splits"]["train"]["class_counts"] == \
        np.bincount(source["train"][1], minlength=10).tolist()
    assert manifest["recipe"]["encoding"] == "png" and manifest["recipe"]["png_compression"] == 9
    assert manifest["versions"]["opencv"] == cv2.__version__
    assert manifest["classes"][3] == "class3"


def test_rec_bytes_equal_mxnet_writer_output(cifar10_built, tmp_path):
    """Re-write the same payloads with MXNet's C++ RecordIO writer: files must be identical."""
    reader = mx.recordio.MXIndexedRecordIO(str(cifar10_built / "train.idx"),
                                           str(cifar10_built / "train.rec"), "r")
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "m.idx"), str(tmp_path / "m.rec"), "w")
    for key in reader.keys:
        writer.write_idx(key, reader.read_idx(key))
    writer.close()
    reader.close()
    assert (tmp_path / "m.rec").read_bytes() == (cifar10_built / "train.rec").read_bytes()
    assert (tmp_path / "m.idx").read_bytes() == (cifar10_built / "train.idx").read_bytes()


def test_framing_splits_payloads_containing_the_magic(tmp_path):
    magic = recordio.MAGIC_BYTES
    payloads = [magic + b"abcd" + magic + b"xy", b"12" + magic + b"3456", magic, b"",
                b"q" * 8 + magic]
    writer = mx.recordio.MXRecordIO(str(tmp_path / "m.rec"), "w")
    for p in payloads:
        writer.write(p)
    writer.close()
    ours = b"".join(recordio.frame_record(p) for p in payloads)
    assert ours == (tmp_path / "m.rec").read_bytes()
    assert [p for _, p in recordio.iter_records(io.BytesIO(ours))] == payloads


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(100)
    keys = {b"fine_labels": 100, b"coarse_labels": 20}
    train, train_rgb = cifar_batch(rng, 40, keys)
    test, _ = cifar_batch(rng, 10, keys)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()  # extracted-folder form of the input
    for name, obj in (("train", train), ("test", test)):
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    out = tmp_path / "out"
    assert make_rec.main(["cifar100", str(tmp_path), str(out), "--workers", "1", "--quiet"]) == 0
    records, _ = read_with_mxnet(out, "train")
    assert [records[k][0] for k in range(40)] == train[b"fine_labels"]
    np.testing.assert_array_equal(records[7][2], train_rgb[7])
    assert json.loads((out / "manifest.json").read_text())["num_classes"] == 100


def test_svhn_train_plus_extra_and_label_10_is_digit_0(tmp_path):
    rng = np.random.default_rng(7)
    parts = {}
    for name, n in (("train", 12), ("extra", 8), ("test", 6)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0, 0] = 10
        scipy.io.savemat(tmp_path / f"{name}_32x32.mat", {"X": x, "y": y})
        parts[name] = (x, y[:, 0])
    out = tmp_path / "out"
    assert make_rec.main(["svhn", str(tmp_path), str(out), "--workers", "2", "--quiet"]) == 0
    x_all = np.concatenate([parts["train"][0], parts["extra"][0]], axis=3)
    y_all = np.concatenate([parts["train"][1], parts["extra"][1]])
    records, _ = read_with_mxnet(out, "train")
    assert len(records) == 20
    for key, (label, _, rgb, _) in records.items():
        assert label == (0 if y_all[key] == 10 else y_all[key])
        np.testing.assert_array_equal(rgb, x_all[:, :, :, key])
    assert records[12][0] == 0 and records[0][0] == 0  # first of extra and of train had label 10
    test_records, _ = read_with_mxnet(out, "test")
    assert len(test_records) == 6


def test_output_is_byte_identical_for_1_and_2_workers(cifar10, tmp_path):
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", workers, "--quiet",
                              "--seed", "5"]) == 0
        outs.append(out)
    assert file_bytes(outs[0]) == file_bytes(outs[1])
    manifests = [json.loads((o / "manifest.json").read_text()) for o in outs]
    for m in manifests:
        m.pop("command")
    assert manifests[0] == manifests[1]


def test_jpeg_folder_identical_across_workers_with_resize(jpeg_tree, tmp_path):
    root, corrupt = jpeg_tree
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        assert make_rec.main(["imagenet", str(root), str(out), "--workers", workers, "--quiet",
                              "--resize", "24", "--skip-bad"]) == 0
        outs.append(out)
    assert file_bytes(outs[0]) == file_bytes(outs[1])
    records, _ = read_with_mxnet(outs[0], "train")
    assert len(records) == 12
    assert {r[2].shape for r in records.values()} == {(24, 32, 3)}  # 30x40 -> shorter side 24
    lst = [line.split("\t") for line in (outs[0] / "train.lst").read_text().splitlines()]
    classes = {"n01": 0, "n02": 1, "n03": 2}  # sorted folder names
    for key, label, path in lst:
        assert float(label) == classes[path.split(os.sep)[1]] == records[int(key)][0]


# ----------------------------------------------------------------------------- verify / stats

def test_verify_passes_then_catches_flipped_byte_and_missing_file(cifar10_built, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(cifar10_built, out)
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 0
    rec = bytearray((out / "train.rec").read_bytes())
    rec[len(rec) // 2] ^= 0x01
    (out / "train.rec").write_bytes(bytes(rec))
    capsys.readouterr()
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 1
    assert "train.rec: SHA-256 differs" in capsys.readouterr().err
    shutil.copy(cifar10_built / "train.rec", out / "train.rec")
    (out / "test.idx").unlink()
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 1
    assert "test.idx: missing" in capsys.readouterr().err


def test_verify_catches_out_of_range_label_even_with_matching_checksums(cifar10_built, tmp_path,
                                                                       capsys):
    out = tmp_path / "copy"
    shutil.copytree(cifar10_built, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["num_classes"] = 5  # labels 5..9 would be out of range
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 1
    assert "num_classes 5 is not cifar10's" in capsys.readouterr().err


def test_stats_equal_numpy_on_source_pixels(cifar10, cifar10_built, capsys):
    capsys.readouterr()
    assert make_rec.main(["stats", str(cifar10_built), "--json", "--workers", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    pixels = cifar10[1]["train"][0].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(result["mean_rgb"], pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result["std_rgb"], pixels.std(axis=0), rtol=1e-12)


def test_image_record_iter_reads_train_rec(cifar10, cifar10_built):
    rgb_src, labels_src = cifar10[1]["train"]
    it = mx.io.ImageRecordIter(path_imgrec=str(cifar10_built / "train.rec"),
                               path_imgidx=str(cifar10_built / "train.idx"),
                               data_shape=(3, 32, 32), batch_size=16, shuffle=False,
                               preprocess_threads=1)
    batch = next(iter(it))
    data, label = batch.data[0].asnumpy(), batch.label[0].asnumpy()
    assert data.shape == (16, 3, 32, 32) and label.shape == (16,)
    first_keys = np.random.Generator(np.random.PCG64(0)).permutation(len(labels_src))[:16]
    np.testing.assert_array_equal(data, rgb_src[first_keys].transpose(0, 3, 1, 2)
                                  .astype(np.float32))
    np.testing.assert_array_equal(label, labels_src[first_keys])


# ----------------------------------------------------------------------------- failures

def test_corrupt_image_fails_by_default_and_is_skipped_with_flag(jpeg_tree, tmp_path, capsys):
    root, corrupt = jpeg_tree
    out = tmp_path / "out"
    assert make_rec.main(["imagenet", str(root), str(out), "--workers", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert str(corrupt) in err and "--skip-bad" in err and "Traceback" not in err
    assert sorted(os.listdir(out)) == [".make_rec.lock"]  # nothing final, no temp left behind
    assert make_rec.main(["imagenet", str(root), str(out), "--workers", "2", "--quiet",
                          "--skip-bad"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["path"] for s in manifest["splits"]["train"]["skipped"]] == \
        [os.path.join("train", "n03", "broken.jpg")]
    assert manifest["splits"]["train"]["count"] == 12 and manifest["splits"]["test"]["count"] == 6
    assert manifest["recipe"]["jpeg_quality"] == 95
    assert manifest["recipe"]["resize_shorter_side"] == 480
    # every file that was read, also the one that does not decode, in source order
    paths = [os.path.join("train", c, f"img{i}.JPEG") for c in ("n01", "n02") for i in range(4)]
    paths += [os.path.join("train", "n03", n) for n in ["broken.jpg"] +
              [f"img{i}.JPEG" for i in range(4)]]
    lines = "".join(f"{p}\t{hashlib.sha256((root / p).read_bytes()).hexdigest()}\n"
                    for p in paths)
    assert manifest["splits"]["train"]["source_sha256"] == \
        hashlib.sha256(lines.encode()).hexdigest()
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 0


def test_imagenet_from_lst_files(jpeg_tree, tmp_path):
    root, _ = jpeg_tree
    lines = {"train.lst": [(0, 2, "train/n01/img0.JPEG"), (1, 0, "train/n02/img1.JPEG")],
             "val.lst": [(0, 1, "val/n03/img0.JPEG")]}
    for name, rows in lines.items():
        (root / name).write_text("".join(f"{i}\t{label:f}\t{p}\n" for i, label, p in rows))
    out = tmp_path / "out"
    assert make_rec.main(["imagenet", str(root), str(out), "--workers", "1", "--quiet",
                          "--no-shuffle", "--resize", "0"]) == 0
    records, order = read_with_mxnet(out, "train")
    assert order == [0, 1] and [records[k][0] for k in order] == [2, 0]
    source = cv2.imread(str(root / "train/n02/img1.JPEG"))
    assert records[1][3].shape == source.shape  # no resize with --resize 0


@pytest.mark.parametrize("dataset, expected", [
    ("cifar10", "expected cifar-10-python.tar.gz or a folder cifar-10-batches-py/ containing "
                "data_batch_1..5 and test_batch"),
    ("cifar100", "expected cifar-100-python.tar.gz or a folder cifar-100-python/"),
    ("svhn", "train_32x32.mat, extra_32x32.mat, test_32x32.mat"),
    ("imagenet", "train/<class>/"),
])
def test_missing_source_names_the_expected_files(dataset, expected, tmp_path, capsys):
    assert make_rec.main([dataset, str(tmp_path / "empty"), str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_option_combination_is_a_clear_error(cifar10, tmp_path, capsys):
    assert make_rec.main(["cifar10", str(cifar10[0]), str(tmp_path / "o"), "--quality", "90"]) == 1
    assert "--quality 90 applies to JPEG" in capsys.readouterr().err


def test_disk_full_gives_message_and_leaves_no_output(cifar10, tmp_path, capsys, monkeypatch):
    class FullDisk(io.FileIO):  # what a write on a full file system raises
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_on_full_disk(path, mode="r", *args, **kwargs):
        if os.path.basename(path).startswith(".train.rec."):
            return FullDisk(path, "w")
        return open(path, mode, *args, **kwargs)
    monkeypatch.setattr(build, "open", open_on_full_disk, raising=False)
    out = tmp_path / "out"
    assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and ".train." in err and "Traceback" not in err
    assert sorted(os.listdir(out)) == [".make_rec.lock"]


def test_permission_error_gives_message(cifar10, tmp_path, capsys, monkeypatch):
    def denied(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), dst)
    monkeypatch.setattr(os, "replace", denied)
    out = tmp_path / "out"
    assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "permission denied" in err and "train.rec" in err and "Traceback" not in err


def test_interrupted_run_leaves_nothing_final_and_rerun_cleans_stale_temps(cifar10, tmp_path,
                                                                           monkeypatch):
    out = tmp_path / "out"
    real_write_item = build.write_item
    calls = []

    def interrupt_later(*args, **kwargs):
        calls.append(1)
        if len(calls) == 50:
            raise KeyboardInterrupt
        return real_write_item(*args, **kwargs)
    monkeypatch.setattr(build, "write_item", interrupt_later)
    assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", "1", "--quiet"]) == 130
    assert not any(n in FINAL_NAMES for n in os.listdir(out))
    monkeypatch.setattr(build, "write_item", real_write_item)
    stale = out / ".train.rec.99999999-0123abcd.tmp"   # left by a killed run (no such pid)
    stale.write_bytes(b"stale")
    assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", "1", "--quiet"]) == 0
    assert sorted(os.listdir(out)) == sorted(FINAL_NAMES + [".make_rec.lock"])


def test_encoded_bytes_equal_plain_cv2_imencode_of_bgr(cifar10, cifar10_built, tmp_path):
    """Recipe pinning reproduces OpenCV's plain encodes (PNG level 9; JPEG quality 90 with
    defaults)."""
    rgb_src = cifar10[1]["test"][0]
    out = tmp_path / "jpg"
    assert make_rec.main(["cifar10", str(cifar10[0]), str(out), "--workers", "1", "--quiet",
                          "--encoding", "jpg", "--quality", "90"]) == 0
    assert json.loads((out / "manifest.json").read_text())["recipe"]["jpeg_quality"] == 90
    for folder, ext, params in ((cifar10_built, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 9]),
                                (out, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])):
        reader = mx.recordio.MXIndexedRecordIO(str(folder / "test.idx"),
                                               str(folder / "test.rec"), "r")
        for key in (0, 17, 29):
            _, image_bytes = mx.recordio.unpack(reader.read_idx(key))
            bgr = np.ascontiguousarray(rgb_src[key][:, :, ::-1])
            expected = cv2.imencode(ext, bgr, params)[1].tobytes()
            assert image_bytes == expected
        reader.close()


# ----------------------------------------------------------------------------- damaged inputs

def test_symlink_loops_and_second_links_are_walked_once(jpeg_tree, tmp_path, capsys):
    root, corrupt = jpeg_tree
    corrupt.unlink()
    os.symlink(".", root / "train" / "n01" / "loop")                      # a loop
    os.symlink(root / "train" / "n02", root / "train" / "n02" / "again")  # a loop via a path
    os.symlink(root / "val" / "n03", root / "val" / "n01" / "elsewhere")  # another class's
    out = tmp_path / "out"
    assert make_rec.main(["imagenet", str(root), str(out), "--workers", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "n01/loop is a folder already read (through a symbolic link)" in err
    assert "n02/again is a folder already read" in err
    lst = (out / "train.lst").read_text().splitlines()
    assert len(lst) == 12 and not any("loop" in line or "again" in line for line in lst)
    # a link to another folder is followed: its images belong to the class that links them
    assert len((out / "test.lst").read_text().splitlines()) == 8
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 0


def test_image_beyond_the_encoders_limit_is_a_bad_image(jpeg_tree, tmp_path, capsys):
    root, corrupt = jpeg_tree
    corrupt.unlink()
    wide = root / "train" / "n02" / "wide.png"
    cv2.imwrite(str(wide), np.zeros((8, 70000, 3), np.uint8))
    out = tmp_path / "out"
    assert make_rec.main(["imagenet", str(root), str(out), "--workers", "2", "--quiet",
                          "--resize", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"make_rec: error: {wide}: cannot encode a 70000x8 image as jpg "
                          "(Raw image encoder error: Maximum supported image dimension is "
                          "65500 pixels) (pass --skip-bad")
    assert sorted(os.listdir(out)) == [".make_rec.lock"]
    assert make_rec.main(["imagenet", str(root), str(out), "--workers", "2", "--quiet",
                          "--resize", "0", "--skip-bad"]) == 0
    skipped = json.loads((out / "manifest.json").read_text())["splits"]["train"]["skipped"]
    assert [s["path"] for s in skipped] == [os.path.join("train", "n02", "wide.png")]
    assert make_rec.main(["verify", str(out), "--workers", "1"]) == 0


def archive_damages(blob):
    """(name, damaged bytes) of a .tar.gz."""
    n = len(blob)
    flipped = bytearray(blob)
    flipped[n // 2] ^= 0x55
    return [(f"cut at {k}", blob[:k]) for k in (10, 100, 1000, n // 2, n - 20, n - 8, n - 1)] + [
        ("byte flipped", bytes(flipped)), ("garbage appended", blob + b"\x00garbage")]


def test_damaged_archives_are_one_line_errors(cifar10, tmp_path, capsys):
    blob = cifar10[0].read_bytes()
    for name, damaged in archive_damages(blob):
        path = tmp_path / "cifar-10-python.tar.gz"
        path.write_bytes(damaged)
        assert make_rec.main(["cifar10", str(path), str(tmp_path / "out"), "--workers", "1",
                              "--quiet"]) == 1, name
        err = capsys.readouterr().err
        assert err.startswith(f"make_rec: error: {path}: cannot read archive ("), (name, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert not (tmp_path / "out" / "manifest.json").exists()


def edited(built, tmp_path, edit, copy_name="edited"):
    """A copy of the build ``built`` whose manifest ``edit(manifest)`` changed."""
    out = tmp_path / copy_name
    shutil.copytree(built, out)
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def set_path(keys, value):
    def edit(manifest):
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def both(*edits):
    def edit(manifest):
        for e in edits:
            e(manifest)
    return edit


def recipe_and_command(field, value, option, option_value):
    """Edit a recipe field and the command alike, so only the records can tell."""
    def edit(manifest):
        manifest["recipe"][field] = value
        argv = manifest["command"].split()
        argv[argv.index(option) + 1] = option_value
        manifest["command"] = " ".join(argv)
    return edit


MANIFEST_EDITS = [
    ("splits not a mapping", set_path(("splits",), "x"), "splits: expected "),
    ("source not a mapping", set_path(("source",), "x"), "source"),
    ("seed", recipe_and_command("seed", 5, "--seed", "5"),
     "train.rec: record 0 has key "),
    ("shuffle_train", both(set_path(("recipe", "shuffle_train"), False),
                           lambda m: m.update(command=m["command"] + " --no-shuffle")),
     "train.rec: record 0 has key "),
    ("resize_shorter_side", recipe_and_command("resize_shorter_side", 24, "--resize", "24"),
     "image is 32x32, the recipe's shorter side is 24"),
    ("png_compression", both(recipe_and_command("png_compression", 6, "--png-compression", "6"),
                             set_path(("recipe", "opencv_encode_params"), [16, 6, 17, 0])),
     "image header's zlib_level differ from what the recipe's png settings write"),
    ("encoding", set_path(("recipe", "encoding"), "jpg"),
     "recipe: fields jpeg_quality, jpeg_settings, opencv_encode_params, png_compression, "
     "png_strategy disagree with the recipe the others describe"),
    ("recipe text", set_path(("recipe", "resize_rule"), "anything"),
     "recipe: fields resize_rule disagree"),
    ("interpolation", set_path(("recipe", "interpolation"), "cubic"),
     "command builds another recipe than the manifest's recipe"),
    ("command", set_path(("command",), "igc-make-rec cifar100 x y"),
     "command builds another dataset or source than the manifest names"),
    ("source sha256", set_path(("source", "files", 0, "sha256"), "0" * 64),
     "source file "),
    ("source bytes", set_path(("source", "files", 0, "bytes"), 12),
     "bytes, manifest says 12"),
    ("num_classes", set_path(("num_classes",), 11), "num_classes 11 is not cifar10's"),
    ("classes", set_path(("classes",), ["a", "b"]), "classes: expected 10 names or null"),
    ("record_format", set_path(("record_format", "key"), "x"),
     "record_format differs from the records igc-make-rec writes"),
    ("unknown field", set_path(("extra",), 1), "manifest has unknown fields extra"),
    ("count", set_path(("splits", "test", "count"), 31), "test: count and class_counts disagree"),
    ("skipped", set_path(("splits", "train", "skipped"),
                         [{"key": 3, "path": "x", "reason": "y"}]),
     "images were skipped, but command lacks --skip-bad"),
    ("source_sha256", set_path(("splits", "train", "source_sha256"), "x"),
     "train: source_sha256 is not a SHA-256"),
    ("manifest_version", set_path(("manifest_version",), "2"),
     "manifest_version '2', this igc-make-rec reads 1"),
]


@pytest.mark.parametrize("field,edit,problem", MANIFEST_EDITS, ids=[e[0] for e in MANIFEST_EDITS])
def test_verify_checks_every_manifest_field(field, edit, problem, cifar10_built, tmp_path,
                                            capsys):
    out = edited(cifar10_built, tmp_path, edit)
    decode = ["--no-decode"] if field == "resize_shorter_side" else []
    assert make_rec.main(["verify", str(out), "--workers", "1", *decode]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"verify FAILED for {out}") or field == "manifest_version", err
    assert problem in err, err


def test_verify_checks_jpeg_quality_and_image_source_digests(jpeg_tree, tmp_path, capsys):
    root, corrupt = jpeg_tree
    built = tmp_path / "built"
    assert make_rec.main(["imagenet", str(root), str(built), "--workers", "1", "--quiet",
                          "--skip-bad"]) == 0
    assert make_rec.main(["verify", str(built), "--workers", "1"]) == 0
    assert f"source {root}" in capsys.readouterr().out
    out = edited(built, tmp_path, both(recipe_and_command("jpeg_quality", 90, "--quality", "90"),
                                       set_path(("recipe", "opencv_encode_params", 1), 90)))
    assert make_rec.main(["verify", str(out), "--workers", "1", "--no-decode"]) == 1
    assert "image header's quant differ from what the recipe's jpg settings write" in \
        capsys.readouterr().err
    # the source images changed since the build
    (root / "train" / "n01" / "img1.JPEG").write_bytes(corrupt.read_bytes())
    assert make_rec.main(["verify", str(built), "--workers", "1"]) == 1
    assert "train: the source images' SHA-256 differs from the manifest's source_sha256" in \
        capsys.readouterr().err
    # a source that moved away is not checked, and says so; --source names its place
    moved = tmp_path / "moved"
    root.rename(moved)
    assert make_rec.main(["verify", str(built), "--workers", "1"]) == 0
    assert f"source not found at {root}, not checked" in capsys.readouterr().out
    assert make_rec.main(["verify", str(built), "--workers", "1", "--source", str(moved)]) == 1


def cifar10_with(tmp_path, edit):
    """A CIFAR-10 archive whose first training batch ``edit(batch)`` changed."""
    rng = np.random.default_rng(11)
    members = {f"data_batch_{i}": cifar_batch(rng, 4, {b"labels": 10})[0] for i in range(1, 6)}
    members["test_batch"] = cifar_batch(rng, 4, {b"labels": 10})[0]
    edit(members["data_batch_1"])
    path = tmp_path / "cifar-10-python.tar.gz"
    write_tarball(path, "cifar-10-batches-py", members)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda b: b.update({b"data": b[b"data"].astype(np.float64) * 1.5}),
     "b'data' holds values that are not integers"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.int64) - 128}),
     "b'data' holds values outside [0, 255]"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.int64) + 200}),
     "b'data' holds values outside [0, 255]"),
    (lambda b: b[b"labels"].__setitem__(0, 2.5), "b'labels' holds values that are not integers"),
    (lambda b: b[b"labels"].__setitem__(0, float("nan")), "holds values that are not integers"),
    (lambda b: b[b"labels"].__setitem__(0, None), "b'labels' has dtype object"),
    (lambda b: b[b"labels"].__setitem__(0, "cat"), "b'labels' has dtype <U"),
    (lambda b: b[b"labels"].__setitem__(0, 2 ** 70), "b'labels' has dtype object"),
])
def test_cifar_values_that_would_be_wrapped_or_truncated_are_refused(tmp_path, capsys, edit,
                                                                     message):
    """uint8 would wrap 300 to 44 and int64 would truncate 2.5 to 2, silently."""
    archive = cifar10_with(tmp_path, edit)
    assert make_rec.main(["cifar10", str(archive), str(tmp_path / "out"), "--workers", "1",
                          "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("make_rec: error: ") and message in err and "\n" not in err, err


def test_a_fifo_or_device_in_an_image_tree_is_a_bad_image_not_a_hang(jpeg_tree, tmp_path):
    root, corrupt = jpeg_tree
    corrupt.unlink()
    os.mkfifo(root / "train" / "n01" / "fifo.JPEG")
    os.symlink("/dev/zero", root / "train" / "n02" / "zero.JPEG")
    script = ("import sys; from igc_mx.tools import make_rec; "
              "sys.exit(make_rec.main(sys.argv[1:]))")
    out = tmp_path / "out"
    run = [sys.executable, "-c", script, "imagenet", str(root), str(out), "--workers", "1",
           "--quiet"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "fifo.JPEG: not a regular file" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(run + ["--skip-bad"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lst = (out / "train.lst").read_text()
    assert "fifo" not in lst and "zero" not in lst and len(lst.splitlines()) == 12


def test_lst_label_that_is_not_finite_is_refused(jpeg_tree, tmp_path, capsys):
    root, _ = jpeg_tree
    (root / "train.lst").write_text("0\tnan\ttrain/n01/img0.JPEG\n")
    (root / "val.lst").write_text("0\t1\tval/n03/img0.JPEG\n")
    code = make_rec.main(["imagenet", str(root), str(tmp_path / "out"), "--workers", "1",
                          "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "train.lst:1: label 'nan' must be a non-negative integer" in err, err
