"""Meta-training of learning algorithms: the :class:`MetaTrainer` and its config, the meta-objective,
and meta-optimizers as values (gradient, ES, persistent ES and truncated BPTT over long lifetimes)
chosen by name (see docs/meta_training.md).

Exported here is what a user calls: the trainer and its config, the estimators and their configs,
the registry of meta-optimizers (:func:`register` a new one), and the protocol a new estimator
implements (:class:`MetaOptimizer`, :class:`MetaState`, :class:`StepMetrics`, :class:`MetaProblem`).
Numerical helpers stay in their modules (``vsml.meta.es.centered_ranks``, ``vsml.meta.optimizer.guarded_update``, ...).
"""

from vsml.meta.config import MetaConfig, MetaOptimizerSpec, load_meta_config
from vsml.meta.curriculum import Stage
from vsml.meta.es import AntitheticES, ESConfig
from vsml.meta.gradient import GradientConfig, GradientDescent
from vsml.meta.objective import MetaProblem, ObjectiveConfig
from vsml.meta.optimizer import MetaOptimizer, MetaState, StepMetrics
from vsml.meta.persistent import LifetimeConfig
from vsml.meta.pes import PersistentES, PESConfig
from vsml.meta.registry import make_meta_optimizer, names, register
from vsml.meta.tbptt import TBPTTConfig, TruncatedBPTT
from vsml.meta.trainer import MetaTrainer, MetaTrainingError, TrainResult

__all__ = [
    "AntitheticES",
    "ESConfig",
    "GradientConfig",
    "GradientDescent",
    "LifetimeConfig",
    "MetaConfig",
    "MetaOptimizer",
    "MetaOptimizerSpec",
    "MetaProblem",
    "MetaState",
    "MetaTrainer",
    "MetaTrainingError",
    "ObjectiveConfig",
    "PESConfig",
    "PersistentES",
    "Stage",
    "StepMetrics",
    "TBPTTConfig",
    "TrainResult",
    "TruncatedBPTT",
    "load_meta_config",
    "make_meta_optimizer",
    "names",
    "register",
]
