// The load report: figures from known counts, percentiles against exact
// percentiles of known samples, and the table, JSON and CSV holding the same
// numbers.
#include "ffn/client/report.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "ffn/client/csv.h"
#include "gtest/gtest.h"

namespace ffn::client {
namespace {

// Records one OK call of `tokens` tokens and `latency_ns` into `stats`.
void AddOk(CallStats& stats, int64_t latency_ns, int64_t tokens = 4, int64_t queue_us = 0,
           int64_t compute_us = 0) {
  stats.RecordOk(latency_ns, latency_ns, tokens, 1000.0 * static_cast<double>(tokens),
                 {queue_us, compute_us, queue_us + compute_us, 2 * tokens});
}

// Two variants and two targets with known figures over a 2 s window, 4
// tokens per request, 1000 flops per token.
LoadResult KnownResult() {
  LoadResult result;
  result.options.targets = {"127.0.0.1:1234", "127.0.0.1:5678"};
  result.options.concurrency = 3;
  result.options.duration_seconds = 2;
  result.options.tokens = "4";
  result.measured_seconds = 2;

  VariantLoad a;
  a.variant = {"ffn-768", "gelu"};
  for (int i = 1; i <= 10; ++i) AddOk(a, i * 100'000, 4, i <= 5 ? 10 : 0, 20);  // 100..1000 us

  VariantLoad b;
  b.variant = {"glu-768", "swiglu"};
  for (int i = 0; i < 4; ++i) AddOk(b, 2'000'000, 4, 0, 100);  // 2000 us
  b.RecordError("UNAVAILABLE", "draining");
  b.RecordError("UNAVAILABLE", "gone");
  b.RecordError("DEADLINE_EXCEEDED", "late");

  TargetLoad first;
  first.target = "127.0.0.1:1234";
  static_cast<CallStats&>(first).Merge(a);
  first.last_ok_seconds = 2.5;
  TargetLoad second;
  second.target = "127.0.0.1:5678";
  static_cast<CallStats&>(second).Merge(b);
  second.last_ok_seconds = 1.0;
  second.first_error_seconds = 1.2;
  second.last_error_seconds = 2.4;

  result.variants = {a, b};
  result.targets = {first, second};
  return result;
}

TEST(LoadRowsTest, FiguresFollowFromTheCounts) {
  const std::vector<LoadRow> rows = LoadRows(KnownResult());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].variant, "ffn-768/gelu");
  EXPECT_DOUBLE_EQ(rows[0].requests_per_second, 5.0);
  EXPECT_DOUBLE_EQ(rows[0].tokens_per_second, 20.0);
  EXPECT_DOUBLE_EQ(rows[0].gflops, 40 * 1000.0 / 2 / 1e9);
  EXPECT_DOUBLE_EQ(rows[0].min_us, 100.0);
  EXPECT_DOUBLE_EQ(rows[0].mean_us, 550.0);
  EXPECT_DOUBLE_EQ(rows[0].max_us, 1000.0);
  EXPECT_NEAR(rows[0].p50_us, 500.0, 500.0 / 64);
  EXPECT_DOUBLE_EQ(rows[0].mean_server_queue_us, 5.0);
  EXPECT_DOUBLE_EQ(rows[0].mean_server_compute_us, 20.0);
  EXPECT_DOUBLE_EQ(rows[0].mean_server_total_us, 25.0);
  EXPECT_DOUBLE_EQ(rows[0].mean_server_batch_tokens, 8.0);
  EXPECT_DOUBLE_EQ(rows[1].mean_server_compute_us, 100.0);
  EXPECT_EQ(rows[1].errors, 3u);
  EXPECT_EQ(rows[1].errors_by_code.at("UNAVAILABLE"), 2u);
  EXPECT_EQ(rows[2].variant, "TOTAL");
  EXPECT_EQ(rows[2].requests, 14u);
  EXPECT_EQ(rows[2].errors, 3u);
  EXPECT_EQ(rows[2].tokens, 56u);
  EXPECT_DOUBLE_EQ(rows[2].requests_per_second, 7.0);
  EXPECT_DOUBLE_EQ(rows[2].tokens_per_second, 28.0);
  EXPECT_DOUBLE_EQ(rows[2].max_us, 2000.0);
  EXPECT_DOUBLE_EQ(rows[2].mean_server_compute_us, 600.0 / 14);

  const std::vector<LoadRow> targets = TargetRows(KnownResult());
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].variant, "127.0.0.1:1234");
  EXPECT_EQ(targets[0].requests, 10u);
  EXPECT_EQ(targets[1].errors, 3u);
}

// The rows' percentiles come from the log-linear histogram: each must lie
// within its 1/64 relative error of the exact percentile of the samples
// (the smallest sample with at least p % of samples at or below it); min,
// max and mean are exact.
TEST(LoadRowsTest, PercentilesMatchExactPercentilesOfKnownSamples) {
  std::mt19937_64 rng(2026);
  std::lognormal_distribution<double> dist(std::log(300e3), 1.2);  // median 300 us, long tail
  std::vector<int64_t> samples;
  LoadResult result;
  result.measured_seconds = 1;
  result.variants.resize(1);
  result.variants[0].variant = {"m", "relu"};
  for (int i = 0; i < 200000; ++i) {
    const auto ns = static_cast<int64_t>(std::llround(dist(rng)));
    samples.push_back(ns);
    AddOk(result.variants[0], ns);
  }
  std::sort(samples.begin(), samples.end());
  auto exact_us = [&](double percent) {
    auto rank = static_cast<size_t>(std::ceil(percent / 100 * static_cast<double>(samples.size())));
    return static_cast<double>(samples[std::clamp<size_t>(rank, 1, samples.size()) - 1]) / 1e3;
  };
  long double sum = 0;
  for (int64_t s : samples) sum += s;

  const LoadRow row = LoadRows(result).front();
  const std::vector<std::pair<double, double>> checks = {{50, row.p50_us},
                                                         {90, row.p90_us},
                                                         {99, row.p99_us},
                                                         {99.9, row.p999_us},
                                                         {99.99, row.p9999_us}};
  for (const auto& [percent, got] : checks) {
    const double want = exact_us(percent);
    EXPECT_LE(std::abs(got - want), want / 64) << "p" << percent << ": " << got << " vs " << want;
  }
  EXPECT_DOUBLE_EQ(row.min_us, static_cast<double>(samples.front()) / 1e3);
  EXPECT_DOUBLE_EQ(row.max_us, static_cast<double>(samples.back()) / 1e3);
  EXPECT_NEAR(row.mean_us, static_cast<double>(sum / samples.size()) / 1e3, 1e-6);
  // The tail is far from the median: a histogram that lost it would fail here.
  EXPECT_GT(row.p9999_us, 20 * row.p50_us);
}

void ExpectRowMatchesJson(const LoadRow& row, const nlohmann::json& json) {
  SCOPED_TRACE(row.variant);
  EXPECT_EQ(json.at("variant").get<std::string>(), row.variant);
  for (const auto& [name, value] : RowFigures(row)) {
    ASSERT_TRUE(json.contains(name)) << name;
    EXPECT_DOUBLE_EQ(json.at(name).get<double>(), value.get<double>()) << name;
  }
  // Each name carries its own field (RowFigures could swap two and the loop
  // above would not see it).
  EXPECT_EQ(json.at("requests").get<uint64_t>(), row.requests);
  EXPECT_EQ(json.at("errors").get<uint64_t>(), row.errors);
  EXPECT_DOUBLE_EQ(json.at("requests_per_second").get<double>(), row.requests_per_second);
  EXPECT_DOUBLE_EQ(json.at("tokens_per_second").get<double>(), row.tokens_per_second);
  EXPECT_DOUBLE_EQ(json.at("p50_us").get<double>(), row.p50_us);
  EXPECT_DOUBLE_EQ(json.at("p90_us").get<double>(), row.p90_us);
  EXPECT_DOUBLE_EQ(json.at("p99_us").get<double>(), row.p99_us);
  EXPECT_DOUBLE_EQ(json.at("max_us").get<double>(), row.max_us);
  EXPECT_DOUBLE_EQ(json.at("mean_server_queue_us").get<double>(), row.mean_server_queue_us);
  EXPECT_DOUBLE_EQ(json.at("mean_server_compute_us").get<double>(), row.mean_server_compute_us);
  EXPECT_EQ(json.at("errors_by_code").size(), row.errors_by_code.size());
  for (const auto& [code, count] : row.errors_by_code) {
    EXPECT_EQ(json.at("errors_by_code").at(code).get<uint64_t>(), count);
  }
}

TEST(LoadJsonTest, RoundTripsEveryFigureOfTheRows) {
  const LoadResult result = KnownResult();
  const std::vector<LoadRow> rows = LoadRows(result);
  const nlohmann::json json = nlohmann::json::parse(LoadJson(result).dump(2));

  const nlohmann::json& config = json.at("config");
  EXPECT_EQ(config.at("target").get<std::string>(), "127.0.0.1:1234");
  EXPECT_EQ(config.at("targets").size(), 2u);
  EXPECT_EQ(config.at("mode").get<std::string>(), "closed");
  EXPECT_EQ(config.at("concurrency").get<int>(), 3);
  EXPECT_DOUBLE_EQ(config.at("duration_seconds").get<double>(), 2.0);
  EXPECT_EQ(config.at("tokens").get<int64_t>(), 4);
  EXPECT_EQ(config.at("tokens_spec").get<std::string>(), "4");
  EXPECT_TRUE(json.at("open_loop").is_null());

  ASSERT_EQ(json.at("variants").size(), 2u);
  ExpectRowMatchesJson(rows[0], json.at("variants")[0]);
  ExpectRowMatchesJson(rows[1], json.at("variants")[1]);
  ExpectRowMatchesJson(rows[2], json.at("total"));
  EXPECT_EQ(json.at("variants")[1].at("model").get<std::string>(), "glu-768");
  EXPECT_EQ(json.at("total").at("errors_by_code").at("DEADLINE_EXCEEDED").get<int>(), 1);
  EXPECT_EQ(json.at("variants")[1].at("errors_by_code").at("UNAVAILABLE").get<int>(), 2);

  const std::vector<LoadRow> targets = TargetRows(result);
  ASSERT_EQ(json.at("targets").size(), 2u);
  for (size_t i = 0; i < targets.size(); ++i) {
    ExpectRowMatchesJson(targets[i], json.at("targets")[i]);
    EXPECT_EQ(json.at("targets")[i].at("target").get<std::string>(), result.targets[i].target);
  }
  EXPECT_DOUBLE_EQ(json.at("targets")[1].at("first_error_seconds").get<double>(), 1.2);
  EXPECT_DOUBLE_EQ(json.at("targets")[0].at("first_error_seconds").get<double>(), -1);
  ASSERT_EQ(json.at("notes").size(), 1u);
}

// Splits a CSV line without quoted fields (the test data have none).
std::vector<std::string> CsvCells(const std::string& line) { return absl::StrSplit(line, ','); }

TEST(LoadCsvTest, HoldsTheJsonFiguresExactly) {
  const LoadResult result = KnownResult();
  const nlohmann::json json = LoadJson(result);
  std::istringstream csv(LoadCsv(result));
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  const std::vector<std::string> header = CsvCells(line);
  EXPECT_EQ(header, LoadCsvColumns());
  std::vector<nlohmann::json> expected = {json["variants"][0], json["variants"][1], json["total"],
                                          json["targets"][0], json["targets"][1]};
  const std::vector<std::string> scopes = {"variant", "variant", "total", "target", "target"};
  size_t lines = 0;
  while (std::getline(csv, line)) {
    ASSERT_LT(lines, expected.size());
    const std::vector<std::string> cells = CsvCells(line);
    ASSERT_EQ(cells.size(), header.size()) << line;
    const nlohmann::json& want = expected[lines];
    EXPECT_EQ(cells[0], scopes[lines]);
    EXPECT_EQ(cells[1], want["variant"].get<std::string>());
    for (size_t c = 2; c + 1 < header.size(); ++c) {
      // Shortest round-trip text: parsing gives back the very same double.
      EXPECT_EQ(std::stod(cells[c]), want.at(header[c]).get<double>()) << header[c];
    }
    ++lines;
  }
  EXPECT_EQ(lines, expected.size());
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
}

// The table prints the same rows, rounded to 0.1 (GFLOP/s to 3 digits).
TEST(LoadTableTest, ShowsTheRowsFigures) {
  const LoadResult result = KnownResult();
  const std::vector<LoadRow> rows = LoadRows(result);
  std::istringstream table(LoadTable(result));
  std::string line;
  size_t matched = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::vector<std::string> cells;
    for (std::string cell; fields >> cell;) cells.push_back(cell);
    for (const LoadRow& row : rows) {
      if (cells.empty() || cells[0] != row.variant) continue;
      ASSERT_EQ(cells.size(), 16u) << line;
      const std::vector<std::string> want = {row.variant,
                                             std::to_string(row.requests),
                                             std::to_string(row.errors),
                                             absl::StrFormat("%.1f", row.requests_per_second),
                                             absl::StrFormat("%.1f", row.tokens_per_second),
                                             absl::StrFormat("%.3g", row.gflops),
                                             absl::StrFormat("%.1f", row.min_us),
                                             absl::StrFormat("%.1f", row.mean_us),
                                             absl::StrFormat("%.1f", row.p50_us),
                                             absl::StrFormat("%.1f", row.p90_us),
                                             absl::StrFormat("%.1f", row.p99_us),
                                             absl::StrFormat("%.1f", row.p999_us),
                                             absl::StrFormat("%.1f", row.p9999_us),
                                             absl::StrFormat("%.1f", row.max_us),
                                             absl::StrFormat("%.1f", row.mean_server_queue_us),
                                             absl::StrFormat("%.1f", row.mean_server_compute_us)};
      EXPECT_EQ(cells, want) << line;
      ++matched;
    }
  }
  EXPECT_EQ(matched, rows.size());
}

TEST(LoadTableTest, ListsTargetsAndSaysWhenOneStoppedAnswering) {
  const std::string table = LoadTable(KnownResult());
  EXPECT_NE(table.find("127.0.0.1:5678"), std::string::npos) << table;
  EXPECT_NE(table.find("note: target 127.0.0.1:5678 stopped answering 1.20 s into the run"),
            std::string::npos)
      << table;
}

TEST(LoadNotesTest, OpenLoopThatFellBehindSaysSo) {
  LoadResult result = KnownResult();
  result.targets.resize(1);
  result.options.rate = 100;
  result.options.max_outstanding = 5;
  result.open_loop.scheduled = 14;
  result.open_loop.late_sends = 3;
  result.open_loop.waited_for_outstanding = 2;
  result.open_loop.send_lag.RecordNanos(7'000'000);
  const std::vector<std::string> notes = LoadNotes(result);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("fell behind its schedule: 3 of 14 calls"), std::string::npos)
      << notes[0];
  EXPECT_NE(notes[1].find("max-outstanding (5)"), std::string::npos) << notes[1];
  const nlohmann::json json = LoadJson(result);
  EXPECT_EQ(json["open_loop"]["late_sends"].get<int>(), 3);
  EXPECT_DOUBLE_EQ(json["open_loop"]["send_lag_max_us"].get<double>(), 7000.0);
  EXPECT_NE(LoadTable(result).find("fell behind by mean 7000.0 us"), std::string::npos);
}

TEST(LoadErrorsTest, ListsEachCodesCountAndFirstMessage) {
  const std::string errors = LoadErrors(KnownResult());
  EXPECT_NE(errors.find("glu-768/swiglu: 2 x UNAVAILABLE: draining"), std::string::npos) << errors;
  EXPECT_NE(errors.find("glu-768/swiglu: 1 x DEADLINE_EXCEEDED: late"), std::string::npos)
      << errors;
}

TEST(LoadResultTest, FailedIfAnyErrorOrNoSuccess) {
  LoadResult result = KnownResult();
  EXPECT_TRUE(result.Failed());
  result.variants.pop_back();
  EXPECT_FALSE(result.Failed());
  result.variants[0] = VariantLoad();
  EXPECT_TRUE(result.Failed());
}

TEST(LoadResultTest, MergeAddsWindows) {
  LoadResult a = KnownResult(), b = KnownResult();
  a.Merge(b);
  EXPECT_DOUBLE_EQ(a.measured_seconds, 4);
  EXPECT_EQ(a.Total().requests, 28u);
  EXPECT_EQ(a.targets[1].errors, 6u);
  EXPECT_DOUBLE_EQ(a.targets[1].first_error_seconds, 1.2);
  EXPECT_DOUBLE_EQ(LoadRows(a).back().requests_per_second, 7.0);
}

}  // namespace
}  // namespace ffn::client
