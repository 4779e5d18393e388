"""Curriculum stages: advancement by iteration count and by loss threshold; sampler overrides."""

import math

import pytest

from vsml.config import ConfigError
from vsml.data.episodes import SamplerConfig
from vsml.meta.curriculum import Curriculum, Stage


def test_advance_by_iterations_and_threshold():
    cur = Curriculum((Stage(iterations=2), Stage(loss_below=0.5, min_iterations=1), Stage()), ema=0.0)
    pos = cur.init()
    pos = cur.observe(pos, 0, 1.0)
    assert pos.stage == 0
    pos = cur.observe(pos, 1, 1.0)
    assert (pos.stage, pos.start) == (1, 2) and math.isnan(pos.ema)
    pos = cur.observe(pos, 2, 0.9)
    assert pos.stage == 1
    pos = cur.observe(pos, 3, float("nan"))  # non-finite losses are ignored
    assert pos.stage == 1 and pos.ema == 0.9
    pos = cur.observe(pos, 4, 0.4)
    assert pos.stage == 2
    for i in range(5, 50):  # the last stage never ends
        pos = cur.observe(pos, i, 0.0)
    assert pos.stage == 2


def test_sampler_overrides():
    base = SamplerConfig(datasets=("digits",), flatten=True, steps=100, num_classes=10)
    cur = Curriculum((Stage(classes=2, steps=30, projection="episode", sampler={"projection_dim": 16}), Stage()))
    s0 = cur.sampler_config(base, 0)
    assert (s0.num_classes, s0.steps, s0.projection, s0.projection_dim) == (2, 30, "episode", 16)
    assert cur.sampler_config(base, 1) == base
    with pytest.raises(ConfigError):
        Curriculum((Stage(sampler={"projection_dim": 4}),)).sampler_config(base, 0)
    assert len(Curriculum().stages) == 1
