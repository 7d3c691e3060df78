#include "ffn/client/sweep.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "ffn/client/csv.h"
#include "ffn/client/report.h"

namespace ffn::client {
namespace {

constexpr size_t kMaxSweepValues = 1000;
constexpr size_t kStableWindows = 3;

absl::Status BadRange(const std::string& spec, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "range '", spec, "': ", why, " (expected START:END:STEP, STEP xF or +N, e.g. 1:64:x2)"));
}

double Throughput(const LoadResult& r) {
  return r.measured_seconds > 0 ? static_cast<double>(r.Total().requests) / r.measured_seconds
                                : 0.0;
}

bool WithinOfMean(const std::vector<double>& values, double percent) {
  double mean = 0;
  for (double v : values) mean += v / static_cast<double>(values.size());
  for (double v : values) {
    if (std::abs(v - mean) > percent / 100.0 * std::abs(mean)) return false;
  }
  return true;
}

std::string OverName(SweepOver over) { return over == SweepOver::kRate ? "rate" : "concurrency"; }

std::string StepName(SweepOver over, double value) {
  return over == SweepOver::kRate ? absl::StrFormat("rate %g req/s", value)
                                  : absl::StrFormat("concurrency %g", value);
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseSweepRange(const std::string& spec) {
  const std::vector<std::string> parts = absl::StrSplit(spec, ':');
  if (parts.empty() || parts.size() > 3) return BadRange(spec, "wrong number of parts");
  double start = 0, end = 0, step = 1;
  bool multiply = false;
  if (!absl::SimpleAtod(parts[0], &start) || !(start > 0)) {
    return BadRange(spec, "START must be a positive number");
  }
  end = start;
  if (parts.size() > 1 && (!absl::SimpleAtod(parts[1], &end) || !(end >= start))) {
    return BadRange(spec, "END must be a number >= START");
  }
  if (parts.size() == 3) {
    std::string text = parts[2];
    if (!text.empty() && (text[0] == 'x' || text[0] == '*')) {
      multiply = true;
      text = text.substr(1);
    } else if (!text.empty() && text[0] == '+') {
      text = text.substr(1);
    }
    if (!absl::SimpleAtod(text, &step) || !(multiply ? step > 1 : step > 0) || std::isinf(step)) {
      return BadRange(
          spec, multiply ? "a multiplying STEP must exceed 1" : "an adding STEP must be positive");
    }
  }
  std::vector<double> values;
  // Relative slack so that 0.1-steps land on END despite rounding.
  const double slack = 1e-9 * end;
  for (size_t i = 0;; ++i) {
    const double v = multiply ? start * std::pow(step, static_cast<double>(i))
                              : start + step * static_cast<double>(i);
    if (v > end + slack) break;
    if (values.size() == kMaxSweepValues) return BadRange(spec, "more than 1000 values");
    values.push_back(v);
  }
  return values;
}

bool WindowsStable(const std::vector<LoadResult>& windows, double percent) {
  if (windows.size() < kStableWindows) return false;
  std::vector<double> throughput, mean_latency;
  for (size_t i = windows.size() - kStableWindows; i < windows.size(); ++i) {
    throughput.push_back(Throughput(windows[i]));
    mean_latency.push_back(windows[i].Total().latency.MeanMicros());
  }
  return WithinOfMean(throughput, percent) && WithinOfMean(mean_latency, percent);
}

absl::StatusOr<std::vector<SweepStep>> RunSweep(
    const SweepOptions& options, const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  if (!(options.window_seconds > 0)) return absl::InvalidArgumentError("window must be positive");
  if (options.max_windows < static_cast<int>(kStableWindows)) {
    return absl::InvalidArgumentError("max-windows must be at least 3");
  }
  if (!(options.stability_percent > 0)) {
    return absl::InvalidArgumentError("stability must be a positive percentage");
  }
  auto values = ParseSweepRange(options.range);
  if (!values.ok()) return values.status();
  if (options.over == SweepOver::kConcurrency) {
    for (double v : *values) {
      if (v != std::floor(v) || v > 100000) {
        return absl::InvalidArgumentError(absl::StrCat("range '", options.range, "': concurrency ",
                                                       v, " is not a whole number up to 100000"));
      }
    }
  }

  std::vector<SweepStep> steps;
  for (double value : *values) {
    LoadOptions load = options.load;
    if (options.over == SweepOver::kConcurrency) {
      load.concurrency = static_cast<int>(value);
      load.rate = 0;
    } else {
      load.rate = value;
    }
    auto run = WindowedLoad::Start(load, options.window_seconds);
    if (!run.ok()) {
      if (steps.empty()) return run.status();
      say(absl::StrCat("sweep stopped before ", StepName(options.over, value), ": ",
                       run.status().ToString()));
      break;
    }
    std::vector<LoadResult> windows;
    bool stable = false;
    while (static_cast<int>(windows.size()) < options.max_windows && !stable) {
      windows.push_back((*run)->NextWindow());
      const LoadResult& w = windows.back();
      const VariantLoad total = w.Total();
      stable = WindowsStable(windows, options.stability_percent);
      say(absl::StrFormat("%s: window %d: %.1f req/s, mean %.1f us, p99 %.1f us, %d errors%s",
                          StepName(options.over, value), windows.size(), Throughput(w),
                          total.latency.MeanMicros(), total.latency.PercentileMicros(99),
                          total.errors, stable ? " (stable)" : ""));
    }
    (*run)->Stop();
    SweepStep step;
    step.value = value;
    step.windows = static_cast<int>(windows.size());
    step.stable = stable;
    step.result = windows[windows.size() - kStableWindows];
    for (size_t i = windows.size() - kStableWindows + 1; i < windows.size(); ++i) {
      step.result.Merge(windows[i]);
    }
    steps.push_back(std::move(step));
    const double p99_ms = steps.back().result.Total().latency.PercentileMicros(99) / 1e3;
    if (!stable) {
      say(absl::StrFormat("%s: not stable within %g %% after %d windows; reporting the last 3",
                          StepName(options.over, value), options.stability_percent,
                          options.max_windows));
    }
    if (options.stop_p99_ms > 0 && p99_ms > options.stop_p99_ms) {
      say(absl::StrFormat("sweep stopped: p99 %.1f ms exceeds %g ms", p99_ms, options.stop_p99_ms));
      break;
    }
  }
  return steps;
}

std::string SweepCsv(const std::vector<SweepStep>& steps) {
  std::vector<std::string> header = {"sweep",  "concurrency", "rate",
                                     "stable", "windows",     "measured_seconds"};
  for (const std::string& column : LoadCsvColumns()) header.push_back(column);
  std::string out = CsvLine(header);
  for (const SweepStep& step : steps) {
    const LoadOptions& o = step.result.options;
    const std::vector<std::string> prefix = {o.OpenLoop() ? "rate" : "concurrency",
                                             o.OpenLoop() ? "" : absl::StrCat(o.concurrency),
                                             o.OpenLoop() ? CsvValue(o.rate) : "",
                                             step.stable ? "true" : "false",
                                             absl::StrCat(step.windows),
                                             CsvValue(step.result.measured_seconds)};
    auto line = [&](const std::string& scope, const LoadRow& row) {
      std::vector<std::string> cells = prefix;
      for (std::string& cell : LoadCsvCells(scope, row)) cells.push_back(std::move(cell));
      absl::StrAppend(&out, CsvLine(cells));
    };
    const std::vector<LoadRow> rows = LoadRows(step.result);
    for (size_t i = 0; i < rows.size(); ++i) {
      line(i + 1 == rows.size() ? "total" : "variant", rows[i]);
    }
    for (const LoadRow& row : TargetRows(step.result)) line("target", row);
  }
  return out;
}

nlohmann::json SweepJson(const SweepOptions& options, const std::vector<SweepStep>& steps) {
  nlohmann::json list = nlohmann::json::array();
  for (const SweepStep& step : steps) {
    list.push_back({{"value", step.value},
                    {"stable", step.stable},
                    {"windows", step.windows},
                    {"report", LoadJson(step.result)}});
  }
  return {{"sweep",
           {{"over", OverName(options.over)},
            {"range", options.range},
            {"window_seconds", options.window_seconds},
            {"max_windows", options.max_windows},
            {"stability_percent", options.stability_percent}}},
          {"steps", list}};
}

}  // namespace ffn::client
