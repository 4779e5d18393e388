"""``PyTree``: the one type alias of a JAX pytree (nested tuples / lists / dicts / NamedTuples /
dataclasses of arrays), used in annotations across vsml. It documents intent only: any value
``jax.tree_util`` can flatten is one (see the JAX documentation on pytrees)."""

from __future__ import annotations

from typing import Any

PyTree = Any
