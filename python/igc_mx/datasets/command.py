"""The build command: its options, the BuildRequest they resolve to, and the command line
that rebuilds a folder (the manifest's ``command``, which ``verify`` parses back)."""
from __future__ import annotations

import argparse
import contextlib
import io
import shlex
from dataclasses import dataclass

from ..recordio import UserError
from .recipes import DATASETS, INTERPOLATIONS, DatasetSpec, Recipe, make_recipe
from .workers import default_workers


@dataclass(frozen=True)
class BuildRequest:
    """Everything a build needs, resolved and checked once."""
    dataset: str
    source: str
    out_dir: str
    recipe: Recipe
    workers: int
    skip_bad: bool
    quiet: bool
    options: tuple[tuple[str, object], ...] = ()   # (reader keyword, value) of the row's options

    @property
    def spec(self) -> DatasetSpec:
        return DATASETS[self.dataset]


def add_build_command(subparsers, spec: DatasetSpec) -> argparse.ArgumentParser:
    p = subparsers.add_parser(spec.name, help=f"build {spec.name} train/test .rec files "
                                              f"(SOURCE: {spec.source})")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="encoding processes (default: CPUs)")
    p.add_argument("--encoding", choices=("png", "jpg"), default=None,
                   help=f"image format (default {spec.encoding})")
    p.add_argument("--quality", type=int, default=None, help="JPEG quality 1..100 (default 95)")
    p.add_argument("--png-compression", type=int, default=None,
                   help="PNG zlib level 0..9 (default 9)")
    p.add_argument("--resize", type=int, default=None,
                   help=f"shorter side in pixels, 0 keeps the size (default {spec.resize})")
    p.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default="linear",
                   help="cv2.resize interpolation (default linear, as im2rec)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the train-split shuffle (default 0)")
    p.add_argument("--no-shuffle", action="store_true",
                   help="keep train records in source order")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and list them in the manifest")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    for option in spec.options:
        if option.takes_value:
            p.add_argument(option.flag, dest=option.dest, default=None, help=option.help)
        else:
            p.add_argument(option.flag, dest=option.dest, action="store_true", help=option.help)
    p.set_defaults(dataset=spec.name)
    return p


def request_from_args(args: argparse.Namespace) -> BuildRequest:
    recipe = make_recipe(args.dataset, args.encoding, args.quality, args.png_compression,
                         args.resize, args.interpolation, not args.no_shuffle, args.seed)
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected at least 1")
    options = tuple((o.dest, getattr(args, o.dest)) for o in DATASETS[args.dataset].options)
    return BuildRequest(args.dataset, args.source, args.out_dir, recipe, args.workers,
                        args.skip_bad, args.quiet, options)


def regenerate_command(request: BuildRequest) -> str:
    """The igc-make-rec command line that builds ``request.out_dir`` again (quoted for a
    shell)."""
    recipe = request.recipe
    parts = ["igc-make-rec", request.dataset, request.source, request.out_dir,
             "--encoding", recipe.encoding]
    parts += ["--quality", str(recipe.quality)] if recipe.encoding == "jpg" else \
             ["--png-compression", str(recipe.png_compression)]
    parts += ["--resize", str(recipe.resize), "--interpolation", recipe.interpolation,
              "--seed", str(recipe.seed)]
    if not recipe.shuffle:
        parts.append("--no-shuffle")
    values = dict(request.options)
    for option in request.spec.options:
        value = values.get(option.dest)
        if option.takes_value and value:
            parts += [option.flag, value]
        elif not option.takes_value and value:
            parts.append(option.flag)
    if request.skip_bad:
        parts.append("--skip-bad")
    return shlex.join(parts)


def build_command_parser() -> argparse.ArgumentParser:
    """A parser of the build commands alone (``igc-make-rec DATASET ...``)."""
    parser = argparse.ArgumentParser(prog="igc-make-rec")
    sub = parser.add_subparsers(dest="command", required=True, metavar="DATASET")
    for spec in DATASETS.values():
        add_build_command(sub, spec)
    return parser


def parse_build_command(command: str) -> BuildRequest:
    """The BuildRequest of a manifest's ``command``; ValueError when it is not an
    igc-make-rec build command that builds a valid recipe."""
    try:
        argv = shlex.split(command)
        if not argv or argv[0] != "igc-make-rec":
            raise ValueError
        with contextlib.redirect_stderr(io.StringIO()):
            args = build_command_parser().parse_args(argv[1:])
        return request_from_args(args)
    except (ValueError, TypeError, AttributeError, SystemExit, UserError):
        raise ValueError(f"command {command!r} is not an igc-make-rec build command") from None
