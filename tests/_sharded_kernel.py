"""Child of tests/test_meta_distributed.py::test_fused_kernel_runs_per_device_*: the meta-objective's
value and gradient over a mesh of every device of every process, on the fused kernel (``kernel:
fused``), written for the parent to compare with its own one-device fused and XLA results.

    python tests/_sharded_kernel.py OUT       # one process with forced host devices, or one of
                                              # several (VSML_COORDINATOR, ...): writes OUT.<process>.npz / .json

Two programs, each the way a meta-step maps its sharded axis (:func:`vsml.meta.distributed.sharded_vmap`):

* ``episodes``: value-and-grad of ``MetaProblem.meta_loss`` over 4 episodes (the gradient and
  TBPTT estimators' map; per-step remat, core-mode kernel);
* ``members``: 4 members with their own parameters, one episode each, through ``chunked_map`` with
  one member at a time per device (ES / PES; per-cell LayerNorm: the cell-norm kernel), the
  gradient of a weighted sum of their losses.

The JSON records the resolved kernel and every fused custom call of the compiled (partitioned)
programs with its result shape, so the parent can check that each device runs the kernel on its
own share of the mapped axis.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import numpy as np
from _meta_support import TINY_VSML as TINY
from jax.flatten_util import ravel_pytree

from vsml.data.episodes import EpisodeSampler, SamplerConfig
from vsml.learners.base import TaskSpec
from vsml.learners.vsml import VSML, VSMLConfig
from vsml.meta import distributed as dist
from vsml.meta.objective import MetaProblem, ObjectiveConfig

EPISODES = 4
CALL = re.compile(r"= \(f32\[([\d,]+)\][^\n]*custom_call_target=\"(vsml_dense_\w+)\"")


def problem(kernel: str, mesh, layer_norm: bool = False) -> MetaProblem:
    learner = VSML(VSMLConfig(**TINY, kernel=kernel, layer_norm=layer_norm))
    sampler = EpisodeSampler(SamplerConfig(datasets=("digits",), flatten=True, steps=5, num_classes=3))
    task = TaskSpec(sampler.input_shape, sampler.num_classes, sampler.batch_size)
    return MetaProblem(learner, task, ObjectiveConfig(), dist.replicate(sampler, mesh), mesh)


def programs(kernel: str, mesh):
    """``{name: (jitted fn, args)}`` of the two programs on ``mesh``."""
    core, cell = problem(kernel, mesh), problem(kernel, mesh, layer_norm=True)
    p_core = core.learner.init_params(jax.random.PRNGKey(0))
    p_cell = cell.learner.init_params(jax.random.PRNGKey(1))
    flat, unravel = ravel_pytree(p_cell)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(2), EPISODES))
    noise = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (EPISODES, flat.shape[0]))) * 0.05
    weights = np.asarray([1.0, -0.5, 0.25, 2.0], np.float32)

    def episodes(params, keys):
        return jax.value_and_grad(lambda p: core.meta_loss(p, dist.shard_batch(keys, mesh)), has_aux=True)(params)

    def members(flat, noise, keys):
        def loss(f):
            thetas = f[None] + noise
            losses, _ = dist.chunked_map(
                lambda a: cell.episode_loss(unravel(a[0]), a[1], remat=False), (thetas, keys), mesh, 1
            )
            return (losses * weights).sum(), losses

        return jax.value_and_grad(loss, has_aux=True)(flat)

    rep = lambda t: dist.replicate(t, mesh)  # noqa: E731
    return {
        "episodes": (jax.jit(episodes), (rep(jax.device_get(p_core)), rep(keys))),
        "members": (jax.jit(members), (rep(np.asarray(flat)), rep(noise), rep(keys))),
    }


def run(kernel: str, mesh) -> tuple[dict, dict]:
    """Results (host arrays, flattened into named leaves) and the fused calls of each compiled program."""
    out, calls = {}, {}
    for name, (fn, args) in programs(kernel, mesh).items():
        compiled = fn.lower(*args).compile()
        text = compiled.as_text()
        calls[name] = {
            "calls": [[target, [int(d) for d in shape.split(",")]] for shape, target in CALL.findall(text)],
            "all_gather": "all-gather" in text,
        }
        res = dist.to_host(compiled(*args))
        for i, leaf in enumerate(jax.tree_util.tree_leaves(res)):
            out[f"{name}/{i}"] = np.asarray(leaf)
    return out, calls


def main(out: str) -> int:
    dist.initialize("auto")
    from vsml import kernels

    mesh = dist.make_mesh()
    results, calls = run("fused", mesh)
    me = jax.process_index()
    np.savez(f"{out}.{me}.npz", **results)
    with open(f"{out}.{me}.json", "w") as f:
        json.dump(
            {
                "devices": jax.device_count(),
                "processes": jax.process_count(),
                "auto": kernels.resolve_kernel("auto"),
                "programs": calls,
            },
            f,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
