#include "ffn/client/format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ffn/client/text_table.h"
#include "google/protobuf/util/json_util.h"

namespace ffn::client {
namespace {

std::string KindName(v1::ModelKind kind) { return absl::AsciiStrToLower(v1::ModelKind_Name(kind)); }

std::string Fixed(double value, int decimals) { return absl::StrFormat("%.*f", decimals, value); }

std::string ShapeText(const v1::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.shape(), ", "), "]");
}

nlohmann::json ParamsJson(const v1::ActivationParams& p) {
  return {{"leaky_relu_slope", p.leaky_relu_slope()},
          {"rrelu_lower", p.rrelu_lower()},
          {"rrelu_upper", p.rrelu_upper()},
          {"rrelu_slope", p.rrelu_slope()},
          {"elu_alpha", p.elu_alpha()},
          {"prelu_alpha", std::vector<float>(p.prelu_alpha().begin(), p.prelu_alpha().end())}};
}

std::string OutputStatistics(const std::vector<float>& output) {
  if (output.empty()) return "output is empty\n";
  double sum = 0;
  for (float v : output) sum += v;
  const auto [min, max] = std::minmax_element(output.begin(), output.end());
  return absl::StrFormat("mean %.6g  min %.6g  max %.6g\n",
                         sum / static_cast<double>(output.size()), *min, *max);
}

}  // namespace

std::string WeightsSource(const v1::ModelInfo& info) {
  if (info.has_random()) return absl::StrCat("random seed ", info.random().seed());
  if (info.has_safetensors()) return info.safetensors().path();
  if (info.has_huggingface()) {
    return absl::StrCat(info.huggingface().path(), " layer ", info.huggingface().layer());
  }
  return "unknown";
}

std::string ModelsTable(const std::vector<v1::ModelInfo>& models) {
  TextTable table(
      {"name", "kind", "d_model", "d_ff", "default", "activations", "dtype", "strategy",
       "invariant", "held", "weights"});
  for (const v1::ModelInfo& m : models) {
    // A mixture of experts: "moe 8/top2" (+ "+shared"), d_ff each expert's.
    const std::string kind =
        m.has_moe() ? absl::StrCat("moe ", m.moe().experts(), "/top", m.moe().top_k(),
                                   m.moe().shared_d_ff() > 0 ? "+shared" : "")
                    : KindName(m.kind());
    table.AddRow({m.name(), kind, absl::StrCat(m.d_model()), absl::StrCat(m.d_ff()),
                  m.default_activation(), absl::StrJoin(m.activations(), ","),
                  v1::DType_Name(m.dtype()), m.strategy(), m.batch_invariant() ? "yes" : "no",
                  absl::StrFormat("%.1f MiB %s", static_cast<double>(m.weight_bytes()) / (1 << 20),
                                  m.matrix_dtype()),
                  WeightsSource(m)});
  }
  // The default paths keep docs/ACCURACY.md's bounds; a model that asked for
  // oneDNN's approximations says so under the table.
  std::string notes;
  for (const v1::ModelInfo& m : models) {
    if (m.strategy() == "postops" || m.quantization() == "int8") {
      absl::StrAppend(&notes, m.name(), ": ", m.accuracy(), "\n");
    }
  }
  return table.Render() + notes;
}

nlohmann::json ModelsJson(const std::vector<v1::ModelInfo>& models) {
  nlohmann::json list = nlohmann::json::array();
  for (const v1::ModelInfo& m : models) {
    nlohmann::json weights = {{"source", WeightsSource(m)}};
    if (m.has_random()) weights["seed"] = m.random().seed();
    if (m.has_safetensors()) {
      weights["path"] = m.safetensors().path();
      weights["tensors"] = std::map<std::string, std::string>(m.safetensors().tensors().begin(),
                                                              m.safetensors().tensors().end());
    }
    list.push_back(
        {{"name", m.name()},
         {"kind", KindName(m.kind())},
         {"d_model", m.d_model()},
         {"d_ff", m.d_ff()},
         {"default_activation", m.default_activation()},
         {"activations", std::vector<std::string>(m.activations().begin(), m.activations().end())},
         {"dtype", v1::DType_Name(m.dtype())},
         {"weights", weights},
         {"has_bias", m.has_bias()},
         {"max_tokens", m.max_tokens()},
         {"strategy", m.strategy()},
         {"accuracy", m.accuracy()},
         {"batch_invariant", m.batch_invariant()},
         {"matrix_dtype", m.matrix_dtype()},
         {"quantization", m.quantization().empty() ? "none" : m.quantization()},
         {"weight_bytes", m.weight_bytes()},
         {"params", ParamsJson(m.params())}});
    if (m.has_moe()) {
      list.back()["moe"] = {{"experts", m.moe().experts()},
                            {"top_k", m.moe().top_k()},
                            {"shared_d_ff", m.moe().shared_d_ff()},
                            {"normalize_top_k", m.moe().normalize_top_k()}};
    }
  }
  return list;
}

namespace {

// Per mixture-of-experts model: each expert's tokens, share and compute.
std::string MoeStatsTable(const v1::GetStatsResponse& stats) {
  std::string out;
  for (const v1::MoeStats& m : stats.moe()) {
    TextTable table({"expert", "tokens", "share %", "compute s", "us/token"});
    for (const v1::ExpertStats& e : m.experts()) {
      const double share = m.routed() > 0 ? 100.0 * static_cast<double>(e.tokens()) / m.routed() : 0;
      const double per_token =
          e.tokens() > 0 ? 1e6 * e.compute_seconds() / static_cast<double>(e.tokens()) : 0;
      table.AddRow({absl::StrCat(e.expert()), absl::StrCat(e.tokens()), Fixed(share, 1),
                    Fixed(e.compute_seconds(), 3), Fixed(per_token, 1)});
    }
    absl::StrAppend(&out, "\n", m.model(), ": ", m.routed(), " token-expert pairs routed, ",
                    m.dropped(), " dropped, imbalance (busiest / mean) ", Fixed(m.imbalance(), 2),
                    "\n", table.Render());
  }
  return out;
}

// Engine calls by size per variant, next to the start-up plan's time where
// the model was tuned: served/plan well above 1 is drift.
std::string BatchSizeTable(const v1::GetStatsResponse& stats) {
  TextTable table({"variant", "batch tokens", "batches", "mean tokens", "threads", "compute us",
                   "planned us", "served/plan"});
  for (const v1::VariantStats& v : stats.variants()) {
    for (const v1::BatchSizeStats& b : v.batch_sizes()) {
      const bool planned = b.planned_us() > 0;
      table.AddRow({absl::StrCat(v.variant().model(), "/", v.variant().activation()),
                    b.tokens_from() == b.tokens_to()
                        ? absl::StrCat(b.tokens_from())
                        : absl::StrCat(b.tokens_from(), "-", b.tokens_to()),
                    absl::StrCat(b.batches()), Fixed(b.mean_tokens(), 1),
                    b.mean_threads() > 0 ? Fixed(b.mean_threads(), 2) : "-",
                    Fixed(b.compute_mean_us(), 1), planned ? Fixed(b.planned_us(), 1) : "-",
                    planned ? Fixed(b.compute_mean_us() / b.planned_us(), 2) : "-"});
    }
  }
  return absl::StrCat("\nengine calls by size (threads: OpenMP threads per call, averaged; "
                      "planned: the start-up tuner's time; '-': the model was not tuned)\n",
                      table.Render());
}

}  // namespace

std::string StatsTable(const v1::GetStatsResponse& stats) {
  TextTable table({"variant", "requests", "tokens", "errors", "req/s", "win req/s", "tokens/s",
                   "p50 us", "p90 us", "p99 us", "max us", "queue us", "compute us", "GFLOP/s"});
  for (const v1::VariantStats& v : stats.variants()) {
    table.AddRow({absl::StrCat(v.variant().model(), "/", v.variant().activation()),
                  absl::StrCat(v.requests()), absl::StrCat(v.tokens()), absl::StrCat(v.errors()),
                  Fixed(v.requests_per_second(), 1), Fixed(v.window_requests_per_second(), 1),
                  Fixed(v.tokens_per_second(), 1), Fixed(v.total().p50_us(), 1),
                  Fixed(v.total().p90_us(), 1), Fixed(v.total().p99_us(), 1),
                  Fixed(v.total().max_us(), 1), Fixed(v.queue().mean_us(), 1),
                  Fixed(v.compute().mean_us(), 1), Fixed(v.compute_gflops(), 2)});
  }
  return absl::StrCat(
      table.Render(),
      "latencies: server-side, arrival to answer; queue/compute: means; req/s and tokens/s over "
      "the uptime, win req/s over the last ",
      Fixed(stats.window_seconds(), 0), " s\n", "uptime ", Fixed(stats.uptime_seconds(), 1),
      " s; rejected requests ", stats.rejected_requests(), "\n", BatchSizeTable(stats),
      MoeStatsTable(stats));
}

std::string StatsJson(const v1::GetStatsResponse& stats) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(stats, &json, options).ok()) return "{}\n";
  return json;
}

std::string InferSummary(const InferOutcome& outcome, const CheckBound& bound) {
  const v1::InferResponse& r = outcome.response;
  std::vector<std::string> first;
  for (size_t i = 0; i < std::min<size_t>(outcome.output.size(), 6); ++i) {
    first.push_back(absl::StrFormat("%.6g", outcome.output[i]));
  }
  std::string out = absl::StrCat(
      "variant: ", r.variant().model(), "/", r.variant().activation(), " (",
      v1::DType_Name(r.variant().dtype()), ")\n", "output: ", ShapeText(r.output()), " ",
      v1::DType_Name(r.output().dtype()), "; first values: ", absl::StrJoin(first, " "),
      outcome.output.size() > first.size() ? " ..." : "", "\n",
      "output: ", OutputStatistics(outcome.output), "server: queue ", r.queue_us(), " us, compute ",
      r.compute_us(), " us, total ", r.total_us(), " us; client round trip ", outcome.round_trip_us,
      " us\n");
  if (outcome.comparison) {
    const ReferenceComparison& c = *outcome.comparison;
    absl::StrAppend(&out, absl::StrFormat("check vs fp64 reference: max abs error %.3g, max scaled "
                                          "error %.3g, relative Frobenius %.3g; %s tolerance %s: %s\n",
                                          c.max_abs_error, c.max_scaled_error, c.relative_frobenius,
                                          bound.name, bound.ToString(),
                                          bound.Passes(c) ? "PASS" : "FAIL"));
  }
  return out;
}

}  // namespace ffn::client
