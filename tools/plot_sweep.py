"""One figure of several ``vsml evaluate --json`` files against the option they sweep.

Each file is one evaluation of the same learners with one option changed (the input size
``--resize``, the class count ``--classes``, the episode length ``-T``, or the shots of a few-shot
sampler); this plots one figure (mean and 95 % interval over episodes) of every learner against
that option, one line per learner. Rows whose learner name starts with ``oracle`` (``--reference
oracle``) are drawn dashed. ``--metric window`` takes the evaluation's one ``--window`` (e.g. the
query steps of few-shot episodes). Where a file holds several datasets, ``--dataset`` picks one.

    python tools/plot_sweep.py docs/results/invariance/size_*/results.json --x image_size \\
        -o docs/results/invariance/sizes.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

#: option -> axis label; ``shots`` is read from the few-shot sampler option
AXES = {"image_size": "input size (pixels per side)", "num_classes": "classes per episode",
        "steps": "steps per episode", "shots": "labelled examples per class (shots)"}


def sweep_value(options: dict, x: str, path: Path) -> float:
    """The swept option's value in one evaluation's options."""
    if x == "shots":
        fewshot = [s for s in options.get("sampler") or [] if s.startswith("fewshot=")]
        shots = re.search(r"shots:\s*(\d+)", fewshot[0]) if fewshot else None
        if shots is None:
            raise SystemExit(f"{path}: not a few-shot evaluation (no --sampler 'fewshot={{... shots: k ...}}')")
        return int(shots.group(1))
    value = options.get(x)
    if isinstance(value, (list, tuple)):  # image_size given as [h, w]
        value = value[0]
    if value is None:
        raise SystemExit(f"{path}: option {x!r} was not set in this evaluation")
    return value


def sweep_point(path: Path, x: str, metric: str, dataset: str | None = None):
    """``(x value, {learner: (mean, ci_low, ci_high)})`` of one evaluation."""
    report = json.loads(path.read_text())
    options = report["meta"]["options"]
    if metric == "window":
        windows = options.get("window") or []
        if len(windows) != 1:
            raise SystemExit(f"{path}: --metric window needs exactly one --window, got {windows}")
        from vsml.eval.metrics import window_key

        metric = window_key(*windows[0])
    rows = report["results"]
    datasets = list(dict.fromkeys(r.get("dataset") for r in rows))
    if dataset is None and len(datasets) > 1:
        raise SystemExit(f"{path} holds several datasets ({', '.join(map(str, datasets))}): pick one with --dataset")
    out = {}
    for row in rows:
        m = row["metrics"].get(metric)
        if m is not None and (dataset is None or row.get("dataset") == dataset):
            out[row["learner"]] = (m["mean"], m["ci_low"], m["ci_high"])
    return sweep_value(options, x, path), out


def plot_lines(points, xlabel: str, ylabel: str, title: str, out: Path) -> None:
    """``points``: ``[(x, {learner: (mean, lo, hi)})]`` sorted by x; fractions, drawn in %."""
    from vsml.eval.plots import pyplot, save_figure

    plt = pyplot()
    learners = list(dict.fromkeys(name for _, rows in points for name in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in learners:
        pts = [(x, rows[name]) for x, rows in points if name in rows]
        xs = [x for x, _ in pts]
        style = "--" if name.startswith("oracle") else "-"
        ax.plot(xs, [100 * v[0] for _, v in pts], style, marker="o", label=name)
        if all(math.isfinite(v[1]) and math.isfinite(v[2]) for _, v in pts):  # undefined with one episode
            ax.fill_between(xs, [100 * v[1] for _, v in pts], [100 * v[2] for _, v in pts], alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(sorted({x for x, _ in points}))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="results.json of vsml evaluate --json, one per value")
    ap.add_argument("--x", required=True, choices=sorted(AXES), help="the option the files sweep")
    ap.add_argument("--metric", default="online_acc", help="figure to plot (default online_acc; 'window': the one --window)")
    ap.add_argument("--dataset", help="dataset to plot where a file holds several")
    ap.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    points = sorted((sweep_point(p, args.x, args.metric, args.dataset) for p in args.results), key=lambda t: t[0])
    ylabel = "query accuracy (%)" if args.metric == "window" else f"{args.metric.replace('_', ' ')} (%)"
    plot_lines(points, AXES[args.x], ylabel, args.title or f"{ylabel} per {AXES[args.x].split(' (')[0]}", args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")  # a command: write the PNGs, open no window
    sys.exit(main())
