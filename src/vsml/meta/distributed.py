"""Devices and processes of a run, under one name: process control (:mod:`vsml.meta.processes`:
``initialize``, ``agree``, ``peer_guard``, ``hard_exit``, exit codes) and the sharding helpers
(:mod:`vsml.meta.sharding`: ``make_mesh``, ``shard_batch``, ``sharded_vmap``, ``replicate``,
``to_host``, ...). ``from vsml.meta import distributed as dist`` then ``dist.<name>`` reaches both.
"""

from __future__ import annotations

from vsml.meta.processes import (
    EXIT_PEER_LOST,
    DistributedConfig,
    DistributedError,
    PeerLostError,
    agree,
    check_divisible,
    distributed_config,
    hard_exit,
    initialize,
    is_main,
    is_multiprocess,
    launched_multiprocess,
    peer_guard,
    process_index,
)
from vsml.meta.sharding import (
    AXIS,
    batch_sharding,
    chunked_map,
    make_mesh,
    place_leading,
    process_max,
    replicate,
    replicated,
    shard_batch,
    shard_leading,
    sharded_vmap,
    to_host,
)

__all__ = [
    "AXIS",
    "EXIT_PEER_LOST",
    "DistributedConfig",
    "DistributedError",
    "PeerLostError",
    "agree",
    "batch_sharding",
    "check_divisible",
    "chunked_map",
    "distributed_config",
    "hard_exit",
    "initialize",
    "is_main",
    "is_multiprocess",
    "launched_multiprocess",
    "make_mesh",
    "peer_guard",
    "place_leading",
    "process_index",
    "process_max",
    "replicate",
    "replicated",
    "shard_batch",
    "shard_leading",
    "sharded_vmap",
    "to_host",
]
