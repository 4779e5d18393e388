"""Looking inside learners: fast association, one episode's outputs and per-step state norms.

Fast association (the paper's introspection of the learned LA): for each step whose label is class c, count how many
labelled
examples of c the learner had already seen (``shots``), and record the probability it assigns to
c. Averaging by ``shots`` gives "p(correct) at the next occurrence after k examples"; a learner
that learns by fast association is already confident after one example (``one_shot_prob``), while
gradient descent needs many.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from vsml.eval.evaluate import Episodes, check_episodes, run_learner
from vsml.eval.metrics import mean_ci
from vsml.learners.base import OnlineLearner, TaskSpec, validate_episode


def shots_seen(ys: np.ndarray, num_classes: int) -> np.ndarray:
    """``ys [E, T, batch]`` -> ``[E, T, batch]``: labelled examples of ``ys[e, t, b]``'s class seen
    before step t (at steps ``< t``, over the whole batch)."""
    onehot = np.eye(num_classes, dtype=np.int64)[ys]  # [E, T, B, C]
    per_step = onehot.sum(axis=2)  # [E, T, C]
    before = np.cumsum(per_step, axis=1) - per_step  # seen at steps < t
    return np.take_along_axis(before[:, :, None, :].repeat(ys.shape[2], 2), ys[..., None], axis=-1)[..., 0]


def fast_association_from_logits(logits, ys, num_classes: int, max_shots: int = 10, confidence: float = 0.95) -> dict:
    """``logits [E, T, batch, C]``, ``ys [E, T, batch]`` -> per-shot mean probability of the true class.

    Returns ``{'shots': [0..K], 'prob_mean', 'prob_lo', 'prob_hi': [K+1], 'episodes': [K+1],
    'one_shot_prob': float}``; intervals are over episodes (each episode's mean per shot count).
    """
    logits = np.asarray(logits, np.float64)
    ys = np.asarray(ys)
    p = softmax(logits)
    p_true = np.take_along_axis(p, ys[..., None], axis=-1)[..., 0]  # [E, T, B]
    shots = shots_seen(ys, num_classes)
    out = {"shots": [], "prob_mean": [], "prob_lo": [], "prob_hi": [], "episodes": []}
    for k in range(max_shots + 1):
        per_ep = []
        for e in range(ys.shape[0]):
            m = shots[e] == k
            if m.any():
                per_ep.append(p_true[e][m].mean())
        if not per_ep:
            continue
        est = mean_ci(per_ep, confidence)
        out["shots"].append(k)
        out["prob_mean"].append(est.mean)
        out["prob_lo"].append(est.lo)
        out["prob_hi"].append(est.hi)
        out["episodes"].append(est.n)
    out["one_shot_prob"] = out["prob_mean"][out["shots"].index(1)] if 1 in out["shots"] else float("nan")
    return out


def fast_association(
    learner: OnlineLearner,
    params,
    eps: Episodes,
    keys,
    max_shots: int = 10,
    chunk: int | None = None,
    with_probs: bool = False,
) -> dict:
    """Run ``learner`` on ``eps`` and measure fast association (see :func:`fast_association_from_logits`).

    With ``with_probs`` the result also holds ``'probs' [T, C]``: the predicted class
    probabilities of episode 0 (batch element 0) at every step, for :func:`episode_outputs`.
    """
    out = run_learner(learner, params, eps, keys, chunk=chunk, with_logits=True)
    result = fast_association_from_logits(out["logits"], eps.ys, int(eps.num_classes), max_shots)
    if with_probs:
        result["probs"] = softmax(out["logits"][0, :, 0])
    return result


def softmax(logits) -> np.ndarray:
    """Float64 softmax over the last axis."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def first_occurrences(ys: np.ndarray) -> np.ndarray:
    """``ys [T]`` -> boolean ``[T]``: the step is the first labelled example of its class."""
    ys = np.asarray(ys)
    seen, out = set(), np.zeros(len(ys), bool)
    for t, y in enumerate(ys.tolist()):
        out[t] = y not in seen
        seen.add(y)
    return out


@partial(jax.jit, static_argnames=("learner", "task"))
def _norm_trace(learner, params, key, xs, ys, task):
    state = learner.init_state(params, key, task)

    def norms(s):
        leaves = [leaf for leaf in jax.tree_util.tree_leaves(s) if jnp.issubdtype(leaf.dtype, jnp.inexact)]
        return jnp.stack([jnp.sqrt(jnp.sum(jnp.square(leaf.astype(jnp.float32)))) for leaf in leaves])

    def step(s, xy):
        x, y = xy
        s, logits = learner.predict(params, s, x)
        s = learner.update(params, s, x, logits, y)
        return s, norms(s)

    _, trace = jax.lax.scan(step, state, (xs, ys))
    return norms(state), trace


def state_norms(learner: OnlineLearner, params, key, xs, ys, num_classes: int) -> tuple[list[str], np.ndarray]:
    """L2 norm of every leaf of the learner's state after each step of one episode.

    ``xs [T, batch, *input_shape]``, ``ys [T, batch]`` -> ``(leaf_names, norms [T + 1, n_leaves])``
    (row 0 is the initial state). Works for any learner: leaves come from ``jax.tree_util``;
    integer leaves (e.g. optimizer step counters) are skipped.
    """
    xs = np.asarray(xs, np.float32)
    ys = np.asarray(ys)
    task = TaskSpec(input_shape=xs.shape[2:], num_classes=num_classes, batch_size=xs.shape[1])
    validate_episode(task, xs, ys)
    learner.check_task(task)
    state = jax.eval_shape(lambda: learner.init_state(params, key, task))
    names = [
        jax.tree_util.keystr(path) or "state"
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    if not names:
        raise ValueError(f"{type(learner).__name__} has no floating-point state to measure")
    init, trace = _norm_trace(learner, params, key, jnp.asarray(xs), jnp.asarray(ys, jnp.int32), task)
    return names, np.concatenate([np.asarray(init)[None], np.asarray(trace)], axis=0)


__all__ = [
    "shots_seen",
    "fast_association",
    "fast_association_from_logits",
    "first_occurrences",
    "softmax",
    "state_norms",
    "check_episodes",
]
