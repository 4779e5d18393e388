"""Fused CPU kernels for the VSML inner loop (C++ in ``csrc/``, called through ``jax.ffi``).

    from vsml import kernels
    kernels.available()            # the compiled kernel loaded and works with this jaxlib
    kernels.unavailable_reason()   # why not (None when available)
    kernels.resolve_kernel("auto") # "fused" | "xla" for a VSMLConfig.kernel value / VSML_KERNEL
    kernels.host_isa()             # this CPU's SIMD features (bit-identical float32 results need equal ones)
    kernels.unsupported(*arrays)   # why these operands take the XLA path (None: the kernel handles them)
    kernels.dense_ticks(...)       # one dense-layer tick (all micro ticks + reductions), fused

Dense layers run on the fused kernel when the kernel setting resolves to "fused" and the operands
are supported (float32); otherwise, and for every conv layer, the XLA kernels run. Both are built
from the primitives of :mod:`vsml.kernels.ops` (LSTM gates, products, LayerNorm, message heads).
Nothing here imports from :mod:`vsml.learners`.

Organisation, approximations and measurements: docs/benchmarks.md.
"""

from vsml.kernels._ffi import host_isa
from vsml.kernels.dense import (
    ENV_VAR,
    KINDS,
    FusedKernelWarning,
    KernelUnavailableError,
    available,
    dense_ticks,
    dense_ticks_xla,
    fused_dense_layer,
    resolve_kernel,
    unavailable_reason,
    unsupported,
)

__all__ = [
    "ENV_VAR",
    "KINDS",
    "FusedKernelWarning",
    "KernelUnavailableError",
    "available",
    "dense_ticks",
    "dense_ticks_xla",
    "fused_dense_layer",
    "host_isa",
    "resolve_kernel",
    "unavailable_reason",
    "unsupported",
]
