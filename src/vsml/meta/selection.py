"""Validation data for choosing a checkpoint, and whether ``eval.keep_best`` is on by default.

    roles = dataset_roles(eval_specs, train_specs)     # {"mnist:train[80%:]": "validation", ...}
    on, note = keep_best_default(eval_config, roles)   # (bool, a line for the run's log)

A periodic meta-test dataset is *validation* data when it shares no example with any dataset the
run meta-trains on (another base split, disjoint percentage slices of the same split, or disjoint
class subsets; slices index one fixed permutation, :func:`vsml.data.registry.partition`) and is not
one of the datasets of the evaluation protocol's meta-test (:data:`vsml.eval.protocol.DEFAULT_DATASETS`,
any split). Choosing a checkpoint on validation data keeps the protocol's datasets unseen; choosing
it on a meta-test dataset makes that dataset no longer unseen for the chosen learner.

``eval.keep_best: null`` (the default) turns ``best.npz`` on exactly when ``eval.datasets`` is
configured and every one of them is validation data; ``true`` / ``false`` decide explicitly (``true``
on other data is allowed and said in the log).
"""

from __future__ import annotations

from typing import Iterable

from vsml.data.episodes import DatasetSpec
from vsml.data.registry import parse_split
from vsml.eval.protocol import DEFAULT_DATASETS

#: Datasets of the evaluation protocol's meta-test (every split counts).
META_TEST_NAMES = tuple(sorted({d.split(":")[0] for d in DEFAULT_DATASETS}))


def _fractions(split: str) -> tuple[str, float, float] | None:
    """``"train[:80%]"`` -> ``("train", 0.0, 0.8)``; ``None`` when a bound is not a percentage."""
    base, lo, hi = parse_split(split)
    bounds = []
    for text, default in ((lo, 0.0), (hi, 1.0)):
        if text is None:
            bounds.append(default)
        elif text.endswith("%"):
            bounds.append(float(text[:-1]) / 100)
        else:
            return None
    return base, bounds[0], bounds[1]


def overlaps(a: DatasetSpec, b: DatasetSpec) -> bool:
    """Whether ``a`` and ``b`` may share an example (``True`` when that cannot be ruled out)."""
    if a.name != b.name:
        return False
    if a.classes is not None and b.classes is not None and not set(a.classes) & set(b.classes):
        return False
    if parse_split(a.split)[0] != parse_split(b.split)[0]:
        return False
    fa, fb = _fractions(a.split), _fractions(b.split)
    if fa is None or fb is None:
        return True
    return max(fa[1], fb[1]) < min(fa[2], fb[2])


def dataset_roles(eval_specs: Iterable[DatasetSpec], train_specs: Iterable[DatasetSpec]) -> dict[str, str]:
    """``{"name:split": role}`` for each eval dataset: ``"meta-training"`` (shares examples with a
    meta-training dataset), ``"meta-test"`` (a dataset of the evaluation protocol) or ``"validation"``."""
    train = list(train_specs)
    roles = {}
    for spec in eval_specs:
        if any(overlaps(spec, t) for t in train):
            roles[f"{spec.name}:{spec.split}"] = "meta-training"
        elif spec.name in META_TEST_NAMES:
            roles[f"{spec.name}:{spec.split}"] = "meta-test"
        else:
            roles[f"{spec.name}:{spec.split}"] = "validation"
    return roles


def keep_best_default(keep_best: bool | None, configured: bool, roles: dict[str, str]) -> tuple[bool, str | None]:
    """Whether to keep ``best.npz`` and a line for the log (``None``: nothing to say).

    ``keep_best``: the config's ``eval.keep_best`` (``None``: decide); ``configured``: whether
    ``eval.datasets`` was given; ``roles``: :func:`dataset_roles` of the eval datasets."""
    other = {k: r for k, r in roles.items() if r != "validation"}
    where = ", ".join(f"{k} ({r})" for k, r in other.items())
    if keep_best is None:
        if configured and roles and not other:
            return True, (
                f"eval.keep_best on (the default with validation data: {', '.join(roles)} is neither "
                "meta-trained on nor in the protocol's meta-test); set eval.keep_best: false to turn it off"
            )
        if configured and other:
            return False, (
                f"eval.keep_best off: {where} is not validation data, so choosing a checkpoint on it would "
                "make it seen; set eval.keep_best: true to choose on it anyway"
            )
        return False, None
    if keep_best and other:
        return True, (
            f"eval.keep_best chooses best.npz on {where}: judge the chosen learner on other datasets "
            '(docs/meta_training.md, "Selection")'
        )
    return bool(keep_best), None
