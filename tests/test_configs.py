"""Every YAML config shipped in configs/ parses into its typed config, with every curriculum stage's
sampler config and the learner buildable (no data files are read)."""

from pathlib import Path

import pytest

from vsml.cloning.clone import CloneConfig, vsml_config
from vsml.config import from_dict, load_yaml
from vsml.learners.vsml import VSML
from vsml.meta.trainer import MetaTrainer, load_meta_config

CONFIGS = Path(__file__).parents[1] / "configs"
META = sorted(CONFIGS.glob("meta_*.yaml"))
CLONE = sorted(CONFIGS.glob("clone_*.yaml"))


def test_configs_are_found():
    assert len(META) >= 10 and len(CLONE) >= 2


@pytest.mark.parametrize("path", META, ids=[p.stem for p in META])
def test_meta_config_is_valid(path, tmp_path):
    cfg = load_meta_config(path)
    assert cfg.iterations >= 1
    trainer = MetaTrainer(cfg, out_dir=tmp_path, log=lambda m: None)  # builds the learner (also from `init`)
    for stage in range(len(trainer.curriculum.stages)):
        sampler = trainer.curriculum.sampler_config(cfg.data, stage)
        assert sampler.datasets


@pytest.mark.parametrize("path", CLONE, ids=[p.stem for p in CLONE])
def test_clone_config_is_valid(path):
    cc = from_dict(CloneConfig, load_yaml(path))
    VSML(vsml_config(cc))


def test_numbers_without_a_decimal_point_are_numbers(tmp_path):
    """`lr: 3e-5` and the override `gradient.lr=3e-3` are floats (plain YAML 1.1 reads them as strings)."""
    from vsml.config import apply_overrides

    path = tmp_path / "c.yaml"
    path.write_text("gradient: {lr: 3e-5}\nname: 1e\n")
    assert load_yaml(path) == {"gradient": {"lr": 3e-5}, "name": "1e"}
    assert apply_overrides({}, ["gradient.lr=3e-3", "tbptt.clip=1E2"]) == {"gradient": {"lr": 3e-3}, "tbptt": {"clip": 100.0}}
