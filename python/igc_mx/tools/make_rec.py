"""Build byte-reproducible MXNet RecordIO datasets (CIFAR-10/100, SVHN, ImageNet,
Fashion-MNIST, MNIST).

    igc-make-rec {cifar10,cifar100,svhn,imagenet,fashion-mnist,mnist} SOURCE OUT_DIR [options]
    igc-make-rec verify OUT_DIR
    igc-make-rec stats OUT_DIR [--split train]

OUT_DIR receives train.rec/.idx/.lst, test.rec/.idx/.lst and manifest.json. The
.rec/.idx files depend only on the input pixels, the recipe recorded in the manifest and
the OpenCV build (its codec versions are recorded too); the number of worker processes
does not change a byte. See docs/make_rec.md. The work is done by ``igc_mx.datasets``;
this module parses the command line and turns errors and signals into one line and an
exit status. Also ``python tools/make_rec.py`` in a checkout.
"""
from __future__ import annotations

import argparse
import errno
import json
import signal
import sys

from .._process import Signalled, raise_on_signals
from ..datasets.build import build
from ..datasets.command import add_build_command, request_from_args
from ..datasets.recipes import DATASETS
from ..datasets.stats import format_stats, stats
from ..datasets.verify import verify
from ..datasets.workers import default_workers
from ..recordio import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for spec in DATASETS.values():
        add_build_command(sub, spec).set_defaults(run=run_build)
    p = sub.add_parser("verify", help="check a built folder against its manifest")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--no-decode", action="store_true", help="skip decoding every image")
    p.add_argument("--source", help="where the build's source is now (default: the "
                                    "manifest's path)")
    p.add_argument("--no-source", action="store_true",
                   help="do not check the source (its files are read again)")
    p.set_defaults(run=run_verify)
    p = sub.add_parser("stats", help="per-channel mean/std (RGB or grey, 0-255) of a split")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--split", default="train")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--limit", type=int, default=0, help="use only the first N records (0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_stats)
    return parser


def run_build(args: argparse.Namespace) -> int:
    return build(request_from_args(args))


def run_verify(args: argparse.Namespace) -> int:
    return verify(args.out_dir, args.workers, not args.no_decode, args.source,
                  not args.no_source)


def run_stats(args: argparse.Namespace) -> int:
    result = stats(args.out_dir, args.split, args.workers, args.limit)
    print(json.dumps(result, indent=2) if args.json else format_stats(result))
    return 0


def os_error_message(e: OSError) -> str:
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"no space left on device{where}; free space or choose another OUT_DIR"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied{where}: {e.strerror}"
    return f"{e.strerror or e}{where}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM and SIGHUP are handled like Ctrl-C (SIGINT)
    with raise_on_signals(signal.SIGTERM, signal.SIGHUP):
        try:
            return args.run(args)
        except UserError as e:
            print(f"make_rec: error: {e}", file=sys.stderr)
        except OSError as e:
            print(f"make_rec: error: {os_error_message(e)}", file=sys.stderr)
        except (KeyboardInterrupt, Signalled) as e:
            signum = getattr(e, "signum", signal.SIGINT)
            print(f"make_rec: interrupted ({signal.Signals(signum).name}); no output file "
                  "was finalised", file=sys.stderr)
            return 128 + signum
    return 1


if __name__ == "__main__":
    sys.exit(main())
