"""Input contracts: the input preprocessing a learned learning algorithm needs.

A meta-trained LA is tied to the inputs it was meta-trained on: with ``reduce: sum`` the size of
every message sum grows with the number of inputs, so ``meta_mnist`` (14×14) runs worse on 28×28
images although nothing fails. Meta-training records the preprocessing of its last curriculum
stage in the learner artifact (``meta["input_contract"]``)::

    {"image_size": [14, 14], "grayscale": true, "normalize": true, "input_features": 196}

``image_size``: images are resized to (h, w) (``null``: used at their native size);
``grayscale``: one channel; ``normalize``: standardised with the dataset's statistics;
``input_features``: values per example the learner received. An LA whose record holds only
``info["input_size"]`` (the shipped ``meta_mnist``) is read as ``image_size`` with grayscale,
normalised inputs.

:func:`apply` turns a contract into the episode options of ``vsml evaluate`` / ``introspect`` /
``vsml run`` (or refuses a conflicting option, naming the option that fixes it);
:func:`check_features` checks the input size of the episodes actually drawn, and
:func:`check_shape` the ``input_shape`` of :func:`vsml.online`.
"""

from __future__ import annotations

import dataclasses
import math

from vsml.errors import VSMLError


class ContractError(VSMLError, ValueError):
    """Inputs that do not meet a learner's input contract."""


@dataclasses.dataclass(frozen=True)
class InputContract:
    image_size: tuple[int, int] | None = None
    grayscale: bool | None = None
    normalize: bool | None = None
    input_features: int | None = None
    owner: str = ""  # the learner it belongs to (for messages)

    def as_dict(self) -> dict:
        return {
            "image_size": list(self.image_size) if self.image_size else None,
            "grayscale": self.grayscale,
            "normalize": self.normalize,
            "input_features": self.input_features,
        }

    def describe(self) -> str:
        parts = []
        if self.image_size:
            parts.append(f"{self.image_size[0]}×{self.image_size[1]} images")
        if self.grayscale is not None:
            parts.append("grayscale" if self.grayscale else "colour channels kept")
        if self.normalize is not None:
            parts.append("standardised" if self.normalize else "not standardised")
        if self.input_features:
            parts.append(f"{self.input_features} input values per example")
        return ", ".join(parts) or "no constraint"

    @property
    def empty(self) -> bool:
        return (
            self.image_size is None
            and self.grayscale is None
            and self.normalize is None
            and self.input_features is None
        )


def from_sampler(scfg, input_shape=None) -> dict:
    """The contract record of episodes drawn with the :class:`~vsml.data.episodes.SamplerConfig`
    ``scfg`` whose learner inputs have shape ``input_shape`` (JSON-able, for an artifact's meta)."""
    features = int(math.prod(input_shape)) if input_shape is not None else None
    return InputContract(
        tuple(scfg.image_size) if scfg.image_size else None, bool(scfg.grayscale), bool(scfg.normalize), features
    ).as_dict()


def of_meta(meta: dict, owner: str = "") -> InputContract | None:
    """The contract of an artifact's meta record (current or earlier format), or None."""
    rec = meta.get("input_contract")
    if isinstance(rec, dict):
        size = rec.get("image_size")
        return InputContract(
            tuple(int(v) for v in size) if size else None,
            rec.get("grayscale"),
            rec.get("normalize"),
            rec.get("input_features"),
            owner,
        )
    size = (meta.get("info") or {}).get("input_size")
    if size:
        size = tuple(int(v) for v in (size if isinstance(size, (list, tuple)) else (size, size)))
        return InputContract(size, True, True, int(math.prod(size)), owner)
    return None


def of_learner(path_or_name, owner: str | None = None) -> InputContract | None:
    """The contract of a saved learner (run folder, artifact file, shipped LA name), or None."""
    from vsml.checkpoint import learner_artifact

    art = learner_artifact(path_or_name)
    return of_meta(art.meta, owner or str(path_or_name))


def merge(contracts) -> InputContract | None:
    """One contract all the given ones agree with; :class:`ContractError` when two conflict."""
    out: dict = {}
    owners: dict = {}
    for c in contracts:
        if c is None or c.empty:
            continue
        for k in ("image_size", "grayscale", "normalize", "input_features"):
            v = getattr(c, k)
            if v is None:
                continue
            if k in out and out[k] != v:
                raise ContractError(
                    f"{owners[k]} and {c.owner} need different inputs ({k} {out[k]} vs {v}); evaluate them "
                    "in separate runs, or pass --ignore-contract to run both on the same episodes anyway"
                )
            out[k], owners[k] = v, c.owner
    if not out:
        return None
    return InputContract(**out, owner=" and ".join(dict.fromkeys(owners.values())))


_SAMPLER_DEFAULTS = {"grayscale": True, "normalize": True}  # SamplerConfig's defaults


def _size_hint(contract: InputContract) -> str:
    size = contract.image_size
    if size is None and contract.input_features and math.isqrt(contract.input_features) ** 2 == contract.input_features:
        size = (math.isqrt(contract.input_features),) * 2  # a flattened square image
    if size and size[0] == size[1] and size[0] * size[1] == contract.input_features:
        return f"--resize {size[0]}"
    return f"--sampler projection_dim={contract.input_features} with --projection episode"


def apply(contract: InputContract | None, given: dict) -> tuple[dict, list[str]]:
    """Episode options that meet ``contract``. ``given``: the options the user set (``image_size``
    as an int or (h, w), ``grayscale``, ``normalize``; absent or None = not set). Returns
    ``(options to add, notes)``; a conflicting option raises :class:`ContractError` naming the fix."""
    if contract is None:
        return {}, []
    add, notes = {}, []
    fixes = {
        "image_size": lambda v: f"--resize {v[0]}" if v[0] == v[1] else f"--sampler 'image_size=[{v[0]}, {v[1]}]'",
        "grayscale": lambda v: "--grayscale" if v else "--no-grayscale",
        "normalize": lambda v: f"--sampler normalize={'true' if v else 'false'}",
    }
    for key, fix in fixes.items():
        want = getattr(contract, key)
        if want is None:
            continue
        have = given.get(key)
        if isinstance(have, int) and key == "image_size":
            have = (have, have)
        if have is None:
            if want == _SAMPLER_DEFAULTS.get(key):
                continue  # the episodes already are like that
            add[key] = list(want) if key == "image_size" else want
            notes.append(fix(want))
        elif (tuple(have) if key == "image_size" else have) != want:
            shown = fix(tuple(have) if key == "image_size" else have)
            raise ContractError(
                f"{contract.owner} needs {contract.describe()} (its input contract), but the options ask for "
                f"{shown}: use {fix(want)} (or leave the option out), or pass --ignore-contract to run it "
                "anyway"
            )
    if notes:
        notes = [f"note: applying the input contract of {contract.owner} ({contract.describe()}): {' '.join(notes)}"]
    return add, notes


def check_features(contract: InputContract | None, input_shape, where: str = "these episodes") -> None:
    """:class:`ContractError` when episodes of ``input_shape`` give the learner a different number
    of input values than its contract says."""
    if contract is None or not contract.input_features:
        return
    have = int(math.prod(input_shape))
    if have != contract.input_features:
        hint = _size_hint(contract)
        raise ContractError(
            f"{contract.owner} expects {contract.input_features} input values per example "
            f"({contract.describe()}), but {where} have {have} (shape {list(input_shape)}): use {hint}, "
            "or pass --ignore-contract to run it anyway"
        )


def check_shape(contract: InputContract | None, input_shape) -> None:
    """For streaming use (:func:`vsml.online`): ``input_shape`` must hold the contract's number of
    input values; :class:`ContractError` names the shape to use."""
    if contract is None or not contract.input_features:
        return
    have = int(math.prod(input_shape))
    if have != contract.input_features:
        size = contract.image_size
        shape = (
            f"input_shape={tuple(size)}"
            if size and size[0] * size[1] == contract.input_features
            else f"input_shape=({contract.input_features},)"
        )
        raise ContractError(
            f"{contract.owner} expects {contract.input_features} input values per example ({contract.describe()}), "
            f"got input_shape={tuple(input_shape)} ({have} values): preprocess your inputs accordingly (e.g. "
            f"vsml.data.transforms to resize) and pass {shape}, or pass ignore_contract=True to use it anyway"
        )
