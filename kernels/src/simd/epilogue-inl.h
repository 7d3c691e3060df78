// The epilogue loops over rows, written once over the lane operations and
// the math of activation_math-inl.h. No include guard: included inside an
// ISA namespace after both (see epilogue_avx512.cc).
//
// Each row runs whole vectors, then one masked vector for the ragged tail,
// so any length and any alignment work and nothing outside [0, cols) is read
// or written.

inline void StoreOut(float* p, V v) { Store(p, v); }
inline void StoreOut(uint16_t* p, V v) { StoreBf16(p, v); }
inline void StoreOutN(float* p, V v, size_t n) { StoreN(p, v, n); }
inline void StoreOutN(uint16_t* p, V v, size_t n) { StoreBf16N(p, v, n); }

// Calls f with a functor act(V x, size_t column, size_t lanes) -> V for
// `activation` (a gated one means its gate function).
template <typename F>
inline void WithActivation(Activation activation, const ActivationParams& params, F&& f) {
  switch (GateFunction(activation)) {
    case Activation::kRelu: return f([](V x, size_t, size_t) { return Relu(x); });
    case Activation::kLeakyRelu:
    case Activation::kRrelu: {
      const V slope = Set(activation == Activation::kRrelu ? params.rrelu_slope()
                                                           : params.leaky_relu_slope);
      return f([slope](V x, size_t, size_t) { return LeakyRelu(x, slope); });
    }
    case Activation::kPrelu: {
      if (params.prelu_alpha.size() == 1) {
        const V slope = Set(params.prelu_alpha[0]);
        return f([slope](V x, size_t, size_t) { return LeakyRelu(x, slope); });
      }
      const float* alpha = params.prelu_alpha.data();
      return f([alpha](V x, size_t j, size_t lanes) {
        return LeakyRelu(x, lanes == kLanes ? Load(alpha + j) : LoadN(alpha + j, lanes));
      });
    }
    case Activation::kElu: {
      const V alpha = Set(params.elu_alpha);
      return f([alpha](V x, size_t, size_t) { return Elu(x, alpha); });
    }
    case Activation::kSigmoid: return f([](V x, size_t, size_t) { return Sigmoid(x); });
    case Activation::kTanh: return f([](V x, size_t, size_t) { return Tanh(x); });
    case Activation::kGelu: return f([](V x, size_t, size_t) { return Gelu(x); });
    case Activation::kGeluTanh: return f([](V x, size_t, size_t) { return GeluTanh(x); });
    case Activation::kSilu: return f([](V x, size_t, size_t) { return Silu(x); });
    case Activation::kQuickGelu: return f([](V x, size_t, size_t) { return QuickGelu(x); });
    case Activation::kGlu:
    case Activation::kSwiglu:
    case Activation::kGeglu:
    case Activation::kGegluTanh:
    case Activation::kReglu: break;  // GateFunction never returns these
  }
}

template <typename Act, typename Out>
inline void BiasActRows(Act act, const float* in, size_t in_stride, const float* bias, Out* out,
                        size_t out_stride, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const float* x = in + r * in_stride;
    Out* y = out + r * out_stride;
    size_t j = 0;
    for (; j + kLanes <= cols; j += kLanes) {
      V v = Load(x + j);
      if (bias != nullptr) v = Add(v, Load(bias + j));
      StoreOut(y + j, act(v, j, kLanes));
    }
    if (j < cols) {
      const size_t n = cols - j;
      V v = LoadN(x + j, n);
      if (bias != nullptr) v = Add(v, LoadN(bias + j, n));
      StoreOutN(y + j, act(v, j, n), n);
    }
  }
}

template <typename Act, typename Out>
inline void GatedRows(Act act, const float* gate, const float* up, size_t in_stride, Out* out,
                      size_t out_stride, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const float* g = gate + r * in_stride;
    const float* u = up + r * in_stride;
    Out* y = out + r * out_stride;
    size_t j = 0;
    for (; j + kLanes <= cols; j += kLanes) {
      StoreOut(y + j, Mul(act(Load(g + j), j, kLanes), Load(u + j)));
    }
    if (j < cols) {
      const size_t n = cols - j;
      StoreOutN(y + j, Mul(act(LoadN(g + j, n), j, n), LoadN(u + j, n)), n);
    }
  }
}

template <typename Out>
void BiasAct(Activation activation, const ActivationParams& params, const float* in,
             size_t in_stride, const float* bias, Out* out, size_t out_stride, size_t rows,
             size_t cols) {
  WithActivation(activation, params, [&](auto act) {
    BiasActRows(act, in, in_stride, bias, out, out_stride, rows, cols);
  });
}

template <typename Out>
void Gated(Activation activation, const ActivationParams& params, const float* gate,
           const float* up, size_t in_stride, Out* out, size_t out_stride, size_t rows,
           size_t cols) {
  WithActivation(activation, params, [&](auto act) {
    GatedRows(act, gate, up, in_stride, out, out_stride, rows, cols);
  });
}

inline EpilogueKernels MakeKernels(Isa isa) {
  return {isa, BiasAct<float>, BiasAct<uint16_t>, Gated<float>, Gated<uint16_t>};
}
