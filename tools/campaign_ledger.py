"""Summarise a meta-training run folder for a ledger row (docs/results/campaign.md).

    python tools/campaign_ledger.py runs/campaign [--since ITERATION]

Prints the last iteration, the run's cumulative elapsed time, the mean meta-loss of the last 10
iterations, the best checkpoint's validation (best.json) and every validation row (eval.csv) from
``--since`` on with its balanced score (the mean of online, first and last accuracy, averaged over
the validation datasets: ``eval.score: balanced``, docs/meta_training.md).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--since", type=int, default=0, help="first iteration of the validation rows to print")
    args = ap.parse_args(argv)
    rows = list(csv.DictReader(open(args.run / "metrics.csv")))
    if not rows:
        raise SystemExit(f"{args.run / 'metrics.csv'} has no rows")
    last = rows[-1]
    h, m = divmod(round(float(last["elapsed"]) / 60), 60)
    tail = [float(r["loss"]) for r in rows[-10:]]
    print(f"iterations: {last['iteration']}, elapsed {h} h {m} min, meta-loss (last 10) {sum(tail) / len(tail):.3f}")
    best = json.load(open(args.run / "best.json"))["meta"]
    print(f"best: iteration {best['iteration']}, score {best['best_eval']['score']:.3f}")
    evals = defaultdict(dict)
    for r in csv.DictReader(open(args.run / "eval.csv")):
        evals[int(r["iteration"])][r["dataset"]] = tuple(float(r[k]) for k in ("online", "first", "last"))
    for it in sorted(evals):
        if it < args.since:
            continue
        sets = evals[it]
        score = sum(sum(v) / 3 for v in sets.values()) / len(sets)
        cells = " | ".join(" / ".join(f"{100 * x:.1f}" for x in v) for v in sets.values())
        print(f"| {it} | {cells} | {score:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
