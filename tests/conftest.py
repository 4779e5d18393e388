"""Test-session setup: one JAX persistent compilation cache for the whole run.

Many tests build the same computation again (a fresh learner object, a subprocess running the
same config), which XLA would otherwise compile from scratch each time. The cache lives in a
temporary folder made once per test run (inherited by pytest-xdist workers and by the
subprocesses the fault and distributed tests start) and removed at the end; results are the
same with or without it. Set ``JAX_COMPILATION_CACHE_DIR`` yourself to keep or disable it
(an empty value disables it).

Tests also compile without XLA's expensive LLVM passes and, where the installed XLA still has it,
with its older CPU code generator (``--xla_cpu_use_fusion_emitters=false``, which compiles these
programs in about half the time). These are ``TEST_XLA_FLAGS``, appended to any ``XLA_FLAGS`` you
set; ``VSML_TEST_FULL_OPT=1`` keeps XLA's default optimisation and code generation. Nearly every
program here runs once on tiny inputs, so compile time is most of the suite's cost. Results stay
float32-exact to the tests' tolerances; the bit-for-bit checks compare runs made under the same
flags, or records made under them (``tests/test_pretrained.py`` says which).
"""

from __future__ import annotations

import atexit
import importlib.util
import mmap
import os
import shutil
import tempfile
from pathlib import Path


def _xla_knows(flag: str) -> bool:
    """Whether the installed jaxlib's XLA has the debug option ``flag`` (an unknown flag in
    ``XLA_FLAGS`` aborts the process; XLA is retiring the older CPU emitters)."""
    spec = importlib.util.find_spec("jaxlib")
    for lib in Path(spec.origin).parent.glob("*.so") if spec and spec.origin else ():
        if lib.stat().st_size == 0:
            continue
        with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(flag.encode()) >= 0:
                return True
    return False


TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if _xla_knows("xla_cpu_use_fusion_emitters"):
    TEST_XLA_FLAGS += " --xla_cpu_use_fusion_emitters=false"
if not os.environ.get("VSML_TEST_FULL_OPT"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()

os.environ.setdefault("MPLBACKEND", "Agg")  # plots are written to files, never shown (vsml/eval/plots.py)

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set before jax is imported: jax reads these at import
    _cache = tempfile.mkdtemp(prefix="vsml-tests-jax-cache-")
    _owner = os.getpid()
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    # programs that compile in under 0.2 s (eager ops, tiny jits) cost more to store than to redo
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
    atexit.register(lambda: os.getpid() == _owner and shutil.rmtree(_cache, ignore_errors=True))
