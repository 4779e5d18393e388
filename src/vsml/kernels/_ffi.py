"""Loading the compiled fused kernel (``vsml/_vsml_kernels*.so``) and registering its XLA FFI targets.

The library is a plain shared object built by ``pip install`` (setup.py); it is opened with
ctypes and its four handlers are registered with :func:`jax.ffi.register_ffi_target` for the CPU
platform. Nothing here initialises a JAX backend, so importing is safe before
``jax.distributed.initialize``.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import platform
from importlib import metadata

import numpy as np

LIB_MODULE = "vsml._vsml_kernels"
TARGETS = {
    "vsml_dense_fwd": "VsmlDenseFwd",
    "vsml_dense_fwd_cellnorm": "VsmlDenseFwdCellNorm",
    "vsml_dense_bwd": "VsmlDenseBwd",
    "vsml_dense_bwd_cellnorm": "VsmlDenseBwdCellNorm",
}
ISAS = ("avx512", "avx2", "generic", "scalar")


@functools.cache
def load() -> tuple[ctypes.CDLL | None, str]:
    """``(library, "")`` once the FFI targets are registered, else ``(None, reason)``. Cached."""
    try:
        spec = importlib.util.find_spec(LIB_MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return None, (
            "the compiled extension vsml._vsml_kernels is not installed (no C++ compiler or jaxlib "
            "headers when vsml was installed? reinstall with `pip install -e .` and see its log)"
        )
    try:
        lib = ctypes.CDLL(spec.origin)
        lib.vsml_build_info.restype = ctypes.c_char_p
        lib.vsml_kernel_isa.restype = ctypes.c_char_p
        lib.vsml_kernel_isa.argtypes = [ctypes.c_int64]
        lib.vsml_force_isa.argtypes = [ctypes.c_char_p]
        lib.vsml_eval_approx.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
        import jax

        for target, symbol in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except Exception as e:  # noqa: BLE001 - report, fall back to the XLA kernels
        return None, f"loading {spec.origin} failed ({type(e).__name__}: {e})"
    return lib, ""


def build_info() -> str:
    """``"<FFI API major.minor> jaxlib <version compiled against>"`` of the loaded library."""
    lib, reason = load()
    if lib is None:
        raise RuntimeError(reason)
    return lib.vsml_build_info().decode()


def build_jaxlib_matches() -> bool:
    """True when the library was compiled against the jaxlib version running now."""
    try:
        return build_info().split("jaxlib ")[-1] == metadata.version("jaxlib")
    except Exception:  # noqa: BLE001
        return False


def kernel_isa(state_size: int = 16) -> str:
    """Instruction set the fused kernel uses for this state size (``""``: none)."""
    lib, reason = load()
    if lib is None:
        raise RuntimeError(reason)
    return lib.vsml_kernel_isa(state_size).decode()


@functools.cache
def host_isa() -> str:
    """The host's SIMD feature set, e.g. ``"x86_64:avx+avx2+fma"``: XLA's CPU code generation (and
    the fused kernel) pick vector widths and instructions from it, so float32 results of one compiled
    program are bit-identical only between hosts with the same string."""
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    simd = sorted({f for f in flags if f.startswith(("avx", "fma", "amx", "asimd", "sve"))})
    return f"{platform.machine()}:{'+'.join(simd) or 'unknown'}"


def force_isa(name: str | None) -> None:
    """Use at most instruction set ``name`` (and narrower ones where its width does not divide N)
    for later kernel calls; ``None``/"auto": best available. For tests and benchmarks; takes effect
    at run time, without recompiling."""
    lib, reason = load()
    if lib is None:
        raise RuntimeError(reason)
    if lib.vsml_force_isa((name or "auto").encode()) != 0:
        raise ValueError(f"instruction set {name!r} is unknown or not supported by this CPU (known: {ISAS})")


def eval_approx(kind: str, x, state_size: int = 16) -> np.ndarray:
    """The kernel's elementwise ``"sigmoid"`` or ``"tanh"`` on a float32 array (for error checks)."""
    lib, reason = load()
    if lib is None:
        raise RuntimeError(reason)
    x = np.ascontiguousarray(x, np.float32)
    y = np.empty_like(x)
    rc = lib.vsml_eval_approx({"sigmoid": 0, "tanh": 1}[kind], state_size, x.size, x.ctypes.data, y.ctypes.data)
    if rc != 0:
        raise ValueError(f"no kernel for state size {state_size}")
    return y
