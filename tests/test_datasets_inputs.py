"""igc-make-rec refuses, with one line, what it cannot store faithfully or what would harm
its source: .lst labels that a record's float32 label does not hold exactly, file names
that are not UTF-8, an OUT_DIR that is SOURCE or lies in the folders the build reads. A
folder name that is not UTF-8 as OUT_DIR is written and shown escaped."""
import os

import cv2
import numpy as np
import pytest

from igc_mx.datasets import synthetic_cifar
from igc_mx.tools import make_rec

# The largest n for which every integer 0..n is a float32: 2 ** (mantissa bits + 1).
FLOAT32_EXACT = 2 ** (np.finfo(np.float32).nmant + 1)


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``, and its folders."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder) + "/"] = None
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


@pytest.fixture
def tree(tmp_path):
    """train/<class>/ and val/<class>/ with two small JPEGs per class."""
    rng = np.random.default_rng(8)
    root = tmp_path / "src"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(root / split / cls / f"{i}.jpg"),
                            rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return root


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("make_rec: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_float32_exact_bound_is_the_one_the_records_hold():
    assert float(np.float32(FLOAT32_EXACT)) == FLOAT32_EXACT
    assert float(np.float32(FLOAT32_EXACT + 1)) != FLOAT32_EXACT + 1


@pytest.mark.parametrize("label", [str(FLOAT32_EXACT + 1), "1e20", str(2 ** 64)])
def test_lst_labels_a_float32_cannot_hold_exactly_are_refused(tree, tmp_path, capsys, label):
    """16777217 used to be stored as 16777216 with exit 0; 1e20 raised OverflowError."""
    (tree / "train.lst").write_text(f"0\t1\ttrain/a/0.jpg\n1\t{label}\ttrain/a/1.jpg\n")
    (tree / "val.lst").write_text("0\t0\tval/a/0.jpg\n")
    out = tmp_path / "out"
    assert make_rec.main(["imagenet", str(tree), str(out), "--workers", "1", "--quiet"]) == 1
    err = one_line_error(capsys)
    assert f"train.lst:2: label {label!r} is above {FLOAT32_EXACT}" in err, err
    assert not out.exists()


def test_a_file_name_that_is_not_utf8_is_named_escaped(tree, tmp_path, capsys):
    """It used to end the build with a UnicodeEncodeError traceback."""
    bad = os.path.join(os.fsencode(tree / "train" / "b"), b"caf\xe9.jpg")
    with open(bad, "wb") as f:
        f.write((tree / "train" / "b" / "0.jpg").read_bytes())
    out = tmp_path / "out"
    assert make_rec.main(["imagenet", str(tree), str(out), "--workers", "1", "--quiet"]) == 1
    err = one_line_error(capsys)
    assert f"{tree}/train/b/caf\\xe9.jpg: the file name is not UTF-8" in err, err
    assert not out.exists()


def test_an_lst_file_that_is_not_utf8_is_a_one_line_error(tree, tmp_path, capsys):
    (tree / "train.lst").write_bytes(b"0\t0\ttrain/a/0.jpg\n1\t1\ttrain/b/caf\xe9.jpg\n")
    (tree / "val.lst").write_text("0\t0\tval/a/0.jpg\n")
    assert make_rec.main(["imagenet", str(tree), str(tmp_path / "out"), "--workers", "1",
                          "--quiet"]) == 1
    assert "train.lst:2: not UTF-8 text (byte 0xe9 at column 16)" in one_line_error(capsys)


def test_an_out_dir_that_is_not_utf8_is_built_and_shown_escaped(tree, tmp_path, capsys):
    out = os.path.join(os.fsencode(tmp_path), b"out\xff").decode(errors="surrogateescape")
    assert make_rec.main(["imagenet", str(tree), out, "--workers", "1", "--resize", "0"]) == 0
    assert make_rec.main(["verify", out, "--workers", "1"]) == 0
    shown = capsys.readouterr().out
    assert f"-> {tmp_path}/out\\xff/train.rec" in shown and \
        f"verify OK: {tmp_path}/out\\xff: 8 records" in shown, shown


def test_out_dir_equal_to_source_is_refused_and_the_source_kept(tree, capsys):
    """The build used to overwrite the source's train.lst with its own."""
    (tree / "train.lst").write_text("0\t1\ttrain/a/0.jpg\n1\t0\ttrain/a/1.jpg\n"
                                    "2\t1\ttrain/b/0.jpg\n")
    (tree / "val.lst").write_text("0\t0\tval/a/0.jpg\n")
    before = snapshot(tree)
    assert make_rec.main(["imagenet", str(tree), str(tree), "--workers", "1", "--quiet"]) == 1
    assert f"OUT_DIR {tree} is SOURCE" in one_line_error(capsys)
    assert snapshot(tree) == before


@pytest.mark.parametrize("inside", ["train/new", "val/a", "train"])
def test_out_dir_inside_the_image_folders_is_refused(tree, capsys, inside):
    """A new folder in train/ would be a new class of the next build."""
    before = snapshot(tree)
    out = tree / inside
    assert make_rec.main(["imagenet", str(tree), str(out), "--workers", "1", "--quiet"]) == 1
    assert f"OUT_DIR {out} lies inside {tree / inside.split('/')[0]}, which the build reads" \
        in one_line_error(capsys)
    assert snapshot(tree) == before


def test_out_dir_beside_or_below_a_source_archive_is_fine(tmp_path, capsys):
    archive = synthetic_cifar.write_archive(str(tmp_path / "cifar-10-python.tar.gz"), 10, 5,
                                            seed=1)
    assert make_rec.main(["cifar10", str(tmp_path), str(tmp_path / "rec"), "--workers", "1",
                          "--quiet"]) == 0
    assert make_rec.main(["cifar10", str(tmp_path), str(tmp_path), "--workers", "1",
                          "--quiet"]) == 1
    assert f"OUT_DIR {tmp_path} is SOURCE" in one_line_error(capsys)
    assert make_rec.main(["cifar10", archive, archive, "--workers", "1", "--quiet"]) == 1
    assert f"OUT_DIR {archive} is SOURCE" in one_line_error(capsys)
