#!/usr/bin/env python3
"""Time tools/make_rec.py against MXNet 1.9.1's tools/im2rec.py on the same JPEG list.

Generates a deterministic ImageNet-like tree (500x375 JPEGs in class folders),
writes im2rec-format train.lst/val.lst once, and packs them with both tools at
the same worker count, resize and JPEG quality:

    im2rec.py   PREFIX ROOT --resize R --quality Q --num-thread W
    make_rec.py imagenet LST_DIR OUT --image-root ROOT --resize R --quality Q --workers W \\
        --no-shuffle

Both runs are whole processes (interpreter start included), repeated, and the
best time of each is compared.  It also reports whether the two tools wrote
byte-identical .rec/.idx files (same recipe, same framing, same keys).

im2rec.py is not in the mxnet pip wheel; get it from an MXNet checkout:
    git -C incubator-mxnet show 1.9.1:tools/im2rec.py > /tmp/im2rec.py
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_REC = os.path.join(os.path.dirname(HERE), "tools", "make_rec.py")
# make_rec needs no MXNet: without this, `import igc_mx` would import it at start-up.
OURS_ENV = {**os.environ, "IGC_MX_NO_MXNET": "1"}
IM2REC_HELP = ("MXNet's im2rec.py is not part of the pip wheel. Extract the 1.9.1 version "
               "from an MXNet git checkout and pass it with --im2rec:\n"
               "    git -C /path/to/mxnet show 1.9.1:tools/im2rec.py > /tmp/im2rec.py\n"
               "(or download https://raw.githubusercontent.com/apache/mxnet/1.9.1/tools/im2rec.py)")


def synthetic_image(index: int, width: int, height: int) -> np.ndarray:
    """Deterministic photo-like BGR image: smooth colour field, shapes, sensor noise."""
    rng = np.random.default_rng(index)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, center, int(rng.integers(10, 80)), colour, -1, lineType=cv2.LINE_AA)
    noise = rng.normal(0, 8, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def make_tree(root: str, images: int, classes: int, width: int, height: int) -> dict:
    """root/{train,val}/cNN/xxxxx.jpg; every 10th image goes to val. Returns
    {split: [(label, relpath)]}."""
    lists = {"train": [], "val": []}
    for i in range(images):
        split = "val" if i % 10 == 9 else "train"
        label = i % classes
        rel = os.path.join(split, f"c{label:02d}", f"{i:05d}.jpg")
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, synthetic_image(i, width, height), [cv2.IMWRITE_JPEG_QUALITY, 90])
        lists[split].append((label, rel))
    return lists


def write_lst(path: str, rows: list) -> None:
    with open(path, "w") as f:
        for i, (label, rel) in enumerate(rows):
            f.write(f"{i}\t{label:f}\t{rel}\n")


def warm_cache(root: str) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                f.read()


def timed(cmd: list, env: dict = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}")
    return elapsed


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--im2rec", help="path to MXNet 1.9.1 tools/im2rec.py")
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the generated JPEGs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--resize", type=int, default=480)
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir",
                   help="where to generate data (default: a temporary folder, removed after)")
    p.add_argument("--json", default=None,
                   help="result file (default: WORKDIR/bench_make_rec.json)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if not args.im2rec or not os.path.isfile(args.im2rec):
        print(f"--im2rec {args.im2rec!r}: file not found.\n{IM2REC_HELP}", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_make_rec_")
    os.makedirs(workdir, exist_ok=True)
    root, lst_dir = os.path.join(workdir, "images"), os.path.join(workdir, "lists")
    im2rec_dir = os.path.join(workdir, "im2rec_out")
    ours_dir = os.path.join(workdir, "make_rec_out")
    for d in (root, lst_dir, im2rec_dir, ours_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    lists = make_tree(root, args.images, args.classes, width, height)
    for split, rows in lists.items():
        write_lst(os.path.join(lst_dir, f"{split}.lst"), rows)
        shutil.copy(os.path.join(lst_dir, f"{split}.lst"), im2rec_dir)
    warm_cache(root)

    py = sys.executable
    im2rec_cmd = [py, args.im2rec, im2rec_dir, root, "--resize", str(args.resize),
                  "--quality", str(args.quality), "--num-thread", str(args.workers)]
    ours_cmd = [py, MAKE_REC, "imagenet", lst_dir, ours_dir, "--image-root", root,
                "--resize", str(args.resize), "--quality", str(args.quality),
                "--workers", str(args.workers), "--no-shuffle", "--quiet"]
    times = {"im2rec": [], "make_rec": []}
    for _ in range(args.repeat):  # alternate so both see the same machine load
        times["im2rec"].append(timed(im2rec_cmd))
        times["make_rec"].append(timed(ours_cmd, OURS_ENV))

    import_mxnet = min(timed([py, "-c", "import mxnet"]) for _ in range(args.repeat))
    identical = {}
    for ours_name, theirs_name in (("train", "train"), ("test", "val")):
        for ext in ("rec", "idx"):
            ours = sha256(os.path.join(ours_dir, f"{ours_name}.{ext}"))
            identical[f"{ours_name}.{ext}"] = ours == sha256(
                os.path.join(im2rec_dir, f"{theirs_name}.{ext}"))
    best = {k: min(v) for k, v in times.items()}
    result = {
        "images": args.images, "size": f"{width}x{height}", "workers": args.workers,
        "resize": args.resize, "quality": args.quality, "repeat": args.repeat,
        "seconds": times, "best_seconds": best,
        "median_seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio_im2rec_over_make_rec": best["im2rec"] / best["make_rec"],
        "byte_identical_to_im2rec": identical,
        "python_import_mxnet_seconds": import_mxnet,
        "commands": {"im2rec": " ".join(im2rec_cmd),
                     "make_rec": "IGC_MX_NO_MXNET=1 " + " ".join(ours_cmd)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "opencv": cv2.__version__},
    }
    json_path = args.json or os.path.join(workdir, "bench_make_rec.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{args.images} JPEGs {width}x{height}, resize {args.resize}, quality {args.quality}, "
          f"{args.workers} workers, best of {args.repeat}")
    print(f"im2rec.py : {best['im2rec']:.2f} s")
    print(f"make_rec  : {best['make_rec']:.2f} s")
    print(f"(of which `import mxnet`, paid by im2rec only: {import_mxnet:.2f} s)")
    print(f"ratio im2rec/make_rec = {result['ratio_im2rec_over_make_rec']:.2f} "
          "(>1: make_rec faster)")
    print(f"byte-identical to im2rec output: {identical}")
    print(f"results: {json_path}")
    if not args.workdir:
        shutil.rmtree(os.path.join(workdir, "images"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
