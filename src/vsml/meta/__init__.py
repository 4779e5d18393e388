"""Meta-training of learning algorithms: objectives, gradient and ES meta-optimizers, curricula,
sharding, and the :class:`~vsml.meta.trainer.MetaTrainer` (see docs/meta_training.md)."""

from vsml.meta.curriculum import Curriculum, CurriculumState, Stage
from vsml.meta.es import ESConfig, antithetic_gradient, centered_ranks, es_step
from vsml.meta.gradient import GradientConfig, StepMetrics, gradient_step, make_optimizer
from vsml.meta.objective import ObjectiveConfig, episode_loss, meta_loss
from vsml.meta.trainer import MetaConfig, MetaTrainer, MetaTrainingError, TrainResult, load_meta_config

__all__ = [
    "Curriculum", "CurriculumState", "Stage", "ESConfig", "antithetic_gradient", "centered_ranks", "es_step",
    "GradientConfig", "StepMetrics", "gradient_step", "make_optimizer", "ObjectiveConfig", "episode_loss",
    "meta_loss", "MetaConfig", "MetaTrainer", "MetaTrainingError", "TrainResult", "load_meta_config",
]
