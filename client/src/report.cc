#include "ffn/client/report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ffn/client/request_mix.h"
#include "ffn/client/text_table.h"

namespace ffn::client {
namespace {

LoadRow RowOf(const std::string& name, const CallStats& stats, double seconds) {
  LoadRow row;
  row.variant = name;
  row.requests = stats.requests;
  row.errors = stats.errors;
  row.errors_by_code = stats.errors_by_code;
  row.tokens = stats.tokens;
  if (seconds > 0) {
    row.requests_per_second = static_cast<double>(stats.requests) / seconds;
    row.tokens_per_second = static_cast<double>(stats.tokens) / seconds;
    row.gflops = stats.flops / seconds / 1e9;
  }
  const LatencyHistogram& h = stats.latency;
  row.min_us = h.MinMicros();
  row.mean_us = h.MeanMicros();
  row.p50_us = h.PercentileMicros(50);
  row.p90_us = h.PercentileMicros(90);
  row.p99_us = h.PercentileMicros(99);
  row.p999_us = h.PercentileMicros(99.9);
  row.p9999_us = h.PercentileMicros(99.99);
  row.max_us = h.MaxMicros();
  row.send_to_answer_p50_us = stats.send_to_answer.PercentileMicros(50);
  row.send_to_answer_p99_us = stats.send_to_answer.PercentileMicros(99);
  if (stats.requests > 0) {
    const double n = static_cast<double>(stats.requests);
    row.mean_server_queue_us = stats.server_queue_us_sum / n;
    row.mean_server_compute_us = stats.server_compute_us_sum / n;
    row.mean_server_total_us = stats.server_total_us_sum / n;
    row.mean_server_batch_tokens = stats.server_batch_tokens_sum / n;
  }
  return row;
}

std::string Fixed1(double value) { return absl::StrFormat("%.1f", value); }
std::string Gflops(double value) { return absl::StrFormat("%.3g", value); }

nlohmann::json RowJson(const LoadRow& row) {
  nlohmann::json json = {{"variant", row.variant}};
  for (auto& [name, value] : RowFigures(row)) json[name] = value;
  json["errors_by_code"] = nlohmann::json::object();
  for (const auto& [code, count] : row.errors_by_code) json["errors_by_code"][code] = count;
  return json;
}

std::string CodesText(const std::map<std::string, uint64_t>& errors_by_code) {
  std::vector<std::string> parts;
  for (const auto& [code, count] : errors_by_code) parts.push_back(absl::StrCat(code, " ", count));
  return absl::StrJoin(parts, ", ");
}

std::string TargetNote(const TargetLoad& t) {
  const uint64_t calls = t.requests + t.errors;
  if (t.requests == 0) {
    return absl::StrCat("target ", t.target, ": all ", calls, " calls failed (",
                        CodesText(t.errors_by_code), ")");
  }
  if (t.last_ok_seconds < t.first_error_seconds) {
    return absl::StrFormat(
        "target %s stopped answering %.2f s into the run (last answer at %.2f s): %d of %d "
        "calls failed (%s); the run carried on with the other targets",
        t.target, t.first_error_seconds, t.last_ok_seconds, t.errors, calls,
        CodesText(t.errors_by_code));
  }
  return absl::StrFormat("target %s: %d of %d calls failed (%s), from %.2f s to %.2f s", t.target,
                         t.errors, calls, CodesText(t.errors_by_code), t.first_error_seconds,
                         t.last_error_seconds);
}

std::string OpenLoopLines(const LoadResult& result) {
  const LoadOptions& o = result.options;
  const OpenLoopStats& s = result.open_loop;
  const VariantLoad total = result.Total();
  return absl::StrFormat(
      "open loop: offered %.1f req/s (%s), %d calls scheduled; fell behind by mean %.1f us, "
      "p99 %.1f us, max %.1f us; %d sent >= %d us late, %d held back by max-outstanding %d\n"
      "           p50/p99 from the intended send %.1f/%.1f us, from the actual send %.1f/%.1f us\n",
      o.rate, ArrivalName(o.arrival), s.scheduled, s.send_lag.MeanMicros(),
      s.send_lag.PercentileMicros(99), s.send_lag.MaxMicros(), s.late_sends, kLateSendMicros,
      s.waited_for_outstanding, o.max_outstanding, total.latency.PercentileMicros(50),
      total.latency.PercentileMicros(99), total.send_to_answer.PercentileMicros(50),
      total.send_to_answer.PercentileMicros(99));
}

std::string TargetsTable(const LoadResult& result) {
  TextTable table(
      {"target", "requests", "errors", "req/s", "p50 us", "p99 us", "last OK s", "errors by code"});
  const std::vector<LoadRow> rows = TargetRows(result);
  for (size_t i = 0; i < rows.size(); ++i) {
    const LoadRow& row = rows[i];
    table.AddRow({row.variant, absl::StrCat(row.requests), absl::StrCat(row.errors),
                  Fixed1(row.requests_per_second), Fixed1(row.p50_us), Fixed1(row.p99_us),
                  absl::StrFormat("%.2f", result.targets[i].last_ok_seconds),
                  CodesText(row.errors_by_code)});
  }
  return table.Render();
}

// What the calls are, where ffn.v1's unary Infer goes without saying.
std::string ProtocolText(const LoadOptions& o) {
  if (o.protocol != Protocol::kV2) return "";
  return o.stream ? "KServe v2, " : "KServe v2 ModelInfer, ";
}

std::string ModeText(const LoadOptions& o) {
  if (o.OpenLoop()) {
    return absl::StrFormat("open loop %.1f req/s %s, max-outstanding %d", o.rate,
                           ArrivalName(o.arrival), o.max_outstanding);
  }
  return absl::StrFormat("closed loop%s, concurrency %d",
                         o.stream ? absl::StrCat(" over ", o.StreamRpc()) : "", o.concurrency);
}

}  // namespace

std::vector<std::pair<std::string, nlohmann::json>> RowFigures(const LoadRow& row) {
  return {{"requests", row.requests},
          {"errors", row.errors},
          {"tokens", row.tokens},
          {"requests_per_second", row.requests_per_second},
          {"tokens_per_second", row.tokens_per_second},
          {"gflops", row.gflops},
          {"min_us", row.min_us},
          {"mean_us", row.mean_us},
          {"p50_us", row.p50_us},
          {"p90_us", row.p90_us},
          {"p99_us", row.p99_us},
          {"p999_us", row.p999_us},
          {"p9999_us", row.p9999_us},
          {"max_us", row.max_us},
          {"send_to_answer_p50_us", row.send_to_answer_p50_us},
          {"send_to_answer_p99_us", row.send_to_answer_p99_us},
          {"mean_server_queue_us", row.mean_server_queue_us},
          {"mean_server_compute_us", row.mean_server_compute_us},
          {"mean_server_total_us", row.mean_server_total_us},
          {"mean_server_batch_tokens", row.mean_server_batch_tokens}};
}

std::vector<LoadRow> LoadRows(const LoadResult& result) {
  std::vector<LoadRow> rows;
  for (const VariantLoad& load : result.variants) {
    rows.push_back(RowOf(load.variant.Name(), load, result.measured_seconds));
  }
  rows.push_back(RowOf("TOTAL", result.Total(), result.measured_seconds));
  return rows;
}

std::vector<LoadRow> TargetRows(const LoadResult& result) {
  std::vector<LoadRow> rows;
  for (const TargetLoad& t : result.targets) {
    rows.push_back(RowOf(t.target, t, result.measured_seconds));
  }
  return rows;
}

std::vector<std::string> LoadNotes(const LoadResult& result) {
  std::vector<std::string> notes;
  for (const LoadResult::ServerStatistics& s : result.server_statistics) {
    notes.push_back(absl::StrFormat(
        "server's ModelStatistics for %s over the window: %d OK, %d failed; mean queue %.1f us, "
        "compute %.1f us, total %.1f us",
        s.model, s.requests, s.failed, s.mean_queue_us, s.mean_compute_us, s.mean_total_us));
  }
  if (result.targets.size() > 1) {
    for (const TargetLoad& t : result.targets) {
      if (t.errors > 0) notes.push_back(TargetNote(t));
    }
  }
  if (!result.options.OpenLoop()) return notes;
  const OpenLoopStats& s = result.open_loop;
  if (s.late_sends > 0) {
    notes.push_back(absl::StrFormat(
        "the client fell behind its schedule: %d of %d calls went out %d us or more late (max "
        "%.1f ms); latencies count from the intended send times, so they include the delay",
        s.late_sends, s.scheduled, kLateSendMicros, s.send_lag.MaxMicros() / 1e3));
  }
  if (s.waited_for_outstanding > 0) {
    notes.push_back(absl::StrFormat(
        "%d calls waited because max-outstanding (%d) calls were in flight: the server did "
        "not keep up with the offered rate",
        s.waited_for_outstanding, result.options.max_outstanding));
  }
  return notes;
}

std::string LoadTable(const LoadResult& result) {
  TextTable table({"variant", "requests", "errors", "req/s", "tokens/s", "GFLOP/s", "min us",
                   "mean us", "p50 us", "p90 us", "p99 us", "p99.9 us", "p99.99 us", "max us",
                   "srv queue us", "srv compute us"});
  const std::vector<LoadRow> rows = LoadRows(result);
  for (const LoadRow& row : rows) {
    table.AddRow({row.variant, absl::StrCat(row.requests), absl::StrCat(row.errors),
                  Fixed1(row.requests_per_second), Fixed1(row.tokens_per_second),
                  Gflops(row.gflops), Fixed1(row.min_us), Fixed1(row.mean_us), Fixed1(row.p50_us),
                  Fixed1(row.p90_us), Fixed1(row.p99_us), Fixed1(row.p999_us), Fixed1(row.p9999_us),
                  Fixed1(row.max_us), Fixed1(row.mean_server_queue_us),
                  Fixed1(row.mean_server_compute_us)});
  }
  const LoadRow& total = rows.back();
  const LoadOptions& o = result.options;
  std::string out = absl::StrCat(
      table.Render(),
      o.OpenLoop() ? "latencies: OK calls, from each call's intended send time to its answer, "
                     "microseconds; srv: server-reported means\n"
                   : o.stream ? "latencies: OK calls, from putting the request on its stream to "
                                "its answer, microseconds; srv: server-reported means\n"
                              : "latencies: OK calls, client round trip, microseconds; srv: "
                                "server-reported means\n",
      absl::StrFormat("achieved: %.1f req/s, %.1f tokens/s, %s GFLOP/s, p50 %.1f us, p99 %.1f us; "
                      "%d OK, %d failed in %.2f s\n",
                      total.requests_per_second, total.tokens_per_second, Gflops(total.gflops),
                      total.p50_us, total.p99_us, total.requests, total.errors,
                      result.measured_seconds));
  if (o.OpenLoop()) absl::StrAppend(&out, OpenLoopLines(result));
  if (result.targets.size() > 1) absl::StrAppend(&out, TargetsTable(result));
  for (const std::string& note : LoadNotes(result)) absl::StrAppend(&out, "note: ", note, "\n");
  absl::StrAppend(
      &out, absl::StrFormat("config: target %s, %s%s, connections %d, tokens %s, warmup %.2f s\n",
                            absl::StrJoin(o.targets, " "), ProtocolText(o), ModeText(o),
                            o.connections, o.tokens, o.warmup_seconds));
  return out;
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
    nlohmann::json row = RowJson(rows[i]);
    row["model"] = result.variants[i].variant.model;
    row["activation"] = result.variants[i].variant.activation;
    variants.push_back(std::move(row));
  }
  const std::vector<LoadRow> target_rows = TargetRows(result);
  nlohmann::json targets = nlohmann::json::array();
  for (size_t i = 0; i < result.targets.size(); ++i) {
    const TargetLoad& t = result.targets[i];
    nlohmann::json row = RowJson(target_rows[i]);
    row["target"] = t.target;
    row["ok_by_peer"] = t.ok_by_peer;
    row["last_ok_seconds"] = t.last_ok_seconds;
    row["first_error_seconds"] = t.first_error_seconds;
    row["last_error_seconds"] = t.last_error_seconds;
    targets.push_back(std::move(row));
  }
  nlohmann::json open_loop = nullptr;
  if (o.OpenLoop()) {
    const OpenLoopStats& s = result.open_loop;
    open_loop = {{"offered_rate", o.rate},
                 {"arrival", ArrivalName(o.arrival)},
                 {"scheduled", s.scheduled},
                 {"late_sends", s.late_sends},
                 {"late_threshold_us", kLateSendMicros},
                 {"waited_for_outstanding", s.waited_for_outstanding},
                 {"send_lag_mean_us", s.send_lag.MeanMicros()},
                 {"send_lag_p50_us", s.send_lag.PercentileMicros(50)},
                 {"send_lag_p99_us", s.send_lag.PercentileMicros(99)},
                 {"send_lag_max_us", s.send_lag.MaxMicros()}};
  }
  nlohmann::json server_statistics = nlohmann::json::array();
  for (const LoadResult::ServerStatistics& s : result.server_statistics) {
    server_statistics.push_back({{"model", s.model},
                                 {"requests", s.requests},
                                 {"failed", s.failed},
                                 {"mean_queue_us", s.mean_queue_us},
                                 {"mean_compute_us", s.mean_compute_us},
                                 {"mean_total_us", s.mean_total_us}});
  }
  auto tokens = TokenDistribution::Parse(o.tokens);
  return {{"server_statistics", server_statistics},
          {"config",
           {{"target", o.targets.empty() ? "" : o.targets.front()},
            {"targets", o.targets},
            {"lb_policy", o.lb_policy},
            {"mode", o.OpenLoop() ? "open" : "closed"},
            {"stream", o.stream},
            {"concurrency", o.concurrency},
            {"rate", o.rate},
            {"arrival", ArrivalName(o.arrival)},
            {"max_outstanding", o.max_outstanding},
            {"connections", o.connections},
            {"duration_seconds", o.duration_seconds},
            {"requests", o.requests},
            {"warmup_seconds", o.warmup_seconds},
            {"measured_seconds", result.measured_seconds},
            {"tokens", tokens.ok() ? tokens->Mean() : 0.0},
            {"tokens_spec", o.tokens},
            {"seed", o.seed},
            {"timeout_seconds", o.timeout_seconds},
            {"variants", o.variants},
            {"compute_dtype", o.compute_dtype.empty() ? "default" : o.compute_dtype}}},
          {"variants", variants},
          {"total", RowJson(rows.back())},
          {"targets", targets},
          {"open_loop", open_loop},
          {"notes", LoadNotes(result)}};
}

}  // namespace ffn::client
