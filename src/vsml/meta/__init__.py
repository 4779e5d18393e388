"""Meta-training of learning algorithms: the meta-objective, meta-optimizers as values (gradient,
ES, persistent ES and truncated BPTT over long lifetimes), curricula, sharding, and the :class:`~vsml.meta.trainer.MetaTrainer`
(see docs/meta_training.md)."""

from vsml.meta.curriculum import Curriculum, CurriculumState, Stage
from vsml.meta.es import FITNESS_SHAPING, AntitheticES, ESConfig, antithetic_gradient, centered_ranks, z_scores
from vsml.meta.gradient import GradientConfig, GradientDescent
from vsml.meta.objective import MetaProblem, ObjectiveConfig, score
from vsml.meta.persistent import LifetimeConfig
from vsml.meta.pes import PersistentES, PESConfig, pes_estimate
from vsml.meta.tbptt import TBPTTConfig, TruncatedBPTT
from vsml.meta.optimizer import (METHODS, MetaOptimizer, MetaState, StepMetrics, guarded_update, make_meta_optimizer,
                                 make_optimizer, register_meta_optimizer)
from vsml.meta.trainer import MetaConfig, MetaTrainer, MetaTrainingError, TrainResult, load_meta_config

__all__ = [
    "AntitheticES", "LifetimeConfig", "PESConfig", "PersistentES", "TBPTTConfig", "TruncatedBPTT", "pes_estimate",
    "Curriculum", "CurriculumState", "ESConfig", "FITNESS_SHAPING", "GradientConfig", "GradientDescent",
    "METHODS", "MetaConfig", "MetaOptimizer", "MetaProblem", "MetaState", "MetaTrainer", "MetaTrainingError",
    "ObjectiveConfig", "Stage", "StepMetrics", "TrainResult", "antithetic_gradient", "centered_ranks",
    "guarded_update", "load_meta_config", "make_meta_optimizer", "make_optimizer", "register_meta_optimizer",
    "score", "z_scores",
]
