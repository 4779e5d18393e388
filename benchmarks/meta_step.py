"""Meta-iterations per hour of real meta-training configs, fused kernel against the XLA path.

Three configs of the repository, each one meta-iteration as ``vsml meta-train`` runs it
(``MetaTrainer.step``: sampling the episodes inside the step, the inner loops, the meta-gradient or
fitness estimate and the optimizer update; no evaluation or checkpointing):

  * ``tbptt``: ``configs/general_pilot7b.yaml`` (truncated BPTT, 500-step truncations, 2 particles
    per task family, five families: value-and-grad with per-step remat),
  * ``pes``:   ``configs/general_pilot_pes.yaml`` (persistent ES, 16 members, 50-step truncations,
    three families: forward passes only),
  * ``es``:    ``configs/meta_digits_es.yaml``, its last curriculum stage (antithetic ES, 32 members,
    100-step 10-way episodes).

Each (config, kernel path) runs in a fresh process (``VSML_KERNEL=fused`` or ``xla``: the setting
``kernel: auto`` follows), runs two warm-up steps (both compile: the second sees device arrays
where the first saw host arrays; timed apart), then times ``--repeats`` steps; the best
counts. Paths alternate within each of ``--rounds`` rounds and the best round counts. A 2048³
float32 matmul (XLA) is timed in the same run as the machine reference. Data: the datasets the
configs name, from ``VSML_DATA_DIR``.

    python benchmarks/meta_step.py [--configs tbptt,pes,es] [--rounds 1] [--repeats 2] [--json out.json]
                                   [--set tbptt:tbptt.particles=1 ...] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "tbptt": ("configs/general_pilot7b.yaml", None),
    "pes": ("configs/general_pilot_pes.yaml", None),
    "es": ("configs/meta_digits_es.yaml", -1),  # last curriculum stage
}
QUIET = ["log.progress=false", "log.tensorboard=false", "log.csv=false"]


def child(name: str, repeats: int, overrides: list[str]) -> dict:
    """One (config, path) in this process; the path comes from ``VSML_KERNEL``."""
    import jax

    from vsml import kernels
    from vsml.meta.trainer import MetaTrainer, load_meta_config

    path, stage = CONFIGS[name]
    cfg = load_meta_config(ROOT / path, QUIET + overrides)
    with tempfile.TemporaryDirectory() as out:
        trainer = MetaTrainer(cfg, out_dir=out, log=lambda m: None)
        stages = len(cfg.curriculum or ()) or 1
        stage = stages - 1 if stage == -1 else 0
        state = trainer.init_state(stage)
        first = []  # the first step compiles; so does the second (its state arrays come from the device)
        for r in range(2):
            t = time.perf_counter()
            state, m = trainer.step(state, r, stage)
            jax.block_until_ready(m)
            first.append(time.perf_counter() - t)
        best = float("inf")
        for r in range(repeats):
            t = time.perf_counter()
            state, m = trainer.step(state, r + 2, stage)
            jax.block_until_ready(m)
            best = min(best, time.perf_counter() - t)
    return {
        "config": path,
        "method": cfg.meta_optimizer.name,
        "stage": stage,
        "overrides": overrides,
        "kernel": kernels.resolve_kernel("auto"),
        "warmup_steps_s": first,
        "s_per_iteration": best,
        "iterations_per_hour": 3600.0 / best,
        "loss": float(m.loss),
    }


def run_child(args: list[str], env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="tbptt,pes,es", help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--kernels", default="xla,fused", help="paths to time (values of VSML_KERNEL)")
    ap.add_argument("--rounds", type=int, default=1, help="processes per (config, path), paths alternating")
    ap.add_argument("--repeats", type=int, default=2, help="timed meta-steps per process (after the compiling one)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CONFIG:KEY=VALUE",
        help="config override for one config, e.g. tbptt:tbptt.particles=1 (repeatable)",
    )
    ap.add_argument(
        "--baseline",
        default=None,
        metavar="DIR",
        help="also time the fused kernel of another build: DIR holds its vsml package (put first on "
        "PYTHONPATH for that path, reported as 'fused_baseline')",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--matmul", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    kinds = [k.strip() for k in args.kernels.split(",") if k.strip()]
    if unknown := set(names) - set(CONFIGS):
        ap.error(f"unknown configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    if args.baseline:
        kinds.append("fused_baseline")
    if unknown := set(kinds) - {"xla", "fused", "fused_baseline"}:
        ap.error(f"unknown kernel paths {sorted(unknown)}; known: xla, fused")
    overrides: dict[str, list[str]] = {n: [] for n in CONFIGS}
    for item in args.set:
        name, sep, kv = item.partition(":")
        if not sep or name not in CONFIGS or "=" not in kv:
            ap.error(f"--set {item!r}: expected CONFIG:KEY=VALUE with CONFIG one of {', '.join(CONFIGS)}")
        overrides[name].append(kv)
    if args.matmul:
        sys.path.insert(0, str(Path(__file__).parent))
        from inner_loop import child as inner_child

        print(json.dumps(inner_child("matmul", "xla", 0, 3)))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.repeats, overrides[args.child])))
        return 0

    import jax

    from vsml import kernels
    from vsml.kernels import _ffi

    if "fused" in kinds and not kernels.available():
        print(f"fused kernel unavailable ({kernels.unavailable_reason()})", file=sys.stderr)
        return 1
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "jax": jax.__version__,
            "host_isa": _ffi.host_isa(),
            "kernel_isa": _ffi.kernel_isa(16) if kernels.available() else "",
        },
        "rounds": args.rounds,
        "repeats": args.repeats,
        "load_average_at_start": os.getloadavg()[0],
    }
    t0 = time.perf_counter()
    results["matmul_2048_gflops"] = run_child(["--matmul"])["gflops"]
    for name in names:
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for k in kinds:
                env = {"VSML_KERNEL": k.removesuffix("_baseline")}
                if k == "fused_baseline":
                    env["PYTHONPATH"] = os.pathsep.join(
                        [str(Path(args.baseline).resolve()), os.environ.get("PYTHONPATH", "")]
                    )
                r = run_child(
                    ["--child", name, "--repeats", str(args.repeats), *[f"--set={name}:{o}" for o in overrides[name]]],
                    env=env,
                )
                if r["kernel"] != env["VSML_KERNEL"]:
                    raise RuntimeError(f"{name}: asked for the {k} path, the child resolved {r['kernel']}")
                if k not in best or r["s_per_iteration"] < best[k]["s_per_iteration"]:
                    best[k] = r
        entry = dict(best)
        if "fused" in best and "xla" in best:
            entry["fused_over_xla"] = best["fused"]["iterations_per_hour"] / best["xla"]["iterations_per_hour"]
        if "fused" in best and "fused_baseline" in best:
            entry["fused_over_baseline"] = (
                best["fused"]["iterations_per_hour"] / best["fused_baseline"]["iterations_per_hour"]
            )
        results[name] = entry
    results["load_average_at_end"] = os.getloadavg()[0]
    results["wall_s"] = time.perf_counter() - t0

    print(
        f"meta-iterations per hour — {results['machine']['processor']}, {results['machine']['host_isa']}, "
        f"kernel {results['machine']['kernel_isa']}, CPUs {results['machine']['affinity']}, jax {jax.__version__}"
    )
    print(
        f"load average {results['load_average_at_start']:.2f} at start, {results['load_average_at_end']:.2f} at end; "
        f"2048³ matmul {results['matmul_2048_gflops']:.1f} GFLOP/s; best of {args.rounds} round(s) × {args.repeats} "
        f"steps"
    )
    for name in names:
        e = results[name]
        row = [f"{name:6s} {CONFIGS[name][0]:34s}"]
        for k in kinds:
            row.append(
                f"{k} {e[k]['iterations_per_hour']:8.1f}/h ({e[k]['s_per_iteration']:.2f} s, "
                f"warm-up {sum(e[k]['warmup_steps_s']):.0f} s)"
            )
        if "fused_over_xla" in e:
            row.append(f"fused/xla {e['fused_over_xla']:.2f}")
        if "fused_over_baseline" in e:
            row.append(f"fused/baseline {e['fused_over_baseline']:.2f}")
        print("  ".join(row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
