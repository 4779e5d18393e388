"""Inner-loop benchmark: one dense 784→10 VSML layer, N = 16, M = 8, 2 micro ticks.

Measures, each in a fresh process (so peak RSS is that measurement's own), for the fused C++
kernel (``VSMLConfig(kernel="fused")``, :mod:`vsml.kernels`) and the XLA kernels
(``kernel="xla"``, the library's path before the fused kernel) in the same run:
  * ``ticks_b1``: the dense-layer tick alone (``dense_ticks`` vs ``dense_ticks_xla`` in a
    ``lax.scan``, batch 1): the kernel's own speed and useful FLOP/s,
  * forward episode throughput at batch 1 and batch 8 (``episode``, jitted ``lax.scan``),
  * value-and-gradient of a 100-step episode's mean loss, with and without per-step
    rematerialisation: time and peak memory,
plus two machine references taken in the same run: a bare LSTM-cell tick over the same 7,840
cells in XLA and a large float32 matmul (2048³, XLA on all cores) in GFLOP/s. Throughput is in
cell-ticks/s = cells × micro ticks × steps × batch / seconds. Each (measure, path) runs
``--rounds`` times, alternating the paths, and the best round counts (the machine is shared).

Useful FLOPs per cell-tick: 2·N·4N (h @ W_h) + 2·4N (adding u[a], v[b]) + 9N (five
nonlinearities counted as one FLOP each, c' = f·c + i·g, h' = o·tanh c') = 2,320 for N = 16.

    python benchmarks/inner_loop.py [--steps 300] [--repeats 5] [--rounds 2] [--measures forward_b1,...] [--reference]
                                    [--json out.json] [--quick] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

A, B, N, M, TICKS = 784, 10, 16, 8, 2
CELLS = A * B
FLOPS_PER_CELL_TICK = 2 * N * 4 * N + 2 * 4 * N + 9 * N
MEASURES = ("ticks_b1", "forward_b1", "forward_b8", "value_and_grad_100", "value_and_grad_100_remat")
TARGETS = {"forward_b1": 2.5, "forward_b8": 2.5, "value_and_grad_100_remat": 2.0}  # × the XLA path (issue 11)
PEAK_MB_TARGET = 500.0  # value-and-grad with remat


def _best_time(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best process-CPU seconds of ``fn`` over ``repeats`` runs (after a warm-up)."""
    import jax

    jax.block_until_ready(fn())  # compile + warm up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best, best_cpu


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(measure: str, impl: str, steps: int, repeats: int) -> dict:
    """One measurement in this (fresh) process; returns a dict of figures."""
    import jax
    import jax.numpy as jnp

    try:
        from vsml.kernels.ops import lstm_gates
    except ImportError:  # a --baseline build from before the primitives moved to kernels/ops.py
        from vsml.learners.vsml import lstm_gates
    from vsml.learners.base import TaskSpec, episode
    from vsml.learners.vsml import VSML, VSMLConfig
    from vsml.learners.vsml_reference import ReferenceVSML

    key = jax.random.PRNGKey(0)
    if measure == "matmul":
        n = 2048
        a = jax.random.normal(key, (n, n))
        f = jax.jit(lambda a: a @ a)
        sec, _ = _best_time(lambda: f(a), max(repeats, 3))
        return {"seconds": sec, "gflops": 2 * n**3 / sec / 1e9}
    if measure == "bare_cell":
        wh = jax.random.normal(key, (N, 4 * N)) / 4
        z0 = jax.random.normal(key, (CELLS, 4 * N))

        @jax.jit
        def ticks(h, c):
            def body(hc, _):
                h, c = hc
                return lstm_gates(h @ wh + z0, c), None

            return jax.lax.scan(body, (h, c), None, length=steps * TICKS)[0]

        h = jnp.zeros((CELLS, N))
        sec, cpu = _best_time(lambda: ticks(h, h), repeats)
        work = CELLS * TICKS * steps
        return {"seconds": sec, "cell_ticks_per_s": work / sec, "cell_ticks_per_cpu_s": work / cpu}
    if measure == "ticks_b1":
        from vsml.kernels import dense_ticks, dense_ticks_xla

        fn = dense_ticks if impl == "fused" else dense_ticks_xla
        k = jax.random.split(key, 4)
        wh = jax.random.normal(k[0], (N, 4 * N)) / 4
        u, v = jax.random.normal(k[1], (1, A, 4 * N)), jax.random.normal(k[2], (1, B, 4 * N))
        c0 = 0.1 * jax.random.normal(k[3], (1, CELLS, N))

        @jax.jit
        def run(h, c):
            def body(hc, _):
                h, c, rb, ra = fn(wh, u, v, *hc, TICKS)
                return (h, c), rb.sum() + ra.sum()

            return jax.lax.scan(body, (h, c), None, length=steps)

        sec, cpu = _best_time(lambda: run(jnp.zeros_like(c0), c0), repeats)
        work = CELLS * TICKS * steps
        return {
            "seconds": sec,
            "cell_ticks_per_s": work / sec,
            "cell_ticks_per_cpu_s": work / cpu,
            "peak_rss_mb": _peak_mb(),
        }

    if impl == "reference":
        learner = ReferenceVSML(VSMLConfig(kernel="xla"))
    else:
        learner = VSML(VSMLConfig(kernel=impl))
    params = learner.init_params(key)
    batch = 8 if measure == "forward_b8" else 1
    t_steps = 100 if measure.startswith("value_and_grad") else steps
    task = TaskSpec((A,), B, batch)
    xs = jax.random.normal(jax.random.PRNGKey(1), (t_steps, batch, A))
    ys = jax.random.randint(jax.random.PRNGKey(2), (t_steps, batch), 0, B)
    if measure.startswith("forward"):
        fn = jax.jit(lambda p: episode(learner, p, key, xs, ys, task)[1].logits)
    else:
        remat = measure.endswith("remat")
        fn = jax.jit(jax.value_and_grad(lambda p: episode(learner, p, key, xs, ys, task, remat=remat)[1].losses.mean()))
    sec, cpu = _best_time(lambda: fn(params), repeats)
    work = CELLS * TICKS * t_steps * batch
    return {
        "seconds": sec,
        "steps_per_s": t_steps / sec,
        "cell_ticks_per_s": work / sec,
        "cell_ticks_per_cpu_s": work / cpu,
        "peak_rss_mb": _peak_mb(),
    }


BASELINE_DIR: str | None = None  # --baseline: a directory holding another build's vsml package


def run_child(measure: str, impl: str, steps: int, repeats: int) -> dict:
    env = None
    if impl == "fused_baseline":  # the same measurement with the other build's package first on the path
        impl, env = (
            "fused",
            {**os.environ, "PYTHONPATH": os.pathsep.join([BASELINE_DIR, os.environ.get("PYTHONPATH", "")])},
        )
    cmd = [
        sys.executable,
        __file__,
        "--child",
        measure,
        "--impl",
        impl,
        "--steps",
        str(steps),
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {measure}/{impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(measure: str, impls: list[str], steps: int, repeats: int, rounds: int) -> dict[str, dict]:
    """Each path ``rounds`` times, alternating; the fastest round of each (peak memory: its max)."""
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for impl in impls:
            r = run_child(measure, impl, steps, repeats)
            if impl not in best or r["cell_ticks_per_s"] > best[impl]["cell_ticks_per_s"]:
                peak = max(r.get("peak_rss_mb", 0.0), best.get(impl, {}).get("peak_rss_mb", 0.0))
                best[impl] = {**r, "peak_rss_mb": peak}
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="episode length for the forward measures")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each (measure, path), alternating; best counts")
    ap.add_argument("--reference", action="store_true", help="also time the per-cell reference implementation")
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="also time the fused kernel of another build (DIR holds its vsml "
        "package; first on PYTHONPATH for that path, reported as fused_baseline)",
    )
    ap.add_argument("--json", help="write every figure to this JSON file")
    ap.add_argument("--quick", action="store_true", help="fewer steps/repeats/rounds (smoke test)")
    ap.add_argument("--measures", default=",".join(MEASURES), help=f"comma-separated subset of {', '.join(MEASURES)}")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="fused", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.rounds = 20, 1, 1
    if args.child:
        print(json.dumps(child(args.child, args.impl, args.steps, args.repeats)))
        return 0

    import jax

    from vsml import kernels

    if not kernels.available():
        print(f"fused kernel unavailable ({kernels.unavailable_reason()}); nothing to compare", file=sys.stderr)
        return 1
    from vsml.kernels import _ffi

    global BASELINE_DIR
    impls = ["xla", "fused"] + (["fused_baseline"] if args.baseline else []) + (["reference"] if args.reference else [])
    BASELINE_DIR = os.path.abspath(args.baseline) if args.baseline else None
    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    if unknown := set(measures) - set(MEASURES):
        ap.error(f"unknown measures {sorted(unknown)}; known: {', '.join(MEASURES)}")
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
            "kernel_isa": _ffi.kernel_isa(N),
            "kernel_build": _ffi.build_info(),
        },
        "config": {
            "A": A,
            "B": B,
            "N": N,
            "M": M,
            "micro_ticks": TICKS,
            "forward_steps": args.steps,
            "grad_steps": 100,
            "rounds": args.rounds,
            "repeats": args.repeats,
        },
        "useful_flops_per_cell_tick": FLOPS_PER_CELL_TICK,
        "load_average_at_start": os.getloadavg()[0],
    }
    matmul = max(run_child("matmul", "xla", args.steps, args.repeats)["gflops"] for _ in range(args.rounds))
    bare = best_of("bare_cell", ["xla"], args.steps, args.repeats, args.rounds)["xla"]
    results["matmul_2048_gflops"] = matmul
    results["bare_cell_cell_ticks_per_s"] = bare["cell_ticks_per_s"]
    for measure in measures:
        best = best_of(measure, impls, args.steps, args.repeats, args.rounds)
        f, x = best["fused"], best["xla"]
        entry = {impl: r for impl, r in best.items()}
        entry["speedup"] = f["cell_ticks_per_s"] / x["cell_ticks_per_s"]
        entry["fused_useful_gflops"] = f["cell_ticks_per_s"] * FLOPS_PER_CELL_TICK / 1e9
        entry["fused_fraction_of_matmul"] = entry["fused_useful_gflops"] / matmul
        entry["xla_useful_gflops"] = x["cell_ticks_per_s"] * FLOPS_PER_CELL_TICK / 1e9
        if "fused_baseline" in best:
            entry["fused_over_baseline"] = f["cell_ticks_per_s"] / best["fused_baseline"]["cell_ticks_per_s"]
        if measure in TARGETS:
            entry["target_speedup"] = TARGETS[measure]
            entry["target_met"] = entry["speedup"] >= TARGETS[measure] and (
                measure != "value_and_grad_100_remat" or f["peak_rss_mb"] <= PEAK_MB_TARGET
            )
        results[measure] = entry
    results["load_average_at_end"] = os.getloadavg()[0]

    print(
        f"VSML inner loop, dense {A}→{B}, N={N}, M={M}, {TICKS} micro ticks — {results['machine']['processor']}, "
        f"{results['machine']['cpus']} CPUs, jax {jax.__version__}, kernel {results['machine']['kernel_isa']}"
    )
    print(
        f"load average {results['load_average_at_start']:.2f} at start, {results['load_average_at_end']:.2f} at end; "
        f"best of {args.rounds} rounds per path"
    )
    print(
        f"machine references: 2048³ float32 matmul {matmul:.1f} GFLOP/s; bare LSTM-cell tick (XLA) "
        f"{bare['cell_ticks_per_s'] / 1e6:.2f} M cell-ticks/s"
    )
    hdr = (
        f"{'measure':26s} {'fused M ct/s':>12s} {'xla M ct/s':>10s} {'×xla':>6s} {'target':>7s} {'fused MB':>8s} "
        f"{'xla MB':>7s} {'fused GFLOP/s':>13s} {'of matmul':>9s}"
    )
    print(hdr)
    print("-" * len(hdr))
    for measure in measures:
        e = results[measure]
        f, x = e["fused"], e["xla"]
        target = f"≥{e['target_speedup']:.1f}" + ("✓" if e["target_met"] else "✗") if "target_speedup" in e else ""
        print(
            f"{measure:26s} {f['cell_ticks_per_s'] / 1e6:12.2f} {x['cell_ticks_per_s'] / 1e6:10.2f} "
            f"{e['speedup']:6.2f} "
            f"{target:>7s} {f.get('peak_rss_mb', 0):8.0f} {x.get('peak_rss_mb', 0):7.0f} "
            f"{e['fused_useful_gflops']:13.1f} "
            f"{100 * e['fused_fraction_of_matmul']:8.1f}%"
        )
        if "fused_baseline" in e:
            fb = e["fused_baseline"]
            print(
                f"{'':26s} baseline build: fused {fb['cell_ticks_per_s'] / 1e6:.2f} M ct/s, "
                f"{fb.get('peak_rss_mb', 0):.0f} MB; "
                f"this build / baseline {e['fused_over_baseline']:.2f}"
            )
        if "reference" in e:
            print(f"{'':26s} reference {e['reference']['cell_ticks_per_s'] / 1e6:.2f} M ct/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
