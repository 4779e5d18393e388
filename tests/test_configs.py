"""Every YAML config shipped in configs/ parses into its typed config, with every curriculum stage's
sampler config and the learner buildable (no data files are read)."""

from pathlib import Path

import pytest

from vsml.cloning.clone import CloneConfig, vsml_config
from vsml.config import from_dict, load_yaml, to_dict
from vsml.learners.vsml import VSML
from vsml.meta.trainer import MetaTrainer, load_meta_config

CONFIGS = Path(__file__).parents[1] / "configs"
META = sorted(p for pattern in ("meta_*.yaml", "campaign_*.yaml", "general_*.yaml") for p in CONFIGS.glob(pattern))
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
    assert apply_overrides({}, ["gradient.lr=3e-3", "tbptt.clip=1E2"]) == {
        "gradient": {"lr": 3e-3},
        "tbptt": {"clip": 100.0},
    }


# --- the meta-optimizer section: {name, options}, and the older `method` + section form ----------

ROOT = Path(__file__).parents[1]


def _stored_meta_configs():
    """(file, config) of every run config stored in the repository: checkpoints, learners and their sidecars."""
    import json

    import numpy as np

    out = []
    for path in sorted([*ROOT.glob("docs/results/**/*.npz"), *ROOT.glob("src/vsml/pretrained/*.npz")]):
        with np.load(path, allow_pickle=False) as z:  # the metadata record only (the arrays are not read)
            if "__meta__" not in z.files:
                continue
            record = json.loads(z["__meta__"].tobytes().decode())
        cfg = (record.get("meta") or {}).get("config", record.get("config"))
        if isinstance(cfg, dict) and "data" in cfg and "learner" in cfg:  # a meta-training run's config
            out.append((path.relative_to(ROOT), cfg))
    return out


def test_every_stored_run_config_still_loads():
    """Checkpoints and learners written with the older form (``method: tbptt`` + ``tbptt:``) or the
    current one (``meta_optimizer:``) read into the current schema, with the estimator and its
    settings they were written with."""
    from vsml.meta.trainer import meta_config_from_dict

    stored = _stored_meta_configs()
    assert len(stored) >= 5
    for path, data in stored:
        cfg = meta_config_from_dict(data)
        if "meta_optimizer" in data:  # written in the current form
            method, options = data["meta_optimizer"]["name"], data["meta_optimizer"].get("options") or {}
        else:
            method = data.get("method", "gradient")
            options = data.get(method) or {}
        assert cfg.meta_optimizer.name == method, path
        for key, value in options.items():
            assert to_dict(cfg.meta_optimizer.options[key]) == to_dict(value), (path, key)


def test_old_and_new_meta_optimizer_forms_are_the_same_config():
    from vsml.config import ConfigError
    from vsml.meta.trainer import meta_config_from_dict

    old = {"method": "tbptt", "tbptt": {"particles": 2, "lr": 1e-4}, "es": {"population": 8}, "gradient": {"lr": 0.5}}
    new = {"meta_optimizer": {"name": "tbptt", "options": {"particles": 2, "lr": 1e-4}}}
    a, b = meta_config_from_dict(old), meta_config_from_dict(new)
    assert a == b and to_dict(a) == to_dict(b)
    assert a.meta_optimizer.config().particles == 2 and a.meta_optimizer.options["clip"] == 25.0  # stored complete
    assert meta_config_from_dict(to_dict(a)) == a  # what a run folder's config.yaml holds reads back
    # an older-style override on a new-form config lands in its options
    mixed = meta_config_from_dict({**new, "tbptt": {"lr": 3e-3}})
    assert mixed.meta_optimizer.options["lr"] == 3e-3 and mixed.meta_optimizer.options["particles"] == 2
    assert meta_config_from_dict({}).meta_optimizer.name == "gradient"
    with pytest.raises(ConfigError, match=r"tbptt\.lr: 0\.0 is out of range"):
        meta_config_from_dict({"method": "tbptt", "tbptt": {"lr": 0.0}})
    with pytest.raises(ConfigError, match=r"meta_optimizer\.options\.particles: 0 is out of range"):
        meta_config_from_dict({"meta_optimizer": {"name": "tbptt", "options": {"particles": 0}}})
    with pytest.raises(ConfigError, match="unknown meta-optimizer 'tbtt'. Did you mean 'tbptt'"):
        meta_config_from_dict({"meta_optimizer": {"name": "tbtt"}})
    with pytest.raises(ConfigError, match="contradicts"):
        meta_config_from_dict({"method": "es", **new})
