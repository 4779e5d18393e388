"""Devices and processes: one data-parallel mesh over every device of every process.

    initialize()            # jax.distributed.initialize() when launched by SLURM / MPI / env vars
    mesh = make_mesh()      # Mesh(all devices, ("batch",))
    keys = shard_batch(keys, mesh)          # inside jit: split the episode / population axis
    params = replicate(params, mesh)        # host pytree -> replicated global arrays
    host = to_host(tree)                    # global (replicated) arrays -> NumPy on every process

The meta-batch (gradient) or population (ES) axis is the only sharded axis; parameters and the
optimizer state are replicated, so every process ends each step with the same parameters.

Multi-process launches are detected from the environment: SLURM (``SLURM_JOB_ID`` with
``SLURM_NTASKS > 1``), Open MPI / MPICH / PMIx (``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``,
``PMIX_RANK``), or explicit ``VSML_COORDINATOR=host:port``, ``VSML_NUM_PROCESSES``,
``VSML_PROCESS_ID``. On CPU the cross-process collectives use gloo.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"
_initialized = False


class DistributedError(RuntimeError):
    """The distributed runtime could not be set up."""


def _env_launch() -> dict | None:
    """Explicit launch parameters from VSML_* variables, else None (auto-detect / single process)."""
    if "VSML_COORDINATOR" not in os.environ:
        return None
    try:
        return dict(
            coordinator_address=os.environ["VSML_COORDINATOR"],
            num_processes=int(os.environ["VSML_NUM_PROCESSES"]),
            process_id=int(os.environ["VSML_PROCESS_ID"]),
        )
    except (KeyError, ValueError) as e:
        raise DistributedError(
            "VSML_COORDINATOR is set, so VSML_NUM_PROCESSES and VSML_PROCESS_ID must be integers too"
        ) from e


def launched_multiprocess() -> bool:
    """True when the environment describes a launch of more than one process."""
    env = os.environ
    if "VSML_COORDINATOR" in env:
        return int(env.get("VSML_NUM_PROCESSES", "1")) > 1
    if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1"))) > 1:
        return True
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if int(env.get(var, "1")) > 1:
            return True
    return "PMIX_RANK" in env


def initialize(mode: str = "auto") -> bool:
    """Start ``jax.distributed`` if this is a multi-process launch (``mode``: auto | on | off).

    Must run before any JAX computation. Returns True when the distributed runtime is active.
    """
    global _initialized
    if _initialized:
        return True
    if mode == "off" or (mode == "auto" and not launched_multiprocess()):
        return False
    kwargs = _env_launch() or {}
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
        try:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        except Exception:  # noqa: BLE001 - older/newer jax without the option
            pass
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as e:  # noqa: BLE001 - surface one clear line
        raise DistributedError(f"jax.distributed.initialize failed ({type(e).__name__}: {e})") from None
    _initialized = True
    return True


def make_mesh() -> Mesh:
    """A 1-D mesh over all devices of all processes, axis ``"batch"``."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_batch(x, mesh: Mesh):
    """Inside jit: constrain the leading axis of ``x`` to be split over the mesh."""
    return jax.lax.with_sharding_constraint(x, batch_sharding(mesh))


def replicate(tree, mesh: Mesh):
    """Host pytree (same values on every process) -> replicated global arrays on ``mesh``."""
    sharding = replicated(mesh)

    def put(leaf):
        arr = np.asarray(leaf)
        return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree):
    """Replicated (or fully addressable) arrays -> NumPy arrays, on every process."""

    def get(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(leaf)

    return jax.tree_util.tree_map(get, tree)


def process_index() -> int:
    return jax.process_index()


def is_main() -> bool:
    """True on the process that writes logs and checkpoints."""
    return jax.process_index() == 0


def check_divisible(n: int, what: str) -> None:
    d = jax.device_count()
    if n % d:
        raise DistributedError(f"{what} = {n} must be divisible by the number of devices ({d})")


def chunked_map(fn, xs, mesh: Mesh, chunk: int | None):
    """``vmap(fn)(xs)`` over a leading axis split across the mesh, evaluating at most ``chunk``
    items at a time per device (``lax.map`` over groups: bounded memory, cache-friendly).

    ``xs``: pytree with leading axis ``n`` (divisible by the device count). Returns ``fn``'s
    outputs stacked to ``[n, ...]``.
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    d = mesh.devices.size
    per = n // d
    if not chunk or chunk >= per:
        return jax.vmap(fn)(jax.tree_util.tree_map(lambda x: shard_batch(x, mesh), xs))
    grouped = jax.tree_util.tree_map(lambda x: shard_batch(x.reshape(d, per, *x.shape[1:]), mesh), xs)
    out = jax.vmap(lambda g: jax.lax.map(fn, g, batch_size=chunk))(grouped)
    return jax.tree_util.tree_map(lambda x: x.reshape(n, *x.shape[2:]), out)
