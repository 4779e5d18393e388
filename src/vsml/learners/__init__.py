"""Inner-loop learners behind one interface (:class:`OnlineLearner`): the VSML RNN and the baselines.

    learner = make_learner("vsml", {"hidden_layers": [{"units": 32}]})     # or VSML(VSMLConfig(...))
    result = run_episodes(learner, params, keys, xs, ys, num_classes=10)
    register("toy", ToyLearner)                                           # a learner of your own

Exported: the interface and the episode runners (:mod:`vsml.learners.base`), the learners, and the
registry of names (:mod:`vsml.learners.registry`).
"""

from vsml.learners.backprop import Backprop
from vsml.learners.base import EpisodeResult, InputError, OnlineLearner, TaskSpec, run_episode, run_episodes
from vsml.learners.fast_weights import FWM, DeltaFWP
from vsml.learners.hebbian import Hebbian
from vsml.learners.meta_rnn import MetaRNN
from vsml.learners.registry import make_learner, names, register, unregister
from vsml.learners.vsml import VSML, LayerSpec, VSMLConfig

__all__ = [
    "Backprop",
    "DeltaFWP",
    "EpisodeResult",
    "FWM",
    "Hebbian",
    "InputError",
    "LayerSpec",
    "MetaRNN",
    "OnlineLearner",
    "TaskSpec",
    "VSML",
    "VSMLConfig",
    "make_learner",
    "names",
    "register",
    "run_episode",
    "run_episodes",
    "unregister",
]
