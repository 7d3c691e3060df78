#include "ffn/client/report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ffn/client/text_table.h"

namespace ffn::client {
namespace {

LoadRow RowOf(const std::string& name, const VariantLoad& load, double seconds, int64_t tokens) {
  LoadRow row;
  row.variant = name;
  row.requests = load.requests;
  row.errors = load.errors;
  const double requests = static_cast<double>(load.requests);
  if (seconds > 0) {
    row.requests_per_second = requests / seconds;
    row.tokens_per_second = requests * static_cast<double>(tokens) / seconds;
  }
  row.p50_us = load.latency.PercentileMicros(50);
  row.p90_us = load.latency.PercentileMicros(90);
  row.p99_us = load.latency.PercentileMicros(99);
  row.max_us = load.latency.MaxMicros();
  if (load.requests > 0) {
    row.mean_server_queue_us = load.server_queue_us_sum / requests;
    row.mean_server_compute_us = load.server_compute_us_sum / requests;
  }
  return row;
}

std::string Fixed1(double value) { return absl::StrFormat("%.1f", value); }

nlohmann::json RowJson(const LoadRow& row, const VariantLoad& load) {
  nlohmann::json errors_by_code = nlohmann::json::object();
  for (const auto& [code, count] : load.errors_by_code) errors_by_code[code] = count;
  return {{"variant", row.variant},
          {"requests", row.requests},
          {"errors", row.errors},
          {"errors_by_code", errors_by_code},
          {"requests_per_second", row.requests_per_second},
          {"tokens_per_second", row.tokens_per_second},
          {"p50_us", row.p50_us},
          {"p90_us", row.p90_us},
          {"p99_us", row.p99_us},
          {"max_us", row.max_us},
          {"mean_server_queue_us", row.mean_server_queue_us},
          {"mean_server_compute_us", row.mean_server_compute_us}};
}

}  // namespace

std::vector<LoadRow> LoadRows(const LoadResult& result) {
  const double seconds = result.measured_seconds;
  const int64_t tokens = result.options.tokens;
  std::vector<LoadRow> rows;
  for (const VariantLoad& load : result.variants) {
    rows.push_back(RowOf(load.variant.Name(), load, seconds, tokens));
  }
  rows.push_back(RowOf("TOTAL", result.Total(), seconds, tokens));
  return rows;
}

std::string LoadTable(const LoadResult& result) {
  TextTable table({"variant", "requests", "errors", "req/s", "tokens/s", "p50 us", "p90 us",
                   "p99 us", "max us", "srv queue us", "srv compute us"});
  const std::vector<LoadRow> rows = LoadRows(result);
  for (const LoadRow& row : rows) {
    table.AddRow({row.variant, absl::StrCat(row.requests), absl::StrCat(row.errors),
                  Fixed1(row.requests_per_second), Fixed1(row.tokens_per_second),
                  Fixed1(row.p50_us), Fixed1(row.p90_us), Fixed1(row.p99_us), Fixed1(row.max_us),
                  Fixed1(row.mean_server_queue_us), Fixed1(row.mean_server_compute_us)});
  }
  const LoadRow& total = rows.back();
  const LoadOptions& o = result.options;
  return absl::StrCat(
      table.Render(),
      "latencies: client round trip of OK calls, microseconds; srv: server-reported means\n",
      absl::StrFormat("achieved: %.1f req/s, %.1f tokens/s, p50 %.1f us, p99 %.1f us; "
                      "%d OK, %d failed in %.2f s\n",
                      total.requests_per_second, total.tokens_per_second, total.p50_us,
                      total.p99_us, total.requests, total.errors, result.measured_seconds),
      absl::StrFormat("config: target %s, concurrency %d, connections %d, %d token(s)/request, "
                      "warmup %.2f s\n",
                      o.target, o.concurrency, o.connections, o.tokens, o.warmup_seconds));
}

std::string LoadErrors(const LoadResult& result) {
  std::string out;
  for (const VariantLoad& load : result.variants) {
    for (const auto& [code, count] : load.errors_by_code) {
      auto message = load.first_error_by_code.find(code);
      absl::StrAppend(&out, load.variant.Name(), ": ", count, " x ", code, ": ",
                      message == load.first_error_by_code.end() ? "" : message->second, "\n");
    }
  }
  return out;
}

nlohmann::json LoadJson(const LoadResult& result) {
  const LoadOptions& o = result.options;
  const std::vector<LoadRow> rows = LoadRows(result);
  nlohmann::json variants = nlohmann::json::array();
  for (size_t i = 0; i < result.variants.size(); ++i) {
    nlohmann::json row = RowJson(rows[i], result.variants[i]);
    row["model"] = result.variants[i].variant.model;
    row["activation"] = result.variants[i].variant.activation;
    variants.push_back(std::move(row));
  }
  return {{"config",
           {{"target", o.target},
            {"concurrency", o.concurrency},
            {"connections", o.connections},
            {"duration_seconds", o.duration_seconds},
            {"warmup_seconds", o.warmup_seconds},
            {"measured_seconds", result.measured_seconds},
            {"tokens", o.tokens},
            {"seed", o.seed},
            {"timeout_seconds", o.timeout_seconds},
            {"variants", o.variants}}},
          {"variants", variants},
          {"total", RowJson(rows.back(), result.Total())}};
}

}  // namespace ffn::client
