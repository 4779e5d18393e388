"""``MetaTrainer``: meta-train the meta-parameters of any learner with any meta-optimizer, with
curricula, sharding over all devices/processes, atomic resumable checkpoints, CSV/TensorBoard logs.

    cfg = load_meta_config("configs/meta_digits_curriculum.yaml", ["iterations=200"])
    trainer = MetaTrainer(cfg)
    result = trainer.run(resume=False)       # -> TrainResult(params, iteration, history, out_dir)

The trainer holds one meta-optimizer value (:mod:`vsml.meta.optimizer`; the config's
``meta_optimizer: {name, options}`` picks it from :mod:`vsml.meta.registry`) and calls its
``init``/``step``/``restart``; it never branches on the kind of estimator.

Determinism: iteration ``i`` uses the key ``fold_in(PRNGKey(seed), i)`` for its episodes, noise
and initial states, so a run resumed from a checkpoint continues bit-identically (same device
count). Outputs under ``out`` (default ``runs/meta/<name>``): ``config.yaml``, ``metrics.csv``,
``eval.csv``, ``tb/`` (TensorBoard, when tensorboardX is installed), ``checkpoints/ckpt_*.npz``
and ``learner.npz`` + ``learner.json`` (the final learner artifact, loadable with
:func:`vsml.checkpoint.load_learner` and, for VSML, :func:`vsml.pretrained.load`); with
``eval.keep_best``, ``best.npz`` + ``best.json``: the learner of the best meta-test so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np
import yaml

from vsml import artifacts, contract, kernels, runs
from vsml.checkpoint import CheckpointError, CheckpointManager, learner_artifact, load_learner, stored_learner_record
from vsml.config import ConfigError, from_dict, to_dict
from vsml.data.episodes import DatasetSpec, EpisodeSampler, SamplerConfig, draw_episodes
from vsml.errors import VSMLError
from vsml.eval.evaluate import episode_keys, run_learner
from vsml.learners.base import TaskSpec
from vsml.learners.registry import learner_from_record, learner_record, make_learner
from vsml.meta import processes, sharding
from vsml.meta.config import (
    LEGACY_SECTIONS,
    CheckpointConfig,
    EvalConfig,
    LearnerSpec,
    LogConfig,
    MetaConfig,
    MetaOptimizerSpec,
    load_meta_config,
    meta_config_from_dict,
)
from vsml.meta.curriculum import Curriculum, CurriculumState
from vsml.meta.objective import MetaProblem
from vsml.meta.optimizer import MetaOptimizer, MetaState
from vsml.meta.registry import make_meta_optimizer
from vsml.meta.resume import RESUME_MUTABLE, restore, resume_point
from vsml.meta.selection import dataset_roles, keep_best_default
from vsml.runlog import RunLogger
from vsml.training import TrainingLoop

# The configs live in vsml.meta.config and the resume policy in vsml.meta.resume; their names
# stay importable from here.
__all__ = [
    "LEGACY_SECTIONS",
    "OWNED",
    "RESTARTABLE",
    "RESUME_MUTABLE",
    "CheckpointConfig",
    "EvalConfig",
    "LearnerSpec",
    "LogConfig",
    "MetaConfig",
    "MetaOptimizerSpec",
    "MetaTrainer",
    "MetaTrainingError",
    "TrainResult",
    "load_meta_config",
    "meta_config_from_dict",
]

#: Files a fresh run may find (and replace) in its out folder: those of a run that died before its first checkpoint.
RESTARTABLE = ("config.yaml", "metrics.csv", "eval.csv", "tb", "checkpoints", "best.npz", "best.json")

#: What a run writes into its out folder (``--overwrite`` removes these and keeps everything else).
OWNED = (*RESTARTABLE, "learner.npz", "learner.json")


class MetaTrainingError(VSMLError, RuntimeError):
    """Meta-training cannot continue (non-finite streak, bad init, ...)."""


class TrainResult(NamedTuple):
    params: object
    iteration: int
    history: list  # one dict per iteration
    out_dir: Path


def _takes_lr(opt: MetaOptimizer) -> bool:
    """Whether ``opt.step`` takes the learning rate as an argument (``step(state, key, problem, lr=...)``)."""
    import inspect

    try:
        return "lr" in inspect.signature(type(opt).step).parameters
    except (TypeError, ValueError):
        return False


class MetaTrainer:
    """Meta-trains ``config.learner``'s meta-parameters (see module docstring)."""

    def __init__(
        self,
        config: MetaConfig,
        out_dir: str | os.PathLike | None = None,
        log=None,
        *,
        command: str | None = None,
        lock_wait: float = 0.0,
    ):
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else config.out_dir
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        #: the command line that started this run (lock record, resume hints)
        self.command = command or f"vsml meta-train CONFIG --out {self.out_dir}"
        self.lock_wait = lock_wait
        processes.initialize(config.distributed)
        self.main = processes.is_main()
        #: run folder, lock, preflight, graceful stop, atomic writes, resume (shared with cloning)
        self.loop = TrainingLoop(
            self.out_dir, "meta-training", command=self.command, log=self.log, main=self.main, lock_wait=lock_wait
        )
        spec = {"name": config.learner.name, "options": dict(config.learner.options)}
        try:
            if config.learner.from_init:
                if not config.init:
                    raise ConfigError("learner.from_init needs `init` (a run folder, checkpoint, LA file or LA name)")
                try:
                    spec = stored_learner_record(learner_artifact(config.init))
                except (CheckpointError, OSError) as e:
                    raise ConfigError(f"init {config.init}: cannot read its learner ({e})") from None
                self.learner = learner_from_record(spec)  # a record without the semantic options: legacy values
            else:
                self.learner = make_learner(spec["name"], dict(spec["options"]))  # YAML: today's defaults
        except ConfigError as e:
            raise ConfigError(f"learner: {e}") from None
        # what checkpoints store: every VSMLConfig field, so later default changes never alter it
        self.learner_spec = learner_record(spec["name"], self.learner, spec["options"])
        method = config.meta_optimizer.name
        section = config.meta_optimizer.config()
        self.meta_optimizer = make_meta_optimizer(method, section)
        self.curriculum = Curriculum(tuple(config.curriculum), config.curriculum_ema)
        self.mesh = sharding.make_mesh()
        #: per stage: its learning rate (the stage's ``lr``, else the estimator's; None without one)
        self.stage_lrs = tuple(
            st.lr if st.lr is not None else getattr(section, "lr", None) for st in self.curriculum.stages
        )
        # One meta-optimizer value for every stage: its step takes the rate as a traced argument, so
        # stages that differ only in `lr` share one compiled step (and `init` / `restart`). An
        # estimator whose step takes no `lr` gets a copy per stage rate (same state layout).
        self._lr_arg = _takes_lr(self.meta_optimizer) and None not in self.stage_lrs
        self._stage_optimizers = tuple(
            self.meta_optimizer
            if self._lr_arg or st.lr is None
            else make_meta_optimizer(method, dataclasses.replace(section, lr=st.lr))
            for st in self.curriculum.stages
        )
        self._stage_lr_arrays: dict[int, jax.Array] = {}
        processes.check_divisible(
            self.meta_optimizer.parallel_size,
            f"the parallel axis of meta-optimizer {method!r} ({self.meta_optimizer.parallel_size})",
        )
        self._problems: dict[int, MetaProblem] = {}

    # ---- pieces ------------------------------------------------------------------------------

    def log(self, msg: str) -> None:
        if self.main:
            self._log(msg)

    def sampler_configs(self, stage: int) -> list[SamplerConfig]:
        """The sampler config of every task family of curriculum stage ``stage`` (one when ``families`` is empty)."""
        base = self.curriculum.sampler_config(self.config.data, stage)
        if not self.config.families:
            return [base]
        out = []
        for i, over in enumerate(self.config.families):
            try:
                out.append(from_dict(SamplerConfig, {**to_dict(base), **dict(over)}, path=f"families[{i}]"))
            except ValueError as e:
                raise ConfigError(f"families[{i}]: {e}") from None
        return out

    def problem(self, stage: int) -> MetaProblem:
        """The :class:`MetaProblem` of curriculum stage ``stage`` (samplers replicated over the mesh; cached)."""
        if stage not in self._problems:
            tasks, samplers = [], []
            for scfg in self.sampler_configs(stage):
                sampler = EpisodeSampler(scfg)
                task = TaskSpec(sampler.input_shape, sampler.num_classes, sampler.batch_size)
                self.learner.check_task(task)
                tasks.append(task)
                samplers.append(sharding.replicate(sampler, self.mesh))
            self._problems[stage] = MetaProblem(
                self.learner, tuple(tasks), self.config.objective, tuple(samplers), self.mesh
            )
        return self._problems[stage]

    def optimizer(self, stage: int) -> MetaOptimizer:
        """The meta-optimizer of curriculum stage ``stage``: the configured one, whose steps take the
        stage's learning rate (:attr:`stage_lrs`) as an argument; for an estimator whose ``step``
        takes no ``lr``, a copy configured with the stage's ``lr`` (same state layout, so the
        optimizer state carries over)."""
        return self._stage_optimizers[stage]

    def stage_lr(self, stage: int) -> jax.Array:
        """The learning rate of stage ``stage`` as a replicated float32 scalar (the step's ``lr``)."""
        if stage not in self._stage_lr_arrays:
            self._stage_lr_arrays[stage] = sharding.replicate(np.float32(self.stage_lrs[stage]), self.mesh)
        return self._stage_lr_arrays[stage]

    def key(self, iteration: int, salt: int = 0) -> jax.Array:
        """The replicated key of meta-iteration ``iteration`` (``salt`` != 0: another stream of it)."""
        key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), iteration)
        if salt:
            key = jax.random.fold_in(key, salt)
        return sharding.replicate(np.asarray(key), self.mesh)

    def init_params(self):
        """Fresh meta-parameters from the seed, or those of ``config.init``."""
        params = self.learner.init_params(jax.random.PRNGKey(self.config.seed))
        if self.config.init:
            try:
                learner, loaded = load_learner(self.config.init)
            except CheckpointError as e:
                raise MetaTrainingError(f"init {self.config.init}: {e}") from None
            if type(learner) is not type(self.learner) or getattr(learner, "config", None) != getattr(
                self.learner, "config", None
            ):
                self.log(
                    f"note: init {self.config.init} was saved with learner {learner!r}; using its parameters with "
                    f"{self.learner!r}"
                )
            if self.config.init_layers is not None:
                loaded = self._map_layers(loaded)
            t_leaves, t_def = jax.tree_util.tree_flatten(params)
            l_leaves, l_def = jax.tree_util.tree_flatten(loaded)
            if t_def != l_def or any(np.shape(a) != np.shape(b) for a, b in zip(t_leaves, l_leaves)):
                raise MetaTrainingError(
                    f"init {self.config.init}: its parameters do not fit learner {self.config.learner.name} "
                    f"with options {self.config.learner.options}"
                )
            params = loaded
        return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)

    def _map_layers(self, loaded):
        """``loaded`` with each sub-RNN group (``rnn``, ``bwd_rnn``) rebuilt as
        ``tuple(group[i] for i in config.init_layers)``: e.g. ``[0, 1, 1]`` starts a conv → dense →
        output network from ``cloned_sgd_hidden_from_random``'s ``linear`` (0) and ``tanh`` (1) sub-RNNs."""
        idx, name = self.config.init_layers, self.config.init
        if not isinstance(loaded, dict) or "rnn" not in loaded or not isinstance(loaded["rnn"], (tuple, list)):
            raise MetaTrainingError(f"init_layers: init {name} has no sub-RNNs to map (init_layers needs a VSML LA)")
        out = dict(loaded)
        for group in ("rnn", "bwd_rnn"):
            if group in loaded:
                have = len(loaded[group])
                if max(idx) >= have:
                    raise MetaTrainingError(
                        f"init_layers {list(idx)}: init {name} has {have} sub-RNN(s) in {group!r} "
                        f"(indices 0..{have - 1})"
                    )
                out[group] = tuple(loaded[group][i] for i in idx)
        return out

    def init_state(self, stage: int = 0) -> MetaState:
        """The meta-optimizer's initial state (host arrays) for the initial parameters."""
        params = self.init_params()
        self.optimizer(stage).mask(params)  # trainable patterns that match nothing fail here, before any compute
        state = self.optimizer(stage).init(params, self.key(0, salt=1), self.problem(stage))
        return jax.tree_util.tree_map(np.asarray, sharding.to_host(state))

    def place(self, state: MetaState) -> MetaState:
        """Host meta-state -> global arrays: parameters and optimizer state replicated, persistent
        inner state split over the mesh the way every meta-step leaves it."""
        return MetaState(
            sharding.replicate(state.params, self.mesh),
            sharding.replicate(state.opt_state, self.mesh),
            sharding.place_leading(state.inner, self.mesh),
        )

    def step(self, state: MetaState, iteration: int, stage: int):
        """One meta-iteration. Returns ``(state, StepMetrics)``."""
        try:
            if self._lr_arg:
                return self.optimizer(stage).step(
                    state, self.key(iteration), self.problem(stage), lr=self.stage_lr(stage)
                )
            return self.optimizer(stage).step(state, self.key(iteration), self.problem(stage))
        except (TypeError, ValueError) as e:
            raise MetaTrainingError(
                f"meta-step failed for learner {self.config.learner.name} on stage {stage}: {e}"
            ) from None

    def _eval_specs(self, base: SamplerConfig) -> tuple[DatasetSpec, ...]:
        """The periodic meta-test datasets: ``eval.datasets``, else the test splits of ``base``'s datasets."""
        return self.config.eval.datasets or tuple(DatasetSpec(d.name, "test") for d in base.datasets)

    def eval_configs(self) -> dict[str, SamplerConfig]:
        """The meta-test episodes' sampler config per held-out dataset (``label -> SamplerConfig``)."""
        ev, cfg = self.config.eval, self.config
        base = self.curriculum.sampler_config(cfg.data, len(self.curriculum.stages) - 1)
        datasets = self._eval_specs(base)
        out = {}
        for spec in datasets:
            data = to_dict(base)
            data["datasets"] = [to_dict(spec)]
            if ev.steps is not None:
                data["steps"] = ev.steps
            if ev.classes is not None:
                data["num_classes"] = ev.classes
            data.update(ev.sampler or {})
            out[f"{spec.name}:{spec.split}"] = from_dict(SamplerConfig, data, path="eval")
        return out

    def selection(self) -> tuple[bool, str | None, dict[str, str]]:
        """``(keep_best, log line or None, {eval dataset: role})``: whether this run keeps ``best.npz``,
        with ``eval.keep_best: null`` resolved by the eval datasets' roles (:mod:`vsml.meta.selection`)."""
        ev, cfg = self.config.eval, self.config
        train = [d for st in range(len(self.curriculum.stages)) for s in self.sampler_configs(st) for d in s.datasets]
        specs = self._eval_specs(self.curriculum.sampler_config(cfg.data, len(self.curriculum.stages) - 1))
        roles = dataset_roles(specs, train)
        keep, note = keep_best_default(ev.keep_best, bool(ev.datasets), roles)
        return keep and bool(ev.every), note, roles

    def evaluate(self, params) -> dict[str, dict[str, float]]:
        """Meta-test online accuracy per held-out dataset: ``{name: {online, first, last}}``.

        Episodes come from :func:`vsml.data.episodes.draw_episodes` with ``eval.seed`` and the
        learners' keys from :func:`vsml.eval.evaluate.episode_keys`: exactly what ``vsml evaluate``
        runs with the same settings and seed.
        """
        ev = self.config.eval
        host = sharding.to_host(params)
        out = {}
        for label, scfg in self.eval_configs().items():
            eps = draw_episodes(scfg, ev.seed, ev.episodes)
            corr = run_learner(self.learner, host, eps, episode_keys(ev.seed, ev.episodes))["correct"]
            out[label] = {
                "online": float(corr.mean()),
                "first": float(corr[:, : ev.first].mean()),
                "last": float(corr[:, -ev.last :].mean()),
            }
        return out

    # ---- the loop ----------------------------------------------------------------------------

    @property
    def resume_command(self) -> str:
        return self.loop.resume_command

    def _fingerprint(self, cfg_dict: dict, resume: bool, latest: Path | None, error: Exception | None) -> dict:
        """What every process of a multi-process run must agree on (see :func:`vsml.meta.processes.agree`)."""
        ckpt = None
        if latest is not None:
            ckpt = {"file": latest.name, "sha256": hashlib.sha256(latest.read_bytes()).hexdigest()}
        return {
            "config": cfg_dict,
            "code": runs.code_version(),
            "jax": jax.__version__,
            "resume": bool(resume),
            "checkpoint": ckpt,
            "local_devices": jax.local_device_count(),
            "kernel": self._kernel_path(),
            "error": None if error is None else f"{type(error).__name__}: {error}",
        }

    def _kernel_path(self) -> str | None:
        """Which dense-layer kernel this process runs (``fused`` | ``xla``; None for a learner without
        the setting). Processes on different paths would run different SPMD programs."""
        kind = getattr(getattr(self.learner, "config", None), "kernel", None)
        if kind is None:
            return None
        try:
            return kernels.resolve_kernel(kind)
        except (kernels.KernelUnavailableError, ValueError) as e:
            return f"unavailable ({e})"

    def _start(
        self, stack: contextlib.ExitStack, mgr: CheckpointManager, cfg_dict: dict, resume: bool, overwrite: bool
    ):
        """Lock the run folder (the main process), check it (:meth:`TrainingLoop.preflight`: a fresh
        run may only find the files of a run that died before its first checkpoint), find the resume
        point, and check that every process agrees on config, code and checkpoint. Returns
        ``(latest, artifact, restored state)`` or ``(None, None, None)``."""
        latest = art = error = restored = None
        try:
            self.loop.lock(stack, temps=[mgr.folder])
            self.loop.preflight(
                resume=resume,
                overwrite=overwrite,
                newest=mgr.latest(),
                checkpoints=f"in {mgr.folder}",
                foreign=[n for n in runs.visible_entries(self.out_dir) if n not in RESTARTABLE],
                owned=[self.out_dir / n for n in OWNED],
            )
            if resume:
                latest, art, self._changes = resume_point(mgr, cfg_dict, self.learner, self.resume_command, self._allow)
                restored = restore(
                    latest,
                    art,
                    self.init_state,
                    lambda: getattr(self.optimizer(0), "section", self.config.meta_optimizer.name),
                    self.resume_command,
                )
        except (CheckpointError, runs.RunLockError, runs.OutputError, ConfigError, MetaTrainingError) as e:
            if not processes.is_multiprocess():
                raise
            error = e
        processes.agree(
            self._fingerprint(cfg_dict, resume, latest, error),
            processes.distributed_config(self.config.distributed).startup_timeout,
            "meta-training run",
        )
        return latest, art, restored

    def _write(self, what: str, iteration: int, mgr: CheckpointManager, fn):
        """Run a write (:meth:`TrainingLoop.write`: an OS error says that nothing earlier is lost and how to
        continue)."""
        return self.loop.write(what, iteration, fn, mgr.latest)

    def run(
        self,
        resume: bool = False,
        *,
        overwrite: bool = False,
        on_iteration: Callable[[int], None] | None = None,
        allow_changes: tuple[str, ...] = (),
    ) -> TrainResult:
        """Meta-train until ``config.iterations``. ``resume``: continue from the newest checkpoint;
        ``overwrite``: start afresh in a used out folder, removing the files a run writes (:data:`OWNED`).

        ``allow_changes``: dotted config keys (or section prefixes, e.g. ``"objective"``) that may
        differ from the checkpoint's config on ``resume`` (a recipe changed mid-run on purpose); every
        other difference is refused. Each change is logged and recorded with its iteration in the
        checkpoints' ``config_changes`` list.

        The loop is :class:`vsml.training.TrainingLoop` (shared with cloning): the output folder is
        locked for the run (:class:`vsml.runs.RunLock`); SIGINT / SIGTERM stop after the current
        iteration with a checkpoint and raise :class:`vsml.runs.StopRequested` (a second signal
        ends the process at once). ``on_iteration(i)`` is called after iteration ``i`` (1-based) is
        complete and checkpointed (progress hooks, tests that interrupt a run).
        """
        self._allow, self._changes = tuple(allow_changes), {}
        with contextlib.ExitStack() as stack:
            return self._run(stack, resume, overwrite, on_iteration)

    def _run(self, stack, resume, overwrite, on_iteration) -> TrainResult:
        cfg, out = self.config, self.out_dir
        mgr = CheckpointManager(out / "checkpoints", keep=cfg.checkpoint.keep)
        start, pos, streak, elapsed = 0, self.curriculum.init(), 0, 0.0
        cfg_dict = to_dict(cfg)
        latest, art, restored = self._start(stack, mgr, cfg_dict, resume, overwrite)
        if resume:
            meta = art.meta
            start, streak, elapsed = (
                int(meta["iteration"]),
                int(meta.get("nonfinite_streak", 0)),
                float(meta.get("elapsed", 0.0)),
            )
            pos = CurriculumState(*meta["curriculum"])
            state, slim = restored
            self.log(f"resumed from {latest} at iteration {start} (stage {pos.stage})")
            changes = list(meta.get("config_changes", []))
            if self._changes:
                self.log(
                    "config changed on resume (--allow-change): "
                    + ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in self._changes.items())
                )
                changes.append({"iteration": start, "changes": self._changes})
            if slim:
                self.log(
                    f"{latest.name} is a slim checkpoint (meta-parameters and optimizer state, no persistent "
                    "inner-loop state): the lifetimes restart from fresh particles, so the run continues but not "
                    "bit-identically to an uninterrupted one"
                )
        else:
            state, changes = self.init_state(pos.stage), []
        if self.main:
            self._write(
                "config.yaml",
                start,
                mgr,
                lambda: artifacts.atomic_write_bytes(
                    out / "config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False).encode()
                ),
            )
        state = self.place(state)
        logger = RunLogger(
            out,
            "meta-train",
            ("iteration", "stage", "loss", "accuracy", "grad_norm", "finite", "elapsed"),
            active=self.main,
            progress=cfg.log.progress,
            csv_files=cfg.log.csv,
            tensorboard=cfg.log.tensorboard,
            wandb_project=cfg.log.wandb_project if cfg.log.wandb else None,
            run_name=cfg.name,
            run_config=cfg_dict,
            every=cfg.log.every,
            scalars=("loss", "accuracy", "grad_norm", "stage"),
            log=self._log,
            info=lambda r: (
                f"loss {r['loss']:.4f}  acc {r['accuracy']:.3f}  |g| {r['grad_norm']:.3g}  stage {r['stage']}"
            ),
        )
        history: list[dict] = []
        t0 = time.time()
        best_path = out / "best.npz"
        best_score = self._best_score(best_path, resume, start)
        keep_best, note, roles = self.selection()
        if note and cfg.eval.every:
            self.log(note)

        def meta_record():
            return {
                "config": cfg_dict,
                "learner": self.learner_spec,
                "seed": cfg.seed,
                "method": cfg.meta_optimizer.name,
                "curriculum": list(pos),
                "nonfinite_streak": streak,
                "elapsed": elapsed + time.time() - t0,
                "processes": jax.process_count(),
                "devices": jax.device_count(),
                "config_changes": changes,
            }

        def meta_test(iteration: int, best: float) -> float:
            """Periodic meta-test at ``iteration``: log it, keep ``best.npz``; returns the best score."""
            results = self.evaluate(state.params)
            for name, r in results.items():
                logger.message(
                    f"it {iteration:6d}  meta-test {name}: online acc {r['online']:.3f} "
                    f"(first {cfg.eval.first}: {r['first']:.3f}, last {cfg.eval.last}: {r['last']:.3f})"
                )
                self._write(
                    "eval.csv",
                    iteration,
                    mgr,
                    lambda: logger.table(
                        "eval",
                        {"iteration": iteration, "dataset": name, **r},
                        {f"eval/{name}/{k}_accuracy": v for k, v in r.items()},
                    ),
                )
            score = cfg.eval.selection_score(results)
            if keep_best and self.main and score > best:
                best = score
                record = {
                    **meta_record(),
                    "iteration": iteration,
                    "best_eval": {"score": score, "meta_test": results, "roles": roles},
                }
                self._write(
                    f"{best_path}",
                    iteration,
                    mgr,
                    lambda: artifacts.save(
                        best_path, "learner", {"params": sharding.to_host(state.params)}, record, sidecar=True
                    ),
                )
                logger.message(f"it {iteration:6d}  best meta-test so far ({score:.4f}): {best_path}")
            return best

        def step(it: int) -> None:
            nonlocal state, pos, streak
            stage = pos.stage
            state, m = self.step(state, it, stage)
            loss, acc, gnorm, finite = (float(np.asarray(sharding.to_host(v))) for v in m)
            rec = {
                "iteration": it + 1,
                "stage": stage,
                "loss": loss,
                "accuracy": acc,
                "grad_norm": gnorm,
                "finite": int(finite),
                "elapsed": elapsed + time.time() - t0,
            }
            history.append(rec)
            if finite:
                streak = 0
            else:
                streak += 1
                logger.message(
                    f"iteration {it + 1}: non-finite meta-loss/gradient ({loss}, norm {gnorm}); step skipped "
                    f"({streak} in a row)"
                )
                if streak >= cfg.max_nonfinite:
                    raise MetaTrainingError(
                        f"{streak} non-finite meta-steps in a row (iteration {it + 1}); stopping. Lower the learning "
                        "rate (gradient.lr / es.lr), tighten gradient.clip, enable learner layer_norm, or resume "
                        "from an earlier checkpoint"
                    )
            pos = self.curriculum.observe(pos, it, loss)
            if pos.stage != stage:
                logger.message(f"iteration {it + 1}: curriculum stage {stage} -> {pos.stage}")
                state = self.optimizer(pos.stage).restart(state, self.key(it + 1, salt=1), self.problem(pos.stage))
            self._write("metrics.csv", it + 1, mgr, lambda: logger.iteration(rec))

        def checkpoint(iteration: int) -> Path:
            ckpt = mgr.folder / f"ckpt_{iteration:08d}.npz"
            host_state = sharding.to_host(state)  # every process: gathering sharded inner state is a collective
            if self.main:
                self._write(
                    f"checkpoint {ckpt}",
                    iteration,
                    mgr,
                    lambda: mgr.save(iteration, host_state._asdict(), meta_record()),
                )
            return ckpt

        def after(iteration: int, saved: bool) -> None:
            nonlocal best_score
            if cfg.eval.every and (iteration % cfg.eval.every == 0 or iteration == cfg.iterations):
                best_score = meta_test(iteration, best_score)
            if on_iteration is not None:
                on_iteration(iteration)

        def before() -> None:
            nonlocal best_score
            if cfg.eval.every and cfg.eval.at_start and start == 0:  # the starting learner is a candidate too
                best_score = meta_test(0, best_score)

        self.loop.run(
            logger,
            start,
            cfg.iterations,
            resumed=resume and start > 0,
            step=step,
            due=lambda i: i % cfg.checkpoint.every == 0,
            checkpoint=checkpoint,
            after=after,
            before=before,
            agree=lambda signum: sharding.process_max(signum, self.mesh),  # every process stops at the same step
            guard=processes.peer_guard("meta-training"),
        )
        host_params = sharding.to_host(state.params)
        if self.main and (
            cfg.iterations > start or start == 0
        ):  # iterations=0: the starting learner (e.g. a mapped init)
            info = {
                "command": self.command,
                "seed": cfg.seed,
                "iterations": cfg.iterations,
                "method": cfg.meta_optimizer.name,
                "data": to_dict(cfg.data),
                "wall_clock_s": round(elapsed + time.time() - t0, 1),
                "run": str(out),
            }
            record = {**meta_record(), "iteration": cfg.iterations, "info": info}
            contract = self.input_contract()
            if contract is not None:
                record["input_contract"] = contract
            self._write(
                f"{out / 'learner.npz'}",
                cfg.iterations,
                mgr,
                lambda: artifacts.save(out / "learner.npz", "learner", {"params": host_params}, record, sidecar=True),
            )
        return TrainResult(host_params, max(start, cfg.iterations), history, out)

    def _best_score(self, path: Path, resume: bool, start: int) -> float:
        """The meta-test score of ``best.npz`` to beat. ``-inf`` without the file; a file left by a
        fresh run's earlier attempt, by an iteration after the checkpoint resumed (as eval.csv rows
        past it are) or unreadable is removed."""
        if not path.exists():
            return -math.inf
        score = -math.inf
        if resume:
            try:
                meta = artifacts.load(path, kind="learner").meta
                if int(meta.get("iteration", 0)) <= start:
                    score = float(meta["best_eval"]["score"])
            except (artifacts.ArtifactError, KeyError, TypeError, ValueError) as e:
                self.log(f"note: {path} is unreadable ({e}); a new one is kept from the next meta-test on")
        if score == -math.inf and self.main:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        return score

    def input_contract(self) -> dict | None:
        """The input preprocessing the trained learner expects: that of the last curriculum stage
        (:mod:`vsml.contract`)."""
        last = len(self.curriculum.stages) - 1
        try:
            return contract.from_sampler(
                self.curriculum.sampler_config(self.config.data, last),
                self._problems[last].task.input_shape if last in self._problems else None,
            )
        except Exception as e:  # noqa: BLE001 - a missing contract must not lose the trained learner
            self.log(f"note: no input contract recorded ({e})")
            return None
