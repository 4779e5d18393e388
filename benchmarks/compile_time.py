"""Compiles per meta-training run: how many XLA programs a run of a config compiles, and the seconds.

Runs ``MetaTrainer.run`` (what ``vsml meta-train`` runs: init, every meta-step, curriculum stage
changes, meta-tests, checkpoints) on a config with every curriculum stage shortened to
``--stage-iterations`` iterations, in a fresh process without a persistent compilation cache,
and records JAX's compile events: per program name (``jit(step)``, ``jit(_inner)``, ...) the
number of backend compiles and their seconds (wall clock, and the process's CPU seconds while
each ran: on a shared machine the CPU seconds are the steadier figure), and the seconds spent
tracing and lowering. ``--baseline
DIR`` also runs another build (DIR holds its ``vsml`` package, put first on ``PYTHONPATH``) in
the same run, the two alternating over ``--rounds``.

    python benchmarks/compile_time.py [CONFIG] [--stage-iterations 2] [--set KEY=VALUE ...]
                                      [--rounds 1] [--baseline DIR] [--json out.json]

Default config: ``configs/meta_digits_curriculum.yaml`` (4 stages, gradient, digits: no data
download). ``--set`` takes the overrides of ``vsml meta-train`` (YAML values, e.g.
``--set 'curriculum=[{classes: 10, steps: 100, iterations: 2}, {lr: 0.001}]'``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["log.progress=false", "log.tensorboard=false"]
EVENTS = {
    "/jax/core/compile/backend_compile_duration": "backend",
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
}


def child(config: str, stage_iterations: int, overrides: list[str]) -> dict:
    """One run in this process: compile events by program, wall and CPU seconds."""
    import jax

    from vsml.meta.trainer import MetaTrainer, load_meta_config

    jax.config.update("jax_enable_compilation_cache", False)
    events: list[tuple[str, str, float, float]] = []  # (kind, program, wall s, process CPU s)
    started: dict[tuple[str, str], float] = {}

    def begin(event, value, **kw):  # JAX records the start of a backend compile as a scalar event
        if event in EVENTS:
            started[(event, str(kw.get("fun_name", "?")))] = time.process_time()

    def listen(event, duration, **kw):
        if event in EVENTS:
            name = str(kw.get("fun_name", "?"))
            c0 = started.pop((event, name), None)
            events.append(
                (EVENTS[event], name, float(duration), time.process_time() - c0 if c0 is not None else float("nan"))
            )

    jax.monitoring.register_scalar_listener(begin)
    jax.monitoring.register_event_duration_secs_listener(listen)
    cfg = load_meta_config(ROOT / config if not Path(config).is_absolute() else config, QUIET + overrides)
    stages = [dataclasses.replace(st, iterations=stage_iterations, loss_below=None) for st in cfg.curriculum]
    iterations = stage_iterations * max(len(stages), 1)  # every stage but the last ends after stage_iterations
    cfg = dataclasses.replace(cfg, curriculum=tuple(stages), iterations=iterations)
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        result = MetaTrainer(cfg, out_dir=out, log=lambda m: None).run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    by_name: dict = collections.defaultdict(lambda: {"compiles": 0, "backend_s": 0.0, "backend_cpu_s": 0.0})
    totals = collections.Counter()
    for kind, name, d, c in events:
        totals[kind] += d
        if kind == "backend":
            totals["backend_cpu"] += c
            by_name[name]["compiles"] += 1
            by_name[name]["backend_s"] += d
            by_name[name]["backend_cpu_s"] += c
    return {
        "config": config,
        "overrides": overrides,
        "stages": len(stages) or 1,
        "iterations": iterations,
        "stage_per_iteration": [h["stage"] for h in result.history],
        "compiles": sum(v["compiles"] for v in by_name.values()),
        "backend_compile_s": totals["backend"],
        "backend_compile_cpu_s": totals["backend_cpu"],
        "trace_s": totals["trace"],
        "lower_s": totals["lower"],
        "wall_s": wall,
        "cpu_s": cpu,
        "by_program": dict(sorted(by_name.items(), key=lambda kv: -kv[1]["backend_s"])),
    }


def run_child(args: list[str], env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, *args]
    env = {**os.environ, **(env or {})}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default="configs/meta_digits_curriculum.yaml")
    ap.add_argument("--stage-iterations", type=int, default=2, help="iterations of every curriculum stage")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--rounds", type=int, default=1, help="processes per build, builds alternating")
    ap.add_argument(
        "--baseline",
        default=None,
        metavar="DIR",
        help="also run another build: DIR holds its vsml package (put first on PYTHONPATH)",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.config, args.stage_iterations, args.set)))
        return 0

    import jax

    from vsml.kernels import _ffi

    builds = {"current": {}}
    if args.baseline:
        builds["baseline"] = {
            "PYTHONPATH": os.pathsep.join([str(Path(args.baseline).resolve()), os.environ.get("PYTHONPATH", "")])
        }
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "jax": jax.__version__,
            "host_isa": _ffi.host_isa(),
        },
        "config": args.config,
        "stage_iterations": args.stage_iterations,
        "overrides": args.set,
        "rounds": args.rounds,
        "load_average_at_start": os.getloadavg()[0],
        "runs": {b: [] for b in builds},
    }
    child_args = [
        "--child",
        args.config,
        "--stage-iterations",
        str(args.stage_iterations),
        *[f"--set={s}" for s in args.set],
    ]
    for _ in range(args.rounds):
        for name, env in builds.items():
            results["runs"][name].append(run_child(child_args, env))
    results["load_average_at_end"] = os.getloadavg()[0]
    print(
        f"compiles per run — {args.config}, {args.stage_iterations} iteration(s) per stage; "
        f"{results['machine']['processor']}, {results['machine']['host_isa']}, jax {jax.__version__}; "
        f"load average {results['load_average_at_start']:.2f} at start, {results['load_average_at_end']:.2f} at end"
    )
    for name, runs in results["runs"].items():
        for r in runs:
            steps = r["by_program"].get("jit(step)", {"compiles": 0, "backend_s": 0.0, "backend_cpu_s": 0.0})
            print(
                f"  {name:8s} {r['compiles']:3d} compiles, {r['backend_compile_s']:6.1f} s backend "
                f"({r['backend_compile_cpu_s']:.1f} s CPU) + {r['trace_s']:.1f} s tracing + {r['lower_s']:.1f} s "
                f"lowering; "
                f"meta-step: {steps['compiles']} compile(s), {steps['backend_s']:.1f} s ({steps['backend_cpu_s']:.1f} "
                f"s CPU); "
                f"run {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
