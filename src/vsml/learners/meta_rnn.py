"""Meta RNN baseline (Hochreiter, Younger & Conwell 2001): an LSTM whose dynamics are the learner.

At step t the LSTM (``hidden`` = 128 units) reads ``[x_t, e_{t-1}, y_{t-1}]``, where
``e_{t-1} = softmax(logits_{t-1}) - onehot(y_{t-1})`` is the previous step's error and ``y_{t-1}``
its one-hot label (both zero at t = 1), and predicts ``logits_t = W h_t + b``. ``update`` only
stores ``e_t`` and ``y_t`` for the next step, so the prediction never sees its own label.

Fixed size: inputs are flattened and zero-padded to ``input_size`` (784 = 28x28x1), labels/errors
padded to ``num_outputs`` (10) classes; the logits of the task's first ``num_classes`` outputs are
returned. Each batch element has its own LSTM state (no sharing across the batch).

Meta-parameters: ``{'lstm': {'wx', 'wh', 'b'}, 'out': {'w', 'b'}}``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import jax
import jax.numpy as jnp

from vsml.config import Range, check_ranges
from vsml.learners._common import (
    check_fixed_size,
    dense_init,
    error_signal,
    flatten_pad,
    lstm_init,
    lstm_step,
    pad_last,
)
from vsml.learners.base import OnlineLearner, TaskSpec


@dataclasses.dataclass(frozen=True)
class MetaRNN(OnlineLearner):
    hidden: Annotated[int, Range(">=1")] = 128
    input_size: Annotated[int, Range(">=1")] = 784
    num_outputs: Annotated[int, Range(">=2")] = 10

    def __post_init__(self):
        check_ranges(self, "")

    def check_task(self, task: TaskSpec) -> None:
        check_fixed_size("meta_rnn", task, self.input_size, self.num_outputs)

    def init_params(self, key):
        k1, k2 = jax.random.split(key)
        return {
            "lstm": lstm_init(k1, self.input_size + 2 * self.num_outputs, self.hidden),
            "out": dense_init(k2, self.hidden, self.num_outputs),
        }

    def init_state(self, params, key, task: TaskSpec):
        """``{'h','c': [batch, hidden], 'err','label': [batch, num_classes]}``, all zero."""
        self.check_task(task)
        b, h, c = task.batch_size, self.hidden, task.num_classes
        z = jnp.zeros
        return {"h": z((b, h)), "c": z((b, h)), "err": z((b, c)), "label": z((b, c))}

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
        logits = (h @ params["out"]["w"] + params["out"]["b"])[:, :num_classes]
        return {**state, "h": h, "c": c}, logits

    def update(self, params, state, x, logits, y):
        err, onehot = error_signal(logits, y)
        return {**state, "err": err, "label": onehot}
