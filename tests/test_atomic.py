"""igc_mx.atomic.atomic_paths: several files renamed into place together, the last one
sealing the set; nothing half-written under a final name, no temporary file left."""
import os

import pytest

from igc_mx import atomic


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def contents(folder):
    return {p: open(os.path.join(folder, p)).read() for p in sorted(os.listdir(folder))}


def test_all_files_appear_together_in_two_folders(tmp_path):
    finals = [tmp_path / "a.rec", tmp_path / "sub" / "b.idx", tmp_path / "manifest.json"]
    with atomic.atomic_paths(*finals) as temps:
        assert [os.path.dirname(t) for t in temps] == [os.path.dirname(str(f)) for f in finals]
        for i, tmp in enumerate(temps):
            write(tmp, f"new {i}")
        assert not any(f.exists() for f in finals)   # nothing final before the end
    assert [f.read_text() for f in finals] == ["new 0", "new 1", "new 2"]
    assert sorted(os.listdir(tmp_path)) == ["a.rec", "manifest.json", "sub"]
    assert os.listdir(tmp_path / "sub") == ["b.idx"]


def test_an_error_in_the_body_keeps_the_old_files_and_removes_the_temporaries(tmp_path):
    for name in ("a", "m"):
        write(tmp_path / name, "old")
    with pytest.raises(KeyboardInterrupt), \
            atomic.atomic_paths(tmp_path / "a", tmp_path / "m") as temps:
        write(temps[0], "new")
        raise KeyboardInterrupt
    assert contents(tmp_path) == {"a": "old", "m": "old"}


def test_the_last_file_is_removed_first_and_renamed_last(tmp_path, monkeypatch):
    """A rename that fails half-way leaves no seal beside the mixed set."""
    for name in ("a", "b", "m"):
        write(tmp_path / name, "old")
    real_replace = os.replace

    def fail_on_b(src, dst):
        if os.path.basename(dst) == "b":
            raise PermissionError(13, "Permission denied", dst)
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", fail_on_b)
    with pytest.raises(PermissionError), \
            atomic.atomic_paths(*(tmp_path / n for n in ("a", "b", "m"))) as temps:
        for tmp in temps:
            write(tmp, "new")
    assert contents(tmp_path) == {"a": "new", "b": "old"}   # no "m": the set is not sealed


def test_stale_temporaries_of_dead_writers_are_removed_first(tmp_path):
    dead = tmp_path / ".a.99999999-0123abcd.tmp"      # no process has this id
    alive = tmp_path / f".a.{os.getpid()}-0123abcd.tmp"   # a writer still running
    other = tmp_path / ".c.99999999-0123abcd.tmp"     # another file's
    for path in (dead, alive, other):
        write(path, "partial")
    with atomic.atomic_paths(tmp_path / "a", tmp_path / "b") as temps:
        for tmp in temps:
            write(tmp, "new")
    assert sorted(os.listdir(tmp_path)) == sorted(["a", "b", alive.name, other.name])


def test_paths_must_be_distinct(tmp_path):
    with pytest.raises(ValueError, match="distinct"), \
            atomic.atomic_paths(tmp_path / "a", tmp_path / "." / "a"):
        pass
