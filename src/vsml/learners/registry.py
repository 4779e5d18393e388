"""Name -> learner, built from a plain config mapping (YAML / CLI overrides).

    learner = make_learner("adam", {"lr": 3e-4, "layers": 2})
    learner = make_learner("meta_rnn")
    names()  # ['adam', 'delta_fwp', 'fwm', 'hebbian', 'meta_rnn', 'sgd', 'vsml']
    register("toy", ToyLearner)   # a frozen dataclass OnlineLearner: its fields are the options

Unknown names and unknown/ill-typed/out-of-range options raise :class:`~vsml.config.ConfigError`
naming the offending key. The built-in learners are listed explicitly below (importing a learner's
module registers nothing); :func:`register` adds yours.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from vsml.config import ConfigError, from_dict, parse_yaml, to_dict
from vsml.errors import did_you_mean
from vsml.learners.backprop import Backprop
from vsml.learners.base import OnlineLearner
from vsml.learners.fast_weights import FWM, DeltaFWP
from vsml.learners.hebbian import Hebbian
from vsml.learners.meta_rnn import MetaRNN
from vsml.learners.vsml import VSML, VSMLConfig, vsml_config_from_record

Factory = Callable[[dict], OnlineLearner]


def dataclass_factory(cls: type, **fixed) -> Factory:
    """A factory building the dataclass learner ``cls`` from its options (``fixed`` ones set by the name)."""

    def make(config: dict) -> OnlineLearner:
        clash = sorted(set(config) & set(fixed))
        if clash:
            raise ConfigError(f"option(s) {clash} are fixed by the learner name ({fixed})")
        return from_dict(cls, {**config, **fixed}, path="")

    make.__doc__ = f"{cls.__module__}.{cls.__name__}"
    make.config_class = lambda: cls  # type: ignore[attr-defined]
    return make


def _make_vsml(config: dict) -> OnlineLearner:
    return VSML(from_dict(VSMLConfig, dict(config)))


_make_vsml.config_class = lambda: VSMLConfig  # type: ignore[attr-defined]

_REGISTRY: dict[str, Factory] = {
    "sgd": dataclass_factory(Backprop, optimizer="sgd"),
    "adam": dataclass_factory(Backprop, optimizer="adam"),
    "meta_rnn": dataclass_factory(MetaRNN),
    "hebbian": dataclass_factory(Hebbian),
    "fwm": dataclass_factory(FWM),
    "delta_fwp": dataclass_factory(DeltaFWP),
    "vsml": _make_vsml,
}

BASELINES = ("sgd", "adam", "meta_rnn", "hebbian", "fwm", "delta_fwp")
BACKPROP = ("sgd", "adam")


def names() -> list[str]:
    """All registered learner names (sorted)."""
    return sorted(_REGISTRY)


def available() -> list[str]:
    """Registered names that build with their default options."""
    out = []
    for name in names():
        try:
            make_learner(name)
        except ConfigError:
            continue
        out.append(name)
    return out


def register(name: str, factory: Factory | type, *, overwrite: bool = False) -> None:
    """Add a learner under ``name``: a frozen dataclass implementing
    :class:`~vsml.learners.base.OnlineLearner` (its fields are the options, checked like every
    config: types, unknown keys, declared ranges), or a constructor ``factory(options: dict) -> OnlineLearner``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"learner '{name}' is already registered (pass overwrite=True to replace it)")
    if isinstance(factory, type):
        if not (dataclasses.is_dataclass(factory) and issubclass(factory, OnlineLearner)):
            raise TypeError(f"learner '{name}': {factory.__name__} must be a dataclass subclassing OnlineLearner")
        factory = dataclass_factory(factory)
    elif not callable(factory):
        raise TypeError(f"learner '{name}': expected a dataclass learner or a factory function, got {factory!r}")
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    """Remove learner ``name`` (a ``KeyError`` when it is not registered)."""
    del _REGISTRY[name]


def make_learner(name: str, config: dict | None = None) -> OnlineLearner:
    """Build the learner registered as ``name`` from a config mapping (may be ``None``)."""
    if name not in _REGISTRY:
        close = did_you_mean(name, _REGISTRY)
        hint = f" Did you mean '{close}'?" if close else ""
        raise ConfigError(f"unknown learner '{name}'.{hint} Known learners: {', '.join(names())}.")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"learner '{name}': options must be a mapping, got {config!r}")
    try:
        return _REGISTRY[name](config)
    except ConfigError as e:
        raise ConfigError(f"learner '{name}': {e}") from None


def learner_from_record(record: dict) -> OnlineLearner:
    """Build the learner a stored record ``{"name", "options"}`` (checkpoint, LA) describes.

    A semantic option missing from a VSML record's options is read with its legacy
    value (:func:`vsml.learners.vsml.vsml_config_from_record`), so an old checkpoint keeps its numbers.
    """
    name, options = record.get("name", "vsml"), dict(record.get("options") or {})
    if name == "vsml":
        try:
            return VSML(vsml_config_from_record(options))
        except ConfigError as e:
            raise ConfigError(f"learner 'vsml': {e}") from None
    return make_learner(name, options)


def learner_record(name: str, learner: OnlineLearner, options: dict) -> dict:
    """The record to store for a learner built by ``make_learner(name, options)``: for VSML every
    ``VSMLConfig`` field (so that later defaults never change what it computes) but the execution
    option ``kernel`` (which implementation runs: a property of the machine, not of the LA), else
    ``options``."""
    if name == "vsml":
        return {"name": name, "options": to_dict(learner.config, stored=True)}
    return {"name": name, "options": dict(options)}


def _number(value):
    """YAML 1.1 reads '3e-4' as a string; accept it as a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_learner_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse ``'name'`` or ``'name:key=value,key=value'`` (values as YAML) into ``(name, options)``.

    Example: ``'adam:lr=3e-4,layers=2'`` -> ``('adam', {'lr': 0.0003, 'layers': 2})``.
    """
    import yaml

    name, _, rest = spec.partition(":")
    name = name.strip()
    options: dict[str, Any] = {}
    if rest.strip():
        for item in rest.split(","):
            if "=" not in item:
                raise ConfigError(f"learner spec '{spec}': option '{item}' must look like key=value")
            key, raw = item.split("=", 1)
            try:
                value = parse_yaml(raw)
            except yaml.YAMLError:
                raise ConfigError(f"learner spec '{spec}': value of '{key}' is not valid YAML") from None
            options[key.strip()] = _number(value)
    return name, options
