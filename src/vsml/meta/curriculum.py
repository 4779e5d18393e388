"""Task curricula as configuration: a list of stages, each a set of sampler overrides.

    stages = (Stage(classes=2, steps=30, iterations=150), Stage(classes=5, steps=50, loss_below=1.2),
              Stage(classes=10, steps=100))
    cur = Curriculum(stages)
    pos = cur.init()                      # CurriculumState(stage=0, start=0, ema=nan)
    pos = cur.observe(pos, iteration, meta_loss)   # after each meta-step; may advance the stage
    sampler_config = cur.sampler_config(base, pos.stage)

A stage ends after ``iterations`` iterations in it, or (once ``min_iterations`` have passed) when
the exponential moving average (``ema`` decay) of the meta-loss falls below ``loss_below``,
whichever comes first. The last stage never ends. ``None`` fields inherit the base sampler config;
``lr`` sets the meta learning rate while the stage lasts (longer episodes give larger, noisier
meta-gradients: a 300-step stage may need a smaller rate than the 30-step one before it).
An empty curriculum is one stage equal to the base config.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, NamedTuple

from vsml.config import ConfigError, Range, check_ranges, from_dict, to_dict
from vsml.data.episodes import DatasetSpec, SamplerConfig


@dataclasses.dataclass(frozen=True)
class Stage:
    """One curriculum stage: task overrides plus its end condition."""

    name: str = ""
    classes: Annotated[int | None, Range(">=2")] = None  # classes per episode (SamplerConfig.num_classes)
    steps: Annotated[int | None, Range(">=1")] = None  # episode length
    datasets: tuple[DatasetSpec, ...] | None = None  # mixture (weights in each DatasetSpec)
    projection: str | None = None  # "none" | "episode" | "fixed"
    permutation: str | None = None
    image_size: Annotated[tuple[int, int] | None, Range(">=1")] = None
    sampler: dict | None = None  # any other SamplerConfig overrides
    iterations: Annotated[int | None, Range(">=1")] = None  # advance after this many iterations in the stage
    loss_below: Annotated[float | None, Range("any")] = None  # ... or when the meta-loss EMA drops below this
    min_iterations: Annotated[int, Range(">=0")] = 0
    lr: Annotated[float | None, Range(">0")] = (
        None  # meta learning rate in this stage (None: the method's own, e.g. gradient.lr)
    )

    def __post_init__(self):
        check_ranges(self, "curriculum stage")


class CurriculumState(NamedTuple):
    """Position in the curriculum (checkpointed): stage index, its first iteration, loss EMA."""

    stage: int
    start: int
    ema: float


@dataclasses.dataclass(frozen=True)
class Curriculum:
    stages: tuple[Stage, ...] = ()
    ema: float = 0.9

    def __post_init__(self):
        if not self.stages:
            object.__setattr__(self, "stages", (Stage(),))
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError("curriculum ema must be in [0, 1)")

    def init(self) -> CurriculumState:
        return CurriculumState(0, 0, math.nan)

    def observe(self, pos: CurriculumState, iteration: int, loss: float) -> CurriculumState:
        """Update after meta-iteration ``iteration`` (0-based) with its meta-loss (non-finite: ignored)."""
        ema = pos.ema
        if math.isfinite(loss):
            ema = loss if math.isnan(ema) else self.ema * ema + (1 - self.ema) * loss
        pos = pos._replace(ema=ema)
        if pos.stage >= len(self.stages) - 1:
            return pos
        st = self.stages[pos.stage]
        done = iteration + 1 - pos.start
        if (st.iterations is not None and done >= st.iterations) or (
            st.loss_below is not None and done >= st.min_iterations and ema < st.loss_below
        ):
            return CurriculumState(pos.stage + 1, iteration + 1, math.nan)
        return pos

    def sampler_config(self, base: SamplerConfig, stage: int) -> SamplerConfig:
        """The base sampler config with stage ``stage``'s overrides applied."""
        st = self.stages[stage]
        data = to_dict(base)
        for field, key in (
            ("classes", "num_classes"),
            ("steps", "steps"),
            ("projection", "projection"),
            ("permutation", "permutation"),
            ("image_size", "image_size"),
        ):
            v = getattr(st, field)
            if v is not None:
                data[key] = to_dict(v)
        if st.datasets is not None:
            data["datasets"] = to_dict(st.datasets)
        if st.sampler:
            data.update(st.sampler)
        try:
            return from_dict(SamplerConfig, data, path=f"curriculum[{stage}]")
        except ValueError as e:
            raise ConfigError(f"curriculum stage {stage}: {e}") from None
