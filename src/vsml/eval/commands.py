"""What ``vsml evaluate`` and ``vsml introspect`` do with their parsed options (the argparse wiring
is :mod:`vsml.eval.cli`): build the learners and read their input contracts, check the output
folder before any compute, draw the episodes through the one episode pipeline, evaluate dataset by
dataset and merge the reports, or measure fast association and draw the introspection plots.

Each command function takes the parsed ``args`` and returns an exit code; an option that cannot
be honoured raises :class:`CommandError` (a :class:`~vsml.errors.VSMLError`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vsml.errors import VSMLError

DEFAULT_LEARNERS = ["sgd", "adam"]
INTROSPECT_FILES = ("fast_association.png", "episode_outputs.png", "state_norms.png", "introspect.json")


class CommandError(VSMLError, ValueError):
    """An option of ``vsml evaluate`` / ``introspect`` / ``protocol`` that cannot be honoured (a
    checkpoint that does not load, a window longer than the episodes, ...)."""


def load_checkpoint(path: str):
    """``(learner, params)`` of a run folder, checkpoint, LA file or shipped LA name
    (``vsml.checkpoint.load_learner``); its errors become one-line CLI errors."""
    from vsml.checkpoint import CheckpointError, load_learner
    from vsml.pretrained import PretrainedError

    try:
        return load_learner(path)
    except (CheckpointError, PretrainedError, FileNotFoundError) as e:
        raise CommandError(f"cannot load checkpoint {path}: {e}") from None


def build_learners(args) -> dict:
    """``label -> (learner, params)`` from ``--learner`` specs and ``--checkpoint`` paths."""
    from vsml.learners.registry import make_learner, parse_learner_spec

    specs = args.learner if args.learner is not None else ([] if args.checkpoint else DEFAULT_LEARNERS)
    out = {}
    for spec in specs:
        name, options = parse_learner_spec(spec)
        out[spec] = (make_learner(name, options), None)
    return load_checkpoints(args.checkpoint, out)


def load_checkpoints(paths, into: dict | None = None) -> dict:
    """``label -> (learner, params)`` for checkpoint ``paths`` added to ``into``: the label is the
    file or folder stem, primed (``'``) until it is unique."""
    out = dict(into or {})
    for path in paths:
        label = Path(path).stem
        while label in out:
            label += "'"
        out[label] = load_checkpoint(path)
    return out


def resolve_contract(args) -> None:
    """Read the input contracts of the ``--checkpoint`` learners (:mod:`vsml.contract`): the episode
    options they need are added where the user did not set them (with a note); a conflicting option
    or two conflicting LAs are an error naming the fix. Sets ``args.contract`` and
    ``args.contract_options``; ``--ignore-contract`` skips all of it."""
    from vsml import contract
    from vsml.checkpoint import CheckpointError
    from vsml.config import apply_overrides

    args.contract, args.contract_options = None, {}
    if getattr(args, "ignore_contract", False) or not args.checkpoint:
        return
    found = []
    for path in args.checkpoint:
        try:
            found.append(contract.of_learner(path, owner=f"--checkpoint {path}"))
        except (CheckpointError, OSError) as e:
            raise CommandError(f"cannot load checkpoint {path}: {e}") from None
    merged = contract.merge(found)
    sampler = apply_overrides({}, list(args.sampler))
    given = {
        "image_size": sampler.get("image_size", args.image_size),
        "grayscale": sampler.get("grayscale", args.grayscale),
        "normalize": sampler.get("normalize"),
    }
    args.contract_options, notes = contract.apply(merged, given)
    args.contract = merged
    for note in notes:
        print(note, file=sys.stderr)


def prepare_outputs(args, default: str, owned) -> Path:
    """Check the output folder (and ``--json``) before any compute (see :func:`vsml.runs.prepare_output`)."""
    from vsml import runs

    out = runs.prepare_output(
        args.out, default=default, owned=owned, overwrite=args.overwrite, log=lambda m: print(m, file=sys.stderr)
    )
    json_path = getattr(args, "json", None)
    if json_path is not None and Path(json_path).resolve().parent != out.resolve():
        runs.check_output_file(json_path, overwrite=args.overwrite)
    return out


def sampler_config(args, dataset: str, split: str | None = None):
    """The :class:`~vsml.data.episodes.SamplerConfig` of the episode options in ``args`` for one dataset."""
    from vsml.config import apply_overrides, from_dict
    from vsml.data.episodes import SamplerConfig

    data = {
        "datasets": [{"name": dataset, "split": split or args.split}],
        "steps": args.steps,
        "batch_size": args.batch_size,
        "data_dir": args.data_dir,
        "verify": args.verify,
    }
    for cli_name in ("num_classes", "grayscale", "permutation", "projection"):
        if getattr(args, cli_name) is not None:
            data[cli_name] = getattr(args, cli_name)
    if args.image_size is not None:
        data["image_size"] = [args.image_size, args.image_size]
    data.update(getattr(args, "contract_options", None) or {})
    data = apply_overrides(data, list(args.sampler))
    return from_dict(SamplerConfig, data, path="episodes")


def episodes_for(args, dataset: str, *, n: int | None = None, split: str | None = None, seed: int | None = None):
    """Episodes of ``dataset`` for the options in ``args`` (through :func:`vsml.data.episodes.draw_episodes`)."""
    from vsml import contract
    from vsml.data.episodes import draw_episodes

    eps = draw_episodes(sampler_config(args, dataset, split), args.seed if seed is None else seed, n or args.episodes)
    contract.check_features(getattr(args, "contract", None), eps.xs.shape[3:], f"the episodes of {dataset}")
    return eps


def _tuning_split(dataset: str, split: str, data_dir) -> str:
    """The split tuning episodes come from: ``train`` when the dataset has it locally, else ``split``."""
    from vsml.data import registry as data_registry
    from vsml.data.integrity import DataError

    try:
        data_registry.load(dataset, "train", data_dir=data_dir)
        return "train"
    except (DataError, OSError):
        return split


def evaluate_command(args) -> int:
    from vsml.eval import report as rep
    from vsml.eval.evaluate import EvalReport, evaluate

    windows = tuple(dict.fromkeys(args.window or ()))
    longer = [f"{a}:{b}" for a, b in windows if b > args.steps]
    if longer:
        raise CommandError(f"--window {', '.join(longer)}: longer than the episodes (-T {args.steps} steps)")
    learners = build_learners(args)
    resolve_contract(args)
    out = prepare_outputs(args, "runs/evaluate", rep.OWNED)
    datasets = list(dict.fromkeys(args.dataset or ["digits"]))
    progress = not args.no_progress
    report = EvalReport([], {"seed": args.seed, "datasets": {}}, windows=windows)
    for d in datasets:  # one dataset in memory at a time
        episodes = {d: episodes_for(args, d)}
        tune = None
        if args.tune_lr:
            # Tuning episodes: another seed, and the train split when it exists; never the reported episodes.
            tune = {
                d: episodes_for(
                    args,
                    d,
                    n=args.tune_episodes,
                    split=_tuning_split(d, args.split, args.data_dir),
                    seed=args.seed + 1_000_003,
                )
            }
        part = evaluate(learners, episodes, seed=args.seed, tune=tune, chunk=args.chunk, progress=progress)
        if args.oracle_backprop or args.reference == "oracle":
            from vsml.eval.compare import oracle_backprop

            report.oracles.update(
                oracle_backprop(episodes, seed=args.seed, chunk=args.chunk, progress=progress, windows=windows)
            )
        report.results.extend(part.results)
        report.meta["learners"] = part.meta["learners"]
        report.meta["datasets"].update(part.meta["datasets"])
        for name, lrs in part.meta.get("tuned_lr", {}).items():
            report.meta.setdefault("tuned_lr", {}).setdefault(name, {}).update(lrs)
        del episodes, tune
    report.meta["options"] = {k: v for k, v in vars(args).items() if k not in ("func", "contract")}
    if getattr(args, "contract", None) is not None:  # the input contract the --checkpoint LAs were run under
        report.meta["options"]["contract"] = args.contract.as_dict()
    if args.reference is not None:
        if args.reference != "oracle" and args.reference not in report.learners:
            raise CommandError(
                f"--reference {args.reference!r} is not one of the evaluated learners ({', '.join(report.learners)}) "
                "or 'oracle'"
            )
        report.reference = args.reference
    paths = rep.write_all(report, out, json_path=args.json, plot=not args.no_plot, smooth=args.smooth)
    rep.print_table(report)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def introspect_command(args) -> int:
    import jax
    import numpy as np

    from vsml.eval.evaluate import episode_keys
    from vsml.eval.introspect import fast_association, state_norms
    from vsml.eval.plots import plot_episode_outputs, plot_fast_association, plot_state_norms

    learners = build_learners(args)
    resolve_contract(args)
    out = prepare_outputs(args, "runs/introspect", INTROSPECT_FILES)
    dataset = (args.dataset or ["digits"])[0]
    eps = episodes_for(args, dataset)
    keys = episode_keys(args.seed, eps.n_episodes)
    assoc, norms = {}, {}
    for label, (learner, params) in learners.items():
        if params is None:
            params = learner.init_params(jax.random.PRNGKey(args.seed))
        assoc[label] = fast_association(learner, params, eps, keys, args.max_shots, chunk=args.chunk, with_probs=True)
        if args.norm_steps > 0:
            t = min(args.norm_steps, eps.steps)
            norms[label] = state_norms(learner, params, keys[0], eps.xs[0, :t], eps.ys[0, :t], int(eps.num_classes))
    episode0 = {label: r.pop("probs") for label, r in assoc.items()}
    plot_fast_association(
        assoc, out / "fast_association.png", title=f"fast association on {dataset} ({eps.num_classes}-way)"
    )
    shown = min(args.picture_steps, eps.steps)
    plot_episode_outputs(
        {k: p[:shown] for k, p in episode0.items()},
        np.asarray(eps.ys)[0, :shown, 0],
        out / "episode_outputs.png",
        title=f"predicted class probabilities, first {shown} steps of episode 0 ({dataset}, {eps.num_classes}-way)",
    )
    print(f"fast association on {dataset}: p(correct class) at its next occurrence after k labelled examples")
    for label, r in assoc.items():
        probs = ", ".join(f"{k}:{p:.2f}" for k, p in zip(r["shots"], r["prob_mean"]))
        print(f"  {label:>12}: one-shot p = {r['one_shot_prob']:.3f}   [{probs}]")
    payload = {
        "dataset": dataset,
        "num_classes": int(eps.num_classes),
        "episodes": eps.n_episodes,
        "steps": eps.steps,
        "fast_association": assoc,
        "episode0": {
            "labels": np.asarray(eps.ys)[0, :, 0].tolist(),
            "probs": {k: np.round(p, 5).tolist() for k, p in episode0.items()},
        },
    }
    if norms:
        plot_state_norms(norms, out / "state_norms.png")
        payload["state_norms"] = {
            k: {"leaves": names, "norms": np.asarray(v).tolist()} for k, (names, v) in norms.items()
        }
        print(f"state norms: {out / 'state_norms.png'}")
    print(
        f"fast association plot: {out / 'fast_association.png'}; one episode's outputs: {out / 'episode_outputs.png'}"
    )
    from vsml.artifacts import atomic_write_bytes
    from vsml.eval.report import _finite

    json_path = Path(args.json) if args.json else out / "introspect.json"
    atomic_write_bytes(
        json_path, (json.dumps(_finite(payload), indent=1, default=float) + "\n").encode()
    )  # NaN -> null
    print(f"json: {json_path}")
    return 0
