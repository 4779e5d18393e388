"""``vsml clone``: clone online SGD into the VSML sub-RNN and save the LA (see docs/cloning.md).

    vsml clone --config configs/clone_1layer.yaml --out runs/clone [--resume] [key=value ...]
    python -m vsml.cloning.cli clone ...          # the same, without the main CLI

Wire into the main CLI with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _cmd_clone(args: argparse.Namespace) -> int:
    from vsml.cloning.clone import CloneConfig, run_clone
    from vsml.config import ConfigError, apply_overrides, from_dict, load_yaml
    from vsml.runs import OutputError, RunLockError, StopRequested

    try:
        data = load_yaml(args.config) if args.config else {}
        cc = from_dict(CloneConfig, apply_overrides(data, args.overrides))
    except ConfigError as e:
        print(f"vsml clone: error: {e}", file=sys.stderr)
        return 2
    used = getattr(args, "argv_used", None)
    if used is None:  # called through the main ``vsml`` CLI: argv = [..., "clone", *options]
        used = sys.argv[sys.argv.index("clone") + 1 :] if "clone" in sys.argv else []
    command = "vsml clone " + " ".join(shlex.quote(a) for a in used)
    try:
        path = run_clone(
            cc, args.out, resume=args.resume, progress=not args.no_progress, command=command, checkpoint_dir=args.checkpoint_dir
        )
    except StopRequested as e:
        print(f"vsml clone: {e}; continue with: {command}{'' if args.resume else ' --resume'}", file=sys.stderr)
        return e.exit_code
    except (FileNotFoundError, ValueError, FloatingPointError, RunLockError, OutputError) as e:
        print(f"vsml clone: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"vsml clone: error: {e}; the last checkpoint is intact, continue with: {command}"
              f"{'' if args.resume else ' --resume'}", file=sys.stderr)
        return 2
    print(f"saved {path} (+ {path.with_suffix('.json').name}); load it with vsml.pretrained.load({str(path)!r})")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``clone`` sub-command to an ``argparse`` sub-parser set."""
    p = subparsers.add_parser("clone", help="clone online SGD into the VSML sub-RNN (learning-algorithm cloning)")
    p.add_argument("--config", help="YAML file of CloneConfig options (e.g. configs/clone_1layer.yaml)")
    p.add_argument("--out", default="runs/clone", help="folder for the checkpoint and the LA files (default runs/clone)")
    p.add_argument("--checkpoint-dir", help="folder for <name>.ckpt.npz (default: --out)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint <name>.ckpt.npz")
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
