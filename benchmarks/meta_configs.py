"""Wall-clock of the shipped meta-training configs, estimated from measured per-stage step times.

For every curriculum stage of each config, one meta-step is compiled (timed separately) and then
``--repeats`` steps are timed; the estimate is ``sum(stage iterations x s/step)`` plus one
compile per stage and the periodic meta-test evaluations (timed once per config). A full run of
every config would take hours, so this is an estimate: it leaves out checkpoint writes (small)
and the meta-loss-threshold stages, which are priced at their ``min_iterations``.

    VSML_DATA_DIR=/path/to/data python benchmarks/meta_configs.py [configs/meta_lodo_cpu.yaml ...] \\
        [--repeats 3] [--json out.json]

Without config arguments it measures every ``configs/meta_*_cpu.yaml``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stage_iterations(cfg) -> list[int]:
    """Iterations spent in each curriculum stage (the last one takes what is left)."""
    stages = cfg.curriculum or ()
    if not stages:
        return [cfg.iterations]
    out, left = [], cfg.iterations
    for st in stages[:-1]:
        n = st.iterations if st.iterations is not None else st.min_iterations
        n = min(n, left)
        out.append(n)
        left -= n
    out.append(left)
    return out


def measure(path: str, repeats: int) -> dict:
    import jax

    from vsml.data.episodes import EpisodeSampler
    from vsml.meta.trainer import MetaTrainer, load_meta_config

    cfg = load_meta_config(path, ["log.progress=false", "log.tensorboard=false", "log.csv=false"])
    trainer = MetaTrainer(cfg, out_dir=Path("/tmp") / "vsml_meta_configs_bench" / cfg.name, log=lambda m: None)
    iters = stage_iterations(cfg)
    stages = []
    for s, n in enumerate(iters):
        state = trainer.init_state(s)
        t = time.perf_counter()
        state, m = trainer.step(state, 0, s)
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t
        times = []
        for r in range(repeats):
            t = time.perf_counter()
            state, m = trainer.step(state, r + 1, s)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t)
        sampler = EpisodeSampler(trainer.sampler_configs(s)[0])
        stages.append(
            {
                "stage": s,
                "iterations": n,
                "steps": sampler.steps,
                "classes": sampler.num_classes,
                "input_shape": list(sampler.input_shape),
                "compile_s": compile_s,
                "s_per_iteration": min(times),
            }
        )
    eval_s = 0.0
    n_evals = 0
    if cfg.eval.every:
        t = time.perf_counter()
        trainer.evaluate(state.params)  # includes compiling the evaluation
        eval_s = time.perf_counter() - t
        n_evals = cfg.iterations // cfg.eval.every + (cfg.iterations % cfg.eval.every != 0)
    total = sum(st["iterations"] * st["s_per_iteration"] + st["compile_s"] for st in stages) + n_evals * eval_s
    return {
        "config": os.path.relpath(path, ROOT),
        "method": cfg.meta_optimizer.name,
        "iterations": cfg.iterations,
        "stages": stages,
        "eval_s": eval_s,
        "evaluations": n_evals,
        "estimated_wall_s": total,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    paths = args.configs or sorted(str(p) for p in (ROOT / "configs").glob("meta_*_cpu.yaml"))
    results = []
    for path in paths:
        r = measure(path, args.repeats)
        results.append(r)
        st = ", ".join(
            f"{s['steps']}-step {s['classes']}-way {s['s_per_iteration']:.2f} s/it x {s['iterations']}"
            for s in r["stages"]
        )
        print(
            f"{r['config']}: ~{r['estimated_wall_s'] / 60:.0f} min ({st}; {r['evaluations']} evals x "
            f"{r['eval_s']:.0f} s)",
            flush=True,
        )
    if args.json:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        Path(args.json).write_text(
            json.dumps(
                {"machine": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": load, "results": results},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
