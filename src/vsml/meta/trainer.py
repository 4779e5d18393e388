"""``MetaTrainer``: meta-train the meta-parameters of any learner (gradient or ES), with curricula,
sharding over all devices/processes, atomic resumable checkpoints, CSV/TensorBoard logs.

    cfg = load_meta_config("configs/meta_digits_curriculum.yaml", ["iterations=200"])
    trainer = MetaTrainer(cfg)
    result = trainer.run(resume=False)       # -> TrainResult(params, iteration, history, out_dir)

Determinism: iteration ``i`` uses the key ``fold_in(PRNGKey(seed), i)`` for its episodes, noise
and initial states, so a run resumed from a checkpoint continues bit-identically (same device
count). Outputs under ``out`` (default ``runs/meta/<name>``): ``config.yaml``, ``metrics.csv``,
``eval.csv``, ``tb/`` (TensorBoard, when tensorboardX is installed), ``checkpoints/ckpt_*.npz``,
``learner.npz`` (final, loadable with :func:`vsml.checkpoint.load_learner`) and, for VSML,
``la.npz`` + ``la.json`` (the :mod:`vsml.pretrained` LA format).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import numpy as np
import yaml

from vsml.checkpoint import CheckpointError, CheckpointManager, restore, save_checkpoint
from vsml.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from vsml.data.episodes import DatasetSpec, EpisodeSampler, SamplerConfig
from vsml.learners.base import TaskSpec, episode
from vsml.learners.registry import learner_record, make_learner, make_learner_from_record
from vsml.meta import distributed as dist
from vsml.meta.curriculum import Curriculum, CurriculumState, Stage
from vsml.meta.es import ESConfig, es_step
from vsml.meta.gradient import GradientConfig, gradient_step, make_optimizer
from vsml.meta.objective import ObjectiveConfig

#: Config sections that may differ between a run and the checkpoint it resumes.
RESUME_MUTABLE = ("name", "out", "iterations", "eval", "checkpoint", "log", "max_nonfinite", "distributed")


class MetaTrainingError(RuntimeError):
    """Meta-training cannot continue (non-finite streak, bad init, ...)."""


@dataclasses.dataclass(frozen=True)
class LearnerSpec:
    """A registry learner: ``name`` and its options (see :func:`vsml.learners.registry.make_learner`)."""

    name: str = "vsml"
    options: dict = dataclasses.field(default_factory=dict)
    from_init: bool = False  # take name and options from the LA / checkpoint given as `init`


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Periodic meta-test: online accuracy on held-out episodes (``every`` 0 disables)."""

    every: int = 0
    episodes: int = 16
    steps: int | None = None  # default: the last curriculum stage's length
    classes: int | None = None  # default: the last stage's
    datasets: tuple[DatasetSpec, ...] = ()  # default: the training datasets' "test" splits
    first: int = 50  # also report accuracy over the first / last this many steps
    last: int = 100
    seed: int = 12345
    sampler: dict | None = None  # other SamplerConfig overrides for meta-test (e.g. projection: none)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    every: int = 100
    keep: int = 3


@dataclasses.dataclass(frozen=True)
class LogConfig:
    every: int = 10
    progress: bool = True
    csv: bool = True
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "vsml"


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """A meta-training experiment (YAML). See docs/meta_training.md for every key."""

    name: str = "meta"
    out: str | None = None  # default runs/meta/<name>
    seed: int = 0
    iterations: int = 1000
    method: Literal["gradient", "es"] = "gradient"
    learner: LearnerSpec = LearnerSpec()
    init: str | None = None  # start from a checkpoint / run folder / LA file / shipped LA name
    data: SamplerConfig = SamplerConfig(datasets=(DatasetSpec("digits"),), flatten=True, steps=100)
    curriculum: tuple[Stage, ...] = ()
    curriculum_ema: float = 0.9
    objective: ObjectiveConfig = ObjectiveConfig()
    gradient: GradientConfig = GradientConfig()
    es: ESConfig = ESConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    max_nonfinite: int = 10
    distributed: Literal["auto", "on", "off"] = "auto"

    def __post_init__(self):
        if self.iterations < 0 or self.max_nonfinite < 1:
            raise ConfigError("iterations must be >= 0 and max_nonfinite >= 1")
        if self.method not in ("gradient", "es"):
            raise ConfigError(f"method must be 'gradient' or 'es', got {self.method!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/meta/{self.name}")


def meta_config_from_dict(data: dict) -> MetaConfig:
    try:
        return from_dict(MetaConfig, data)
    except ConfigError:
        raise
    except ValueError as e:  # DataError etc. from nested configs
        raise ConfigError(str(e)) from None


def load_meta_config(path: str | os.PathLike | None = None, overrides=()) -> MetaConfig:
    """YAML file (optional) + ``key.sub=value`` overrides -> :class:`MetaConfig`."""
    data = load_yaml(path) if path is not None else {}
    return meta_config_from_dict(apply_overrides(data, list(overrides)))


class TrainResult(NamedTuple):
    params: object
    iteration: int
    history: list  # one dict per iteration
    out_dir: Path


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


@partial(jax.jit, static_argnames=("learner", "task", "n"))
def _eval_correct(learner, task, params, key, sampler, n: int):
    """Online correctness ``[n, T]`` of ``n`` held-out episodes (batch-averaged)."""

    def one(k):
        k_data, k_state = jax.random.split(k)
        xs, ys = sampler.sample_episode(k_data)
        return episode(learner, params, k_state, xs, ys, task)[1].correct.mean(-1)

    return jax.vmap(one)(jax.random.split(key, n))


def _learner_record(init: str) -> dict:
    """``{"name", "options"}`` of the learner an init LA / checkpoint was made with (as stored: a
    VSML record that lacks a semantic option is completed with its legacy value when it is built)."""
    from vsml.checkpoint import _resolve_checkpoint, read_checkpoint

    try:
        ckpt = _resolve_checkpoint(Path(init))
        if ckpt is not None:
            return dict(read_checkpoint(ckpt)[0]["learner"])
        from vsml import pretrained

        return {"name": "vsml", "options": to_dict(pretrained.load(init)[0])}
    except (ValueError, KeyError, ImportError) as e:
        raise ConfigError(f"init {init}: cannot read its learner ({e})") from None


class MetaTrainer:
    """Meta-trains ``config.learner``'s meta-parameters (see module docstring)."""

    def __init__(self, config: MetaConfig, out_dir: str | os.PathLike | None = None, log=None):
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else config.out_dir
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        dist.initialize(config.distributed)
        self.main = dist.is_main()
        spec = {"name": config.learner.name, "options": dict(config.learner.options)}
        try:
            if config.learner.from_init:
                if not config.init:
                    raise ConfigError("learner.from_init needs `init` (a run folder, checkpoint, LA file or LA name)")
                spec = _learner_record(config.init)
                self.learner = make_learner_from_record(spec)  # a record without the semantic options: legacy values
            else:
                self.learner = make_learner(spec["name"], dict(spec["options"]))  # YAML: today's defaults
        except ConfigError as e:
            raise ConfigError(f"learner: {e}") from None
        # what checkpoints store: every VSMLConfig field, so later default changes never alter it
        self.learner_spec = learner_record(spec["name"], self.learner, spec["options"])
        self.curriculum = Curriculum(tuple(config.curriculum), config.curriculum_ema)
        self.mesh = dist.make_mesh()
        n = config.gradient.meta_batch if config.method == "gradient" else config.es.population // 2
        dist.check_divisible(n, "gradient.meta_batch" if config.method == "gradient" else "es.population / 2")
        self._samplers: dict[int, tuple[EpisodeSampler, TaskSpec, object]] = {}
        self.optimizer = (make_optimizer(config.gradient.lr, config.gradient.clip, config.gradient.b1, config.gradient.b2)
                          if config.method == "gradient" else make_optimizer(config.es.lr, config.es.clip))

    # ---- pieces ------------------------------------------------------------------------------

    def log(self, msg: str) -> None:
        if self.main:
            self._log(msg)

    def stage_sampler(self, stage: int):
        """``(sampler, task, replicated sampler)`` of curriculum stage ``stage`` (cached)."""
        if stage not in self._samplers:
            cfg = self.curriculum.sampler_config(self.config.data, stage)
            sampler = EpisodeSampler(cfg)
            task = TaskSpec(sampler.input_shape, sampler.num_classes, sampler.batch_size)
            self.learner.check_task(task)
            self._samplers[stage] = (sampler, task, dist.replicate(sampler, self.mesh))
        return self._samplers[stage]

    def init_params(self):
        """Fresh meta-parameters from the seed, or those of ``config.init``."""
        params = self.learner.init_params(jax.random.PRNGKey(self.config.seed))
        if self.config.init:
            from vsml.checkpoint import load_learner

            learner, loaded = load_learner(self.config.init)
            if type(learner) is not type(self.learner) or getattr(learner, "config", None) != getattr(self.learner, "config", None):
                self.log(f"note: init {self.config.init} was saved with learner {learner!r}; using its parameters with {self.learner!r}")
            t_leaves, t_def = jax.tree_util.tree_flatten(params)
            l_leaves, l_def = jax.tree_util.tree_flatten(loaded)
            if t_def != l_def or any(np.shape(a) != np.shape(b) for a, b in zip(t_leaves, l_leaves)):
                raise MetaTrainingError(f"init {self.config.init}: its parameters do not fit learner {self.config.learner.name} "
                                        f"with options {self.config.learner.options}")
            params = loaded
        return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)

    def step(self, params, opt_state, iteration: int, stage: int):
        """One meta-iteration (jitted inside). Returns ``(params, opt_state, StepMetrics)``."""
        _, task, sampler = self.stage_sampler(stage)
        key = dist.replicate(np.asarray(jax.random.fold_in(jax.random.PRNGKey(self.config.seed), iteration)), self.mesh)
        cfg = self.config
        fn = gradient_step if cfg.method == "gradient" else es_step
        sub = cfg.gradient if cfg.method == "gradient" else cfg.es
        try:
            return fn(self.learner, task, cfg.objective, sub, self.mesh, params, opt_state, key, sampler)
        except (TypeError, ValueError) as e:
            raise MetaTrainingError(f"meta-step failed for learner {cfg.learner.name} on stage {stage}: {e}") from None

    def evaluate(self, params, iteration: int = 0) -> dict[str, dict[str, float]]:
        """Meta-test online accuracy per held-out dataset: ``{name: {online, first, last}}``."""
        ev, cfg = self.config.eval, self.config
        last_stage = len(self.curriculum.stages) - 1
        base = self.curriculum.sampler_config(cfg.data, last_stage)
        datasets = ev.datasets or tuple(DatasetSpec(d.name, "test") for d in base.datasets)
        host = dist.to_host(params)
        out = {}
        for spec in datasets:
            data = to_dict(base)
            data["datasets"] = [to_dict(spec)]
            if ev.steps is not None:
                data["steps"] = ev.steps
            if ev.classes is not None:
                data["num_classes"] = ev.classes
            data.update(ev.sampler or {})
            sampler = EpisodeSampler(from_dict(SamplerConfig, data))
            task = TaskSpec(sampler.input_shape, sampler.num_classes, sampler.batch_size)
            corr = np.asarray(_eval_correct(self.learner, task, host, jax.random.PRNGKey(ev.seed), sampler, ev.episodes))
            label = f"{spec.name}:{spec.split}"
            out[label] = {"online": float(corr.mean()), "first": float(corr[:, : ev.first].mean()),
                          "last": float(corr[:, -ev.last :].mean())}
        return out

    def _check_resumed_learner(self, path, record: dict) -> None:
        """Raise unless the checkpoint's learner record builds this run's learner (a VSML record
        written before a semantic option existed builds the legacy semantics)."""
        try:
            stored = make_learner_from_record(record)
        except ConfigError as e:
            raise CheckpointError(f"checkpoint {path}: its learner cannot be built here: {e}") from None
        if stored == self.learner:
            return
        a, b = getattr(stored, "config", stored), getattr(self.learner, "config", self.learner)
        if dataclasses.is_dataclass(a) and type(a) is type(b):
            diffs = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
            fix = " ".join(f"learner.options.{k}={to_dict(getattr(a, k))}" for k in diffs)
            raise CheckpointError(
                f"checkpoint {path} was made by a learner that differs from this config's in {', '.join(diffs)} "
                f"(a checkpoint written before an option existed uses its legacy value, docs/vsml.md); "
                f"to resume, add the overrides: {fix}")
        raise CheckpointError(f"checkpoint {path} was made by learner {record.get('name')!r}, not this config's")

    # ---- the loop ----------------------------------------------------------------------------

    def run(self, resume: bool = False, *, crash_after: int | None = None) -> TrainResult:
        """Meta-train until ``config.iterations``. ``resume``: continue from the newest checkpoint.

        ``crash_after`` (tests): exit the process abruptly right after finishing that iteration.
        """
        cfg, out = self.config, self.out_dir
        if crash_after is None and os.environ.get("VSML_META_CRASH_AFTER"):
            crash_after = int(os.environ["VSML_META_CRASH_AFTER"])  # fault injection for tests
        mgr = CheckpointManager(out / "checkpoints", keep=cfg.checkpoint.keep)
        params = self.init_params()
        opt_state = jax.tree_util.tree_map(np.asarray, self.optimizer.init(params))
        start, pos, streak, elapsed = 0, self.curriculum.init(), 0, 0.0
        cfg_dict = to_dict(cfg)
        latest = mgr.latest()
        if resume:
            if latest is None:
                raise CheckpointError(f"--resume: no checkpoint in {mgr.folder}")
            params, opt_state, meta = restore(latest, params, opt_state)
            try:  # read the stored config with this version's schema (new keys take their defaults)
                stored = to_dict(meta_config_from_dict(meta.get("config", {})))
            except ConfigError as e:
                raise CheckpointError(f"checkpoint {latest}: its config is not valid for this vsml version ({e})") from None
            unused = "es" if cfg.method == "gradient" else "gradient"  # the other method's section is irrelevant
            changed = [k for k in _diff(stored, cfg_dict) if k.split(".")[0] not in (*RESUME_MUTABLE, unused)]
            if meta.get("learner"):  # compare what the learners compute, not how their options were spelled
                self._check_resumed_learner(latest, meta["learner"])
                changed = [k for k in changed if not k.startswith("learner.options.")]
            if changed:
                raise CheckpointError(f"checkpoint {latest} was written with a different config ({', '.join(changed)}); "
                                      "resume with the same config or start a new run folder")
            start, streak, elapsed = int(meta["iteration"]), int(meta.get("nonfinite_streak", 0)), float(meta.get("elapsed", 0.0))
            pos = CurriculumState(*meta["curriculum"])
            self.log(f"resumed from {latest} at iteration {start} (stage {pos.stage})")
        elif latest is not None:
            raise CheckpointError(f"{out} already holds checkpoints (newest {latest.name}); pass --resume to continue "
                                  "or choose another out folder (nothing was overwritten)")
        if self.main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
        params, opt_state = dist.replicate(params, self.mesh), dist.replicate(opt_state, self.mesh)
        logger = _Logger(self, resume=resume and start > 0)
        history: list[dict] = []

        def meta_record():
            return {"config": cfg_dict, "learner": self.learner_spec, "seed": cfg.seed,
                    "curriculum": list(pos), "nonfinite_streak": streak, "elapsed": elapsed + time.time() - t0,
                    "processes": jax.process_count(), "devices": jax.device_count()}

        t0 = time.time()
        try:
            logger.start(start, cfg.iterations)
            for it in range(start, cfg.iterations):
                stage = pos.stage
                params, opt_state, m = self.step(params, opt_state, it, stage)
                loss, acc, gnorm, finite = (float(np.asarray(dist.to_host(v))) for v in m)
                rec = {"iteration": it + 1, "stage": stage, "loss": loss, "accuracy": acc, "grad_norm": gnorm,
                       "finite": int(finite), "elapsed": elapsed + time.time() - t0}
                history.append(rec)
                if finite:
                    streak = 0
                else:
                    streak += 1
                    self.log(f"iteration {it + 1}: non-finite meta-loss/gradient ({loss}, norm {gnorm}); step skipped "
                             f"({streak} in a row)")
                    if streak >= cfg.max_nonfinite:
                        raise MetaTrainingError(
                            f"{streak} non-finite meta-steps in a row (iteration {it + 1}); stopping. Lower the learning "
                            "rate (gradient.lr / es.lr), tighten gradient.clip, enable learner layer_norm, or resume "
                            "from an earlier checkpoint")
                pos = self.curriculum.observe(pos, it, loss)
                if pos.stage != stage:
                    self.log(f"iteration {it + 1}: curriculum stage {stage} -> {pos.stage}")
                logger.iteration(rec)
                if self.main and ((it + 1) % cfg.checkpoint.every == 0 or it + 1 == cfg.iterations):
                    mgr.save(it + 1, dist.to_host(params), dist.to_host(opt_state), meta_record())
                if cfg.eval.every and ((it + 1) % cfg.eval.every == 0 or it + 1 == cfg.iterations):
                    logger.eval(it + 1, self.evaluate(params, it + 1))
                if crash_after is not None and it + 1 == crash_after:
                    logger.close()
                    os._exit(17)
        finally:
            logger.close()
        host_params = dist.to_host(params)
        if self.main and cfg.iterations > start:
            save_checkpoint(out / "learner.npz", host_params, {}, {**meta_record(), "iteration": cfg.iterations})
            if cfg.learner.name == "vsml":
                try:
                    from vsml import pretrained

                    pretrained.save(out / "la.npz", self.learner.config, host_params,
                                    {"command": " ".join(sys.argv), "seed": cfg.seed, "iterations": cfg.iterations,
                                     "wall_clock_s": elapsed + time.time() - t0, "run": str(out)})
                except Exception as e:  # noqa: BLE001 - optional export
                    self.log(f"note: could not export la.npz ({e})")
        return TrainResult(host_params, max(start, cfg.iterations), history, out)


def _truncate_csv(path: Path, last_iteration: int) -> None:
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= last_iteration]
    path.write_text("".join(keep))


class _Logger:
    """Progress bar (rich), CSV, TensorBoard and (optional) wandb; only on the main process."""

    FIELDS = ("iteration", "stage", "loss", "accuracy", "grad_norm", "finite", "elapsed")

    def __init__(self, trainer: MetaTrainer, resume: bool):
        self.t, self.cfg = trainer, trainer.config.log
        self.active = trainer.main
        self.progress = self.tb = self.wandb = None
        self.csv_file = self.eval_file = None
        self.resume = resume
        self._last = (time.time(), 0)

    def start(self, start: int, total: int):
        if not self.active:
            return
        out = self.t.out_dir
        if self.cfg.csv:
            mode = "a" if self.resume else "w"
            if self.resume:  # drop rows logged after the checkpoint we resume from (they are redone)
                for name in ("metrics.csv", "eval.csv"):
                    _truncate_csv(out / name, start)
            self.csv_file = open(out / "metrics.csv", mode, newline="")
            self.csv = csv.DictWriter(self.csv_file, self.FIELDS)
            if mode == "w":
                self.csv.writeheader()
            self.eval_file = open(out / "eval.csv", mode, newline="")
            self.eval_csv = csv.DictWriter(self.eval_file, ("iteration", "dataset", "online", "first", "last"))
            if mode == "w":
                self.eval_csv.writeheader()
        if self.cfg.tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:
                pass
        if self.cfg.wandb:
            try:
                import wandb

                self.wandb = wandb.init(project=self.cfg.wandb_project, name=self.t.config.name, config=to_dict(self.t.config))
            except ImportError:
                self.t.log("note: log.wandb is on but wandb is not installed; skipping")
        if self.cfg.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("meta-train"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self.progress.start()
            self.task = self.progress.add_task("meta", total=total, completed=start, info="")
        self._last = (time.time(), start)

    def iteration(self, rec: dict):
        if not self.active:
            return
        if self.csv_file:
            self.csv.writerow(rec)
        if self.tb:
            for k in ("loss", "accuracy", "grad_norm"):
                self.tb.add_scalar(f"meta/{k}", rec[k], rec["iteration"])
            self.tb.add_scalar("curriculum/stage", rec["stage"], rec["iteration"])
        if self.wandb:
            self.wandb.log({f"meta/{k}": rec[k] for k in ("loss", "accuracy", "grad_norm", "stage")}, step=rec["iteration"])
        now = time.time()
        t_prev, i_prev = self._last
        if self.progress:
            rate = (rec["iteration"] - i_prev) / max(now - t_prev, 1e-9)
            self.progress.update(self.task, completed=rec["iteration"],
                                 info=f"loss {rec['loss']:.4f} acc {rec['accuracy']:.3f} stage {rec['stage']} {rate:.2f} it/s")
        if rec["iteration"] % self.cfg.every == 0:
            if not self.progress:
                rate = (rec["iteration"] - i_prev) / max(now - t_prev, 1e-9)
                self.t.log(f"it {rec['iteration']:6d}  stage {rec['stage']}  loss {rec['loss']:.4f}  acc {rec['accuracy']:.3f}  "
                           f"|g| {rec['grad_norm']:.3g}  {rate:.2f} it/s")
            self._last = (now, rec["iteration"])
            if self.csv_file:
                self.csv_file.flush()

    def eval(self, iteration: int, results: dict):
        if not self.active:
            return
        for name, r in results.items():
            self.t.log(f"it {iteration:6d}  meta-test {name}: online acc {r['online']:.3f} "
                       f"(first {self.t.config.eval.first}: {r['first']:.3f}, last {self.t.config.eval.last}: {r['last']:.3f})")
            if self.eval_file:
                self.eval_csv.writerow({"iteration": iteration, "dataset": name, **r})
                self.eval_file.flush()
            if self.tb:
                for k, v in r.items():
                    self.tb.add_scalar(f"eval/{name}/{k}_accuracy", v, iteration)
            if self.wandb:
                self.wandb.log({f"eval/{name}/{k}_accuracy": v for k, v in r.items()}, step=iteration)

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None
        for f in (self.csv_file, self.eval_file):
            if f:
                f.close()
        self.csv_file = self.eval_file = None
        if self.tb:
            self.tb.close()
            self.tb = None
        if self.wandb:
            self.wandb.finish()
            self.wandb = None
