"""Name -> learner constructor, built from a plain config mapping (YAML / CLI overrides).

    learner = make_learner("adam", {"lr": 3e-4, "layers": 2})
    learner = make_learner("meta_rnn")
    names()  # ['adam', 'delta_fwp', 'fwm', 'hebbian', 'meta_rnn', 'sgd', 'vsml']

Unknown names and unknown/ill-typed options raise :class:`~vsml.config.ConfigError` naming the
offending key. ``'vsml'`` is imported lazily from :mod:`vsml.learners.vsml` (``VSML(VSMLConfig)``).
New learners can be added with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from vsml.config import ConfigError, from_dict, parse_yaml
from vsml.errors import did_you_mean
from vsml.learners.base import OnlineLearner

Factory = Callable[[dict], OnlineLearner]


def _dataclass_factory(module: str, cls_name: str, **fixed) -> Factory:
    def make(config: dict) -> OnlineLearner:
        cls = getattr(importlib.import_module(module), cls_name)
        clash = sorted(set(config) & set(fixed))
        if clash:
            raise ConfigError(f"option(s) {clash} are fixed by the learner name ({fixed})")
        return from_dict(cls, {**config, **fixed}, path="")

    make.__doc__ = f"{module}.{cls_name}"
    make.config_class = lambda: getattr(importlib.import_module(module), cls_name)  # type: ignore[attr-defined]
    return make


def _make_vsml(config: dict) -> OnlineLearner:
    try:
        mod = importlib.import_module("vsml.learners.vsml")
    except ImportError as e:
        raise ConfigError(f"learner 'vsml' is not available: cannot import vsml.learners.vsml ({e})") from None
    return mod.VSML(from_dict(mod.VSMLConfig, dict(config)))


_REGISTRY: dict[str, Factory] = {
    "sgd": _dataclass_factory("vsml.learners.backprop", "Backprop", optimizer="sgd"),
    "adam": _dataclass_factory("vsml.learners.backprop", "Backprop", optimizer="adam"),
    "meta_rnn": _dataclass_factory("vsml.learners.meta_rnn", "MetaRNN"),
    "hebbian": _dataclass_factory("vsml.learners.hebbian", "Hebbian"),
    "fwm": _dataclass_factory("vsml.learners.fast_weights", "FWM"),
    "delta_fwp": _dataclass_factory("vsml.learners.fast_weights", "DeltaFWP"),
    "vsml": _make_vsml,
}

BASELINES = ("sgd", "adam", "meta_rnn", "hebbian", "fwm", "delta_fwp")
BACKPROP = ("sgd", "adam")


def names() -> list[str]:
    """All registered learner names (sorted)."""
    return sorted(_REGISTRY)


def available() -> list[str]:
    """Registered names whose module can be imported now (e.g. 'vsml' only once it exists)."""
    out = []
    for name in names():
        try:
            make_learner(name)
        except ConfigError:
            continue
        out.append(name)
    return out


def register(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Add a learner constructor ``factory(config: dict) -> OnlineLearner`` under ``name``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"learner '{name}' is already registered")
    _REGISTRY[name] = factory


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

    A VSML record's options that lack a semantic option predate it: they are read with its legacy
    value (:func:`vsml.learners.vsml.vsml_config_from_record`), so an old checkpoint keeps its numbers.
    """
    name, options = record.get("name", "vsml"), dict(record.get("options") or {})
    if name == "vsml":
        options.pop("kernel", None)  # how, not what, it computes: this machine's setting applies
        try:
            mod = importlib.import_module("vsml.learners.vsml")
        except ImportError as e:
            raise ConfigError(f"learner 'vsml' is not available: cannot import vsml.learners.vsml ({e})") from None
        try:
            return mod.VSML(mod.vsml_config_from_record(options))
        except ConfigError as e:
            raise ConfigError(f"learner 'vsml': {e}") from None
    return make_learner(name, options)


def learner_record(name: str, learner: OnlineLearner, options: dict) -> dict:
    """The record to store for a learner built by ``make_learner(name, options)``: for VSML every
    ``VSMLConfig`` field (so that later defaults never change what it computes) but ``kernel``
    (which implementation runs: a property of the machine, not of the LA), else ``options``."""
    if name == "vsml":
        from vsml.config import to_dict

        opts = to_dict(learner.config)
        opts.pop("kernel", None)
        return {"name": name, "options": opts}
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
