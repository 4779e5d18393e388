"""Allowed ranges of numeric settings: the range syntax, its description, and ranged CLI options.

A config dataclass declares the range of each numeric field on the field itself::

    lr: Annotated[float, Range(">0")] = 1e-3
    chunk: Annotated[int | None, Range(">=1")] = None      # None (not set) is always allowed

:func:`vsml.config.from_dict` checks every value as it is read (YAML files, ``key=value``
overrides, ``--sampler`` options) and every config dataclass checks its own fields on
construction (:func:`vsml.config.check_ranges` in ``__post_init__``), so configs built in Python
are held to the same ranges. A value out of range fails with the dotted field name, the value and
the allowed range::

    gradient.lr: 0.0 is out of range; allowed: a number > 0

``tests/test_limits.py`` walks every numeric field of every config class and every numeric CLI
option with 0, -1 and NaN, so a field or option without a declared range fails the suite.

Range syntax: ``>0``, ``>=1``, ``<=x``, intervals ``[0,1)`` / ``(0,1]`` / ``[1,2]``, or ``any``
(any finite number). NaN and infinities are never allowed.

This module imports nothing from vsml (it sits below :mod:`vsml.config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed range of a numeric config field, as ``typing.Annotated`` metadata (see module docstring)."""

    spec: str

    def __post_init__(self):
        parse(self.spec)


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
