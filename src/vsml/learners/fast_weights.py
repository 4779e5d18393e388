"""Fast-weight baselines (Schlag et al. 2021), kept small.

``FWM`` — fast weight memory ("Learning Associative Inference Using Fast Weight Memory"): an LSTM
controller (``hidden`` = 64) reads ``[x_t, e_{t-1}, y_{t-1}]`` (as the Meta RNN) and writes to and
reads from a third-order fast-weight tensor ``F [d, d, d]`` (d = 16) with the delta rule::

    k1, k2 = l2norm(W_k1 h), l2norm(W_k2 h);  v = tanh(W_v h);  beta = sigmoid(w_b . h)
    F <- F + beta * (v - F(k1, k2)) (x) k1 (x) k2           # F(a, b)_k = sum_ij F_ijk a_i b_j
    r_0 = l2norm(W_q h); r_{n+1} = l2norm(F(r_n, l2norm(W_e h)))   (``reads`` hops)
    logits = W_o [h, r] + b_o

Write happens before read within a step (as in FWM). Each batch element has its own LSTM state
and memory.

``DeltaFWP`` — a delta-rule fast-weight programmer ("Linear Transformers Are Secretly Fast Weight
Programmers") for online classification: slow weights program a fast associative memory
``F [num_classes, d_k]`` (zero at the start of an episode, shared by the batch)::

    k_t = l2norm(tanh(W_k x_t + b_k))                 # key of the current input
    predict:  logits_t = gain * F q_t + (W_s x_t + b_s)   with q_t = k_t (tied) or l2norm(tanh(W_q x_t + b_q))
    update:   beta = sigmoid(w_b . k_t + b_b);  F <- F + beta * (onehot(y_t) - F k_t) k_t^T   (batch mean)

i.e. it writes the label of the example just predicted under that example's key.

Both are fixed-size: inputs flattened and zero-padded to ``input_size`` (784), outputs padded to
``num_outputs`` (10); logits for the task's first ``num_classes`` are returned.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import jax
import jax.numpy as jnp

from vsml.config import Range, check_ranges
from vsml.learners._common import (
    check_fixed_size,
    dense_init,
    error_signal,
    flatten_pad,
    l2_normalize,
    lstm_init,
    lstm_step,
    pad_last,
    trunc_normal,
)
from vsml.learners.base import OnlineLearner, TaskSpec


@dataclasses.dataclass(frozen=True)
class FWM(OnlineLearner):
    hidden: Annotated[int, Range(">=1")] = 64
    mem_size: Annotated[int, Range(">=1")] = 16
    reads: Annotated[int, Range(">=1")] = 1
    input_size: Annotated[int, Range(">=1")] = 784
    num_outputs: Annotated[int, Range(">=2")] = 10

    def __post_init__(self):
        check_ranges(self, "")

    def check_task(self, task: TaskSpec) -> None:
        check_fixed_size("fwm", task, self.input_size, self.num_outputs)

    def init_params(self, key):
        ks = jax.random.split(key, 8)
        h, d = self.hidden, self.mem_size
        return {
            "lstm": lstm_init(ks[0], self.input_size + 2 * self.num_outputs, h),
            "k1": dense_init(ks[1], h, d),
            "k2": dense_init(ks[2], h, d),
            "v": dense_init(ks[3], h, d),
            "beta": dense_init(ks[4], h, 1),
            "q": dense_init(ks[5], h, d),
            "e": dense_init(ks[6], h, d),
            "out": dense_init(ks[7], h + d, self.num_outputs),
        }

    def init_state(self, params, key, task: TaskSpec):
        """``{'h','c': [B, hidden], 'mem': [B, d, d, d], 'err','label': [B, num_classes]}``, zeros."""
        self.check_task(task)
        b, d, c = task.batch_size, self.mem_size, task.num_classes
        z = jnp.zeros
        return {
            "h": z((b, self.hidden)),
            "c": z((b, self.hidden)),
            "mem": z((b, d, d, d)),
            "err": z((b, c)),
            "label": z((b, c)),
        }

    @staticmethod
    def _lin(p, h):
        return h @ p["w"] + p["b"]

    def predict(self, params, state, x):
        num_classes = state["err"].shape[-1]
        inp = jnp.concatenate(
            [
                flatten_pad(x, self.input_size),
                pad_last(state["err"], self.num_outputs),
                pad_last(state["label"], self.num_outputs),
            ],
            axis=-1,
        )
        h, c = lstm_step(params["lstm"], state["h"], state["c"], inp)
        # write (delta rule on the outer-product key k1 (x) k2)
        k1 = l2_normalize(self._lin(params["k1"], h))
        k2 = l2_normalize(self._lin(params["k2"], h))
        v = jnp.tanh(self._lin(params["v"], h))
        beta = jax.nn.sigmoid(self._lin(params["beta"], h))  # [B, 1]
        mem = state["mem"]
        old = jnp.einsum("bijk,bi,bj->bk", mem, k1, k2)
        mem = mem + jnp.einsum("bi,bj,bk->bijk", k1, k2, beta * (v - old))
        # read (``reads`` hops)
        r = l2_normalize(self._lin(params["q"], h))
        e = l2_normalize(self._lin(params["e"], h))
        for _ in range(self.reads):
            r = l2_normalize(jnp.einsum("bijk,bi,bj->bk", mem, r, e))
        logits = self._lin(params["out"], jnp.concatenate([h, r], axis=-1))[:, :num_classes]
        return {**state, "h": h, "c": c, "mem": mem}, logits

    def update(self, params, state, x, logits, y):
        err, onehot = error_signal(logits, y)
        return {**state, "err": err, "label": onehot}


@dataclasses.dataclass(frozen=True)
class DeltaFWP(OnlineLearner):
    key_size: Annotated[int, Range(">=1")] = 64
    tie_query: bool = True
    gain_init: Annotated[float, Range("any")] = 5.0
    input_size: Annotated[int, Range(">=1")] = 784
    num_outputs: Annotated[int, Range(">=2")] = 10

    def __post_init__(self):
        check_ranges(self, "")

    def check_task(self, task: TaskSpec) -> None:
        check_fixed_size("delta_fwp", task, self.input_size, self.num_outputs)

    def init_params(self, key):
        kk, kq = jax.random.split(key)
        i, d, k = self.input_size, self.key_size, self.num_outputs
        params = {
            "key": {"w": trunc_normal(kk, (i, d), 1.0 / math.sqrt(i)), "b": jnp.zeros((d,), jnp.float32)},
            "beta": {"w": jnp.zeros((d,), jnp.float32), "b": jnp.zeros((), jnp.float32)},
            "gain": jnp.asarray(self.gain_init, jnp.float32),
            "slow": {"w": jnp.zeros((i, k), jnp.float32), "b": jnp.zeros((k,), jnp.float32)},
        }
        if not self.tie_query:
            params["query"] = {"w": trunc_normal(kq, (i, d), 1.0 / math.sqrt(i)), "b": jnp.zeros((d,), jnp.float32)}
        return params

    def init_state(self, params, key, task: TaskSpec):
        """``{'fast': [num_classes, key_size]}`` zeros."""
        self.check_task(task)
        return {"fast": jnp.zeros((task.num_classes, self.key_size), jnp.float32)}

    @staticmethod
    def _key(p, xp):
        return l2_normalize(jnp.tanh(xp @ p["w"] + p["b"]))

    def predict(self, params, state, x):
        fast = state["fast"]
        c = fast.shape[0]
        xp = flatten_pad(x, self.input_size)
        q = self._key(params["key"] if self.tie_query else params["query"], xp)  # [B, d]
        slow = xp @ params["slow"]["w"][:, :c] + params["slow"]["b"][:c]
        return state, params["gain"] * (q @ fast.T) + slow

    def update(self, params, state, x, logits, y):
        fast = state["fast"]
        xp = flatten_pad(x, self.input_size)
        k = self._key(params["key"], xp)  # [B, d]
        beta = jax.nn.sigmoid(k @ params["beta"]["w"] + params["beta"]["b"])  # [B]
        v = jax.nn.one_hot(y, fast.shape[0], dtype=jnp.float32)  # [B, C]
        delta = beta[:, None] * (v - k @ fast.T)  # [B, C]
        return {"fast": fast + delta.T @ k / xp.shape[0]}
