"""Allowed ranges of every numeric setting: config fields and CLI options.

Config dataclasses are checked where they are read (:func:`vsml.config.from_dict`, i.e. YAML
files, ``key=value`` overrides and ``--sampler`` options) and, for objects built in Python, by
:func:`check_tree` where a run starts. A value out of range fails with the dotted field name,
the value and the allowed range::

    gradient.lr: 0.0 is out of range; allowed: a number > 0

Ranges are registered per dataclass name in :data:`RANGES` (``register`` adds a new class's);
``tests/test_limits.py`` walks every numeric field of every config class and every numeric CLI
option with 0, -1 and NaN, so a field or option without a declared range fails the suite.

Range syntax: ``>0``, ``>=1``, ``<=x``, intervals ``[0,1)`` / ``(0,1]`` / ``[1,2]``, or ``any``
(any finite number). NaN and infinities are never allowed.
"""

from __future__ import annotations

import argparse
import math
import re

from vsml.config import ConfigError

#: dataclass name -> {field: range}. Every int/float (or optional / tuple of them) field of a
#: config dataclass needs an entry.
RANGES: dict[str, dict[str, str]] = {
    "MetaConfig": {"seed": ">=0", "iterations": ">=0", "curriculum_ema": "[0,1)", "max_nonfinite": ">=1", "init_layers": ">=0"},
    "EvalConfig": {"every": ">=0", "episodes": ">=1", "steps": ">=1", "classes": ">=2", "first": ">=1", "last": ">=1",
                   "seed": ">=0"},
    "CheckpointConfig": {"every": ">=1", "keep": ">=1"},
    "LogConfig": {"every": ">=1"},
    "DistributedConfig": {"startup_timeout": ">=1", "peer_timeout": ">=1"},
    "GradientConfig": {"lr": ">0", "clip": ">=0", "meta_batch": ">=1", "b1": "[0,1)", "b2": "[0,1)", "chunk": ">=1", "eps": ">0"},
    "ESConfig": {"population": ">=2", "sigma": ">0", "lr": ">0", "clip": ">=0", "chunk": ">=1", "eps": ">0"},
    "PESConfig": {"population": ">=2", "sigma": ">0", "lr": ">0", "clip": ">=0", "chunk": ">=1", "eps": ">0"},
    "TBPTTConfig": {"particles": ">=1", "lr": ">0", "clip": ">=0", "b1": "[0,1)", "b2": "[0,1)", "eps": ">0"},
    "LifetimeConfig": {"truncation": ">=1", "min_length": ">=1", "max_length": ">=1"},
    "ObjectiveConfig": {"last_steps": ">=1", "truncation": ">=1", "bands": ">=1"},
    "Stage": {"classes": ">=2", "steps": ">=1", "image_size": ">=1", "iterations": ">=1", "loss_below": "any",
              "min_iterations": ">=0", "lr": ">0"},
    "SamplerConfig": {"steps": ">=1", "batch_size": ">=1", "image_size": ">=1", "pad_to": ">=1", "num_classes": ">=2",
                      "output_classes": ">=2", "projection_dim": ">=1", "seed": ">=0", "input_scale": ">0"},
    "DatasetSpec": {"weight": ">0", "classes": ">=0"},
    "FewShotConfig": {"ways": ">=2", "shots": ">=1", "queries": ">=0"},
    "CloneConfig": {"hidden": ">=1", "lr": ">0", "state_size": ">=1", "message_size": ">=2", "micro_ticks": ">=1",
                    "batch": ">=1", "adam_lr": ">0", "final_lr_fraction": "[0,1]", "clip": ">0", "readout_weight": ">=0",
                    "weight_range": ">0", "input_range": "any", "bg_range": "any", "preact_mean": ">=0",
                    "preact_std": ">=0", "preact_clip": ">0", "error_min": "(0,1]", "max_weight": ">0", "loss_floor": ">0",
                    "seed": ">=0", "checkpoint_every": ">=1", "eval_seq_len": ">=1", "val_seq_len": ">=1",
                    "bias_share": "[0,1)"},
    "CloneStage": {"iterations": ">=1", "seq_len": ">=1", "reset_prob": "(0,1]"},
    "VSMLConfig": {"state_size": ">=1", "message_size": ">=2", "micro_ticks": ">=1", "init_c_fraction": "[0,1]",
                   "merge_fraction": "[0,1]", "output_bound": ">=0", "hidden_bias_input": "any"},
    "LayerSpec": {"units": ">=0", "channels": ">=0", "kernel": ">=1", "stride": ">=1"},
    "Backprop": {"lr": ">0", "layers": "[1,2]", "hidden": ">=1", "momentum": "[0,1)", "b1": "[0,1)", "b2": "[0,1)",
                 "eps": ">0", "conv_channels": ">=0", "conv_kernel": ">=1", "conv_stride": ">=1"},
    "MetaRNN": {"hidden": ">=1", "input_size": ">=1", "num_outputs": ">=2"},
    "Hebbian": {"input_size": ">=1", "num_outputs": ">=2", "eta_init": "any", "coeff_init": "any"},
    "FWM": {"hidden": ">=1", "mem_size": ">=1", "reads": ">=1", "input_size": ">=1", "num_outputs": ">=2"},
    "DeltaFWP": {"key_size": ">=1", "gain_init": "any", "input_size": ">=1", "num_outputs": ">=2"},
}


def register(cls_name: str, ranges: dict[str, str]) -> None:
    """Declare the ranges of a config dataclass's numeric fields (for classes added later)."""
    for spec in ranges.values():
        parse(spec)
    RANGES.setdefault(cls_name, {}).update(ranges)


_CMP = re.compile(r"^(>=|>|<=|<)\s*(-?[\d.eE+-]+)$")
_INTERVAL = re.compile(r"^([\[(])\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*([\])])$")


def parse(spec: str) -> tuple[float, bool, float, bool]:
    """``(lo, lo_inclusive, hi, hi_inclusive)`` of a range spec."""
    spec = spec.strip()
    if spec == "any":
        return -math.inf, False, math.inf, False
    m = _CMP.match(spec)
    if m:
        op, v = m.group(1), float(m.group(2))
        if op.startswith(">"):
            return v, op == ">=", math.inf, False
        return -math.inf, False, v, op == "<="
    m = _INTERVAL.match(spec)
    if m:
        return float(m.group(2)), m.group(1) == "[", float(m.group(3)), m.group(4) == "]"
    raise ValueError(f"bad range spec {spec!r}")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def describe(spec: str, kind: type = float) -> str:
    """Human-readable range: 'an integer >= 1', 'a number in [0, 1)'."""
    lo, lo_in, hi, hi_in = parse(spec)
    noun = "an integer" if kind is int else "a number"
    if lo == -math.inf and hi == math.inf:
        return f"{noun} (finite)"
    if hi == math.inf:
        return f"{noun} {'>=' if lo_in else '>'} {_num(lo)}"
    if lo == -math.inf:
        return f"{noun} {'<=' if hi_in else '<'} {_num(hi)}"
    return f"{noun} in {'[' if lo_in else '('}{_num(lo)}, {_num(hi)}{']' if hi_in else ')'}"


def within(value, spec: str) -> bool:
    """True when the number ``value`` is finite and in the range ``spec``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(v):
        return False
    lo, lo_in, hi, hi_in = parse(spec)
    return (v > lo or (lo_in and v == lo)) and (v < hi or (hi_in and v == hi))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(where: str, value, spec: str, kind: type = float) -> None:
    """:class:`ConfigError` unless ``value`` (a number, or a list/tuple of numbers) is in range."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_value(f"{where}[{i}]", v, spec, kind)
        return
    if _is_number(value) and not within(value, spec):
        raise ConfigError(f"{where}: {value!r} is out of range; allowed: {describe(spec, kind)}")


def _kind(cls, field: str) -> type:
    import typing

    try:
        tp = typing.get_type_hints(cls).get(field)
    except Exception:  # noqa: BLE001
        return float
    return int if "int" in str(tp) and "float" not in str(tp) else float


def check_field(cls, field: str, value, where: str) -> None:
    """Range check of one field of config class ``cls`` as it is read (no-op without a declared range)."""
    spec = RANGES.get(cls.__name__, {}).get(field)
    if spec is not None and value is not None:
        check_value(where, value, spec, _kind(cls, field))


def check_tree(obj, path: str = "") -> None:
    """Check every numeric field of a (nested) config dataclass instance against :data:`RANGES`."""
    import dataclasses

    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        if isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                check_tree(v, f"{path}[{i}]")
        return
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        where = f"{path}.{f.name}" if path else f.name
        check_field(type(obj), f.name, v, where)
        if dataclasses.is_dataclass(v) or isinstance(v, (list, tuple)):
            check_tree(v, where)


# --------------------------------------------------------------------------------------------
# CLI options


def ranged(kind: type, spec: str):
    """An argparse ``type=`` that parses ``kind`` and checks the range ``spec``; the error names
    the value and the range (argparse adds the option)."""
    parse(spec)

    def convert(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {describe(spec, kind)}") from None
        if not within(value, spec):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; allowed: {describe(spec, kind)}")
        return value

    convert.range = spec  # type: ignore[attr-defined]
    convert.kind = kind  # type: ignore[attr-defined]
    convert.__name__ = f"{kind.__name__} {spec}"
    return convert
