"""The general-LA meta-test protocol: one command for the whole table of targets.

A general learned LA is judged on test splits it never saw in meta-training — Fashion-MNIST,
KMNIST, EMNIST ByClass with a random 10-class subset per episode and with all 62 classes — at
14×14 and 28×28 with the same parameters (flattened pixels, batch 1, fixed seed), against the
"oracle best backprop" (:mod:`vsml.eval.compare`; chosen on the reported episodes themselves,
which favours backprop), paired episode by episode. Targets (points of online accuracy):

- first 1,000 steps: ≥ +3 against the oracle;
- all 2,000 steps: ≥ +2;
- last 100 of 2,000 steps: ≥ −1 (no more than 1 point below);
- 10,000-step lifetimes: accuracy over steps 9,000–10,000 ≥ that over 1,000–2,000 (it keeps
  learning; it never collapses), paired within episodes.

Run it as ``vsml protocol --checkpoint general -o docs/results/general`` (every
option: ``--help``; smaller settings for a quick look: ``-n 4 -T 1200 --long-steps 0``). Writes
``table.md`` (one row per LA, dataset and size; each target's measured gap and whether it is met),
``results.json`` (every figure with its interval) and ``curves.png`` (running-mean accuracy per
step of every LA and of the oracle's best-online configuration, one panel per dataset and size and
per long lifetime).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

from vsml.config import ConfigError, Range, check_ranges
from vsml.errors import command
from vsml.eval.metrics import Estimate, mean_ci

#: (figure of :func:`vsml.eval.metrics.episode_summaries`, minimum paired difference in points, label)
TARGETS = (
    ("first_1000_acc", 3.0, "first 1,000 steps"),
    ("online_acc", 2.0, "all steps"),
    ("final_acc", -1.0, "last 100 steps"),
)
DEFAULT_DATASETS = ("fashion_mnist:10", "kmnist:10", "emnist:10", "emnist:62")


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """Settings of the protocol (defaults: the targets' protocol)."""

    datasets: tuple[str, ...] = DEFAULT_DATASETS  # "name:classes"
    sizes: Annotated[tuple[int, ...], Range(">=1")] = (14, 28)
    episodes: Annotated[int, Range(">=2")] = 20  # a paired interval needs two
    steps: Annotated[int, Range(">=100")] = 2000
    long_steps: Annotated[int, Range(">=0")] = 10_000  # 0: skip the long-lifetime check, else >= 2000
    long_episodes: Annotated[int, Range(">=1")] = 4  # >= 2 when long_steps > 0
    long_size: Annotated[int, Range(">=1")] = 14
    seed: Annotated[int, Range(">=0")] = 0
    chunk: Annotated[int | None, Range(">=1")] = None
    data_dir: str | None = None
    oracle_cache: str | None = None  # folder of the oracle grid's curves per set of episodes (None: no cache)

    def __post_init__(self):
        check_ranges(self, "protocol")
        if self.long_steps and self.long_steps < 2000:
            raise ConfigError(
                f"protocol.long_steps must be 0 or >= 2000 (windows 1,000-2,000 and the last 1,000), "
                f"got {self.long_steps}"
            )
        if self.long_steps and self.long_episodes < 2:
            raise ConfigError(f"protocol.long_episodes must be >= 2 when long_steps > 0, got {self.long_episodes}")
        for spec in self.datasets:
            parse_dataset(spec)


def default_oracle_cache() -> str:
    """``$VSML_CACHE_DIR/oracle``, else ``$XDG_CACHE_HOME/vsml/oracle``, else ``~/.cache/vsml/oracle``."""
    if os.environ.get("VSML_CACHE_DIR"):
        return str(Path(os.environ["VSML_CACHE_DIR"]) / "oracle")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "vsml" / "oracle")


def parse_dataset(spec: str) -> tuple[str, int]:
    """``"emnist:62"`` -> ``("emnist", 62)``; the class count defaults to 10."""
    name, _, classes = spec.partition(":")
    try:
        n = int(classes or 10)
    except ValueError:
        raise ConfigError(f"dataset spec {spec!r}: expected NAME or NAME:CLASSES") from None
    if not name or n < 2:
        raise ConfigError(f"dataset spec {spec!r}: expected NAME or NAME:CLASSES with CLASSES >= 2")
    return name, n


def episodes(config: ProtocolConfig, spec: str, size: int, steps: int, n: int):
    """The protocol's episodes of one dataset spec at one size (the one episode pipeline)."""
    from vsml.config import from_dict
    from vsml.data.episodes import SamplerConfig, draw_episodes

    name, classes = parse_dataset(spec)
    sampler = from_dict(
        SamplerConfig,
        {
            "datasets": [{"name": name, "split": "test"}],
            "steps": steps,
            "num_classes": classes,
            "image_size": [size, size],
            "flatten": True,
            "data_dir": config.data_dir,
        },
        path="episodes",
    )
    return draw_episodes(sampler, config.seed, n)


def run(
    learners: dict, config: ProtocolConfig = ProtocolConfig(), progress: bool = False, log=print, on_part=None
) -> dict:
    """``learners``: label -> ``(learner, params)``. Returns ``{"config", "rows", "long", "seconds"}``:
    one row per (learner, dataset, size) with the paired difference to the oracle on every target
    figure (:class:`Estimate` as dicts, in points) and ``met``; ``long`` per (learner, dataset)
    the paired gain from steps 1,000-2,000 to the last 1,000 steps; ``_curves`` (not JSON) an
    :class:`EvalReport` of every panel's per-step curves (the LAs and the oracle's best-online
    configuration). ``on_part(result)`` is called
    with the result so far after each size and after the long check (partial tables)."""
    from vsml.eval.compare import oracle_backprop, paired_differences
    from vsml.eval.evaluate import Curves, EvalReport, evaluate

    t0 = time.time()
    rows = []
    curves = EvalReport([])  # per dataset x size: every LA and the oracle's best-online configuration
    for size in config.sizes:
        data = {
            f"{spec} {size}x{size}": episodes(config, spec, size, config.steps, config.episodes)
            for spec in config.datasets
        }
        log(f"{size}x{size}: {len(learners)} LA(s) and the oracle grid on {', '.join(data)}")
        report = evaluate(learners, data, seed=config.seed, chunk=config.chunk, progress=progress)
        oracles = oracle_backprop(
            data, seed=config.seed, chunk=config.chunk, progress=progress, cache=config.oracle_cache
        )
        curves.results += report.results + [
            Curves(f"oracle ({o.best['online_acc'][0]})", d, *o.online_curves) for d, o in oracles.items()
        ]
        for row in paired_differences(report, "oracle", oracles):
            spec, _ = row["dataset"].rsplit(" ", 1)
            out = {"learner": row["learner"], "dataset": spec, "size": size, "episodes": row["episodes"], "targets": {}}
            for figure, threshold, _ in TARGETS:
                if figure not in row:  # a window longer than the episodes
                    continue
                est: Estimate = row[figure]
                out["targets"][figure] = {
                    "mean": 100 * est.mean,
                    "ci_low": 100 * est.lo,
                    "ci_high": 100 * est.hi,
                    "target": threshold,
                    "met": bool(100 * est.mean >= threshold),
                    "oracle": oracles[row["dataset"]].best[figure][0],
                }
            rows.append(out)
        if on_part is not None:
            on_part(
                {
                    "config": dataclasses.asdict(config),
                    "rows": rows,
                    "long": [],
                    "seconds": time.time() - t0,
                    "partial": True,
                    "_curves": curves,
                }
            )
    long = []
    if config.long_steps:
        data = {
            spec: episodes(config, spec, config.long_size, config.long_steps, config.long_episodes)
            for spec in config.datasets
        }
        log(f"{config.long_steps}-step lifetimes at {config.long_size}x{config.long_size}: {', '.join(data)}")
        report = evaluate(learners, data, seed=config.seed, chunk=config.chunk, progress=progress)
        curves.results += [
            dataclasses.replace(
                r, dataset=f"{r.dataset} {config.long_size}x{config.long_size}, {config.long_steps} steps"
            )
            for r in report.results
        ]
        for r in report.results:
            early = r.correct[:, 1000:2000].mean(1)
            late = r.correct[:, -1000:].mean(1)
            est = mean_ci(100 * (late - early))
            long.append(
                {
                    "learner": r.learner,
                    "dataset": r.dataset,
                    "size": config.long_size,
                    "episodes": int(r.correct.shape[0]),
                    "early": float(100 * early.mean()),
                    "late": float(100 * late.mean()),
                    "gain": {"mean": est.mean, "ci_low": est.lo, "ci_high": est.hi},
                    "met": bool(est.mean >= 0),
                }
            )
    return {
        "config": dataclasses.asdict(config),
        "rows": rows,
        "long": long,
        "seconds": time.time() - t0,
        "_curves": curves,
    }


def _fmt(t: dict) -> str:
    half = (t["ci_high"] - t["ci_low"]) / 2
    mark = "✓" if t["met"] else "✗"
    return f"{t['mean']:+.1f} ± {half:.1f} {mark}" if math.isfinite(half) else f"{t['mean']:+.1f} {mark}"


def table_markdown(result: dict) -> str:
    """The table of :func:`run` as markdown."""
    cfg = result["config"]
    lines = [
        f"Paired difference to the oracle best backprop (points; mean ± 95 % half-width over {cfg['episodes']} "
        f"episodes × {cfg['steps']} steps, seed {cfg['seed']}); ✓ = target met.",
        "",
        "| learner | dataset | size | " + " | ".join(f"{label} (≥ {thr:+g})" for _, thr, label in TARGETS) + " |",
        "|---|---|---|" + "---:|" * len(TARGETS),
    ]
    for r in result["rows"]:
        cells = " | ".join(_fmt(r["targets"][f]) if f in r["targets"] else "—" for f, _, _ in TARGETS)
        lines.append(f"| {r['learner']} | {r['dataset']} | {r['size']}×{r['size']} | {cells} |")
    met = sum(t["met"] for r in result["rows"] for t in r["targets"].values())
    total = sum(len(r["targets"]) for r in result["rows"])
    lines += ["", f"Targets met: {met} of {total}."]
    if result["long"]:
        lines += [
            "",
            f"{cfg['long_steps']}-step lifetimes ({cfg['long_size']}×{cfg['long_size']}, {cfg['long_episodes']} "
            f"episodes): "
            "accuracy over steps 1,000–2,000 and over the last 1,000 steps; target: no loss (gain ≥ 0).",
            "",
            "| learner | dataset | steps 1,000–2,000 | last 1,000 | gain | met |",
            "|---|---|---:|---:|---:|:---:|",
        ]
        for r in result["long"]:
            g = r["gain"]
            half = (g["ci_high"] - g["ci_low"]) / 2
            lines.append(
                f"| {r['learner']} | {r['dataset']} | {r['early']:.1f} | {r['late']:.1f} | {g['mean']:+.1f} ± "
                f"{half:.1f} | "
                f"{'✓' if r['met'] else '✗'} |"
            )
    lines += [
        "",
        f"Wall-clock: {result['seconds'] / 60:.1f} min."
        + (" Partial: the run has not finished." if result.get("partial") else ""),
    ]
    return "\n".join(lines) + "\n"


OWNED = ("table.md", "results.json", "curves.png")  # the files the command writes (--overwrite replaces only these)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vsml protocol`` (also ``python -m vsml.eval.protocol``)."""
    from vsml.limits import ranged

    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help="LA to judge: run folder, checkpoint, LA file or shipped name (repeatable)",
    )
    parser.add_argument(
        "-o",
        "--out",
        default=None,
        help="output folder for table.md, results.json and curves.png; must be "
        "empty unless --overwrite (default runs/protocol, or a fresh runs/protocol-N)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace this command's files in a non-empty --out folder"
    )
    parser.add_argument(
        "-d",
        "--dataset",
        action="append",
        default=None,
        help="NAME[:CLASSES] (repeatable; default: %s)" % ", ".join(DEFAULT_DATASETS),
    )
    parser.add_argument(
        "--size",
        type=ranged(int, ">=1"),
        action="append",
        default=None,
        help="square input size (repeatable; default 14 and 28)",
    )
    parser.add_argument("-n", "--episodes", type=ranged(int, ">=2"), default=20)
    parser.add_argument("-T", "--steps", type=ranged(int, ">=100"), default=2000)
    parser.add_argument(
        "--long-steps", type=ranged(int, ">=0"), default=10_000, help="lifetime of the long check (0: skip)"
    )
    parser.add_argument("--long-episodes", type=ranged(int, ">=1"), default=4)
    parser.add_argument("--seed", type=ranged(int, ">=0"), default=0)
    parser.add_argument("--chunk", type=ranged(int, ">=1"), default=None, help="episodes run at once (memory)")
    parser.add_argument("--data-dir", default=None, help="data directory (default $VSML_DATA_DIR)")
    parser.add_argument(
        "--oracle-cache",
        default=default_oracle_cache(),
        metavar="DIR",
        help="folder caching the oracle grid's curves per set of episodes, so judging another LA on the "
        "same episodes runs only that LA (default: %(default)s; 'none' disables it)",
    )
    parser.add_argument("--no-progress", action="store_true")


def run_command(args, argv=None, prog: str = "vsml protocol") -> int:
    """Run the protocol for parsed ``args``; errors are one line on stderr and exit status 2
    (:func:`vsml.errors.command`)."""
    return command(prog)(lambda a: _run_command(a, argv, prog))(args)


def _run_command(args, argv, prog: str) -> int:
    from vsml import runs
    from vsml.artifacts import atomic_write_bytes
    from vsml.eval.commands import load_checkpoints
    from vsml.eval.plots import plot_learning_curves

    config = ProtocolConfig(
        datasets=tuple(args.dataset or DEFAULT_DATASETS),
        sizes=tuple(args.size or (14, 28)),
        episodes=args.episodes,
        steps=args.steps,
        long_steps=args.long_steps,
        long_episodes=args.long_episodes,
        seed=args.seed,
        chunk=args.chunk,
        data_dir=args.data_dir,
        oracle_cache=None if args.oracle_cache in (None, "", "none") else args.oracle_cache,
    )
    learners = load_checkpoints(args.checkpoint)
    out = runs.prepare_output(
        args.out,
        default="runs/protocol",
        owned=OWNED,
        overwrite=args.overwrite,
        log=lambda m: print(m, file=sys.stderr),
    )
    line = f"{prog} " + " ".join(argv if argv is not None else sys.argv[1:])

    def write(result):
        result["command"] = line
        atomic_write_bytes(out / "table.md", table_markdown(result).encode())
        plain = {k: v for k, v in result.items() if not k.startswith("_")}
        atomic_write_bytes(out / "results.json", (json.dumps(plain, indent=1) + "\n").encode())
        if result.get("_curves") is not None and result["_curves"].results:
            plot_learning_curves(result["_curves"], out / "curves.png")

    result = run(learners, config, progress=not args.no_progress, on_part=write)
    write(result)
    print(table_markdown(result))
    print(f"written: {out / 'table.md'}, {out / 'results.json'}")
    return 0


def register(subparsers) -> None:
    """``vsml protocol``."""
    p = subparsers.add_parser(
        "protocol",
        help="the general-LA protocol: learned LAs against the oracle best backprop on "
        "unseen test splits, every target in one table",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(p)
    p.set_defaults(func=lambda args: run_command(args, getattr(args, "argv", None)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsml.eval.protocol", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_command(parser.parse_args(argv), argv, prog="python -m vsml.eval.protocol")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("MPLBACKEND", "Agg")  # a command: write the PNGs, open no window
    raise SystemExit(main())
