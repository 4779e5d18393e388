"""Summarise tools/plateau_measure.sh runs: iterations until the meta-loss leaves chance and until the
projected held-out tasks are learned.

    python tools/plateau_summary.py OUT

Per run folder: the first iteration at which the mean meta-loss over the last 10 iterations is below
0.6 (chance: ln 2 = 0.693), the first periodic meta-test at which the online accuracy on projected
2-way MNIST test episodes reaches 75 %, and that accuracy at iterations 300 and 600.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def summarise(run: Path) -> str:
    loss = np.array([float(r["loss"]) for r in csv.DictReader(open(run / "metrics.csv"))])
    rolled = np.convolve(loss, np.ones(10) / 10, mode="valid")
    below = np.flatnonzero(rolled < 0.6)
    leave = str(int(below[0]) + 10) if below.size else "never"
    acc = {int(r["iteration"]): float(r["online"]) for r in csv.DictReader(open(run / "eval.csv"))}
    learned = next((i for i in sorted(acc) if acc[i] >= 0.75), "never")
    at = " / ".join(f"{100 * acc[i]:.1f}" if i in acc else "-" for i in (300, 600))
    return f"| {run.name} | {leave} | {learned} | {at} |"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(__doc__)
    print("| run | loss < 0.6 at | held-out acc >= 75 % at | held-out acc at 300 / 600 |")
    print("|---|---:|---:|---|")
    for run in sorted(p for p in Path(argv[0]).iterdir() if (p / "eval.csv").is_file()):
        print(summarise(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
