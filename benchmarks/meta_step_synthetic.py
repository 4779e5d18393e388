"""Meta-step benchmark on synthetic data (named meta_step.py until 2026-12-07; benchmarks/meta_step.py now
times real configs): one ES iteration and one gradient meta-step on the authors' default setup
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

Both dense-layer paths run in the same process, their timed repeats alternating: the fused C++
kernel (``VSMLConfig(kernel="fused")``, :mod:`vsml.kernels`) and the XLA kernels (``kernel="xla"``),
and the ratio fused / XLA is printed per measurement (ES: forward passes only, one batched kernel
call per step for all members of a chunk; gradient: value-and-grad with per-step remat).

    python benchmarks/meta_step_synthetic.py [--steps 500] [--population 8,32] [--meta-batch 2] [--repeats 2]
    [--kernels xla,fused] [--json out.json]
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
    ap.add_argument("--population", default="8,32", help="ES population(s), comma-separated (even)")
    ap.add_argument("--kernels", default="xla,fused", help="dense-layer paths to time (VSMLConfig.kernel values)")
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

    kinds = [k.strip() for k in args.kernels.split(",") if k.strip()]
    learners = {k: VSML(VSMLConfig(state_size=N, message_size=M, micro_ticks=TICKS, kernel=k)) for k in kinds}
    learner = learners[kinds[0]]
    sampler = EpisodeSampler(SamplerConfig(datasets=("random",), flatten=True, steps=args.steps, normalize=False))
    task = TaskSpec(sampler.input_shape, sampler.num_classes, 1)
    assert task.input_shape == (A,) and task.num_classes == B
    params = learner.init_params(jax.random.PRNGKey(0))
    cell_ticks = A * B * TICKS * args.steps

    problems = {k: MetaProblem(learners[k], task, ObjectiveConfig(), sampler, make_mesh()) for k in kinds}

    def bench(opt, episodes):
        """Every path: first call (compile), then ``repeats`` timed calls alternating between paths."""
        states = {k: opt.init(params, jax.random.PRNGKey(0), problems[k]) for k in kinds}
        out = {}
        for k in kinds:
            t = time.perf_counter()
            jax.block_until_ready(opt.step(states[k], jax.random.PRNGKey(1), problems[k]))
            out[k] = {"episodes": episodes, "first_call_seconds": time.perf_counter() - t, "seconds": float("inf")}
        for r in range(args.repeats):
            for k in kinds:
                t = time.perf_counter()
                jax.block_until_ready(opt.step(states[k], jax.random.PRNGKey(2 + r), problems[k]))
                out[k]["seconds"] = min(out[k]["seconds"], time.perf_counter() - t)
        for r in out.values():
            r["cell_ticks_per_s"] = cell_ticks * episodes / r["seconds"]
            r["seconds_per_episode"] = r["seconds"] / episodes
        return out

    gr_cfg = GradientConfig(meta_batch=args.meta_batch, remat=True)
    results = {}
    if args.only in (None, "es"):
        for pop in (int(p) for p in str(args.population).split(",")):
            es_cfg = ESConfig(population=pop, chunk=args.chunk or None)
            for k, r in bench(AntitheticES(es_cfg), pop).items():
                results[f"es_forward_{pop}/{k}"] = r
    if args.only in (None, "gradient"):
        for k, r in bench(GradientDescent(gr_cfg), args.meta_batch).items():
            results[f"gradient_value_and_grad/{k}"] = r
    bare = bare_cell_rate(args.repeats)
    speed = AUTHORS_BARE_CELL / bare  # > 1: the machine is slower now than when the authors' figures were taken
    print(
        f"meta-step benchmark: dense {A}→{B}, N={N}, M={M}, {TICKS} ticks, {args.steps}-step episodes, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s), {platform.processor() or platform.machine()}"
    )
    print(
        f"  machine-speed reference: bare LSTM-cell tick {bare / 1e6:.2f} M cell-ticks/s "
        f"(authors' figures taken at {AUTHORS_BARE_CELL / 1e6:.1f} M; normalisation factor {speed:.2f})"
    )
    for name, r in results.items():
        base, kind = name.split("/")
        authors = AUTHORS["es_forward" if base.startswith("es_forward") else base]
        r["authors_cell_ticks_per_s"] = authors
        r["ratio_vs_authors"] = r["cell_ticks_per_s"] / authors
        r["ratio_vs_authors_speed_normalised"] = r["ratio_vs_authors"] * speed
        if kind != "xla" and f"{base}/xla" in results:
            r["ratio_vs_xla"] = r["cell_ticks_per_s"] / results[f"{base}/xla"]["cell_ticks_per_s"]
        vs_xla = f", {r['ratio_vs_xla']:.2f}× the XLA path" if "ratio_vs_xla" in r else ""
        print(
            f"  {name:32s} {r['episodes']:3d} episodes in {r['seconds']:.2f} s  ({r['seconds_per_episode']:.2f} "
            f"s/episode, "
            f"first call {r['first_call_seconds']:.1f} s): {r['cell_ticks_per_s'] / 1e6:.2f} M cell-ticks/s = "
            f"{r['ratio_vs_authors']:.2f}× authors ({authors / 1e6:.2f} M), "
            f"{r['ratio_vs_authors_speed_normalised']:.2f}× speed-normalised{vs_xla}"
        )
    if args.json:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with open(args.json, "w") as f:
            json.dump(
                {
                    "steps": args.steps,
                    "devices": jax.device_count(),
                    "load_avg_at_end": load,
                    "bare_cell_cell_ticks_per_s": bare,
                    "speed_normalisation": speed,
                    "results": results,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
