"""Hebbian fast-weight baseline with Oja's rule (in the style of differentiable plasticity).

One dense layer whose effective weights are slow weights plus plastic fast weights::

    logits = x @ (w + coeff * F) + b                      # coeff, w: [input_size, num_outputs]
    F_ij  <- F_ij + eta * mean_batch[ post_j * (x_i - post_j * F_ij) ]     (Oja's rule)

The post-synaptic activity is the teacher signal ``post = onehot(y)`` of the example just predicted
(given to ``update`` after the prediction), so each column of F tracks a running, Oja-normalised
average of the inputs of its class — a learned prototype classifier. ``F`` starts at zero every
episode and is shared by the batch (the update is averaged over it).

Fixed size: inputs flattened and zero-padded to ``input_size`` (784), ``num_outputs`` (10) output
units, of which the task's first ``num_classes`` are used (F has shape [input_size, num_classes]).

Meta-parameters: ``{'w': [I, K], 'b': [K], 'coeff': [I, K], 'eta_logit': []}`` with
``eta = sigmoid(eta_logit)``. At initialisation ``w = b = 0``, ``coeff = coeff_init / sqrt(I)`` and
``eta = eta_init``, so the unmeta-trained learner already classifies by prototype similarity.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import jax
import jax.numpy as jnp

from vsml.config import Range, check_ranges
from vsml.learners._common import check_fixed_size, flatten_pad
from vsml.learners.base import OnlineLearner, TaskSpec


@dataclasses.dataclass(frozen=True)
class Hebbian(OnlineLearner):
    input_size: Annotated[int, Range(">=1")] = 784
    num_outputs: Annotated[int, Range(">=2")] = 10
    eta_init: Annotated[float, Range("any")] = 0.2
    coeff_init: Annotated[float, Range("any")] = 1.0

    def __post_init__(self):
        check_ranges(self, "")
        if not 0.0 < self.eta_init < 1.0:
            raise ValueError(f"eta_init must be in (0, 1), got {self.eta_init}")

    def check_task(self, task: TaskSpec) -> None:
        check_fixed_size("hebbian", task, self.input_size, self.num_outputs)

    def init_params(self, key):
        i, k = self.input_size, self.num_outputs
        return {
            "w": jnp.zeros((i, k), jnp.float32),
            "b": jnp.zeros((k,), jnp.float32),
            "coeff": jnp.full((i, k), self.coeff_init / math.sqrt(i), jnp.float32),
            "eta_logit": jnp.asarray(math.log(self.eta_init / (1.0 - self.eta_init)), jnp.float32),
        }

    def init_state(self, params, key, task: TaskSpec):
        """``{'fast': [input_size, num_classes]}`` zeros."""
        self.check_task(task)
        return {"fast": jnp.zeros((self.input_size, task.num_classes), jnp.float32)}

    def predict(self, params, state, x):
        c = state["fast"].shape[-1]
        xp = flatten_pad(x, self.input_size)
        weights = params["w"][:, :c] + params["coeff"][:, :c] * state["fast"]
        return state, xp @ weights + params["b"][:c]

    def update(self, params, state, x, logits, y):
        fast = state["fast"]
        xp = flatten_pad(x, self.input_size)  # [B, I]
        post = jax.nn.one_hot(y, fast.shape[-1], dtype=jnp.float32)  # [B, C]
        eta = jax.nn.sigmoid(params["eta_logit"])
        hebb = (xp.T @ post) / xp.shape[0]  # mean_b x_i post_j
        decay = jnp.mean(post * post, axis=0)  # mean_b post_j^2
        return {"fast": fast + eta * (hebb - decay[None, :] * fast)}
