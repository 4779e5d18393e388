"""Every shipped LA that is not a cloned-SGD one (those are tested in test_cloning.py) loads and
learns held-out digits online clearly above chance."""

import jax
import numpy as np
import pytest

from vsml import pretrained
from vsml.data.episodes import DatasetSpec, SamplerConfig, draw_episodes
from vsml.learners.base import run_episodes
from vsml.learners.vsml import VSML

META = [n for n in pretrained.names() if not n.startswith("cloned_")]


def test_meta_trained_la_is_shipped():
    assert "meta_digits" in META
    assert "meta-train" in pretrained.info("meta_digits")["meta"]["command"]


@pytest.mark.parametrize("name", META)
def test_meta_trained_la_learns_heldout_digits(name):
    config, params = pretrained.load(name)
    # LAs with a summed reduction are tied to the input size they were meta-trained at (like an
    # SGD learning rate to the input scale): show them the digits at that size.
    resize = (pretrained.info(name)["meta"].get("input_size") or [None])[0]
    size = None if resize is None else (resize, resize)
    eps = draw_episodes(SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=150, image_size=size), 1, 4)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    res = run_episodes(VSML(config), params, keys, eps.xs, eps.ys, eps.num_classes)
    acc = np.asarray(res.correct)
    assert acc[:, 100:].mean() > 0.5, acc[:, 100:].mean()  # chance is 0.1
