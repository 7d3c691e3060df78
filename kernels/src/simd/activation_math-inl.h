// Vector activation math, written once over the lane operations of
// simd/avx2.h or simd/avx512.h. No include guard: an ISA translation unit
// includes it inside that ISA's namespace, after the lane header, as in
//   namespace ffn::simd_avx512 { #include "simd/activation_math-inl.h" }
//
// Every function takes and returns fp32 lanes and calls no libm. Error bounds
// against the fp64 reference are measured over all 2^32 inputs by
// bench/activation_accuracy --exhaustive and recorded in docs/ACCURACY.md.

// ---- building blocks ------------------------------------------------------

// |a| with the sign of `sign`.
inline V CopySign(V a, V sign) { return Xor(Abs(a), SignBit(sign)); }

template <size_t N>
inline V Horner(const float (&c)[N], V t) {
  V acc = Set(c[N - 1]);
  for (size_t k = N - 1; k-- > 0;) acc = MulAdd(acc, t, Set(c[k]));
  return acc;
}

// A value carried as an unevaluated sum hi + lo, |lo| <= ulp(hi)/2.
struct Pair {
  V hi, lo;
};

// e^x = (hi + lo)·2^n with hi + lo in [0.7, 1.42] and integral n, before
// scaling: callers that multiply e^x by something large scale last, so a
// product that is normal is never rounded through a subnormal e^x.
// Cody–Waite reduction x = n·ln2 + r (|r| <= ln2/2, exact in two steps),
// e^r = 1 + r + r²·P(r) summed as a pair, so that the only error left is
// the polynomial's (about 0.1 ULP). NaN gives NaN.
struct ExpParts {
  V hi, lo, n;
};
inline ExpParts ExpReduced(V x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 15 bits: n·kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  // Clamped so n stays small; min/max return their second operand for NaN,
  // so NaN passes through and makes every result below NaN.
  const V xc = Min(Set(89.0f), Max(Set(-104.0f), x));
  const V n = Round(Mul(xc, Set(kLog2e)));
  V r = NegMulAdd(n, Set(kLn2Hi), xc);
  r = NegMulAdd(n, Set(kLn2Lo), r);
  const V h = Mul(Mul(r, r), Horner(poly::kExpPoly, r));  // |h| <= |r|
  const V s = Add(r, h);
  const V s_lo = Add(Sub(r, s), h);
  const V er = Add(Set(1.0f), s);
  const V er_lo = Add(Add(Sub(Set(1.0f), er), s), s_lo);  // 1 >= |s|
  return {er, er_lo, n};
}

// e^x as a float pair, scaled: x > 88.72 gives +inf, x < -103.97 gives 0;
// results in the denormal range are rounded once.
inline Pair ExpPair(V x) {
  const ExpParts e = ExpReduced(x);
  return {ScaleByPow2(e.hi, e.n), ScaleByPow2(e.lo, e.n)};
}

inline V Exp(V x) {
  const Pair e = ExpPair(x);
  return Add(e.hi, e.lo);
}

// e^x − 1 without cancellation near 0.
inline V Expm1(V x) {
  const V small = MulAdd(Mul(x, x), Horner(poly::kExpm1Poly, x), x);
  const Pair e = ExpPair(x);
  const V large = Add(Sub(e.hi, Set(1.0f)), e.lo);  // exact subtraction for x >= -0.69
  // e^x − 1 has the sign of x; this also keeps −0 (which x + x²·P(x) loses).
  return CopySign(Select(Lt(Abs(x), Set(0.5f)), small, large), x);
}

// (n + n_lo) / (d + d_lo) for float pairs with finite n and 1 <= d <= 2, to
// about 0.5 ULP beyond the pairs' own error. No division: an approximate
// reciprocal (12 or 14 bits) and Newton corrections whose residuals are
// exact by FMA.
inline V DivPair(V n, V n_lo, V d, V d_lo) {
  const V inv = ApproxRecip(d);
  V q = Mul(n, inv);
  for (int step = 0; step < kRecipNewtonSteps; ++step) {
    const V residual = Add(NegMulAdd(q, d, n), NegMulAdd(q, d_lo, n_lo));
    q = MulAdd(residual, inv, q);
  }
  return q;
}

// 1 + E as a pair, for 0 <= E <= 1.
inline Pair OnePlus(Pair e) {
  const V d = Add(Set(1.0f), e.hi);
  return {d, Add(Add(Sub(Set(1.0f), d), e.hi), e.lo)};
}

// x·σ(s) given E = e^(−|s|) = (hi + lo)·2^n where sign(s) = sign(x),
// without overflow: x ≥ 0: x / (1 + E); x < 0: x·E / (1 + E), the latter
// computed on the unscaled parts and scaled last. Every intermediate is an
// exact float pair, so the only errors are E's and the final rounding.
inline V TimesSigmoidFromExp(V x, const ExpParts& e) {
  const Pair d = OnePlus({ScaleByPow2(e.hi, e.n), ScaleByPow2(e.lo, e.n)});
  const M negative = Lt(x, Set(0.0f));
  const V xe = Mul(x, e.hi);
  const V xe_lo = MulAdd(x, e.lo, MulSub(x, e.hi, xe));
  const V q = DivPair(Select(negative, xe, x), Select(negative, xe_lo, Set(0.0f)), d.hi, d.lo);
  return ScaleByPow2(q, Select(negative, e.n, Set(0.0f)));
}

// ---- activations ------------------------------------------------------------

inline V Relu(V x) { return Select(Gt(x, Set(0.0f)), x, Select(IsNan(x), x, Set(0.0f))); }

inline V LeakyRelu(V x, V slope) { return Select(Gt(x, Set(0.0f)), x, Mul(slope, x)); }

inline V Elu(V x, V alpha) { return Select(Gt(x, Set(0.0f)), x, Mul(alpha, Expm1(x))); }

inline V Sigmoid(V x) {
  const Pair e = ExpPair(Sub(Set(0.0f), Abs(x)));
  const Pair d = OnePlus(e);
  const M negative = Lt(x, Set(0.0f));
  return DivPair(Select(negative, e.hi, Set(1.0f)), Select(negative, e.lo, Set(0.0f)), d.hi, d.lo);
}

inline V Silu(V x) {
  const V result = TimesSigmoidFromExp(x, ExpReduced(Sub(Set(0.0f), Abs(x))));
  // Above 88, x·σ(x) rounds to x (this also passes +inf); below −100 it is
  // under 1e-41: −0 (and never −inf·0). The result has the sign of x, which
  // keeps the sign of zeros.
  const V special = Select(Lt(x, Set(-100.0f)), Set(-0.0f), x);
  return CopySign(Select(Or(Gt(x, Set(88.0f)), Lt(x, Set(-100.0f))), special, result), x);
}

// quick_gelu(x) = x·σ(1.702·x) (Hugging Face's QuickGELU), every x: within
// 1 ULP of the fp64 reference where the result is normal (0.81 measured over
// all floats), below 3e-43 absolute where it is not; NaN gives NaN, ±inf give
// +inf and −0, zeros keep their sign. The exponent −1.702·|x| is carried as a
// float pair t + t_lo: 1.702 is split into a float and its remainder, and the
// product's rounding error comes exactly from an FMA. Rounded to one float,
// t's error (up to ½ ULP of t, 3.8e-6 at t ≈ 90) would become a relative error
// of e^(−t) and of the result: 83 ULP measured near x = −53.
inline V QuickGelu(V x) {
  constexpr float kScaleHi = 1.702f;
  constexpr float kScaleLo = static_cast<float>(1.702 - static_cast<double>(kScaleHi));
  // Beyond ±60, σ(1.702x) is 1 to float precision, or x·σ(1.702x) is under
  // 3e-43; clamping keeps e^(−t) inside ExpReduced's range (t <= 102.2).
  const V a = Min(Abs(x), Set(60.0f));
  const V t = Mul(Set(kScaleHi), a);
  const V t_lo = MulAdd(Set(kScaleLo), a, MulSub(Set(kScaleHi), a, t));
  // e^(−t − t_lo) ≈ e^(−t)·(1 − t_lo); t_lo² is below 2^-30.
  ExpParts e = ExpReduced(Sub(Set(0.0f), t));
  e.lo = NegMulAdd(e.hi, t_lo, e.lo);
  const V result = TimesSigmoidFromExp(x, e);
  // Above 60 the result rounds to x (this also passes +inf); below −60 it is
  // −0 (and never −inf·0). The result has the sign of x, which keeps the
  // sign of zeros.
  const V special = Select(Lt(x, Set(-60.0f)), Set(-0.0f), x);
  return CopySign(Select(Or(Gt(x, Set(60.0f)), Lt(x, Set(-60.0f))), special, result), x);
}

// tanh: x + x³·P(x²) for |x| < 0.2; otherwise (1 − E)/(1 + E) with
// E = e^(−2|x|) as a pair (1 − E is then exact) and the sign of x.
inline V Tanh(V x) {
  const V x2 = Mul(x, x);
  const V small = MulAdd(Mul(x, x2), Horner(poly::kTanhPoly, x2), x);
  const Pair e = ExpPair(Mul(Set(-2.0f), Abs(x)));
  const V n = Sub(Set(1.0f), e.hi);
  const V n_lo = Sub(Sub(Sub(Set(1.0f), n), e.hi), e.lo);  // 1 ≥ E: exact
  const Pair d = OnePlus(e);
  const V large = Xor(DivPair(n, n_lo, d.hi, d.lo), SignBit(x));
  // tanh has the sign of x; this also keeps −0 (which the FMA would lose).
  return CopySign(Select(Lt(Abs(x), Set(poly::kTanhSmallLimit)), small, large), x);
}

// gelu_tanh(x) = x·σ(2u), u = √(2/π)(x + 0.044715x³). The exponent −|2u| is
// carried as a float pair (hi + lo, error-free products by FMA), because its
// rounding error would be multiplied by |2u| in e^(−|2u|).
inline V GeluTanh(V x) {
  constexpr float kKHi = 0.044715f;
  constexpr float kKLo = static_cast<float>(0.044715 - static_cast<double>(0.044715f));
  constexpr float kC2Hi = 1.5957691216057308f;  // 2·√(2/π)
  constexpr float kC2Lo = static_cast<float>(1.5957691216057308 - static_cast<double>(1.5957691216057308f));
  const V a = Min(Abs(x), Set(12.0f));  // beyond 12, e^(−|2u|) is 0 in float
  // a² = a2 + a2_lo exactly.
  const V a2 = Mul(a, a);
  const V a2_lo = MulSub(a, a, a2);
  // k·a² = ka2 + ka2_lo.
  const V ka2 = Mul(Set(kKHi), a2);
  const V ka2_lo = Add(MulSub(Set(kKHi), a2, ka2), MulAdd(Set(kKHi), a2_lo, Mul(Set(kKLo), a2)));
  // w = 1 + k·a² = w_hi + w_lo (TwoSum).
  const V w = Add(Set(1.0f), ka2);
  const V w_b = Sub(w, Set(1.0f));
  const V w_lo = Add(Add(Sub(Set(1.0f), Sub(w, w_b)), Sub(ka2, w_b)), ka2_lo);
  // 2c·a = ca + ca_lo; v = 2c·a·w = v + v_lo.
  const V ca = Mul(Set(kC2Hi), a);
  const V ca_lo = MulAdd(Set(kC2Lo), a, MulSub(Set(kC2Hi), a, ca));
  const V v = Mul(ca, w);
  const V v_lo = Add(MulSub(ca, w, v), MulAdd(ca, w_lo, Mul(ca_lo, w)));
  // e^(−v − v_lo) ≈ e^(−v)·(1 − v_lo).
  ExpParts e = ExpReduced(Sub(Set(0.0f), v));
  e.lo = NegMulAdd(e.hi, v_lo, e.lo);
  const V result = TimesSigmoidFromExp(x, e);
  // Beyond ±12, gelu_tanh(x) rounds to x or to −0 (this also covers ±inf).
  // The result has the sign of x, which keeps the sign of zeros.
  const V special = Select(Lt(x, Set(-12.0f)), Set(-0.0f), x);
  return CopySign(Select(Or(Gt(x, Set(12.0f)), Lt(x, Set(-12.0f))), special, result), x);
}

// gelu(x) = x·Φ(x). With a = |x| and q = Φ(−a) = ½·e^(−a²/2)·S(a), where
// S(a) = erfc(a/√2)·e^(a²/2) comes from 16 polynomial pieces chosen per lane:
// x > 0 gives x − x·q, x ≤ 0 gives x·q. Neither cancels (q ≤ ½), so this
// covers every x; below |x| = 0.25 a short polynomial is closer still.
// e^(−a²/2) takes a² as an exact float pair, and the products are carried as
// pairs and rounded once.
inline V Gelu(V x) {
  const V a = Min(Abs(x), Set(14.0f));
  const V a2 = Mul(a, a);
  const V a2_lo = MulSub(a, a, a2);
  // e^(−a²/2) = (e + e_lo)·2^n: the reduced parts, with a² as an exact pair.
  const ExpParts ea = ExpReduced(Mul(Set(-0.5f), a2));
  const V e = ea.hi;
  const V e_lo = NegMulAdd(ea.hi, Mul(Set(0.5f), a2_lo), ea.lo);
  const Index piece =
      ToIndex(Min(Floor(Mul(a, Set(1.0f / poly::kGeluTailPieceWidth))), Set(15.0f)));
  const V t = Sub(a, Lookup16(poly::kGeluTailCentre, piece));
  constexpr size_t kDegree = sizeof(poly::kGeluTailPoly) / sizeof(poly::kGeluTailPoly[0]) - 1;
  V acc = Lookup16(poly::kGeluTailPoly[kDegree], piece);
  for (size_t k = kDegree; k-- > 1;) acc = MulAdd(acc, t, Lookup16(poly::kGeluTailPoly[k], piece));
  // Last step as a float pair: S = c0 + acc·t = s + s_lo, with c0 = c0_hi + c0_lo
  // (Fast2Sum holds: |acc·t| < |c0| on every piece).
  const V c0 = Lookup16(poly::kGeluTailPoly[0], piece);
  const V at = Mul(acc, t);
  const V s = Add(c0, at);
  const V s_lo = Add(Add(Sub(c0, s), at), Add(MulSub(acc, t, at), Lookup16(poly::kGeluTailC0Lo, piece)));
  // x·q = ½·x·E·S with the products kept as exact pairs, rounded once.
  const V es = Mul(e, s);
  const V es_lo = MulAdd(e_lo, s, MulAdd(e, s_lo, MulSub(e, s, es)));
  const V xq = Mul(x, es);
  const V xq_lo = MulAdd(x, es_lo, MulSub(x, es, xq));
  // x·q scaled last, so a normal result is never rounded through a subnormal.
  const V xq_scaled = ScaleByPow2(Mul(Set(0.5f), Add(xq, xq_lo)), ea.n);
  const V tail = Select(Gt(x, Set(0.0f)), Sub(x, xq_scaled), xq_scaled);
  // |x| < 0.25: x/2 + x²·Q(x²), closer than the tail's pieces.
  const V small = MulAdd(Mul(x, x), Horner(poly::kGeluSmallPoly, Mul(x, x)), Mul(Set(0.5f), x));
  const V result = Select(Lt(a, Set(poly::kGeluSmallLimit)), small, tail);
  // Beyond ±14, x·Φ(x) rounds to x or is under 1e-43: x or −0 (this also
  // covers ±inf, which the arithmetic above would turn into NaN). The result
  // has the sign of x, which keeps the sign of zeros and of tiny results.
  const V special = Select(Lt(x, Set(-14.0f)), Set(-0.0f), x);
  return CopySign(Select(Or(Gt(x, Set(14.0f)), Lt(x, Set(-14.0f))), special, result), x);
}
