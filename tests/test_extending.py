"""A new learner, dataset and meta-optimizer, each added through the public API alone (the files
docs/architecture.md's "Where a new thing goes" names), then meta-trained together by MetaTrainer."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsml
import vsml.data
import vsml.learners
import vsml.meta
from vsml.config import ConfigError, Range


@dataclasses.dataclass(frozen=True)
class Frequency(vsml.learners.OnlineLearner):
    """Predicts ``scale * log(1 + count of each label seen)``; ``scale`` is its meta-parameter's start."""

    scale: Annotated[float, Range(">0")] = 1.0

    def init_params(self, key):
        return {"w": jnp.asarray(self.scale, jnp.float32)}

    def init_state(self, params, key, task):
        return jnp.zeros((task.batch_size, task.num_classes), jnp.float32)

    def predict(self, params, state, x):
        return state, params["w"] * jnp.log1p(state)

    def update(self, params, state, x, logits, y):
        return state + jax.nn.one_hot(y, state.shape[-1])


@dataclasses.dataclass(frozen=True)
class SignConfig:
    lr: Annotated[float, Range(">0")] = 0.1
    meta_batch: Annotated[int, Range(">=1")] = 2


@dataclasses.dataclass(frozen=True)
class SignDescent(vsml.meta.MetaOptimizer):
    """Signed meta-gradient steps (no optimizer state)."""

    config: SignConfig = SignConfig()
    section = "sign"

    @property
    def parallel_size(self) -> int:
        return self.config.meta_batch

    def init(self, params, key, problem):
        return vsml.meta.MetaState(params, ())

    def step(self, state, key, problem):
        keys = jax.random.split(key, self.config.meta_batch)
        (loss, acc), grads = jax.value_and_grad(lambda p: problem.meta_loss(p, keys), has_aux=True)(state.params)
        params = jax.tree_util.tree_map(lambda p, g: p - self.config.lr * jnp.sign(g), state.params, grads)
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads)))
        return vsml.meta.MetaState(params, ()), vsml.meta.StepMetrics(loss, acc, norm, jnp.isfinite(loss))


@pytest.fixture
def registered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (rng.random(40) < 0.8).astype(np.int64)  # a frequent class: counting labels pays
    vsml.learners.register("frequency", Frequency)
    vsml.meta.register("sign", SignDescent)
    vsml.data.register("toy_skewed", {"train": (x, y), "test": (x, y)}, num_classes=2, image_shape=(4,))
    yield
    vsml.learners.unregister("frequency")
    vsml.meta.registry.unregister("sign")
    vsml.data.unregister("toy_skewed")


def test_new_learner_dataset_and_meta_optimizer_through_the_public_api(registered, tmp_path):
    assert "frequency" in vsml.learners.names() and "sign" in vsml.meta.names() and "toy_skewed" in vsml.data.names()
    assert vsml.make_learner("frequency", {"scale": 2.0}) == Frequency(2.0)
    with pytest.raises(ConfigError, match=r"scale: 0 is out of range; allowed: a number > 0"):
        vsml.make_learner("frequency", {"scale": 0})
    with pytest.raises(ConfigError, match=r"lr: -1 is out of range"):
        vsml.meta.make_meta_optimizer("sign", {"lr": -1})
    assert vsml.data.load("toy_skewed", "test").images.shape == (40, 4)
    cfg = vsml.load_meta_config(
        None,
        [
            f"out={tmp_path}",
            "iterations=2",
            "learner.name=frequency",
            "learner.options.scale=0.5",
            "meta_optimizer.name=sign",
            "meta_optimizer.options.lr=0.25",
            "data.datasets=[toy_skewed]",
            "data.steps=6",
            "data.normalize=false",
            "checkpoint.every=2",
            "log.progress=false",
            "log.tensorboard=false",
        ],
    )
    result = vsml.MetaTrainer(cfg, log=lambda m: None).run()
    assert result.iteration == 2 and len(result.history) == 2
    assert float(result.params["w"]) in (0.0, 0.5, 1.0)  # two signed steps of 0.25 from 0.5
    assert all(h["grad_norm"] > 0 for h in result.history)
    learner, params = vsml.load_learner(tmp_path)
    assert learner == Frequency(0.5) and float(params["w"]) == float(result.params["w"])
