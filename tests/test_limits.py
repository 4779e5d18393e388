"""Every numeric setting is validated where it is read: each numeric field of every config dataclass
and each numeric CLI option, fed 0, -1 and NaN, is accepted when its declared range allows it and
otherwise refused with the field / option name, the value and the allowed range. A new field or
option without a declared range fails here (the walk uses dataclasses.fields and argparse's actions).
Ranges are declared on the fields (``Annotated[int, Range(">=1")]``) and read by vsml.config.field_ranges."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import types
import typing

import pytest

from vsml import limits
from vsml.cloning.clone import CloneConfig
from vsml.config import ConfigError, check_ranges, field_ranges, from_dict
from vsml.eval.protocol import ProtocolConfig
from vsml.learners import registry
from vsml.learners.vsml import VSMLConfig
from vsml.meta.trainer import MetaConfig

VALUES = (0, -1, float("nan"))


def _args(tp):
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _numeric(tp) -> tuple[bool, int | None]:
    """(is numeric, tuple length: None for a scalar, -1 for a variadic tuple)."""
    for a in _args(tp):
        if a in (int, float):
            return True, None
        if typing.get_origin(a) is tuple:
            items = typing.get_args(a)
            if items and all(i in (int, float) or i is Ellipsis for i in items):
                return True, -1 if Ellipsis in items else len(items)
    return False, None


def _nested(tp):
    """Dataclass types reachable from an annotation, with whether they sit in a list."""
    for a in _args(tp):
        if dataclasses.is_dataclass(a):
            yield a, False
        elif typing.get_origin(a) in (tuple, list):
            for item in typing.get_args(a):
                for b in _args(item):
                    if dataclasses.is_dataclass(b):
                        yield b, True


def _required(cls) -> dict:
    """Placeholder values for fields without a default (in range)."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            tp = _args(hints[f.name])[0]
            out[f.name] = {str: "digits", int: 1, float: 1.0}.get(tp, 1)
    return out


def _walk(cls, wrap, prefix, seen=()):
    """Yield (class, field, path, tuple length, wrap) for every numeric field under ``cls``;
    ``wrap(data)`` embeds a mapping for ``cls`` into one for the root."""
    if cls in seen:
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        numeric, length = _numeric(tp)
        if numeric:
            yield cls, f.name, f"{prefix}{f.name}", length, wrap
        for sub, listed in _nested(tp):

            def inner(data, f=f, listed=listed, sub=sub, wrap=wrap):
                value = {**_required(sub), **data}
                return wrap({**_required(cls), f.name: [value] if listed else value})

            yield from _walk(sub, inner, f"{prefix}{f.name}{'[0]' if listed else ''}.", (*seen, cls))


def _roots():
    from vsml.meta import registry as meta_registry

    roots = [MetaConfig, CloneConfig, VSMLConfig, ProtocolConfig]
    roots += [meta_registry.config_class(name) for name in meta_registry.names()]  # meta_optimizer.options
    for name in registry.names():
        factory = registry._REGISTRY[name]
        if hasattr(factory, "config_class"):
            roots.append(factory.config_class())
    return list(dict.fromkeys(roots))


CASES = [(root, *case) for root in _roots() for case in _walk(root, lambda d, root=root: {**_required(root), **d}, "")]
IDS = [f"{c[0].__name__}:{c[3]}" for c in CASES]


def test_every_numeric_config_field_has_a_declared_range():
    missing = sorted({f"{cls.__name__}.{field}" for _, cls, field, *_ in CASES if field not in field_ranges(cls)})
    assert not missing, f"declare a range on these fields (Annotated[int, Range('>=1')]): {', '.join(missing)}"
    assert len(CASES) > 100  # the walk reaches nested sections, curriculum stages, dataset specs, learners


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_field_values_zero_minus_one_nan(case):
    root, cls, field, path, length, wrap = case
    spec = field_ranges(cls)[field][0]
    for v in VALUES:
        value = v if length is None else [v] * (1 if length == -1 else length)
        data = wrap({field: value})
        if limits.within(v, spec):
            try:
                from_dict(root, data)
            except ConfigError:
                pass  # in range but refused by a cross-field rule: still a clean message
            continue
        with pytest.raises(ConfigError) as e:
            from_dict(root, data)
        msg = str(e.value)
        assert path.split("[")[0].split(".")[-1] in msg or field in msg, msg
        assert ("nan" if v != v else repr(v)) in msg, msg
        assert limits.describe(spec, int if "integer" in msg else float) in msg, msg


def test_configs_built_in_python_are_range_checked_too():
    """Every config dataclass checks its declared ranges on construction, not only when read from YAML."""
    from vsml.meta.es import ESConfig
    from vsml.meta.trainer import EvalConfig

    with pytest.raises(ConfigError, match=r"es\.population: 0 is out of range; allowed: an integer >= 2"):
        ESConfig(population=0)
    with pytest.raises(ConfigError, match=r"eval\.episodes: 0 is out of range; allowed: an integer >= 1"):
        EvalConfig(episodes=0)
    with pytest.raises(ConfigError, match=r"protocol\.steps: 99 is out of range; allowed: an integer >= 100"):
        ProtocolConfig(steps=99)
    with pytest.raises(ConfigError, match=r"state_size: 0 is out of range"):
        VSMLConfig(state_size=0)
    check_ranges(MetaConfig())  # defaults are in range


def test_every_config_class_declares_its_ranges_on_fields_only():
    """No table of ranges keyed by class names: the ranges live on the dataclass fields."""
    assert not hasattr(limits, "RANGES") and not hasattr(limits, "register")
    assert field_ranges(MetaConfig)["iterations"] == (">=0", int)
    assert field_ranges(ProtocolConfig)["episodes"] == (">=2", int)


# --- CLI options ----------------------------------------------------------------------------


def _parsers():
    from vsml.cli import build_parser
    from vsml.cloning import evaluate as clone_eval

    main = build_parser()
    sub = next(a for a in main._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        yield name, parser, [name]
    yield "cloning.evaluate", clone_eval.build_parser(), []


def _base_argv(parser) -> list[str]:
    argv = []
    for a in parser._actions:
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and a.nargs not in ("*", "?"):
            argv.append("x.yaml")
        elif a.option_strings and a.required:
            argv += [a.option_strings[0], "x"]
    return argv


OPTIONS = [
    (name, parser, prefix, a)
    for name, parser, prefix in _parsers()
    for a in parser._actions
    if a.option_strings and a.type is not None
]


def test_every_numeric_cli_option_is_ranged():
    plain = [f"{name} {a.option_strings[-1]}" for name, _, _, a in OPTIONS if a.type in (int, float)]
    assert not plain, f"use type=vsml.limits.ranged(...) for: {', '.join(plain)}"
    assert len([o for o in OPTIONS if hasattr(o[3].type, "range")]) >= 20


@pytest.mark.parametrize(
    "option",
    [o for o in OPTIONS if hasattr(o[3].type, "range")],
    ids=[f"{o[0]} {o[3].option_strings[-1]}" for o in OPTIONS if hasattr(o[3].type, "range")],
)
def test_cli_option_values_zero_minus_one_nan(option):
    name, parser, prefix, action = option
    spec, kind = action.type.range, action.type.kind
    for v in ("0", "-1", "nan"):
        argv = [*prefix, *_base_argv(parser), f"{action.option_strings[-1]}={v}"]
        target = parser if not prefix else next(p for n, p, _ in _parsers() if n == name)
        ok = limits.within(v, spec) and (kind is float or v != "nan")
        err = io.StringIO()
        if ok:
            ns = target.parse_args(argv[len(prefix) :])
            assert getattr(ns, action.dest) == kind(v)
            continue
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
            target.parse_args(argv[len(prefix) :])
        assert e.value.code == 2
        msg = err.getvalue()
        assert action.option_strings[-1] in msg and repr(v) in msg and limits.describe(spec, kind) in msg, msg


def test_ranges_parse_and_describe():
    assert limits.describe(">=1", int) == "an integer >= 1"
    assert limits.describe("[0,1)") == "a number in [0, 1)"
    assert limits.within(0, "[0,1)") and not limits.within(1, "[0,1)") and not limits.within(math.nan, "any")
    with pytest.raises(ValueError):
        limits.parse("between 1 and 2")
