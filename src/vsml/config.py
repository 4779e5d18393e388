"""Typed configuration: frozen dataclasses loaded from YAML with dotted overrides.

    data = apply_overrides(load_yaml("exp.yaml"), ["micro_ticks=3", "hidden_layers=[{kind: dense, units: 32}]"])
    cfg = from_dict(VSMLConfig, data)

Unknown keys, wrong types, malformed overrides and numbers outside a field's declared range
(``Annotated[float, Range(">0")]``, see :mod:`vsml.limits`) raise :class:`ConfigError` with the
offending dotted path, never a deep traceback.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vsml.errors import VSMLError, did_you_mean
from vsml.limits import Range, describe, within

T = TypeVar("T")


class ConfigError(VSMLError, ValueError):
    """A configuration key, value or override is invalid."""


def _suggest(key: str, options: list[str]) -> str:
    close = did_you_mean(key, options)
    hint = f" Did you mean '{close}'?" if close else ""
    return f"{hint} Valid keys: {', '.join(sorted(options))}."


@functools.lru_cache(maxsize=None)
def field_ranges(cls: type) -> dict[str, tuple[str, type]]:
    """``{field: (range spec, int | float)}`` of the fields of dataclass ``cls`` annotated with a
    :class:`~vsml.limits.Range` (``Annotated[int, Range(">=1")]``, optionally ``| None``)."""
    out = {}
    for name, tp in typing.get_type_hints(cls, include_extras=True).items():
        candidates = [tp]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            candidates += list(typing.get_args(tp))
        for c in candidates:
            if typing.get_origin(c) is typing.Annotated:
                spec = next((m.spec for m in c.__metadata__ if isinstance(m, Range)), None)
                if spec is not None:
                    out[name] = (spec, int if _integral(typing.get_args(c)[0]) else float)
                    break
    return out


def _integral(tp) -> bool:
    """Whether a field type holds integers only (``int``, ``int | None``, ``tuple[int, ...]``)."""
    leaves = []

    def walk(t):
        args = typing.get_args(t)
        if t in (int, float):
            leaves.append(t)
        for a in args:
            if a is not Ellipsis and a is not type(None):
                walk(a)

    walk(tp)
    return bool(leaves) and all(t is int for t in leaves)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(where: str, value, spec: str, kind: type = float) -> None:
    """:class:`ConfigError` unless ``value`` (a number, or a list/tuple of numbers) is in the range ``spec``."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_value(f"{where}[{i}]", v, spec, kind)
        return
    if _is_number(value) and not within(value, spec):
        raise ConfigError(f"{where}: {value!r} is out of range; allowed: {describe(spec, kind)}")


def check_field(cls: type, field: str, value, where: str) -> None:
    """Range check of one field of config dataclass ``cls`` (no-op for a field without a declared range)."""
    declared = field_ranges(cls).get(field)
    if declared is not None and value is not None:
        check_value(where, value, *declared)


def check_ranges(obj, path: str | None = None) -> None:
    """Check every ranged field of the config dataclass instance ``obj`` (not nested ones: each
    config dataclass calls this in its ``__post_init__``). Errors name ``path.field``; ``path``
    defaults to the class name."""
    prefix = type(obj).__name__ if path is None else path
    for field in field_ranges(type(obj)):
        check_field(type(obj), field, getattr(obj, field), f"{prefix}.{field}" if prefix else field)


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` (dataclasses, tuples, unions, scalars)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                if isinstance(value, dict) and dataclasses.is_dataclass(arg):
                    raise  # a mapping was meant for the dataclass: its own message is the useful one
                errors.append(str(e))
        raise ConfigError(f"{path}: {value!r} matches none of {args}: {'; '.join(errors)}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and {"on", "off"} <= set(allowed):  # YAML 1.1 reads on/off as booleans
            value = "on" if value else "off"
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not one of {list(allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item_tp = args[0]
            return tuple(_convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item_tp = args[0] if args else Any
        out = [_convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict, path: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping, checking keys, types and the declared ranges
    of numeric fields (:func:`check_field`, before conversion, so errors name the dotted path)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{where}'.{_suggest(str(key), list(fields))}")
        check_field(cls, key, value, where)
        kwargs[key] = _convert(hints[key], value, where)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path or cls.__name__}: {e}") from None


def to_dict(obj: Any, stored: bool = False) -> Any:
    """Dataclass (nested) -> plain YAML-serialisable structure. ``stored=True``: the record of what
    is computed, without the execution options (:func:`execution_option` fields)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name), stored)
            for f in dataclasses.fields(obj)
            if not (stored and f.metadata.get(EXECUTION))
        }
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, stored) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, stored) for k, v in obj.items()}
    return obj


# Field metadata key of an execution option: how a value is computed (which implementation runs,
# a property of the machine), not what is computed. Such a field is settable like any other but
# left out of stored records (``to_dict(..., stored=True)``), dropped from a stored record when it
# is read back (:func:`drop_execution_options`) and ignored when two configs are compared for
# what they compute (:func:`computation`).
EXECUTION = "vsml_execution"


def execution_option(default):
    """A dataclass field that is an execution option (see :data:`EXECUTION`)."""
    return dataclasses.field(default=default, metadata={EXECUTION: True})


def execution_options(cls: type) -> tuple[str, ...]:
    """The names of ``cls``'s execution-option fields."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(EXECUTION))


def drop_execution_options(cls: type, record: dict) -> dict:
    """A stored record of a ``cls`` without its execution options: the machine that reads it
    applies its own setting."""
    return {k: v for k, v in record.items() if k not in execution_options(cls)}


def computation(obj: Any) -> Any:
    """``obj`` (a dataclass, nested) with every execution option at its default: two objects
    compute the same thing when their ``computation`` values are equal."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return obj
    changes = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if f.metadata.get(EXECUTION):
            value = f.default
        elif dataclasses.is_dataclass(value):
            value = computation(value)
        else:
            continue
        if value is not getattr(obj, f.name):
            changes[f.name] = value
    return dataclasses.replace(obj, **changes) if changes else obj


class _YAMLLoader(yaml.SafeLoader):
    """YAML 1.1 safe loading, except that ``3e-5`` / ``1E6`` (no decimal point) are numbers, as in
    YAML 1.2 and Python, not strings."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str):
    """Parse YAML text (safe; numbers written ``3e-5`` are floats)."""
    return yaml.load(text, Loader=_YAMLLoader)


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested mapping (copied)."""
    data = copy.deepcopy(data) if data else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{item}': value is not valid YAML ({e})") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return data


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data
