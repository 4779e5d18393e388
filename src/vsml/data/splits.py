"""Split names and held-out partitions: ``"test[:80%]"`` selects 80 % of split ``test`` through a
fixed permutation, so ``test[:80%]`` and ``test[80%:]`` are disjoint."""

from __future__ import annotations

import re

import numpy as np

from vsml.data.integrity import DataError

_SPLIT_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\[\s*([^\]:]*)\s*:\s*([^\]:]*)\s*\])?\s*$")
PARTITION_SEED = 0


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """``"test[:80%]"`` -> ``("test", None, "80%")``; ``"train"`` -> ``("train", None, None)``."""
    m = _SPLIT_RE.match(split or "")
    if not m:
        raise DataError(
            f"bad split '{split}': use NAME, NAME[a:b] with a, b integers or percentages, e.g. 'test[:80%]'"
        )
    return m.group(1), (m.group(2) or None), (m.group(3) or None)


def _bound(text: str | None, n: int, default: int, split: str) -> int:
    if text is None:
        return default
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return int(round(n * pct / 100))
        value = int(text)
    except ValueError:
        raise DataError(f"bad split '{split}': '{text}' is not an integer or a percentage in [0, 100]") from None
    return max(0, min(n, value if value >= 0 else n + value))


def partition(n: int, split: str) -> np.ndarray | None:
    """Indices selected by the slice of ``split`` (``None`` when it has none).

    Slices index a fixed permutation (seed 0) of the split, so ``test[:80%]`` and ``test[80%:]``
    are disjoint random halves even when the files are sorted by class; indices come back sorted.
    """
    _, lo, hi = parse_split(split)
    if lo is None and hi is None and "[" not in split:
        return None
    a, b = _bound(lo, n, 0, split), _bound(hi, n, n, split)
    if b <= a:
        raise DataError(f"split '{split}' selects no examples out of {n}")
    return np.sort(np.random.default_rng(PARTITION_SEED).permutation(n)[a:b])
