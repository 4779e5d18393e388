"""Arrays over devices and processes: one data-parallel mesh over every device of every process.

    mesh = make_mesh()      # Mesh(all devices, ("batch",))
    keys = shard_batch(keys, mesh)          # inside jit: split the episode / population axis
    out = sharded_vmap(fn, mesh)(keys)      # vmap over that axis, each device its share (fused kernel per device)
    params = replicate(params, mesh)        # host pytree -> replicated global arrays
    host = to_host(tree)                    # global (replicated) arrays -> NumPy on every process

The meta-batch (gradient) or population (ES) axis is the only sharded axis; parameters and the
optimizer state are replicated, so every process ends each step with the same parameters. The
meta-steps map that axis with :func:`sharded_vmap`, under which the fused CPU kernel
(:mod:`vsml.kernels`) runs on each device's share: XLA cannot partition the kernel's custom call
by itself. Starting the processes and keeping them in step: :mod:`vsml.meta.processes`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vsml.kernels import dense

AXIS = "batch"

_max_fns: dict = {}


def process_max(value: int, mesh: Mesh) -> int:
    """The maximum of an integer over all processes (every process gets it; a collective, so every
    process must call it at the same point). ``value`` itself in a single process."""
    if jax.process_count() == 1:
        return int(value)
    fn = _max_fns.get(mesh)
    if fn is None:
        fn = _max_fns[mesh] = jax.jit(jnp.max, out_shardings=replicated(mesh))
    local = np.full((len(mesh.local_devices),), int(value), np.int32)
    arr = jax.make_array_from_process_local_data(batch_sharding(mesh), local, (mesh.devices.size,))
    return int(np.asarray(fn(arr).addressable_data(0)))


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


def _leading_sharding(shape, mesh: Mesh) -> NamedSharding:
    """Split the leading axis over the mesh where it divides evenly, else replicate."""
    n = mesh.devices.size
    return batch_sharding(mesh) if len(shape) >= 1 and shape[0] % n == 0 else replicated(mesh)


def shard_leading(tree, mesh: Mesh):
    """Inside jit: constrain every leaf of ``tree`` (persistent inner state: leading axis particle
    or member) to :func:`place_leading`'s placement, so that every meta-step sees its inner state
    placed one way — fresh, restored from a checkpoint or carried from the previous step — and one
    compiled step (one order of floating-point operations) serves them all."""
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, _leading_sharding(x.shape, mesh)), tree)


def place_leading(tree, mesh: Mesh):
    """Host pytree (the whole global arrays, on every process) -> global arrays split over the mesh
    along their leading axis (replicated where it does not divide evenly)."""

    def put(leaf):
        arr = np.asarray(leaf)
        return jax.make_array_from_callback(arr.shape, _leading_sharding(arr.shape, mesh), lambda idx: arr[idx])

    return jax.tree_util.tree_map(put, tree)


def replicate(tree, mesh: Mesh):
    """Host pytree (same values on every process) -> replicated global arrays on ``mesh``."""
    sharding = replicated(mesh)

    def put(leaf):
        arr = np.asarray(leaf)
        return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree):
    """Global arrays -> whole NumPy arrays, on every process.

    A replicated array is read from a local copy; an array sharded across processes (the
    persistent estimators' inner state: particles, learner states, noise) is gathered from every
    process (:func:`jax.experimental.multihost_utils.process_allgather`), so a checkpoint holds
    every process's lifetimes. Gathering is a collective: in a multi-process run every process
    must call this at the same point with the same tree."""

    def get(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return np.asarray(leaf)
        if leaf.sharding.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree_util.tree_map(get, tree)


def sharded_vmap(fn, mesh: Mesh):
    """``jax.vmap(fn)`` over a leading axis split across ``mesh`` (every argument's leaves lead
    with it). With more than one device the ``vmap`` names the mesh axis as its
    ``spmd_axis_name`` and is traced under :func:`vsml.kernels.dense.per_device`, so every fused
    kernel call inside runs as a ``shard_map``: each device on its own share of the axis, not the
    whole gathered axis on every device. One device, an axis that does not divide evenly over
    the devices, or a call nested in another sharded map: a plain ``vmap``."""
    if mesh.devices.size == 1:
        return jax.vmap(fn)

    def mapped(*args):
        leaves = jax.tree_util.tree_leaves(args)
        if not leaves or leaves[0].shape[0] % mesh.devices.size or dense.per_device_mesh() is not None:
            return jax.vmap(fn)(*args)
        with dense.per_device(mesh):
            return jax.vmap(fn, spmd_axis_name=AXIS)(*args)

    return mapped


def chunked_map(fn, xs, mesh: Mesh, chunk: int | None):
    """``vmap(fn)(xs)`` over a leading axis split across the mesh (:func:`sharded_vmap`), evaluating
    at most ``chunk`` items at a time per device (``lax.map`` over groups: bounded memory, cache-friendly).

    ``xs``: pytree with leading axis ``n`` (divisible by the device count). Returns ``fn``'s
    outputs stacked to ``[n, ...]``.
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    d = mesh.devices.size
    per = n // d
    if not chunk or chunk >= per:
        return sharded_vmap(fn, mesh)(jax.tree_util.tree_map(lambda x: shard_batch(x, mesh), xs))
    grouped = jax.tree_util.tree_map(lambda x: shard_batch(x.reshape(d, per, *x.shape[1:]), mesh), xs)
    out = sharded_vmap(lambda g: jax.lax.map(fn, g, batch_size=chunk), mesh)(grouped)
    return jax.tree_util.tree_map(lambda x: x.reshape(n, *x.shape[2:]), out)
