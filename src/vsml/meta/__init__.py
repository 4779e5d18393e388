"""Meta-training of learning algorithms: the meta-objective, meta-optimizers as values (gradient,
ES, ...), curricula, sharding, and the :class:`~vsml.meta.trainer.MetaTrainer`
(see docs/meta_training.md)."""

from vsml.meta.curriculum import Curriculum, CurriculumState, Stage
from vsml.meta.es import FITNESS_SHAPING, AntitheticES, ESConfig, antithetic_gradient, centered_ranks, z_scores
from vsml.meta.gradient import GradientConfig, GradientDescent
from vsml.meta.objective import MetaProblem, ObjectiveConfig, score
from vsml.meta.optimizer import (METHODS, MetaOptimizer, MetaState, StepMetrics, guarded_update, make_meta_optimizer,
                                 make_optimizer, register_meta_optimizer)
from vsml.meta.trainer import MetaConfig, MetaTrainer, MetaTrainingError, TrainResult, load_meta_config

__all__ = [
    "AntitheticES", "Curriculum", "CurriculumState", "ESConfig", "FITNESS_SHAPING", "GradientConfig", "GradientDescent",
    "METHODS", "MetaConfig", "MetaOptimizer", "MetaProblem", "MetaState", "MetaTrainer", "MetaTrainingError",
    "ObjectiveConfig", "Stage", "StepMetrics", "TrainResult", "antithetic_gradient", "centered_ranks",
    "guarded_update", "load_meta_config", "make_meta_optimizer", "make_optimizer", "register_meta_optimizer",
    "score", "z_scores",
]
