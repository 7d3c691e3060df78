#!/usr/bin/python3
"""Fits the polynomial coefficients of ffnserve's vector activation kernels.

Near-minimax relative-error fits (Lawson's iteratively reweighted least squares
on a dense grid, in float64), rounded to float32 and checked by evaluating
Horner's rule in float32. Prints C++ constant tables for
kernels/src/simd/activation_math-inl.h. Needs Debian's python3-numpy.

    /usr/bin/python3 tools/fit_polynomials.py
"""
import math

import numpy as np


def lawson_fit(t, target, degree, iterations=200):
    """Coefficients c[0..degree] minimising max |poly(t) - target| / |target|."""
    basis = np.vander(t, degree + 1, increasing=True)
    scale = 1.0 / np.abs(target)
    weights = np.ones_like(t) / len(t)
    coeffs = None
    for _ in range(iterations):
        w = np.sqrt(weights) * scale
        coeffs, *_ = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)
        err = np.abs(basis @ coeffs - target) * scale
        weights = weights * err
        weights /= weights.sum()
    return coeffs


def horner_f32(coeffs, t):
    """Horner's rule in float32 with fused multiply-adds (one rounding per step)."""
    t = t.astype(np.float32).astype(np.float64)
    acc = np.full_like(t, float(np.float32(coeffs[-1])))
    for c in reversed(coeffs[:-1]):
        acc = (acc * t + float(np.float32(c))).astype(np.float32).astype(np.float64)
    return acc


def report(name, coeffs, t, target):
    c32 = [float(np.float32(c)) for c in coeffs]
    rel = np.max(np.abs(horner_f32(c32, t).astype(np.float64) - target) / np.abs(target))
    fit = np.max(np.abs(np.polyval(coeffs[::-1], t) - target) / np.abs(target))
    print(f"// {name}: fit rel error {fit:.2e}, float32 Horner {rel:.2e} ({rel / 2**-24:.2f} ulp)")
    return c32


def fmt(values):
    return ", ".join(f"{v:.9e}f" for v in values)


def fit_exp():
    # e^r on |r| <= ln2/2, as 1 + r + r^2 * P(r).
    t = np.linspace(-math.log(2) / 2, math.log(2) / 2, 20001)
    t = t[np.abs(t) > 1e-3]  # below, float64 cancellation would dominate the target
    target = (np.expm1(t) - t) / t**2
    c = report("exp: (e^r - 1 - r) / r^2", lawson_fit(t, target, 5), t, target)
    print(f"constexpr float kExpPoly[] = {{{fmt(c)}}};")


def fit_expm1():
    # e^x - 1 on |x| <= 0.5, as x + x^2 * P(x).
    t = np.linspace(-0.5, 0.5, 20001)
    t = t[np.abs(t) > 1e-3]
    target = (np.expm1(t) - t) / t**2
    c = report("expm1: (e^x - 1 - x) / x^2", lawson_fit(t, target, 7), t, target)
    print(f"constexpr float kExpm1Poly[] = {{{fmt(c)}}};")


def fit_tanh(limit):
    # tanh(x) on |x| <= limit, as x + x^3 * P(x^2).
    x = np.linspace(0.01, limit, 20001)  # below 0.01 float64 cancellation dominates
    y = x * x
    target = (np.tanh(x) - x) / (x**3)
    c = report(f"tanh: (tanh x - x) / x^3 in x^2, |x| <= {limit}", lawson_fit(y, target, 3), y, target)
    print(f"constexpr float kTanhSmallLimit = {limit}f;")
    print(f"constexpr float kTanhPoly[] = {{{fmt(c)}}};")


def fit_gelu_small(limit, degree):
    # gelu(x) on |x| <= limit, as 0.5x + x^2 * Q(x^2), Q(y) = erf(sqrt(y/2)) / (2 sqrt(y)).
    x = np.linspace(1e-3, limit, 20001)
    y = x * x
    target = np.array([0.5 * math.erf(v / math.sqrt(2)) / v for v in x])
    c = report(f"gelu: (gelu(x) - x/2) / x^2 in x^2, |x| <= {limit}", lawson_fit(y, target, degree), y, target)
    print(f"constexpr float kGeluSmallLimit = {limit}f;")
    print(f"constexpr float kGeluSmallPoly[] = {{{fmt(c)}}};")


def erfcx_scaled(a):
    # S(a) = erfc(a / sqrt2) * exp(a^2 / 2), evaluated without overflow.
    import mpmath
    mpmath.mp.dps = 40
    return float(mpmath.erfc(a / mpmath.sqrt(2)) * mpmath.exp(a * a / 2))


def fit_gelu_tail(start, degree, pieces=16, width=0.875):
    # S(a) on [start, pieces * width], piecewise: piece i = min(floor(a / width), pieces - 1),
    # a polynomial in (a - centre_i). Each piece is fitted 1 % beyond its edges, so a
    # lane whose index rounding picks the neighbouring piece stays accurate.
    centres, c0_lo, tables = [], [], [[] for _ in range(degree + 1)]
    worst = 0
    for i in range(pieces):
        lo, hi = max(start, i * width), (i + 1) * width
        margin = 0.01 * (hi - lo)
        a = np.linspace(max(0.0, lo - margin), hi + margin, 3001)
        target = np.array([erfcx_scaled(v) for v in a])
        centre = (lo + hi) / 2
        coeffs = lawson_fit(a - centre, target, degree)
        c32 = [float(np.float32(c)) for c in coeffs]
        # Horner in float32 up to the last step, which the kernel does as a float pair.
        t = (a - centre).astype(np.float32).astype(np.float64)
        acc = np.full_like(t, c32[-1])
        for k in range(degree - 1, 0, -1):
            acc = (acc * t + c32[k]).astype(np.float32).astype(np.float64)
        rel = np.max(np.abs(acc * t + coeffs[0] - target) / target)
        worst = max(worst, rel)
        centres.append(centre)
        c0_lo.append(float(np.float32(coeffs[0] - c32[0])))
        for k in range(degree + 1):
            tables[k].append(c32[k])
    print(f"// gelu tail S(a) = erfc(a/sqrt2) e^(a^2/2), {pieces} pieces of {width}, degree {degree}: "
          f"float32 evaluation {worst:.2e} ({worst / 2**-24:.2f} ulp)")
    print(f"constexpr float kGeluTailPieceWidth = {width}f;")
    print(f"constexpr float kGeluTailCentre[{pieces}] = {{{fmt(centres)}}};")
    print("// The rounding error of each piece's constant term, for a float-pair last step.")
    print(f"constexpr float kGeluTailC0Lo[{pieces}] = {{{fmt(c0_lo)}}};")
    print(f"constexpr float kGeluTailPoly[{degree + 1}][{pieces}] = {{")
    for k in range(degree + 1):
        print(f"    {{{fmt(tables[k])}}},")
    print("};")


if __name__ == "__main__":
    fit_exp()
    fit_expm1()
    fit_tanh(0.2)
    fit_gelu_small(0.25, 4)
    fit_gelu_tail(0.0, 7)
