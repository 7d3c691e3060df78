#include "strategies.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "small_m.h"

namespace ffn {
namespace {

// Column tile of the unfused activation pass: small enough to split one
// token's d_ff over threads, large enough to amortise the loop overhead.
constexpr int64_t kActivationTileCols = 512;

// The epilogue of a [rows, cols] block at column `col0` of d_ff: plain
// act(in + b1) or gated act(gate)·up (up at `up_offset` after gate), into
// f32 or bf16 `out`.
void Epilogue(const CoreCall& c, Activation activation, const float* in, int64_t in_stride,
              int64_t up_offset, int64_t col0, void* out, int64_t out_stride, int64_t rows,
              int64_t cols, const float* bias) {
  const EpilogueKernels& k = *c.kernels.epilogue;
  ActivationParams p = c.weights.params();
  if (p.prelu_alpha.size() > 1) p.prelu_alpha = p.prelu_alpha.subspan(static_cast<size_t>(col0));
  const size_t is = static_cast<size_t>(in_stride), os = static_cast<size_t>(out_stride);
  const size_t r = static_cast<size_t>(rows), n = static_cast<size_t>(cols);
  const float* b = bias != nullptr ? bias + col0 : nullptr;
  const bool gated = c.weights.gated();
  if (c.compute == DataType::kBf16) {
    auto* o = static_cast<uint16_t*>(out);
    if (gated) {
      k.gated_bf16(activation, p, in, in + up_offset, is, o, os, r, n);
    } else {
      k.bias_act_bf16(activation, p, in, is, b, o, os, r, n);
    }
  } else {
    auto* o = static_cast<float*>(out);
    if (gated) {
      k.gated(activation, p, in, in + up_offset, is, o, os, r, n);
    } else {
      k.bias_act(activation, p, in, is, b, o, os, r, n);
    }
  }
}

// A dense [m, cols] activated buffer in the compute type.
void* Activated(const CoreCall& c, Scratch& scratch, int64_t cols) {
  if (c.compute == DataType::kBf16) return Scratch::Get(scratch.act_bf16, c.m * cols);
  return Scratch::Get(scratch.product, c.m * cols);
}

// The second matmul over the dense activated block: y = act · W2ᵀ + b2.
void RunDown(const CoreCall& c, const void* activated, dnnl::stream& stream) {
  const PreparedWeights& w = c.weights;
  const int64_t d_ff = w.d_ff(), d_model = w.d_model();
  MatmulSpec spec{c.m, d_ff, d_model, d_ff, d_ff, d_model, c.compute, DataType::kF32,
                  w.b2() != nullptr};
  c.matmuls.Execute(spec, stream, activated, w.down(c.compute), c.y, w.b2(), nullptr);
}

// The epilogue of column block j's first-matmul output `tile` (m rows of
// `rows` values: gate and up side by side for gated models) into the dense
// activated block: one call per run of rows sharing an activation.
void BlockEpilogue(const CoreCall& c, const float* tile, int64_t j, void* activated) {
  const PreparedWeights& w = c.weights;
  const int64_t nb = w.block_cols(j), rows = w.gated() ? 2 * nb : nb, d_ff = w.d_ff();
  const size_t es = ElementBytes(c.compute);
  char* out = static_cast<char*>(activated) + static_cast<size_t>(w.block_col(j)) * es;
  for (int64_t r0 = 0; r0 < c.m;) {
    const Activation activation = c.row_activation[r0];
    int64_t r1 = r0 + 1;
    while (r1 < c.m && c.row_activation[r1] == activation) ++r1;
    Epilogue(c, activation, tile + r0 * rows, rows, nb, w.block_col(j),
             out + static_cast<size_t>(r0 * d_ff) * es, d_ff, r1 - r0, nb, w.b1());
    r0 = r1;
  }
}

// The small-M kernels over all m rows (up to kSmallMaxTokens, or one
// batch-invariant chunk): each thread owns a share of d_ff's column blocks,
// then a share of d_model's output columns.
void RunFusedSmall(const CoreCall& c, Scratch& scratch) {
  const PreparedWeights& w = c.weights;
  const int64_t m = c.m, d_ff = w.d_ff(), d_model = w.d_model();
  const bool bf16 = c.compute == DataType::kBf16;
  void* activated = Activated(c, scratch, d_ff);
  const PreparedWeights::SmallMPacks packs = w.SmallM(c.compute);
  const float* bias2 = w.b2();
  const int64_t nblocks = w.blocks();
  // Each thread's cache-resident tile of the first matmul's output: m tokens
  // × one column block (gate and up side by side for gated models).
  const int64_t tile_elems = m * 2 * kColumnBlock;
  float* tiles = Scratch::Get(scratch.tiles, omp_get_max_threads() * tile_elems);
  // y = x · (rows [row0, row0 + n) of the packed matrix)ᵀ; row0 is a
  // multiple of kPackRows (block starts and the thread split below are).
  auto dot = [&](const void* x, int64_t x_stride, const void* packed, int64_t row0, int64_t k,
                 int64_t n, float* y, int64_t y_stride) {
    if (bf16) {
      c.kernels.small_m.bf16(static_cast<const uint16_t*>(x), x_stride, m,
                             static_cast<const uint16_t*>(packed), k, row0 / kPackRows, n, y,
                             y_stride);
    } else if (packs.type == DataType::kBf16) {
      // f32 compute of matrices kept in bf16.
      c.kernels.small_m.f32_bf16_weights(static_cast<const float*>(x), x_stride, m,
                                         static_cast<const uint16_t*>(packed), k,
                                         row0 / kPackRows, n, y, y_stride);
    } else {
      c.kernels.small_m.f32(static_cast<const float*>(x), x_stride, m,
                            static_cast<const float*>(packed), k, row0 / kPackRows, n, y,
                            y_stride);
    }
  };
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    // Phase 1: this thread's column blocks of d_ff: the first matmul's rows
    // (gate and up side by side for gated models) into a cache-resident
    // tile, the epilogue straight into the activated block.
    float* tile = tiles + t * tile_elems;
    const int64_t b0 = nblocks * t / threads, b1 = nblocks * (t + 1) / threads;
    for (int64_t j = b0; j < b1; ++j) {
      const int64_t nb = w.block_cols(j), rows = w.gated() ? 2 * nb : nb;
      dot(c.x, d_model, packs.up, w.block_row(j), d_model, rows, tile, rows);
      if (!c.skip_epilogue) BlockEpilogue(c, tile, j, activated);
    }
#pragma omp barrier
    // Phase 2: this thread's rows of W2 (output columns), b2 added.
    const int64_t groups = (d_model + kPackRows - 1) / kPackRows;
    const int64_t r0 = groups * t / threads * kPackRows;
    const int64_t r1 = std::min(d_model, groups * (t + 1) / threads * kPackRows);
    if (r1 > r0) {
      dot(activated, d_ff, packs.down, r0, d_ff, r1 - r0, c.y + r0, d_model);
      if (bias2 != nullptr) {
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t j = r0; j < r1; ++j) c.y[r * d_model + j] += bias2[j];
        }
      }
    }
  }
}

// Fused, other m: d_ff in column blocks of kColumnBlock; each block's
// first-matmul output gets the epilogue while in L2 and is multiplied into
// y at once.
void RunFusedBlocks(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) {
  const PreparedWeights& w = c.weights;
  const int64_t m = c.m, d_ff = w.d_ff(), d_model = w.d_model();
  const size_t es = ElementBytes(c.compute);
  float* tile = Scratch::Get(scratch.hidden, m * (w.gated() ? 2 : 1) * kColumnBlock);
  void* act = Activated(c, scratch, kColumnBlock);
  const char* w_up = static_cast<const char*>(w.up(c.compute));
  const char* w2 = static_cast<const char*>(w.down(c.compute));
  for (int64_t j = 0; j < w.blocks(); ++j) {
    const int64_t nb = w.block_cols(j), rows = w.gated() ? 2 * nb : nb;
    // First matmul for this block's columns (+ b1 in the epilogue).
    MatmulSpec up{m, d_model, rows, d_model, d_model, rows, c.compute, DataType::kF32, false};
    c.matmuls.Execute(up, stream, c.x, w_up + static_cast<size_t>(w.block_row(j) * d_model) * es,
                      tile, nullptr, nullptr);
    stream.wait();
    if (!c.skip_epilogue) {
#pragma omp parallel for schedule(static) if (m > 1)
      for (int64_t r = 0; r < m; ++r) {
        Epilogue(c, c.row_activation[r], tile + r * rows, rows, nb, w.block_col(j),
                 static_cast<char*>(act) + static_cast<size_t>(r * nb) * es, nb, 1, nb, w.b1());
      }
    }
    // y (+)= act_j · W2[:, block]ᵀ; the first block also adds b2.
    MatmulSpec down{m, nb, d_model, nb, d_ff, d_model, c.compute, DataType::kF32,
                    j == 0 && w.b2() != nullptr, j == 0 ? PostOp::kNone : PostOp::kSum};
    c.matmuls.Execute(down, stream, act, w2 + static_cast<size_t>(w.block_col(j)) * es, c.y,
                      w.b2(), nullptr);
  }
}

// Whether row `row` of the core's input holds a NaN or an infinity.
bool RowIsNonFinite(const CoreCall& c, int64_t row) {
  const int64_t d_model = c.weights.d_model();
  if (c.compute == DataType::kBf16) {
    const uint16_t* x = static_cast<const uint16_t*>(c.x) + row * d_model;
    // bf16 keeps fp32's exponent: all ones is an infinity or a NaN.
    return std::any_of(x, x + d_model, [](uint16_t v) { return (v & 0x7f80) == 0x7f80; });
  }
  const float* x = static_cast<const float*>(c.x) + row * d_model;
  return std::any_of(x, x + d_model, [](float v) { return !std::isfinite(v); });
}

}  // namespace

void RunUnfused(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) {
  const PreparedWeights& w = c.weights;
  const int64_t m = c.m, d_ff = w.d_ff(), d_model = w.d_model(), cols = w.up_cols();
  float* hidden = Scratch::Get(scratch.hidden, m * cols);
  MatmulSpec up{m, d_model, cols, d_model, d_model, cols, c.compute, DataType::kF32,
                w.b1() != nullptr};
  c.matmuls.Execute(up, stream, c.x, w.up(c.compute), hidden, w.b1(), nullptr);
  stream.wait();
  // A separate pass of the activation kernels over the whole intermediate.
  // f32 plain: in place; otherwise into a dense [m, d_ff] block.
  void* activated = hidden;
  if (c.compute == DataType::kBf16 || w.gated()) activated = Activated(c, scratch, d_ff);
  const int64_t col_tiles =
      w.gated() ? w.blocks() : (d_ff + kActivationTileCols - 1) / kActivationTileCols;
  const int64_t tiles = c.skip_epilogue ? 0 : m * col_tiles;
  const size_t out_size = ElementBytes(c.compute);
#pragma omp parallel for schedule(static) if (tiles > 1)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t row = t / col_tiles, tile = t % col_tiles;
    int64_t col0, ncols, in_col, up_offset = 0;
    if (w.gated()) {
      col0 = w.block_col(tile);
      ncols = w.block_cols(tile);
      in_col = w.block_row(tile);
      up_offset = ncols;
    } else {
      col0 = tile * kActivationTileCols;
      ncols = std::min(kActivationTileCols, d_ff - col0);
      in_col = col0;
    }
    char* out = static_cast<char*>(activated) + static_cast<size_t>(row * d_ff + col0) * out_size;
    Epilogue(c, c.row_activation[row], hidden + row * cols + in_col, cols, up_offset, col0, out,
             d_ff, 1, ncols, nullptr);
  }
  RunDown(c, activated, stream);
}

namespace {

void RunPostopsCore(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) {
  const PreparedWeights& w = c.weights;
  const int64_t m = c.m, d_ff = w.d_ff(), d_model = w.d_model();
  void* activated = Activated(c, scratch, d_ff);
  const EltwiseOp op = OneDnnEltwise(c.activation, w.params());
  if (!w.gated()) {
    MatmulSpec up{m,         d_model,         d_ff,         d_model,      d_model,
                  d_ff,      c.compute,       c.compute,    w.b1() != nullptr,
                  PostOp::kEltwise, op.algorithm, op.alpha, op.beta};
    c.matmuls.Execute(up, stream, c.x, w.up(c.compute), activated, w.b1(), nullptr);
    RunDown(c, activated, stream);
    return;
  }
  // Gated, per column block: u = x·Wu_jᵀ, then act(x·Wg_jᵀ)·u as eltwise
  // and binary-mul post-ops into a dense block (oneDNN 2.6 falls back to
  // its reference matmul when a binary post-op writes a strided
  // destination), multiplied into y at once.
  float* u = Scratch::Get(scratch.gate_up, m * kColumnBlock);
  const char* w_up = static_cast<const char*>(w.up(c.compute));
  const char* w2 = static_cast<const char*>(w.down(c.compute));
  const size_t es = ElementBytes(c.compute);
  for (int64_t j = 0; j < w.blocks(); ++j) {
    const int64_t nb = w.block_cols(j), row = w.block_row(j);
    MatmulSpec up_spec{m, d_model, nb, d_model, d_model, nb, c.compute, DataType::kF32, false};
    MatmulSpec gate_spec{m,         d_model,   nb,    d_model, d_model,
                         nb,        c.compute, c.compute, false, PostOp::kEltwiseThenMul,
                         op.algorithm, op.alpha, op.beta};
    MatmulSpec down{m, nb, d_model, nb, d_ff, d_model, c.compute, DataType::kF32, false,
                    j == 0 ? PostOp::kNone : PostOp::kSum};
    c.matmuls.Execute(up_spec, stream, c.x, w_up + static_cast<size_t>((row + nb) * d_model) * es,
                      u, nullptr, nullptr);
    c.matmuls.Execute(gate_spec, stream, c.x, w_up + static_cast<size_t>(row * d_model) * es,
                      activated, nullptr, u);
    c.matmuls.Execute(down, stream, activated, w2 + static_cast<size_t>(w.block_col(j)) * es, c.y,
                      nullptr, nullptr);
  }
}

}  // namespace

void RunPostops(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) {
  RunPostopsCore(c, scratch, stream);
  stream.wait();
  // oneDNN's relu post-op is max(x, 0), which turns NaN into 0: a NaN row
  // would come back finite (exactly b2). Rows whose input is not finite are
  // computed again by the unfused path, whose kernels propagate NaN and
  // infinities as IEEE arithmetic does, as every other path does.
  const size_t x_row_bytes = static_cast<size_t>(c.weights.d_model()) * ElementBytes(c.compute);
  for (int64_t row = 0; row < c.m; ++row) {
    if (!RowIsNonFinite(c, row)) continue;
    CoreCall one = c;
    one.x = static_cast<const char*>(c.x) + static_cast<size_t>(row) * x_row_bytes;
    one.y = c.y + row * c.weights.d_model();
    one.row_activation = c.row_activation + row;
    one.m = 1;
    RunUnfused(one, scratch, stream);
    stream.wait();
  }
}

namespace {

// One chunk of an int8 call (m <= kInvariantChunkTokens): the tokens are
// quantized, each thread owns a share of d_ff's column blocks (sums,
// scaled, epilogue into the f32 activated block), the activated rows are
// quantized, then each thread owns a share of d_model's output columns.
void RunInt8Chunk(const CoreCall& c, Scratch& scratch) {
  const PreparedWeights& w = c.weights;
  const PreparedWeights::Int8Matrix& up = w.Int8Up();
  const PreparedWeights::Int8Matrix& down = w.Int8Down();
  const SmallMInt8Kernel dot = c.kernels.small_m.int8;
  const int64_t m = c.m, d_ff = w.d_ff(), d_model = w.d_model();
  const int64_t x_stride = PaddedK<int8_t>(d_model), h_stride = PaddedK<int8_t>(d_ff);
  const int64_t x_groups = Int8KGroups(d_model), h_groups = Int8KGroups(d_ff);
  int8_t* xq = Scratch::Get(scratch.tokens_s8, m * (x_stride + h_stride));
  int8_t* hq = xq + m * x_stride;
  float* x_scale = Scratch::Get(scratch.token_scale, m * (x_groups + h_groups));
  float* h_scale = x_scale + m * x_groups;
  float* x_correction = Scratch::Get(scratch.token_correction, 2 * m);
  float* h_correction = x_correction + m;
  float* activated = Scratch::Get(scratch.product, m * d_ff);
  const int64_t tile_elems = m * 2 * kColumnBlock;
  float* tiles = Scratch::Get(scratch.tiles, omp_get_max_threads() * tile_elems);
  const float* bias2 = w.b2();
  const QuantizeInt8Kernel quantize = c.kernels.small_m.quantize_int8;
  const float* x = static_cast<const float*>(c.x);
#pragma omp parallel
  {
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      quantize(x + r * d_model, d_model, 1, d_model, xq + r * x_stride, x_stride,
               x_scale + r * x_groups, x_groups, x_correction + r);
    }
    float* tile = tiles + t * tile_elems;
    const int64_t nblocks = w.blocks();
    const int64_t b0 = nblocks * t / team, b1 = nblocks * (t + 1) / team;
    for (int64_t j = b0; j < b1; ++j) {
      const int64_t rows = w.gated() ? 2 * w.block_cols(j) : w.block_cols(j);
      const int64_t row0 = w.block_row(j);
      dot(xq, x_stride, x_scale, x_groups, x_correction, m, up.packed.data(), d_model,
          row0 / kPackRows, rows, tile, rows);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t i = 0; i < rows; ++i) tile[r * rows + i] *= up.scale[static_cast<size_t>(row0 + i)];
      }
      if (!c.skip_epilogue) BlockEpilogue(c, tile, j, activated);
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      quantize(activated + r * d_ff, d_ff, 1, d_ff, hq + r * h_stride, h_stride,
               h_scale + r * h_groups, h_groups, h_correction + r);
    }
    const int64_t groups = (d_model + kPackRows - 1) / kPackRows;
    const int64_t r0 = groups * t / team * kPackRows;
    const int64_t r1 = std::min(d_model, groups * (t + 1) / team * kPackRows);
    if (r1 > r0) {
      dot(hq, h_stride, h_scale, h_groups, h_correction, m, down.packed.data(), d_ff,
          r0 / kPackRows, r1 - r0, c.y + r0, d_model);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t n = r0; n < r1; ++n) {
          float& v = c.y[r * d_model + n];
          v *= down.scale[static_cast<size_t>(n)];
          if (bias2 != nullptr) v += bias2[n];
        }
      }
    }
  }
}

}  // namespace

void RunInt8(const CoreCall& c, Scratch& scratch) {
  const int64_t d_model = c.weights.d_model();
  for (int64_t r0 = 0; r0 < c.m; r0 += kInvariantChunkTokens) {
    CoreCall chunk = c;
    chunk.x = static_cast<const float*>(c.x) + r0 * d_model;
    chunk.y = c.y + r0 * d_model;
    chunk.row_activation = c.row_activation + r0;
    chunk.m = std::min(kInvariantChunkTokens, c.m - r0);
    RunInt8Chunk(chunk, scratch);
  }
}

bool FusedRunsSmallM(const KernelTable& kernels, int64_t m, DataType compute) {
  return m <= kSmallMaxTokens && kernels.HasNativeSmallM(compute);
}

void RunFused(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) {
  if (c.batch_invariant) {
    // The same kernels summing in the same order at every m: the small-M
    // path over chunks of at most kInvariantChunkTokens tokens.
    const size_t x_row_bytes = static_cast<size_t>(c.weights.d_model()) * ElementBytes(c.compute);
    for (int64_t r0 = 0; r0 < c.m; r0 += kInvariantChunkTokens) {
      CoreCall chunk = c;
      chunk.x = static_cast<const char*>(c.x) + static_cast<size_t>(r0) * x_row_bytes;
      chunk.y = c.y + r0 * c.weights.d_model();
      chunk.row_activation = c.row_activation + r0;
      chunk.m = std::min(kInvariantChunkTokens, c.m - r0);
      RunFusedSmall(chunk, scratch);
    }
    return;
  }
  if (FusedRunsSmallM(c.kernels, c.m, c.compute)) {
    RunFusedSmall(c, scratch);
  } else {
    RunFusedBlocks(c, scratch, stream);
  }
}

}  // namespace ffn
