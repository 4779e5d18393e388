"""``vsml clone``: clone online SGD into the VSML sub-RNN and save the LA (see docs/cloning.md).

    vsml clone --config configs/clone_1layer.yaml --out runs/clone [--resume | --overwrite] [key=value ...]
    python -m vsml.cloning.cli clone ...          # the same, without the main CLI

Wire into the main CLI with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from vsml.errors import command


@command("vsml clone")
def _cmd_clone(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 2 an error (one line on stderr), 130 / 143 stopped by SIGINT / SIGTERM with a checkpoint."""
    from vsml.cloning.clone import CloneConfig, run_clone
    from vsml.config import apply_overrides, from_dict, load_yaml

    data = load_yaml(args.config) if args.config else {}
    cc = from_dict(CloneConfig, apply_overrides(data, args.overrides))
    used = getattr(args, "argv_used", None)
    if used is None:  # called through the main ``vsml`` CLI: argv = [..., "clone", *options]
        used = sys.argv[sys.argv.index("clone") + 1 :] if "clone" in sys.argv else []
    cmdline = "vsml clone " + " ".join(shlex.quote(a) for a in used if a != "--overwrite")
    path = run_clone(
        cc,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        command=cmdline,
        checkpoint_dir=args.checkpoint_dir,
    )
    print(f"saved {path} (+ {path.with_suffix('.json').name}); load it with vsml.pretrained.load({str(path)!r})")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``clone`` sub-command to an ``argparse`` sub-parser set."""
    p = subparsers.add_parser("clone", help="clone online SGD into the VSML sub-RNN (learning-algorithm cloning)")
    p.add_argument("--config", help="YAML file of CloneConfig options (e.g. configs/clone_1layer.yaml)")
    p.add_argument(
        "--out", default="runs/clone", help="folder for the checkpoint and the LA files (default runs/clone)"
    )
    p.add_argument("--checkpoint-dir", help="folder for <name>.ckpt.npz (default: --out)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint <name>.ckpt.npz")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh where an earlier clone of this name left its checkpoint or LA (removes "
        "<name>.ckpt.npz, <name>.metrics.csv, <name>.npz, <name>.json; other files are kept)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted CloneConfig overrides, e.g. seed=1 batch=512")
    p.set_defaults(func=_cmd_clone)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m vsml.cloning.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.argv_used = argv[1:]
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
