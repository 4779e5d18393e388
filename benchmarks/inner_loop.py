"""Inner-loop benchmark: one dense 784→10 VSML layer, N = 16, M = 8, 2 micro ticks.

Measures, each in a fresh process (so peak RSS is that measurement's own):
  * forward episode throughput at batch 1 and batch 8 (``run_episode``, jitted ``lax.scan``),
  * value-and-gradient of a 100-step episode's mean loss, with and without per-step
    rematerialisation: time and peak memory,
for the library's factorised implementation and for the plain per-cell reference implementation,
plus a bare LSTM-cell tick over the same 7,840 cells (the XLA floor). Throughput is reported in
cell-ticks/s = cells × micro ticks × steps × batch / seconds, with ratios to the reference timed in
this run, to the bare-cell floor and to the authors' implementation (measured on this machine; docs/benchmarks.md).

    python benchmarks/inner_loop.py [--steps 300] [--repeats 5] [--json results.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

A, B, N, M, TICKS = 784, 10, 16, 8, 2
CELLS = A * B
AUTHORS = {"forward_b1": 8.6e6, "forward_b8": 4.7e6, "value_and_grad_100": 1.26e6, "value_and_grad_100_mb": 1800.0}


def _best_time(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best process-CPU seconds of ``fn`` over ``repeats`` runs (after a warm-up).

    CPU seconds (all threads of this process) are robust to other jobs on the machine; on an
    otherwise idle machine wall ≤ CPU, and both are reported.
    """
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

    from vsml.learners.base import TaskSpec, episode
    from vsml.learners.vsml_reference import ReferenceVSML
    from vsml.learners.vsml import VSML, VSMLConfig, lstm_gates

    key = jax.random.PRNGKey(0)
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

    learner = (VSML if impl == "factorised" else ReferenceVSML)(VSMLConfig())
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


def run_child(measure: str, impl: str, steps: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", measure, "--impl", impl, "--steps", str(steps), "--repeats", str(repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {measure}/{impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="episode length for the forward measures")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write every figure to this JSON file")
    ap.add_argument("--quick", action="store_true", help="fewer steps/repeats (smoke test)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="factorised", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 20, 1
    if args.child:
        print(json.dumps(child(args.child, args.impl, args.steps, args.repeats)))
        return 0

    import jax

    results: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": __import__("os").cpu_count(),
                    "jax": jax.__version__, "device": str(jax.devices()[0])},
        "config": {"A": A, "B": B, "N": N, "M": M, "micro_ticks": TICKS, "forward_steps": args.steps, "grad_steps": 100},
        "authors": AUTHORS,
    }
    bare = run_child("bare_cell", "factorised", args.steps, args.repeats)
    results["bare_cell_cell_ticks_per_s"] = bare["cell_ticks_per_s"]
    results["bare_cell_cell_ticks_per_cpu_s"] = bare["cell_ticks_per_cpu_s"]
    results["load_average_at_start"] = __import__("os").getloadavg()[0]
    rows = []
    for measure in ("forward_b1", "forward_b8", "value_and_grad_100", "value_and_grad_100_remat"):
        fast = run_child(measure, "factorised", args.steps, args.repeats)
        ref = run_child(measure, "reference", args.steps, args.repeats)
        authors_key = "value_and_grad_100" if measure.startswith("value_and_grad") else measure
        entry = {
            "cell_ticks_per_s": fast["cell_ticks_per_s"],
            "cell_ticks_per_cpu_s": fast["cell_ticks_per_cpu_s"],
            "steps_per_s": fast["steps_per_s"],
            "peak_rss_mb": fast["peak_rss_mb"],
            "reference_cell_ticks_per_s": ref["cell_ticks_per_s"],
            "reference_cell_ticks_per_cpu_s": ref["cell_ticks_per_cpu_s"],
            "reference_peak_rss_mb": ref["peak_rss_mb"],
            "ratio_to_reference": fast["cell_ticks_per_s"] / ref["cell_ticks_per_s"],
            "ratio_to_bare_cell": fast["cell_ticks_per_s"] / bare["cell_ticks_per_s"],
            "ratio_to_authors": fast["cell_ticks_per_s"] / AUTHORS[authors_key],
        }
        results[measure] = entry
        rows.append((measure, entry))
    g, gr = results["value_and_grad_100"], results["value_and_grad_100_remat"]
    results["remat_speedup"] = gr["cell_ticks_per_s"] / g["cell_ticks_per_s"]
    results["remat_memory_ratio"] = gr["peak_rss_mb"] / g["peak_rss_mb"]

    print(f"VSML inner loop, dense {A}→{B}, N={N}, M={M}, {TICKS} micro ticks — {results['machine']['device']}, "
          f"{results['machine']['cpus']} CPUs, jax {jax.__version__}")
    print(f"load average at start: {results['load_average_at_start']:.2f} (wall-clock figures assume an idle machine)")
    print(f"bare LSTM-cell tick over {CELLS} cells (XLA floor): {bare['cell_ticks_per_s'] / 1e6:.2f} M cell-ticks/s "
          f"({bare['cell_ticks_per_cpu_s'] / 1e6:.2f} per CPU-second)")
    hdr = (f"{'measure':28s} {'M cell-ticks/s':>14s} {'per CPU-s':>9s} {'steps/s':>9s} {'peak MB':>8s} {'ref M ct/s':>10s} "
           f"{'×ref':>6s} {'×bare':>6s} {'×authors':>8s}")
    print(hdr)
    print("-" * len(hdr))
    for name, e in rows:
        print(f"{name:28s} {e['cell_ticks_per_s'] / 1e6:14.2f} {e['cell_ticks_per_cpu_s'] / 1e6:9.2f} {e['steps_per_s']:9.1f} {e['peak_rss_mb']:8.0f} "
              f"{e['reference_cell_ticks_per_s'] / 1e6:10.2f} {e['ratio_to_reference']:6.2f} {e['ratio_to_bare_cell']:6.2f} "
              f"{e['ratio_to_authors']:8.2f}")
    print(f"rematerialisation per scan step: {results['remat_speedup']:.2f}× speed, {results['remat_memory_ratio']:.2f}× peak memory")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
