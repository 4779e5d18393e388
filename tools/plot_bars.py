"""One figure of a ``vsml evaluate --json`` file as grouped bars: one group per dataset, one bar per
learner, with the 95 % interval over episodes as an error bar (none where it is undefined: one
episode). The leave-one-dataset-out chart of docs/paper.md section 3 is made with it:

    python tools/plot_bars.py docs/results/lodo/eval/results.json --metric online_acc -o docs/results/lodo/lodo.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def figure_rows(path: Path, metric: str) -> tuple[list[str], list[str], dict]:
    """``(datasets, learners, {(dataset, learner): (mean, ci_low, ci_high)})`` of ``metric`` in one
    evaluation; datasets and learners in the order of the file."""
    report = json.loads(path.read_text())
    values, datasets, learners = {}, [], []
    for row in report.get("results", []):
        m = row.get("metrics", {}).get(metric)
        if m is None:
            continue
        d, name = row["dataset"], row["learner"]
        datasets += [d] if d not in datasets else []
        learners += [name] if name not in learners else []
        values[(d, name)] = (m["mean"], m["ci_low"], m["ci_high"])
    if not values:
        known = sorted({k for row in report.get("results", []) for k in row.get("metrics", {})})
        raise SystemExit(f"{path}: no learner has figure {metric!r} (figures there: {', '.join(known) or 'none'})")
    return datasets, learners, values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results.json of vsml evaluate --json")
    ap.add_argument("--metric", default="online_acc", help="figure to plot (default online_acc)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    datasets, learners, values = figure_rows(args.results, args.metric)

    from vsml.eval.plots import pyplot, save_figure

    plt = pyplot()

    scale = 100.0 if args.metric.endswith("_acc") else 1.0
    width = 0.8 / len(learners)
    fig, ax = plt.subplots(figsize=(3.2 + 0.55 * len(datasets) * max(2, len(learners)), 4))
    for j, name in enumerate(learners):
        xs, mean, err = [], [], [[], []]
        for i, d in enumerate(datasets):
            if (d, name) not in values:
                continue
            m, lo, hi = (scale * v for v in values[(d, name)])
            xs.append(i - 0.4 + width * (j + 0.5))
            mean.append(m)
            err[0].append(0.0 if math.isnan(lo) else m - lo)
            err[1].append(0.0 if math.isnan(hi) else hi - m)
        hatch = "//" if name.startswith("oracle") else None
        ax.bar(xs, mean, width, yerr=err, capsize=2, label=name, hatch=hatch)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(args.metric + (" (%)" if scale == 100 else ""))
    ax.set_title(args.title or args.metric)
    if scale == 100:
        ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")  # a command: write the PNGs, open no window
    sys.exit(main())
