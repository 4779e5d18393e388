"""``vsml meta-train CONFIG [key=value ...]`` (argparse wiring only).

The main CLI calls ``register(subparsers)`` and then ``args.func(args)`` (an exit code). Also
runnable alone: ``python -m vsml.meta.cli CONFIG ...``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from vsml.errors import command
from vsml.limits import ranged


def register(subparsers) -> None:
    """Add the ``meta-train`` sub-command."""
    p = subparsers.add_parser(
        "meta-train",
        help="meta-train a learning algorithm (gradient or ES) from a YAML config",
        description="Meta-train the meta-parameters of a learner. CONFIG is a YAML file (see configs/meta_*.yaml); "
        "key.sub=value overrides follow it, e.g. iterations=200 gradient.lr=3e-3.",
    )
    _add_args(p)
    p.set_defaults(func=cmd_meta_train)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides key.sub=value (values parsed as YAML)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the out folder")
    p.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="with --resume: let this dotted config key (or section) differ from the checkpoint's, "
        "to continue a run with a changed recipe on purpose (repeatable; recorded in the checkpoints)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an out folder that holds an earlier run: removes that run's files (checkpoints, "
        "logs, learner, best) and keeps everything else (default: refuse)",
    )
    p.add_argument("--out", default=None, help="output folder (default: config 'out', else runs/meta/<name>)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument(
        "--wait-lock",
        type=ranged(float, ">=0"),
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for another run holding the out folder to end (default: fail at once)",
    )
    p.add_argument(
        "--time-limit",
        type=ranged(float, ">0"),
        default=None,
        metavar="SECONDS",
        help="stop gracefully once this much wall-clock time has passed, as on SIGTERM: finish the "
        "current iteration, write a checkpoint, exit 143 (a borrowed machine, a scheduler slot)",
    )


def _command(args) -> str:
    from vsml.runs import command_line

    argv = [args.config, *args.overrides]
    if args.out:
        argv += ["--out", args.out]
    if args.no_progress:
        argv.append("--no-progress")
    if args.resume:
        argv.append("--resume")
    return command_line("vsml meta-train", argv)


def _stop_after(seconds: float) -> threading.Timer:
    """Send this process SIGTERM after ``seconds`` (the trainer's graceful stop: checkpoint, exit 143)."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    return timer


def _leave(code: int, line: str, error: BaseException) -> None:
    """End every process of a multi-process run at once (a peer may be waiting in a collective for
    this one); a lost peer ends even a single process with :data:`~vsml.meta.processes.EXIT_PEER_LOST`."""
    from vsml.meta import processes
    from vsml.runs import StopRequested

    if isinstance(error, processes.PeerLostError):
        processes.hard_exit(code, line)
    if processes.is_multiprocess() and not isinstance(error, (StopRequested, KeyboardInterrupt)):  # those stop together
        # an outcome every process reached together: process 0 (the coordinator) leaves last
        processes.hard_exit(code, line, linger=3.0 if isinstance(error, processes.DistributedError) else 0.0)


@command("vsml meta-train", on_exit=_leave)
def cmd_meta_train(args) -> int:
    """Exit codes: 0 done, 2 an error (message on stderr), 130 / 143 stopped by SIGINT / SIGTERM
    with a checkpoint, 75 a process of a multi-process run is missing or was lost."""
    from vsml.config import ConfigError, to_dict
    from vsml.meta.config import load_meta_config
    from vsml.meta.trainer import MetaTrainer
    from vsml.runs import OutputError

    if getattr(args, "allow_change", None) and not args.resume:
        raise ConfigError("--allow-change lets a resumed run's config differ from its checkpoint's; it needs --resume")
    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("log.progress=false")
    if args.out:
        overrides.append(f"out={args.out}")
    cfg = load_meta_config(args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    trainer = MetaTrainer(cfg, command=_command(args), lock_wait=getattr(args, "wait_lock", 0.0))
    timer = _stop_after(args.time_limit) if getattr(args, "time_limit", None) else None
    try:
        result = trainer.run(
            resume=args.resume,
            overwrite=getattr(args, "overwrite", False),
            allow_changes=tuple(getattr(args, "allow_change", ())),
        )
    except OSError as e:  # not a checked write: say how to continue all the same
        raise OutputError(f"{e}; continue with: {trainer.resume_command}") from None
    finally:
        if timer is not None:
            timer.cancel()
    if trainer.main:
        print(f"done: {result.iteration} iterations; learner saved in {result.out_dir}/learner.npz")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vsml meta-train")
    _add_args(parser)
    return cmd_meta_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
