"""Measured error of the fused kernel's sigmoid and tanh (every instruction set this CPU runs).

Evaluates the kernel's own vector code (``vsml.kernels._ffi.eval_approx``) on every float32 in
[-1, 1] with exponent >= -20 plus a dense grid over [-30, 30], against float64 references, and
prints the maximum absolute error, the maximum relative error, and the relative error in units of
float32 epsilon (2^-23).

    python benchmarks/approx_error.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def inputs() -> np.ndarray:
    small = np.arange(0x35800000, 0x3F800001, 7, dtype=np.uint32).view(np.float32)  # 2^-20 .. 1
    grid = np.linspace(-30, 30, 2_000_001, dtype=np.float32)
    return np.concatenate([small, -small, grid, np.float32([0.0])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from vsml import kernels
    from vsml.kernels import _ffi

    if not kernels.available():
        print(f"fused kernel unavailable: {kernels.unavailable_reason()}")
        return 1
    x = inputs()
    x64 = x.astype(np.float64)
    exact = {"sigmoid": 1 / (1 + np.exp(-x64)), "tanh": np.tanh(x64)}
    out = {}
    try:
        for isa in _ffi.ISAS:
            try:
                _ffi.force_isa(isa)
            except ValueError:
                continue
            for kind, ref in exact.items():
                y = _ffi.eval_approx(kind, x).astype(np.float64)
                err = np.abs(y - ref)
                rel = err[ref != 0] / np.abs(ref[ref != 0])
                out[f"{isa}/{kind}"] = {
                    "max_abs": float(err.max()),
                    "max_rel": float(rel.max()),
                    "max_rel_eps": float(rel.max() / 2.0**-23),
                }
                print(
                    f"{isa:8s} {kind:8s} max abs error {err.max():.2e}, max rel error {rel.max():.2e} "
                    f"({rel.max() / 2.0**-23:.2f} eps)"
                )
    finally:
        _ffi.force_isa(None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
