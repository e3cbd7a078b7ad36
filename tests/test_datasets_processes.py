"""igc-make-rec's worker processes: builds, ``verify`` and ``stats`` with several workers
end without a traceback or a hang and leave no worker behind; a signalled build prints
one line and exits 128 + n; a worker that dies ends the build with one line.

Workers are forked when MXNet is not loaded (``IGC_MX_NO_MXNET=1``, or no MXNet) and
spawned when it is; the tests run both where it matters. Each build runs in its own
interpreter, started in its own session so that a stray worker cannot escape the test.
"""
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from igc_mx.datasets import stats, synthetic_cifar
from igc_mx.datasets.workers import worker_pool

FORK = {"IGC_MX_NO_MXNET": "1"}   # igc_mx without MXNet: workers are forked
SPAWN = {}                          # igc_mx imports MXNet: workers are spawned

# Ctrl-C in a terminal: a process started in the background by a shell without job
# control inherits SIGINT ignored, which Python keeps, so the build sets Python's own.
BUILD_SCRIPT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from igc_mx.tools import make_rec
sys.exit(make_rec.main(sys.argv[1:]))
"""

# Many short builds, verifies and stats in one interpreter: each ends two or three pools.
REPEATED_SCRIPT = """
import os, sys
from igc_mx.tools import make_rec
archive, out, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(repeats):
    codes = [make_rec.main(['cifar10', archive, out, '--workers', '2', '--quiet']),
             make_rec.main(['verify', out, '--workers', '2']),
             make_rec.main(['stats', out, '--workers', '2'])]
    assert codes == [0, 0, 0], codes
children = [c for t in os.listdir('/proc/self/task')
            for c in open(f'/proc/self/task/{t}/children').read().split()]
print('children left:', children)
"""


def child_pids(pid):
    """The process ids of ``pid``'s children (Linux)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def alive(pid):
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, seconds=30):
    """The pids of ``pids`` still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    return synthetic_cifar.write_archive(str(root / "c.tar.gz"), 40, 20, seed=4)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_repeated_two_worker_builds_verify_and_stats_exit_quietly(small_archive, tmp_path):
    """The workers used to inherit the build's Python signal handlers: Pool.terminate()'s
    SIGTERM then raised in a worker waiting on the task queue's lock (a traceback), or,
    arriving just before the wait, was never acted on (the build hung in join)."""
    proc = subprocess.run([sys.executable, "-c", REPEATED_SCRIPT, small_archive,
                           str(tmp_path / "out"), "8"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **FORK})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "children left: []"


@pytest.fixture(scope="module")
def slow_build(tmp_path_factory):
    """An image-folder source whose build takes a few seconds with 2 workers."""
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("slow") / "src"
    for split, n in (("train", 240), ("val", 8)):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 256, (300, 400, 3),
                                                                   dtype=np.uint8))
    return root


def start_build(src, out, env):
    """A build of ``src`` in its own session, once it has written train records; returns
    (process, its workers' pids)."""
    proc = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, "imagenet", str(src), str(out),
                             "--workers", "2", "--resize", "600", "--quality", "100"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **env})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not any(
            n.startswith(".train.rec") and (out / n).stat().st_size > 0
            for n in (os.listdir(out) if out.is_dir() else [])):
        time.sleep(0.02)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    workers = child_pids(proc.pid)
    assert len(workers) >= 2, workers   # spawn adds its resource tracker
    return proc, workers


def finish(proc):
    """(stdout, stderr) of ``proc``; its session is killed should it hang."""
    try:
        # stderr closes once every process holding it, the workers too, has exited
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the build hung")


INTERRUPTS = [(signal.SIGKILL, False, SPAWN), (signal.SIGINT, True, SPAWN),
              (signal.SIGTERM, False, FORK), (signal.SIGINT, True, FORK),
              (signal.SIGHUP, False, FORK)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig,to_group,env", INTERRUPTS,
                         ids=[f"{s.name}-{'fork' if e else 'spawn'}" for s, _, e in INTERRUPTS])
def test_interrupted_build_is_quiet_and_leaves_no_worker(slow_build, tmp_path, sig, to_group,
                                                         env):
    out = tmp_path / "out"
    proc, workers = start_build(slow_build, out, env)
    if to_group:      # Ctrl-C reaches the whole foreground group: the workers too
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = finish(proc)
    assert "Traceback" not in err and "Error" not in err, err
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 128 + sig)
    if sig != signal.SIGKILL:
        assert err == (f"make_rec: interrupted ({sig.name}); no output file was "
                       "finalised\n")
        assert sorted(os.listdir(out)) == [".make_rec.lock"]
    assert not (out / "manifest.json").exists()
    assert wait_gone(workers) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_that_dies_ends_the_build_with_one_line(slow_build, tmp_path):
    """A worker killed from outside (the kernel's OOM killer, say) used to leave the build
    waiting for its results forever."""
    out = tmp_path / "out"
    proc, workers = start_build(slow_build, out, FORK)
    os.kill(workers[0], signal.SIGKILL)
    _, err = finish(proc)
    assert proc.returncode == 1, err
    assert err == f"make_rec: error: worker process {workers[0]} was killed by SIGKILL\n"
    assert sorted(os.listdir(out)) == [".make_rec.lock"]
    assert wait_gone(workers) == []


def test_the_pool_keeps_task_order_and_raises_a_workers_exception():
    rng = np.random.default_rng(2)
    png = [cv2.imencode(".png", rng.integers(0, 256, (4, 4), dtype=np.uint8))[1].tobytes()
           for _ in range(9)]
    chunks = [(1, png[:n]) for n in (5, 1, 9, 2, 7, 3, 8)]   # uneven work per task
    with worker_pool(stats.channel_sums, 2) as pool:
        assert list(pool.imap(chunks)) == [stats.channel_sums(c) for c in chunks]
        with pytest.raises(ValueError, match="an image does not decode"):
            list(pool.imap([(1, png), (1, [b"not an image"]), (1, png)]))
        assert list(pool.imap(chunks[:2])) == [stats.channel_sums(c) for c in chunks[:2]]
