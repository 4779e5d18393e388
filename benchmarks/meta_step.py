"""Meta-step benchmark: one ES iteration and one gradient meta-step on the authors' default setup
(dense 784→10 VSML layer, N = 16, M = 8, 2 micro ticks, 500-step episodes, batch 1).

Throughput per episode is reported in cell-ticks/s = 7,840 cells × 2 ticks × steps × episodes /
seconds (episodes = population for ES, meta-batch for gradient; the time includes sampling the
episodes inside the step and the optimizer update) and compared with the authors' implementation
measured on the same machine (docs/benchmarks.md): forward 8.6 M cell-ticks/s (ES evaluates members with
forward passes only), value-and-grad 1.26 M cell-ticks/s. Data: the built-in ``random`` set
(28×28, 10 classes), so no files are needed.

The authors' figures are fixed numbers measured once on this machine, whose speed drifts (other
tenants, throttling: the bare LSTM-cell tick has been measured anywhere between 13 and 19.5 M
cell-ticks/s). So the same run also measures that bare-cell tick (the machine-speed reference of
``inner_loop.py``; 19.5 M when the authors' figures were taken) and reports a
speed-normalised ratio: ``(ours / authors) x (19.5 M / bare cell now)``.

    python benchmarks/meta_step.py [--steps 500] [--population 8] [--meta-batch 2] [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

A, B, N, M, TICKS = 784, 10, 16, 8, 2
AUTHORS = {"es_forward": 8.6e6, "gradient_value_and_grad": 1.26e6}
AUTHORS_BARE_CELL = 19.5e6  # bare LSTM-cell tick over 7,840 cells when the authors' figures were taken


def bare_cell_rate(repeats: int) -> float:
    """Cell-ticks/s of the bare LSTM-cell tick over 7,840 cells (``inner_loop.py``'s floor measurement)."""
    from inner_loop import child  # benchmarks/ is on sys.path when this file runs as a script

    return child("bare_cell", "factorised", 500, max(repeats, 3))["cell_ticks_per_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--population", type=int, default=8, help="ES population (even)")
    ap.add_argument("--meta-batch", type=int, default=2, help="episodes per gradient meta-step")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=4, help="ES members evaluated at once per device (0: all)")
    ap.add_argument("--only", choices=("es", "gradient"), default=None, help="run one of the two measurements")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import jax

    from vsml.data.episodes import EpisodeSampler, SamplerConfig
    from vsml.learners.base import TaskSpec
    from vsml.learners.vsml import VSML, VSMLConfig
    from vsml.meta import AntitheticES, ESConfig, GradientConfig, GradientDescent, MetaProblem, ObjectiveConfig
    from vsml.meta.distributed import make_mesh

    learner = VSML(VSMLConfig(state_size=N, message_size=M, micro_ticks=TICKS))
    sampler = EpisodeSampler(SamplerConfig(datasets=("random",), flatten=True, steps=args.steps, normalize=False))
    task = TaskSpec(sampler.input_shape, sampler.num_classes, 1)
    assert task.input_shape == (A,) and task.num_classes == B
    params = learner.init_params(jax.random.PRNGKey(0))
    problem = MetaProblem(learner, task, ObjectiveConfig(), sampler, make_mesh())
    cell_ticks = A * B * TICKS * args.steps

    def bench(opt, episodes):
        state = opt.init(params, jax.random.PRNGKey(0), problem)
        t = time.perf_counter()
        jax.block_until_ready(opt.step(state, jax.random.PRNGKey(1), problem))
        compile_s = time.perf_counter() - t
        best = float("inf")
        for r in range(args.repeats):
            t = time.perf_counter()
            jax.block_until_ready(opt.step(state, jax.random.PRNGKey(2 + r), problem))
            best = min(best, time.perf_counter() - t)
        return {"episodes": episodes, "seconds": best, "first_call_seconds": compile_s,
                "cell_ticks_per_s": cell_ticks * episodes / best, "seconds_per_episode": best / episodes}

    es_cfg = ESConfig(population=args.population, chunk=args.chunk or None)
    gr_cfg = GradientConfig(meta_batch=args.meta_batch, remat=True)
    results = {}
    if args.only in (None, "es"):
        results["es_forward"] = bench(AntitheticES(es_cfg), args.population)
    if args.only in (None, "gradient"):
        results["gradient_value_and_grad"] = bench(GradientDescent(gr_cfg), args.meta_batch)
    bare = bare_cell_rate(args.repeats)
    speed = AUTHORS_BARE_CELL / bare  # > 1: the machine is slower now than when the authors' figures were taken
    print(f"meta-step benchmark: dense {A}→{B}, N={N}, M={M}, {TICKS} ticks, {args.steps}-step episodes, "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s), {platform.processor() or platform.machine()}")
    print(f"  machine-speed reference: bare LSTM-cell tick {bare / 1e6:.2f} M cell-ticks/s "
          f"(authors' figures taken at {AUTHORS_BARE_CELL / 1e6:.1f} M; normalisation factor {speed:.2f})")
    for name, r in results.items():
        r["authors_cell_ticks_per_s"] = AUTHORS[name]
        r["ratio_vs_authors"] = r["cell_ticks_per_s"] / AUTHORS[name]
        r["ratio_vs_authors_speed_normalised"] = r["ratio_vs_authors"] * speed
        print(f"  {name:26s} {r['episodes']:3d} episodes in {r['seconds']:.2f} s  ({r['seconds_per_episode']:.2f} s/episode, "
              f"first call {r['first_call_seconds']:.1f} s): {r['cell_ticks_per_s'] / 1e6:.2f} M cell-ticks/s = "
              f"{r['ratio_vs_authors']:.2f}× authors ({AUTHORS[name] / 1e6:.2f} M), "
              f"{r['ratio_vs_authors_speed_normalised']:.2f}× speed-normalised")
    if args.json:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "devices": jax.device_count(), "load_avg_at_end": load,
                       "bare_cell_cell_ticks_per_s": bare, "speed_normalisation": speed, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
