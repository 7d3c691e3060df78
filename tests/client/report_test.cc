#include "ffn/client/report.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace ffn::client {
namespace {

// Two variants with known figures over a 2 s window, 4 tokens per request.
LoadResult KnownResult() {
  LoadResult result;
  result.options.target = "127.0.0.1:1234";
  result.options.concurrency = 3;
  result.options.duration_seconds = 2;
  result.options.tokens = 4;
  result.measured_seconds = 2;

  VariantLoad a;
  a.variant = {"ffn-768", "gelu"};
  for (int i = 1; i <= 10; ++i) a.latency.RecordNanos(i * 100'000);  // 100 .. 1000 us
  a.requests = 10;
  a.server_queue_us_sum = 50;
  a.server_compute_us_sum = 200;

  VariantLoad b;
  b.variant = {"glu-768", "swiglu"};
  for (int i = 0; i < 4; ++i) b.latency.RecordNanos(2'000'000);  // 2000 us
  b.requests = 4;
  b.errors = 3;
  b.errors_by_code = {{"UNAVAILABLE", 2}, {"DEADLINE_EXCEEDED", 1}};
  b.first_error_by_code = {{"UNAVAILABLE", "draining"}, {"DEADLINE_EXCEEDED", "late"}};
  b.server_compute_us_sum = 400;

  result.variants = {a, b};
  return result;
}

TEST(LoadRowsTest, FiguresFollowFromTheCounts) {
  const std::vector<LoadRow> rows = LoadRows(KnownResult());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].variant, "ffn-768/gelu");
  EXPECT_DOUBLE_EQ(rows[0].requests_per_second, 5.0);
  EXPECT_DOUBLE_EQ(rows[0].tokens_per_second, 20.0);
  EXPECT_DOUBLE_EQ(rows[0].max_us, 1000.0);
  EXPECT_NEAR(rows[0].p50_us, 500.0, 500.0 / 64);
  EXPECT_DOUBLE_EQ(rows[0].mean_server_queue_us, 5.0);
  EXPECT_DOUBLE_EQ(rows[0].mean_server_compute_us, 20.0);
  EXPECT_DOUBLE_EQ(rows[1].mean_server_compute_us, 100.0);
  EXPECT_EQ(rows[2].variant, "TOTAL");
  EXPECT_EQ(rows[2].requests, 14u);
  EXPECT_EQ(rows[2].errors, 3u);
  EXPECT_DOUBLE_EQ(rows[2].requests_per_second, 7.0);
  EXPECT_DOUBLE_EQ(rows[2].tokens_per_second, 28.0);
  EXPECT_DOUBLE_EQ(rows[2].max_us, 2000.0);
  EXPECT_DOUBLE_EQ(rows[2].mean_server_compute_us, 600.0 / 14);
}

void ExpectRowMatchesJson(const LoadRow& row, const nlohmann::json& json) {
  SCOPED_TRACE(row.variant);
  EXPECT_EQ(json.at("variant").get<std::string>(), row.variant);
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
}

TEST(LoadJsonTest, RoundTripsEveryFigureOfTheTable) {
  const LoadResult result = KnownResult();
  const std::vector<LoadRow> rows = LoadRows(result);
  const nlohmann::json json = nlohmann::json::parse(LoadJson(result).dump(2));

  const nlohmann::json& config = json.at("config");
  EXPECT_EQ(config.at("target").get<std::string>(), "127.0.0.1:1234");
  EXPECT_EQ(config.at("concurrency").get<int>(), 3);
  EXPECT_DOUBLE_EQ(config.at("duration_seconds").get<double>(), 2.0);
  EXPECT_EQ(config.at("tokens").get<int64_t>(), 4);

  ASSERT_EQ(json.at("variants").size(), 2u);
  ExpectRowMatchesJson(rows[0], json.at("variants")[0]);
  ExpectRowMatchesJson(rows[1], json.at("variants")[1]);
  ExpectRowMatchesJson(rows[2], json.at("total"));
  EXPECT_EQ(json.at("variants")[1].at("model").get<std::string>(), "glu-768");
  EXPECT_EQ(json.at("variants")[1].at("errors_by_code").at("UNAVAILABLE").get<int>(), 2);
  EXPECT_EQ(json.at("total").at("errors_by_code").at("DEADLINE_EXCEEDED").get<int>(), 1);
}

// The table prints the same rows, rounded to 0.1.
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
      ASSERT_EQ(cells.size(), 11u) << line;
      EXPECT_EQ(cells[1], std::to_string(row.requests));
      EXPECT_EQ(cells[2], std::to_string(row.errors));
      EXPECT_EQ(cells[3], absl::StrFormat("%.1f", row.requests_per_second));
      EXPECT_EQ(cells[4], absl::StrFormat("%.1f", row.tokens_per_second));
      EXPECT_EQ(cells[5], absl::StrFormat("%.1f", row.p50_us));
      EXPECT_EQ(cells[7], absl::StrFormat("%.1f", row.p99_us));
      EXPECT_EQ(cells[8], absl::StrFormat("%.1f", row.max_us));
      EXPECT_EQ(cells[10], absl::StrFormat("%.1f", row.mean_server_compute_us));
      ++matched;
    }
  }
  EXPECT_EQ(matched, rows.size());
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
  result.variants[0].requests = 0;
  EXPECT_TRUE(result.Failed());
}

}  // namespace
}  // namespace ffn::client
