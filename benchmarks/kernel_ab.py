"""A/B timing of builds of the stand-alone kernel benchmark (csrc/bench_dense.cc), alternating.

Each round runs every binary once (all four modes: forward / backward, core / cell-norm); the best
round of each (binary, mode) counts, and every binary's figures are printed with their ratio to the
first one. Pin it to one core (``taskset -c 0``) on a shared machine: the binaries inherit it.

    g++ -O3 -std=c++17 -ffp-contract=fast -fno-math-errno csrc/bench_dense.cc csrc/dense_*.cc -o /tmp/bench_new
    (same from the sources of another commit -> /tmp/bench_old)
    taskset -c 0 python benchmarks/kernel_ab.py /tmp/bench_old /tmp/bench_new [--isa avx2] [--rounds 5] [--json
    out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess

MODES = ("forward core", "forward cell-norm", "backward core", "backward cell-norm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+", help="bench_dense executables; the first is the reference")
    ap.add_argument(
        "--isa", default="avx2", help="instruction set passed to bench_dense (avx512, avx2, generic, scalar)"
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10, help="calls per binary and round (bench_dense keeps its best)")
    ap.add_argument("--n", type=int, default=16, help="state size N")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    for b in args.binaries:
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            ap.error(f"{b}: not an executable file (build it as the module docstring shows)")
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for b in args.binaries:
            out = subprocess.run([b, args.isa, str(args.reps), str(args.n)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(
                    f"{b} {args.isa}: exit {out.returncode} (this CPU or build lacks that instruction set?)"
                )
            for line in out.stdout.splitlines():
                m = re.match(r"\S+ (.*) n=\d+: ([\d.]+) ns", line)
                if m:
                    key = (b, m.group(1))
                    best[key] = min(best.get(key, float("inf")), float(m.group(2)))
    ref = args.binaries[0]
    print(
        f"ns per cell-tick, best of {args.rounds} rounds ({args.isa}, N={args.n}, load average "
        f"{os.getloadavg()[0]:.2f})"
    )
    print(f"{'binary':24s}" + "".join(f"{m:>22s}" for m in MODES))
    for b in args.binaries:
        cells = [f"{best[(b, m)]:9.1f} ({best[(ref, m)] / best[(b, m)]:4.2f}x)" for m in MODES]
        print(f"{os.path.basename(b):24s}" + "".join(f"{c:>22s}" for c in cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "isa": args.isa,
                    "n": args.n,
                    "rounds": args.rounds,
                    "load_average": os.getloadavg()[0],
                    "ns_per_cell_tick": {os.path.basename(b): {m: best[(b, m)] for m in MODES} for b in args.binaries},
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
