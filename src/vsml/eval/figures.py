"""Report figures from ``vsml evaluate --json`` files: ``vsml plot bars`` and ``vsml plot sweep``.

``vsml plot bars RESULTS.json [--metric M] -o OUT.png``: one evaluation as grouped bars, one group
per dataset and one bar per learner, with the 95 % interval over episodes as an error bar (none
where it is undefined: one episode); rows of the oracle best backprop are hatched. The
leave-one-dataset-out chart of docs/paper.md section 3 is made with it.

``vsml plot sweep RESULTS.json... --x OPTION [--metric M] -o OUT.png``: several evaluations of the
same learners with one option changed (the input size ``--resize``, the class count
``--classes``, the episode length ``-T``, or the shots of a few-shot sampler), one line per
learner against that option (mean and 95 % interval); oracle rows dashed. ``--metric window``
takes each evaluation's one ``--window`` (e.g. the query steps of few-shot episodes);
``--dataset`` picks one dataset where a file holds several.

Like the other commands' outputs, an existing ``-o`` file is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

from vsml.errors import VSMLError, command

#: option -> axis label; ``shots`` is read from the few-shot sampler option
AXES = {
    "image_size": "input size (pixels per side)",
    "num_classes": "classes per episode",
    "steps": "steps per episode",
    "shots": "labelled examples per class (shots)",
}


class FigureError(VSMLError, ValueError):
    """A results file that does not hold what the figure needs (one line, naming the fix)."""


def _load(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise FigureError(f"{path}: cannot read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise FigureError(f"{path}: not a JSON file of vsml evaluate --json ({e})") from None


# ---- bars


def figure_rows(path: Path, metric: str) -> tuple[list[str], list[str], dict]:
    """``(datasets, learners, {(dataset, learner): (mean, ci_low, ci_high)})`` of ``metric`` in one
    evaluation; datasets and learners in the order of the file."""
    report = _load(path)
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
        raise FigureError(f"{path}: no learner has figure {metric!r} (figures there: {', '.join(known) or 'none'})")
    return datasets, learners, values


def plot_bars(path: Path, metric: str, out: Path, title: str | None = None) -> Path:
    """The bar chart of ``metric`` in the evaluation ``path``, written to ``out``."""
    from vsml.eval.plots import pyplot, save_figure

    datasets, learners, values = figure_rows(path, metric)
    plt = pyplot()
    scale = 100.0 if metric.endswith("_acc") else 1.0
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
        ax.bar(xs, mean, width, yerr=err, capsize=2, label=name, hatch="//" if name.startswith("oracle") else None)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(metric + (" (%)" if scale == 100 else ""))
    ax.set_title(title or metric)
    if scale == 100:
        ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, out)


# ---- sweeps


def sweep_value(options: dict, x: str, path: Path) -> float:
    """The swept option's value in one evaluation's options."""
    if x == "shots":
        fewshot = [s for s in options.get("sampler") or [] if s.startswith("fewshot=")]
        shots = re.search(r"shots:\s*(\d+)", fewshot[0]) if fewshot else None
        if shots is None:
            raise FigureError(f"{path}: not a few-shot evaluation (no --sampler 'fewshot={{... shots: k ...}}')")
        return int(shots.group(1))
    value = options.get(x)
    if isinstance(value, (list, tuple)):  # image_size given as [h, w]
        value = value[0]
    if value is None:
        raise FigureError(f"{path}: option {x!r} was not set in this evaluation")
    return value


def sweep_point(path: Path, x: str, metric: str, dataset: str | None = None):
    """``(x value, {learner: (mean, ci_low, ci_high)})`` of one evaluation."""
    report = _load(path)
    options = (report.get("meta") or {}).get("options") or {}
    if metric == "window":
        windows = options.get("window") or []
        if len(windows) != 1:
            raise FigureError(f"{path}: --metric window needs exactly one --window, got {windows}")
        from vsml.eval.metrics import window_key

        metric = window_key(*windows[0])
    rows = report.get("results", [])
    datasets = list(dict.fromkeys(r.get("dataset") for r in rows))
    if dataset is None and len(datasets) > 1:
        raise FigureError(f"{path} holds several datasets ({', '.join(map(str, datasets))}): pick one with --dataset")
    out = {}
    for row in rows:
        m = row["metrics"].get(metric)
        if m is not None and (dataset is None or row.get("dataset") == dataset):
            out[row["learner"]] = (m["mean"], m["ci_low"], m["ci_high"])
    return sweep_value(options, x, path), out


def plot_lines(points, xlabel: str, ylabel: str, title: str, out: Path) -> Path:
    """``points``: ``[(x, {learner: (mean, lo, hi)})]`` sorted by x; fractions, drawn in %."""
    from vsml.eval.plots import pyplot, save_figure

    plt = pyplot()
    learners = list(dict.fromkeys(name for _, rows in points for name in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in learners:
        pts = [(x, rows[name]) for x, rows in points if name in rows]
        xs = [x for x, _ in pts]
        ax.plot(xs, [100 * v[0] for _, v in pts], "--" if name.startswith("oracle") else "-", marker="o", label=name)
        if all(math.isfinite(v[1]) and math.isfinite(v[2]) for _, v in pts):  # undefined with one episode
            ax.fill_between(xs, [100 * v[1] for _, v in pts], [100 * v[2] for _, v in pts], alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(sorted({x for x, _ in points}))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


def plot_sweep(paths, x: str, metric: str, out: Path, dataset: str | None = None, title: str = "") -> Path:
    points = sorted((sweep_point(Path(p), x, metric, dataset) for p in paths), key=lambda t: t[0])
    ylabel = "query accuracy (%)" if metric == "window" else f"{metric.replace('_', ' ')} (%)"
    return plot_lines(points, AXES[x], ylabel, title or f"{ylabel} per {AXES[x].split(' (')[0]}", out)


# ---- the command


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", type=Path, required=True, help="image to write (format from the suffix, e.g. .png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o file")
    p.add_argument("--title", default=None)


@command(lambda args: f"vsml plot {args.kind}")
def _cmd(args) -> int:
    from vsml import runs

    runs.check_output_file(args.out, overwrite=args.overwrite, option="-o")
    if args.kind == "bars":
        path = plot_bars(args.results, args.metric, args.out, args.title)
    else:
        path = plot_sweep(args.results, args.x, args.metric, args.out, args.dataset, args.title or "")
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """``vsml plot bars`` and ``vsml plot sweep``."""
    plot = subparsers.add_parser(
        "plot",
        help="report figures from vsml evaluate --json files (bars, sweeps)",
        description=__doc__.split("\n\n")[0],
    )
    kinds = plot.add_subparsers(dest="kind", required=True)
    bars = kinds.add_parser(
        "bars",
        help="one evaluation as grouped bars (dataset × learner, 95 %% intervals)",
        description=__doc__.split("\n\n")[1],
    )
    bars.add_argument("results", type=Path, help="results.json of vsml evaluate --json")
    bars.add_argument("--metric", default="online_acc", help="figure to plot (default online_acc)")
    _common(bars)
    sweep = kinds.add_parser(
        "sweep", help="several evaluations against the option they sweep", description=__doc__.split("\n\n")[2]
    )
    sweep.add_argument("results", nargs="+", type=Path, help="results.json of vsml evaluate --json, one per value")
    sweep.add_argument("--x", required=True, choices=sorted(AXES), help="the option the files sweep")
    sweep.add_argument(
        "--metric", default="online_acc", help="figure to plot (default online_acc; 'window': the one --window)"
    )
    sweep.add_argument("--dataset", help="dataset to plot where a file holds several")
    _common(sweep)
    for p in (bars, sweep):
        p.set_defaults(func=_cmd)
