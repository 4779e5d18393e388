"""Few-shot accuracy per shot: one line per learner, from ``vsml evaluate --json`` files.

Each file is one evaluation of the same learners on k-shot episodes (``--sampler
'fewshot={ways: W, shots: k, queries: Q}'``) with ``--window`` over the query steps; this plots
the query accuracy (mean and 95 % interval over episodes) against k. Rows whose learner name
starts with ``oracle`` (``--reference oracle``) are drawn dashed.

    python tools/plot_fewshot.py docs/results/omniglot/shots_*/results.json -o docs/results/omniglot/fewshot.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def query_accuracy(path: Path) -> tuple[int, dict[str, tuple[float, float, float]]]:
    """``(shots, {learner: (mean, ci_low, ci_high)})`` of one evaluation's query window."""
    report = json.loads(path.read_text())
    options = report["meta"]["options"]
    fewshot = [s for s in options.get("sampler") or [] if s.startswith("fewshot=")]
    shots = re.search(r"shots:\s*(\d+)", fewshot[0]) if fewshot else None
    if shots is None:
        raise SystemExit(f"{path}: not a few-shot evaluation (no --sampler 'fewshot={{... shots: k ...}}')")
    windows = options.get("window") or []
    if len(windows) != 1:
        raise SystemExit(f"{path}: need exactly one --window (the query steps), got {windows}")
    from vsml.eval.metrics import window_key

    key = window_key(*windows[0])
    out = {}
    for row in report["results"]:
        m = row["metrics"].get(key)
        if m is not None:
            out[row["learner"]] = (m["mean"], m["ci_low"], m["ci_high"])
    return int(shots.group(1)), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="results.json of vsml evaluate --json, one per shot count")
    ap.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--title", default="query accuracy per shot")
    args = ap.parse_args(argv)

    from vsml.eval.plots import pyplot, save_figure

    plt = pyplot()

    per_shot = sorted(query_accuracy(p) for p in args.results)
    learners = list(dict.fromkeys(name for _, rows in per_shot for name in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in learners:
        pts = [(k, rows[name]) for k, rows in per_shot if name in rows]
        ks = [k for k, _ in pts]
        mean = [100 * v[0] for _, v in pts]
        lo = [100 * v[1] for _, v in pts]
        hi = [100 * v[2] for _, v in pts]
        style = "--" if name.startswith("oracle") else "-"
        ax.plot(ks, mean, style, marker="o", label=name)
        ax.fill_between(ks, lo, hi, alpha=0.15)
    ax.set_xlabel("labelled examples per class (shots)")
    ax.set_ylabel("query accuracy (%)")
    ax.set_xticks(sorted({k for k, _ in per_shot}))
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
