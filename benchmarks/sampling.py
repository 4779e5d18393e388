"""Benchmark: jitted episode sampling vs one VSML inner-loop pass over the same episodes.

    VSML_DATA_DIR=/path/to/data .venv/bin/python benchmarks/sampling.py [--json out.json]

Samples a meta-batch of 128 MNIST episodes x 500 steps x batch 1 inside jit (plain, and with a
per-episode random projection), then times one VSML inner-loop pass (``run_episodes``) over a few
of those episodes and scales it linearly to the full meta-batch (said so in the output).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax


def _time(fn, repeats: int) -> tuple[float, float]:
    """(first call incl. compile, median of ``repeats`` later calls) in seconds."""
    t = time.perf_counter()
    jax.block_until_ready(fn(0))
    first = time.perf_counter() - t
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(i + 1))
        times.append(time.perf_counter() - t)
    return first, statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=128)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--vsml-episodes", type=int, default=4, help="episodes actually run through VSML (scaled up)")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)

    from vsml.data import DataError, EpisodeSampler, SamplerConfig, data_dir

    try:
        sampler = EpisodeSampler(SamplerConfig(datasets=("mnist",), steps=args.steps, flatten=True))
        projected = EpisodeSampler(SamplerConfig(datasets=("mnist",), steps=args.steps, projection="episode"))
    except DataError as e:
        print(
            f"cannot load MNIST from {data_dir()} (set VSML_DATA_DIR, or run `vsml data download mnist`):\n{e}",
            file=sys.stderr,
        )
        return 2
    E = args.episodes
    keys = jax.random.split(jax.random.PRNGKey(0), args.repeats + 1)
    out = {"episodes": E, "steps": args.steps, "batch": 1, "device": str(jax.devices()[0]), "jax": jax.__version__}
    first, med = _time(lambda i: sampler.sample(keys[i], E), args.repeats)
    out |= {"sample_first_s": first, "sample_s": med}
    first, med = _time(lambda i: projected.sample(keys[i], E), args.repeats)
    out |= {"sample_projected_first_s": first, "sample_projected_s": med}
    print(
        f"sampling {E} x {args.steps} x 1 MNIST episodes in jit: {out['sample_s'] * 1e3:.1f} ms "
        f"(first call incl. compile {out['sample_first_s']:.2f} s); with a per-episode random projection "
        f"784x784: {out['sample_projected_s'] * 1e3:.1f} ms"
    )
    try:
        from vsml.learners.base import run_episodes
        from vsml.learners.vsml import VSML, VSMLConfig
    except ImportError as e:
        print(f"vsml.learners.vsml not available ({e}); skipping the inner-loop comparison")
    else:
        n = min(args.vsml_episodes, E)
        learner = VSML(VSMLConfig())
        params = learner.init_params(jax.random.PRNGKey(1))
        xs, ys = sampler.sample(keys[0], E)
        xs, ys = xs[:n], ys[:n]
        ep_keys = jax.random.split(jax.random.PRNGKey(2), n)
        first, med = _time(
            lambda i: run_episodes(learner, params, ep_keys, xs, ys, sampler.num_classes).correct,
            max(1, args.repeats // 3),
        )
        scaled = med * E / n
        out |= {
            "vsml_episodes_run": n,
            "vsml_s_measured": med,
            "vsml_first_s": first,
            "vsml_s_scaled": scaled,
            "ratio": out["sample_s"] / scaled,
            "ratio_projected": out["sample_projected_s"] / scaled,
        }
        print(
            f"VSML inner loop (784->10, N=16, M=8, 2 ticks) over {n} episodes: {med:.2f} s; scaled linearly "
            f"to {E} episodes: {scaled:.1f} s"
        )
        print(
            f"sampling / inner loop = {100 * out['ratio']:.3f} % (with projection {100 * out['ratio_projected']:.3f} "
            f"%); "
            f"target < 5 %"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
