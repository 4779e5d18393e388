"""The resume policy of meta-training: which checkpoint a resumed run continues from, what may
differ between the stored run and this one, and how a checkpoint becomes the run's state.

A resumed run reads the stored config with this version's schema (keys added later take their
defaults), compares it with its own (:func:`resume_point`: sections of :data:`RESUME_MUTABLE` may
differ, other keys only when allowed with ``--allow-change``), checks that the stored learner
computes what this run's does (:func:`check_resumed_learner`: options may be spelled differently,
execution options such as ``kernel`` do not count), and restores the meta-state
(:func:`restore`), saying what to do when it does not fit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from vsml import artifacts
from vsml.checkpoint import CheckpointError, CheckpointManager
from vsml.config import ConfigError, computation, to_dict
from vsml.learners.registry import learner_from_record
from vsml.meta.config import meta_config_from_dict
from vsml.meta.curriculum import CurriculumState
from vsml.meta.optimizer import MetaState

#: Config sections that may differ between a run and the checkpoint it resumes.
RESUME_MUTABLE = ("name", "out", "iterations", "eval", "checkpoint", "log", "max_nonfinite", "distributed")


def changed_keys(a, b, prefix=""):
    """The dotted keys whose values differ between two nested mappings."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += changed_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def get_dotted(tree: dict, dotted: str):
    """The value at ``dotted`` (``a.b.c``) in a nested dict, or None."""
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def check_resumed_learner(path, record: dict, learner) -> None:
    """Raise unless the checkpoint's learner record builds a learner that computes what ``learner``
    (this run's) does (a semantic option missing from a VSML record builds its legacy value;
    execution options such as ``kernel`` do not count)."""
    try:
        stored = learner_from_record(record)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: its learner cannot be built here: {e}") from None
    if computation(stored) == computation(learner):
        return
    a, b = getattr(stored, "config", stored), getattr(learner, "config", learner)
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        diffs = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
        fix = " ".join(f"learner.options.{k}={to_dict(getattr(a, k))}" for k in diffs)
        raise CheckpointError(
            f"checkpoint {path} was made by a learner that differs from this config's in {', '.join(diffs)} "
            f"(an option missing from a checkpoint's record takes its legacy value, docs/vsml.md); "
            f"to resume, add the overrides: {fix}"
        )
    raise CheckpointError(f"checkpoint {path} was made by learner {record.get('name')!r}, not this config's")


def load_latest(mgr: CheckpointManager, resume_command: str):
    """The newest checkpoint, loaded; a corrupt one names the newest good one and how to resume from it."""
    latest = mgr.latest()
    try:
        return latest, mgr.load(latest)
    except CheckpointError as e:
        paths = mgr.paths()
        bad, good = [latest], None
        for p in reversed(paths[:-1]):
            try:
                good = (p, int(mgr.load(p).meta.get("iteration", -1)))
                break
            except CheckpointError:
                bad.append(p)
        if good is None:
            hint = (
                f"no earlier checkpoint in {mgr.folder} is readable either; start a new run folder "
                "(or restore the file from a backup)"
            )
        else:
            moves = " && ".join(f"mv {b} {b}.corrupt" for b in bad)
            hint = (
                f"the newest good checkpoint is {good[0]} (iteration {good[1]}); to resume from it, move the bad "
                f"one{'s' if len(bad) > 1 else ''} aside and resume: {moves} && {resume_command}"
            )
        raise CheckpointError(f"{e}; {hint}") from None


def resume_point(mgr: CheckpointManager, cfg_dict: dict, learner, resume_command: str, allow: tuple[str, ...] = ()):
    """The newest checkpoint ``(path, artifact, changes)`` of a run resumed with config ``cfg_dict``
    (``to_dict`` of its :class:`~vsml.meta.config.MetaConfig`) and ``learner``. Sections of
    :data:`RESUME_MUTABLE` may differ; the learner must compute the same as the stored one (its
    options may be spelled differently); any other change must be allowed by a key or section
    prefix in ``allow`` and is returned as ``changes`` (``{key: [stored, current]}``, recorded in
    the checkpoints). Anything else raises :class:`CheckpointError` saying how to go on."""
    latest, art = load_latest(mgr, resume_command)
    meta = art.meta
    try:  # read the stored config with this version's schema (new keys take their defaults)
        stored = to_dict(meta_config_from_dict(meta.get("config", {})))
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {latest}: its config is not valid for this vsml version ({e})") from None
    changed = [k for k in changed_keys(stored, cfg_dict) if k.split(".")[0] not in RESUME_MUTABLE]
    if meta.get("learner"):  # compare what the learners compute, not how their options were spelled
        check_resumed_learner(latest, meta["learner"], learner)
        changed = [k for k in changed if not k.startswith("learner.options.")]
    allowed = [k for k in changed if any(k == a or k.startswith(a + ".") for a in allow)]
    changes = {k: [get_dotted(stored, k), get_dotted(cfg_dict, k)] for k in allowed}
    changed = [k for k in changed if k not in allowed]
    if changed:
        raise CheckpointError(
            f"checkpoint {latest} was written with a different config ({', '.join(changed)}); "
            "resume with the same config, start a new run folder, or continue this run with the "
            "changed recipe on purpose: --allow-change KEY (recorded in the checkpoints)"
        )
    return latest, art, changes


def restore(latest: Path, art, init_state, section, resume_command: str) -> tuple[MetaState, bool]:
    """The meta-state stored in checkpoint ``art`` (host arrays) and whether it is slim (no
    inner-loop state: the lifetimes restart). ``init_state(stage)``: a fresh state of the run (the
    template); ``section()``: the name of the run's meta-optimizer settings (for messages). A
    persistent inner state that does not fit this run raises a :class:`CheckpointError` saying
    what differs and how to continue."""
    pos = CurriculumState(*art.meta["curriculum"])
    template = init_state(pos.stage)
    slim = "inner" not in art.groups and bool(jax.tree_util.tree_leaves(template.inner))
    groups = {}
    for g in MetaState._fields:
        if g == "inner" and "inner" not in art.groups:  # slim (or an estimator without inner state)
            groups[g] = template.inner
            continue
        try:
            groups[g] = art.restore(g, getattr(template, g))
        except artifacts.ArtifactError as e:
            if g != "inner":
                raise CheckpointError(str(e)) from None
            raise CheckpointError(inner_mismatch(latest, art, template.inner, e, section, resume_command)) from None
    return MetaState(**groups), slim


def inner_mismatch(latest: Path, art, inner, error, section, resume_command: str) -> str:
    """What differs between a checkpoint's persistent inner state and this run's, and how to go on."""
    meta = art.meta
    stored = art.leaves("inner")
    want = jax.tree_util.tree_leaves(inner)
    facts = []
    was_p, was_d = meta.get("processes"), meta.get("devices")
    if was_p is not None and (was_p, was_d) != (jax.process_count(), jax.device_count()):
        facts.append(
            f"it was written by {was_p} process(es) with {was_d} device(s) in all, this run has "
            f"{jax.process_count()} with {jax.device_count()}"
        )
    families = len(inner) if isinstance(inner, tuple) else 1
    per_family = len(want) // max(families, 1)
    if per_family and len(stored) % per_family == 0 and len(stored) // per_family != families:
        facts.append(f"it holds {len(stored) // per_family} task families' lifetimes, this run has {families}")
    if stored and want and len(stored) == len(want) and np.shape(stored[0])[:1] != np.shape(want[0])[:1]:
        n_have, n_want = np.shape(stored[0])[:1], np.shape(want[0])[:1]
        facts.append(
            f"it holds {n_have[0] if n_have else 'no'} lifetime(s) per family where this run's {section()} "
            f"settings give {n_want[0] if n_want else 'none'}"
        )
        if was_p and was_p > 1 and n_have and n_want and n_have[0] * was_p == n_want[0]:
            facts.append(
                "it holds one process's share only (written by a vsml version whose multi-process "
                "checkpoints kept process 0's lifetimes alone)"
            )
    what = "; ".join(facts) if facts else str(error)
    return (
        f"checkpoint {latest}: its persistent inner-loop state (the lifetimes in progress) does not fit this "
        f"run: {what}. The meta-parameters and optimizer state are usable: to continue with fresh lifetimes, "
        f"run `vsml convert --slim {latest}` and then {resume_command} (or resume with the process count "
        "and estimator settings it was written with, to continue its lifetimes exactly)"
    )
