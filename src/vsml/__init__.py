"""vsml: Variable Shared Meta Learning in JAX (Kirsch & Schmidhuber, "Meta Learning Backpropagation
And Improving It", NeurIPS 2021). See README.md and docs/architecture.md.

The public API is the names in :data:`__all__`::

    import vsml
    model = vsml.online("general", input_shape=(4,), num_classes=3)     # use a learned LA on a stream
    learner = vsml.VSML(vsml.VSMLConfig(hidden_layers=(vsml.LayerSpec(units=32),)))
    result = vsml.run_episodes(learner, params, keys, xs, ys, num_classes=10)
    trainer = vsml.MetaTrainer(vsml.load_meta_config("configs/meta_digits_es.yaml"))
    vsml.pretrained.load("general"); vsml.make_learner("adam", {"lr": 1e-3}); vsml.VSMLClassifier()

Subpackages (``vsml.data``, ``vsml.learners``, ``vsml.meta``, ``vsml.eval``, ``vsml.cloning``) export
their own user-facing names. Names other than ``online`` / ``OnlineModel`` are imported on first use
(``vsml.VSMLClassifier`` imports scikit-learn, ``vsml.MetaTrainer`` the meta-training stack).
"""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it); changes: CHANGELOG.md

import importlib as _importlib

# Imported now, not lazily: importing the submodule `vsml.online` would otherwise rebind the
# package attribute `online` to that module instead of the function.
from vsml.online import OnlineModel, online  # noqa: E402

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "VSML": "vsml.learners.vsml",
    "VSMLConfig": "vsml.learners.vsml",
    "LayerSpec": "vsml.learners.vsml",
    "run_episodes": "vsml.learners.base",
    "make_learner": "vsml.learners.registry",
    "MetaTrainer": "vsml.meta.trainer",
    "MetaConfig": "vsml.meta.config",
    "load_meta_config": "vsml.meta.config",
    "VSMLClassifier": "vsml.sklearn",
    "load_learner": "vsml.checkpoint",
    "ConfigError": "vsml.config",
}
_SUBMODULES = ("pretrained",)

__all__ = [
    "ConfigError",
    "LayerSpec",
    "MetaConfig",
    "MetaTrainer",
    "OnlineModel",
    "VSML",
    "VSMLClassifier",
    "VSMLConfig",
    "__version__",
    "load_learner",
    "load_meta_config",
    "make_learner",
    "online",
    "pretrained",
    "run_episodes",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"vsml.{name}")
    else:
        raise AttributeError(f"module 'vsml' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
