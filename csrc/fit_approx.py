"""Fit the polynomials used by the fused kernel's exponentials (csrc/dense_impl.h), print errors.

    python csrc/fit_approx.py

The kernel computes 2^y = 2^n * 2^f with n = round(y), f = y - n in [-1/2, 1/2], and writes
2^f = 1 + f*q(f). The constant term is exactly 1, so f*q(f) is also 2^f - 1 without cancellation
near f = 0 (tanh uses that form: tanh(x) = -(2^y - 1) / (2^y + 1), y = -2x*log2(e)).

  * sigmoid: q of degree 4 fitted for minimax relative error of 2^f;
  * tanh:    q of degree 5 fitted for minimax relative error of 2^f - 1 (tanh keeps a small
    relative error near 0, where 2^y - 1 is small).

Fit: Lawson's iteratively reweighted least squares on a fine grid (converges to the minimax
polynomial), in float64; the coefficients are then rounded to float32 and the script prints them
(as exact hex literals) with the approximation error of the rounded coefficients, evaluated in
float64. The kernel's end-to-end error in float32 arithmetic (range reduction, reciprocal) is
measured by benchmarks/approx_error.py and bounded in tests/test_kernels.py.
"""

import numpy as np

LN2 = np.log(2.0)


def fit(deg: int, criterion: str, iters: int = 300) -> np.ndarray:
    """Coefficients c1..c_{deg+1} of q(f) = c1 + c2 f + ... (float64)."""
    f = np.linspace(-0.5, 0.5, 20001)
    f = f[f != 0]
    target = np.expm1(f * LN2) / f  # exact q
    scale = np.abs(target) if criterion == "expm1" else 2.0**f / np.abs(f)  # relative error denominators
    basis = np.stack([f**k for k in range(deg + 1)], 1)
    w = np.ones_like(f) / f.size
    for _ in range(iters):
        sw = np.sqrt(w) / scale
        coef, *_ = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)
        err = np.abs(basis @ coef - target) / scale
        w = w * err
        w /= w.sum()
    return coef


def errors(coef32: np.ndarray) -> tuple[float, float]:
    """(max rel. error of 1 + f q(f) vs 2^f, max rel. error of f q(f) vs 2^f - 1) on [-1/2, 1/2]."""
    f = np.linspace(-0.5, 0.5, 400001)
    f = f[f != 0]
    q = np.polyval(coef32.astype(np.float64)[::-1], f)
    exact_m1 = np.expm1(f * LN2)
    return (float(np.max(np.abs(1 + f * q - 2.0**f) / 2.0**f)),
            float(np.max(np.abs(f * q - exact_m1) / np.abs(exact_m1))))


if __name__ == "__main__":
    for name, deg, criterion in (("SIG", 4, "exp2"), ("TANH", 5, "expm1")):
        c32 = fit(deg, criterion).astype(np.float32)
        e_exp2, e_m1 = errors(c32)
        print(f"// {name}: q of degree {deg}, fitted for relative error of {'2^f' if criterion == 'exp2' else '2^f - 1'}; "
              f"max rel. error: 2^f {e_exp2:.3g}, 2^f - 1 {e_m1:.3g}")
        for k, c in enumerate(c32):
            print(f"constexpr float k{name}{k + 1} = {float(c).hex()}f;  // {float(c):.9g} (Taylor {LN2 ** (k + 1) / np.prod(range(1, k + 2)):.9g})")
