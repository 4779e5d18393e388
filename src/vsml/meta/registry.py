"""Meta-optimizers (estimators) by name, as a meta-training config chooses them::

    meta_optimizer: {name: es, options: {population: 64, sigma: 0.05}}

    opt = make_meta_optimizer("es", {"population": 64})      # AntitheticES(ESConfig(population=64))
    names()                                                  # ['es', 'gradient', 'pes', 'tbptt']
    register("my_es", MyES)                                  # then `meta_optimizer: {name: my_es, ...}`

A meta-optimizer is a frozen dataclass subclassing :class:`~vsml.meta.optimizer.MetaOptimizer`
with one field, ``config``: a config dataclass whose fields are the ``options`` (read with
:func:`vsml.config.from_dict`, so unknown keys, types and declared ranges are checked). The
registry below lists the built-in ones explicitly; importing an estimator's module registers
nothing.
"""

from __future__ import annotations

import dataclasses
import typing

from vsml.config import ConfigError, from_dict
from vsml.errors import did_you_mean
from vsml.meta.es import AntitheticES, ESConfig
from vsml.meta.gradient import GradientConfig, GradientDescent
from vsml.meta.optimizer import MetaOptimizer
from vsml.meta.pes import PersistentES, PESConfig
from vsml.meta.tbptt import TBPTTConfig, TruncatedBPTT

_REGISTRY: dict[str, tuple[type[MetaOptimizer], type]] = {
    "gradient": (GradientDescent, GradientConfig),
    "es": (AntitheticES, ESConfig),
    "pes": (PersistentES, PESConfig),
    "tbptt": (TruncatedBPTT, TBPTTConfig),
}


def names() -> list[str]:
    """Registered meta-optimizer names (sorted)."""
    return sorted(_REGISTRY)


def _config_class_of(cls: type) -> type:
    hint = typing.get_type_hints(cls).get("config") if dataclasses.is_dataclass(cls) else None
    if hint is None or not dataclasses.is_dataclass(hint):
        raise TypeError(
            f"{cls.__name__}: a meta-optimizer is a dataclass with a `config` field typed by its config "
            "dataclass (or pass config_class=)"
        )
    return hint


def register(name: str, cls: type[MetaOptimizer], config_class: type | None = None, *, overwrite: bool = False) -> None:
    """Make ``cls`` available as ``meta_optimizer: {name: <name>, options: {...}}``. ``config_class``
    (default: the type of ``cls``'s ``config`` field) is the dataclass the options build."""
    if not (isinstance(cls, type) and issubclass(cls, MetaOptimizer)):
        raise TypeError(f"meta-optimizer {name!r}: {cls!r} is not a subclass of vsml.meta.MetaOptimizer")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"meta-optimizer '{name}' is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = (cls, config_class or _config_class_of(cls))


def unregister(name: str) -> None:
    """Remove meta-optimizer ``name`` (a ``KeyError`` when it is not registered)."""
    del _REGISTRY[name]


def _entry(name: str) -> tuple[type[MetaOptimizer], type]:
    if name not in _REGISTRY:
        close = did_you_mean(name, _REGISTRY)
        hint = f" Did you mean '{close}'?" if close else ""
        raise ConfigError(f"unknown meta-optimizer '{name}'.{hint} Known meta-optimizers: {', '.join(names())}.")
    return _REGISTRY[name]


def config_class(name: str) -> type:
    """The config dataclass of meta-optimizer ``name``."""
    return _entry(name)[1]


def meta_optimizer_config(name: str, options: dict | None = None, path: str = "meta_optimizer.options"):
    """The typed config of meta-optimizer ``name`` from an options mapping (errors name ``path``)."""
    cfg_cls = config_class(name)
    if options is None:
        options = {}
    if isinstance(options, cfg_cls):
        return options
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: expected a mapping of {name} options, got {options!r}")
    return from_dict(cfg_cls, options, path)


def make_meta_optimizer(name: str, options=None) -> MetaOptimizer:
    """The meta-optimizer registered as ``name``, configured by ``options`` (a mapping or its config dataclass)."""
    cls, _ = _entry(name)
    return cls(meta_optimizer_config(name, options))
