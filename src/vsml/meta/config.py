"""The configuration of a meta-training run: :class:`MetaConfig` and its sections, read from YAML
with dotted overrides (:func:`load_meta_config`) or from a stored run's record
(:func:`meta_config_from_dict`, which also reads the older ``method`` + per-estimator sections).
Every key is described in docs/meta_training.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from vsml.config import ConfigError, Range, apply_overrides, check_ranges, from_dict, load_yaml, to_dict
from vsml.data.episodes import DatasetSpec, SamplerConfig
from vsml.meta import processes
from vsml.meta.curriculum import Stage
from vsml.meta.objective import ObjectiveConfig
from vsml.meta.registry import meta_optimizer_config


@dataclasses.dataclass(frozen=True)
class LearnerSpec:
    """A registry learner: ``name`` and its options (see :func:`vsml.learners.registry.make_learner`)."""

    name: str = "vsml"
    options: dict = dataclasses.field(default_factory=dict)
    from_init: bool = False  # take name and options from the LA / checkpoint given as `init`


@dataclasses.dataclass(frozen=True)
class MetaOptimizerSpec:
    """A registered meta-optimizer: ``name`` and its options (see :mod:`vsml.meta.registry`). The
    options are stored complete (every field of the estimator's config), so a later default change
    never alters a stored run."""

    name: str = "gradient"
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "options", to_dict(self.config()))

    def config(self):
        """The estimator's typed config."""
        return meta_optimizer_config(self.name, self.options)


#: The meta-optimizer sections of the older config form (``method: tbptt`` + a ``tbptt:`` section),
#: still read: :func:`meta_config_from_dict` maps them to ``meta_optimizer: {name, options}``.
LEGACY_SECTIONS = ("gradient", "es", "pes", "tbptt")


def _legacy_meta_optimizer(data: dict) -> dict:
    """``method`` + per-estimator sections (the older form) -> ``meta_optimizer: {name, options}``;
    the sections of estimators the run does not use are dropped (they never had an effect)."""
    if not isinstance(data, dict) or not any(k in data for k in ("method", *LEGACY_SECTIONS)):
        return data
    data = dict(data)
    method = data.pop("method", None)
    sections = {k: data.pop(k) for k in LEGACY_SECTIONS if k in data}
    spec = data.get("meta_optimizer")
    if spec is not None:
        if not isinstance(spec, dict):
            raise ConfigError(f"meta_optimizer: expected a mapping {{name, options}}, got {spec!r}")
        name = spec.get("name", "gradient")
        if method is not None and method != name:
            raise ConfigError(f"method: {method!r} contradicts meta_optimizer.name {name!r}; give only meta_optimizer")
    else:
        name = "gradient" if method is None else method
        spec = {"name": name}
    section = sections.get(name) if isinstance(name, str) else None
    if section is not None:  # checked under its old name, so errors point at what was written
        typed = meta_optimizer_config(name, {**dict(spec.get("options") or {}), **section}, path=name)
        spec = {**spec, "options": to_dict(typed)}
    data["meta_optimizer"] = spec
    return data


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Periodic meta-test: online accuracy on held-out episodes (``every`` 0 disables)."""

    every: Annotated[int, Range(">=0")] = 0
    episodes: Annotated[int, Range(">=1")] = 16
    steps: Annotated[int | None, Range(">=1")] = None  # default: the last curriculum stage's length
    classes: Annotated[int | None, Range(">=2")] = None  # default: the last stage's
    datasets: tuple[DatasetSpec, ...] = ()  # default: the training datasets' "test" splits
    first: Annotated[int, Range(">=1")] = 50  # also report accuracy over the first / last this many steps
    last: Annotated[int, Range(">=1")] = 100
    seed: Annotated[int, Range(">=0")] = 12345
    sampler: dict | None = None  # other SamplerConfig overrides for meta-test (e.g. projection: none)
    keep_best: bool | None = (
        None  # keep best.npz (best meta-test so far by ``score``); None: on with validation data (vsml.meta.selection)
    )
    score: str = "online"  # what keep_best compares, averaged over eval datasets: online | first | balanced
    at_start: bool = False  # also meta-test the starting learner (iteration 0): best.npz is then never worse than it

    SCORES = ("online", "first", "balanced")  # balanced: mean of the first / online / last accuracies

    def __post_init__(self):
        check_ranges(self, "eval")
        if self.score not in self.SCORES:
            raise ConfigError(f"eval.score must be one of {', '.join(self.SCORES)}, got {self.score!r}")

    def selection_score(self, results: dict[str, dict[str, float]]) -> float:
        """The figure ``keep_best`` maximises: ``score`` averaged over the meta-test datasets."""
        if not results:
            return math.nan
        pick = {
            "online": lambda r: r["online"],
            "first": lambda r: r["first"],
            "balanced": lambda r: (r["first"] + r["online"] + r["last"]) / 3,
        }[self.score]
        return float(np.mean([pick(r) for r in results.values()]))


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    every: Annotated[int, Range(">=1")] = 100
    keep: Annotated[int, Range(">=1")] = 3

    def __post_init__(self):
        check_ranges(self, "checkpoint")


@dataclasses.dataclass(frozen=True)
class LogConfig:
    every: Annotated[int, Range(">=1")] = 10
    progress: bool = True
    csv: bool = True
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "vsml"

    def __post_init__(self):
        check_ranges(self, "log")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """A meta-training experiment (YAML). See docs/meta_training.md for every key."""

    name: str = "meta"
    out: str | None = None  # default runs/meta/<name>
    seed: Annotated[int, Range(">=0")] = 0
    iterations: Annotated[int, Range(">=0")] = 1000
    learner: LearnerSpec = LearnerSpec()
    init: str | None = None  # start from a checkpoint / run folder / LA file / shipped LA name
    init_layers: Annotated[tuple[int, ...] | None, Range(">=0")] = (
        None  # per-layer sub-RNNs: layer k starts from init's sub-RNN init_layers[k]
    )
    data: SamplerConfig = SamplerConfig(datasets=(DatasetSpec("digits"),), flatten=True, steps=100)
    families: tuple[dict, ...] = ()  # task families: SamplerConfig overrides each; every meta-step trains on all
    curriculum: tuple[Stage, ...] = ()
    curriculum_ema: Annotated[float, Range("[0,1)")] = 0.9
    objective: ObjectiveConfig = ObjectiveConfig()
    meta_optimizer: MetaOptimizerSpec = MetaOptimizerSpec()  # {name: gradient | es | pes | tbptt | yours, options}
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    max_nonfinite: Annotated[int, Range(">=1")] = 10
    distributed: Literal["auto", "on", "off"] | processes.DistributedConfig = (
        "auto"  # or {mode, startup_timeout, peer_timeout}
    )

    def __post_init__(self):
        check_ranges(self, "")
        if self.init_layers is not None:
            if not self.init:
                raise ConfigError("init_layers needs `init` (the LA whose per-layer sub-RNNs it maps)")
            if not self.init_layers or any(
                not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in self.init_layers
            ):
                raise ConfigError(
                    f"init_layers must be a non-empty list of sub-RNN indices >= 0, got {self.init_layers!r}"
                )
            object.__setattr__(self, "init_layers", tuple(self.init_layers))

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/meta/{self.name}")


def meta_config_from_dict(data: dict) -> MetaConfig:
    """A :class:`MetaConfig` from a mapping (YAML, a stored run's config); the older
    ``method`` + ``gradient:``/``es:``/``pes:``/``tbptt:`` form is read too."""
    try:
        return from_dict(MetaConfig, _legacy_meta_optimizer(data))
    except ConfigError:
        raise
    except ValueError as e:  # DataError etc. from nested configs
        raise ConfigError(str(e)) from None


def load_meta_config(path: str | os.PathLike | None = None, overrides=()) -> MetaConfig:
    """YAML file (optional) + ``key.sub=value`` overrides -> :class:`MetaConfig`."""
    data = load_yaml(path) if path is not None else {}
    return meta_config_from_dict(apply_overrides(data, list(overrides)))
