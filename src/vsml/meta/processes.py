"""Processes of a multi-process run: starting them, making them agree, failing fast.

    initialize()            # jax.distributed.initialize() when launched by SLURM / MPI / env vars
    agree(record, timeout)  # every process runs the same run (config, code, checkpoint), or all stop
    with peer_guard("the meta-step"): ...   # a lost peer -> PeerLostError, not a runtime traceback
    hard_exit(EXIT_PEER_LOST)               # leave without the runtime's shutdown barrier

Multi-process launches are detected from the environment: SLURM (``SLURM_JOB_ID`` with
``SLURM_NTASKS > 1``), Open MPI / MPICH / PMIx (``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``,
``PMIX_RANK``), or explicit ``VSML_COORDINATOR=host:port``, ``VSML_NUM_PROCESSES``,
``VSML_PROCESS_ID``. On CPU the cross-process collectives use gloo.

Failing fast (:class:`DistributedConfig`): a process that does not join within
``startup_timeout`` seconds, processes that disagree on the run (:func:`agree`), or a peer lost
mid-run (:func:`peer_guard`) end every process with a :class:`DistributedError` naming the
process and what to do, never a hang or the runtime's own abort; :func:`hard_exit` then leaves
without the runtime's shutdown barrier (which would wait for the lost peer). The arrays and the
mesh they are split over: :mod:`vsml.meta.sharding`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import sys
import threading
import time
from typing import Annotated, Literal

import jax

from vsml.config import ConfigError, Range, check_ranges
from vsml.errors import VSMLError

_initialized = False
_agree_round = 0

#: Exit code of a process whose peer is missing or lost (EX_TEMPFAIL: restart all processes, with --resume).
EXIT_PEER_LOST = 75


class DistributedError(VSMLError, RuntimeError):
    """The distributed runtime could not be set up, or its processes disagree."""


class PeerLostError(DistributedError):
    """A process of a multi-process run did not join, or was lost mid-run."""

    exit_code = EXIT_PEER_LOST


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-process settings (``distributed:`` in a meta-training config; the plain string
    ``auto``/``on``/``off`` sets ``mode`` alone).

    ``startup_timeout``: seconds every process has to join and report its fingerprint;
    ``peer_timeout``: seconds without a heartbeat after which the runtime counts a peer as lost.
    """

    mode: Literal["auto", "on", "off"] = "auto"
    startup_timeout: Annotated[float, Range(">=1")] = 300.0
    peer_timeout: Annotated[float, Range(">=1")] = 60.0

    def __post_init__(self):
        if self.mode not in ("auto", "on", "off"):
            raise ConfigError(f"distributed.mode must be auto, on or off, got {self.mode!r}")
        check_ranges(self, "distributed")


def distributed_config(setting) -> DistributedConfig:
    """A :class:`DistributedConfig` from one, or from a mode string."""
    if isinstance(setting, DistributedConfig):
        return setting
    return DistributedConfig(mode=setting or "auto")


def _env_launch() -> dict | None:
    """Explicit launch parameters from VSML_* variables, else None (auto-detect / single process)."""
    if "VSML_COORDINATOR" not in os.environ:
        return None
    try:
        return dict(
            coordinator_address=os.environ["VSML_COORDINATOR"],
            num_processes=int(os.environ["VSML_NUM_PROCESSES"]),
            process_id=int(os.environ["VSML_PROCESS_ID"]),
        )
    except (KeyError, ValueError) as e:
        raise DistributedError(
            "VSML_COORDINATOR is set, so VSML_NUM_PROCESSES and VSML_PROCESS_ID must be integers too"
        ) from e


def launched_multiprocess() -> bool:
    """True when the environment describes a launch of more than one process."""
    env = os.environ
    if "VSML_COORDINATOR" in env:
        return int(env.get("VSML_NUM_PROCESSES", "1")) > 1
    if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1"))) > 1:
        return True
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if int(env.get(var, "1")) > 1:
            return True
    return "PMIX_RANK" in env


def hard_exit(code: int, message: str | None = None, linger: float = 0.0) -> None:
    """Print ``message`` (stderr), flush, and leave at once with ``code``: no atexit handlers, so
    no runtime shutdown barrier waiting for a peer that is gone.

    ``linger`` (seconds): when every process leaves on the same agreed outcome (e.g. they
    disagree on the config), process 0, which hosts the coordination service, waits this long so
    that the others leave first: a peer still running when the service goes away is aborted by the
    runtime instead of exiting with the project's message."""
    if message:
        print(message, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    if linger > 0 and is_multiprocess():
        with contextlib.suppress(Exception):
            if jax.process_index() == 0:
                time.sleep(linger)
    os._exit(code)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def _startup_message(cfg: DistributedConfig, kwargs: dict) -> str:
    n, me, coord = kwargs.get("num_processes"), kwargs.get("process_id"), kwargs.get("coordinator_address")
    who = f"process {me} of {n}" if n is not None else "this process"
    msg = f"not every process of this run joined within distributed.startup_timeout = {cfg.startup_timeout:g} s ({who}"
    msg += f", coordinator {coord})" if coord else ")"
    if coord and me not in (None, 0) and not _reachable(coord):
        msg += f". The coordinator (process 0 at {coord}) is not reachable: start it, or check VSML_COORDINATOR"
    else:
        if n == 2 and me in (0, 1):
            msg += f". Process {1 - me} has not joined"
        msg += (
            ". Start every process with the same VSML_COORDINATOR and VSML_NUM_PROCESSES and a distinct "
            "VSML_PROCESS_ID in 0..n-1 (or the same scheduler launch), or raise distributed.startup_timeout"
        )
    return msg


def initialize(setting="auto") -> bool:
    """Start ``jax.distributed`` if this is a multi-process launch (``setting``: a mode auto | on |
    off, or a :class:`DistributedConfig`).

    Must run before any JAX computation. Returns True when the distributed runtime is active. A
    process that is still waiting for its peers after ``startup_timeout`` prints a
    :class:`PeerLostError` message and exits with :data:`EXIT_PEER_LOST`.
    """
    global _initialized
    if _initialized:
        return True
    cfg = distributed_config(setting)
    if cfg.mode == "off" or (cfg.mode == "auto" and not launched_multiprocess()):
        return False
    kwargs = _env_launch() or {}
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
        try:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        except Exception:  # noqa: BLE001 - older/newer jax without the option
            pass
    try:  # SIGINT / SIGTERM are handled by the trainer (vsml.runs.GracefulStop + process_max), not by JAX's notifier
        jax.config.update("jax_enable_preemption_service", False)
    except Exception:  # noqa: BLE001 - a jax without the option
        pass
    # Our own watchdogs end a wait first: the runtime's timeouts end it with an abort.
    timeouts = dict(
        initialization_timeout=int(cfg.startup_timeout) + 60,
        heartbeat_timeout_seconds=2 * int(cfg.peer_timeout) + 10,
        shutdown_timeout_seconds=max(2, int(cfg.peer_timeout)),
    )
    watchdog = threading.Timer(
        cfg.startup_timeout, lambda: hard_exit(EXIT_PEER_LOST, f"vsml: error: {_startup_message(cfg, kwargs)}")
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(**kwargs, **timeouts)
    except Exception as e:  # noqa: BLE001 - surface one clear line
        raise DistributedError(f"jax.distributed.initialize failed ({type(e).__name__}: {e})") from None
    finally:
        watchdog.cancel()
    _initialized = True
    if jax.process_count() > 1:
        _PeerWatch(_client(), jax.process_index(), jax.process_count(), cfg.peer_timeout).start()
    return True


class _PeerWatch(threading.Thread):
    """Every process bumps a counter in the coordination service's key-value store a few times per
    ``timeout``; a peer whose counter stands still for ``timeout`` seconds (it hangs, or its host is
    gone), or a coordinator that stops answering, ends this process with a message naming it
    before the runtime's own heartbeat check would abort it. Stopped at interpreter exit, before
    the runtime's shutdown."""

    def __init__(self, client, me: int, n: int, timeout: float):
        super().__init__(name="vsml-peer-watch", daemon=True)
        self.client, self.me, self.n, self.timeout = client, me, n, float(timeout)
        self.stopped = threading.Event()
        import atexit

        atexit.register(self.stopped.set)

    def _fire(self, who: str, why: str) -> None:
        if self.stopped.is_set():
            return
        hard_exit(
            EXIT_PEER_LOST,
            f"vsml: error: process {self.me} lost contact with {who}: {why}. This {self.n}-process run "
            f"cannot continue; every process stops. Check that process (and its host), then restart all {self.n} "
            "with --resume (the last checkpoint is intact)",
        )

    def _get(self, key: str):
        try:
            return self.client.key_value_try_get(key)
        except Exception as e:  # noqa: BLE001
            if "NOT_FOUND" in str(e) or "not found" in str(e).lower():
                return None
            raise

    def run(self) -> None:
        import time

        interval, count, failing, t_start = max(0.2, self.timeout / 5), 0, None, time.monotonic()
        seen: dict[int, tuple] = {}
        while not self.stopped.wait(interval):
            count += 1
            now = time.monotonic()
            guard = threading.Timer(
                self.timeout,
                self._fire,
                (
                    "the coordinator (process 0)",
                    f"it stopped answering for {self.timeout:g} s (distributed.peer_timeout)",
                ),
            )
            guard.daemon = True
            guard.start()
            try:
                self.client.key_value_set(f"vsml/alive/{self.me}", str(count), allow_overwrite=True)
                values = {i: self._get(f"vsml/alive/{i}") for i in range(self.n) if i != self.me}
                failing = None
            except Exception:  # noqa: BLE001 - the coordinator is gone (or going: interpreter exit)
                values, failing = None, failing or now
                if now - failing > self.timeout:
                    self._fire("the coordinator (process 0)", "it no longer answers")
            finally:
                guard.cancel()
            for peer, v in (values or {}).items():
                if peer not in seen or seen[peer][0] != v:
                    seen[peer] = (v, now if peer in seen or v is not None else t_start)
                elif now - seen[peer][1] > self.timeout:
                    self._fire(
                        f"process {peer}",
                        f"no sign of life for {self.timeout:g} s (distributed.peer_timeout); it "
                        "hangs, or its host is unreachable",
                    )


def is_multiprocess() -> bool:
    return _initialized and jax.process_count() > 1


def _client():
    from jax._src import distributed as jd  # the coordination service's key-value store

    client = getattr(jd.global_state, "client", None)
    if client is None:
        raise DistributedError("the distributed runtime is not initialised")
    return client


def _flatten(d, prefix="") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def agree(record: dict, timeout: float, what: str = "run") -> None:
    """Every process contributes ``record`` (JSON-able; ``record["error"]``: this process cannot
    start, and why); unless all records are equal and error-free, every process raises the same
    :class:`DistributedError` naming the processes and the differing keys with their values. A
    no-op in a single process. Processes that do not report within ``timeout`` s raise
    :class:`PeerLostError`."""
    global _agree_round
    if not is_multiprocess():
        return
    client, me, n = _client(), jax.process_index(), jax.process_count()
    _agree_round += 1
    key = f"vsml/agree/{_agree_round}"
    client.key_value_set(f"{key}/{me}", json.dumps(record, sort_keys=True, default=str))
    records, missing = {}, []
    for i in range(n):
        try:
            records[i] = json.loads(client.blocking_key_value_get(f"{key}/{i}", int(timeout * 1000)))
        except Exception:  # noqa: BLE001 - a timeout or a lost coordinator
            missing.append(i)
    with contextlib.suppress(Exception):  # nobody leaves before everyone has read every record
        client.wait_at_barrier(f"{key}/read", int(timeout * 1000))
    if missing:
        raise PeerLostError(
            f"process(es) {', '.join(map(str, missing))} did not report their {what} settings within "
            f"{timeout:g} s (distributed.startup_timeout); restart every process"
        )
    failed = {i: r["error"] for i, r in records.items() if r.get("error")}
    if failed and len(failed) == n and len(set(failed.values())) == 1:
        raise DistributedError(f"{what} cannot start (every process found the same): {failed[0]}")
    if failed:
        raise DistributedError(
            f"{what} cannot start on every process, so none starts: "
            + "; ".join(f"process {i}: {e}" for i, e in failed.items())
        )
    flat = {i: _flatten({k: v for k, v in r.items() if k != "error"}) for i, r in records.items()}
    keys = sorted(set().union(*flat.values()))
    diffs = []
    for k in keys:
        values = [flat[i].get(k) for i in range(n)]
        if any(v != values[0] for v in values):
            diffs.append(f"{k}: " + ", ".join(f"process {i} has {json.dumps(v)}" for i, v in enumerate(values)))
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs)} differences)" if len(diffs) > 8 else "")
        raise DistributedError(
            f"the processes of this {what} disagree, so its results would be wrong: {shown}. "
            "Start every process with the same config, overrides, code and run folder"
        )


_PEER_FAILURE = re.compile(
    r"gloo|connection (closed|reset|refused)|socket closed|unavailable|heartbeat|"
    r"deadline.?exceeded|broken pipe|peer",
    re.I,
)


@contextlib.contextmanager
def peer_guard(where: str = "the run"):
    """Turn a failed collective of a multi-process run (a peer died or hung) into a
    :class:`PeerLostError` naming the peer where it can, instead of a runtime traceback."""
    try:
        yield
    except PeerLostError:
        raise
    except Exception as e:
        if not is_multiprocess() or not _PEER_FAILURE.search(str(e)):
            raise
        me, n = jax.process_index(), jax.process_count()
        peer = f"process {1 - me}" if n == 2 else "another process"
        addr = re.search(r"peer \[?([^\]\s]+)\]?(:\d+)?", str(e))
        detail = f" ({addr.group(0)})" if addr else ""
        raise PeerLostError(
            f"process {me} lost contact with {peer}{detail} during {where}: it died or was killed, so this "
            f"{n}-process run cannot continue. Every process stops; restart all {n} with --resume "
            "(the last checkpoint is intact)"
        ) from None


def process_index() -> int:
    return jax.process_index()


def is_main() -> bool:
    """True on the process that writes logs and checkpoints."""
    return jax.process_index() == 0


def check_divisible(n: int, what: str) -> None:
    d = jax.device_count()
    if n % d:
        raise DistributedError(f"{what} = {n} must be divisible by the number of devices ({d})")
