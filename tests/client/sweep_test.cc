// Sweeps: ranges, the stability rule, and a real sweep's CSV and picture.
#include "ffn/client/sweep.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "ffn/client/csv.h"
#include "ffn/client/plot.h"
#include "gtest/gtest.h"
#include "test_server.h"

namespace ffn::client {
namespace {

std::vector<double> Range(const std::string& spec) {
  auto values = ParseSweepRange(spec);
  EXPECT_TRUE(values.ok()) << spec << ": " << values.status();
  return values.ok() ? *values : std::vector<double>{};
}

TEST(ParseSweepRangeTest, MultiplyingAddingAndSingle) {
  EXPECT_EQ(Range("1:64:x2"), (std::vector<double>{1, 2, 4, 8, 16, 32, 64}));
  EXPECT_EQ(Range("1:50:x2"), (std::vector<double>{1, 2, 4, 8, 16, 32}));
  EXPECT_EQ(Range("100:500:+200"), (std::vector<double>{100, 300, 500}));
  EXPECT_EQ(Range("100:5000:500").size(), 10u);
  EXPECT_EQ(Range("1:4"), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(Range("7"), (std::vector<double>{7}));
  EXPECT_EQ(Range("0.1:0.3:+0.1").size(), 3u);  // rounding does not lose END
}

TEST(ParseSweepRangeTest, RejectsNonsense) {
  for (const char* spec : {"", "0:4", "4:1", "1:4:x1", "1:4:+0", "1:4:-1", "a:b", "1:2:3:4",
                           "1:100000:+1", "1:4:xx2"}) {
    EXPECT_EQ(ParseSweepRange(spec).status().code(), absl::StatusCode::kInvalidArgument) << spec;
  }
}

// A window with `requests` OK calls of `latency_us` each over 1 s.
LoadResult Window(uint64_t requests, int64_t latency_us) {
  LoadResult r;
  r.measured_seconds = 1;
  r.variants.resize(1);
  for (uint64_t i = 0; i < requests; ++i) {
    r.variants[0].RecordOk(latency_us * 1000, latency_us * 1000, 1, 0, ServerFigures{});
  }
  return r;
}

TEST(WindowsStableTest, ThreeWindowsWithinTolerance) {
  EXPECT_FALSE(WindowsStable({Window(100, 50), Window(100, 50)}, 10));  // too few
  EXPECT_TRUE(WindowsStable({Window(100, 50), Window(105, 52), Window(96, 48)}, 10));
  // Throughput off by more than 10 % of the mean.
  EXPECT_FALSE(WindowsStable({Window(100, 50), Window(100, 50), Window(125, 50)}, 10));
  // Latency off.
  EXPECT_FALSE(WindowsStable({Window(100, 50), Window(100, 50), Window(100, 70)}, 10));
  // Only the last three count.
  EXPECT_TRUE(
      WindowsStable({Window(10, 500), Window(100, 50), Window(100, 50), Window(100, 50)}, 10));
  // A looser tolerance accepts more.
  EXPECT_TRUE(WindowsStable({Window(100, 50), Window(100, 50), Window(125, 50)}, 20));
}

// A two-step sweep against a real server writes a CSV with a line per step
// and variant (plus TOTAL and the target) and a picture.
TEST(SweepTest, RealSweepWritesCsvAndPicture) {
  auto server = StartServer(kTinyConfig);
  ASSERT_NE(server, nullptr);
  SweepOptions options;
  options.load.targets = {TargetOf(*server)};
  options.load.variants = "tiny:relu,tiny-glu:swiglu";
  options.load.warmup_seconds = 0.1;
  options.over = SweepOver::kConcurrency;
  options.range = "1:2:x2";
  options.window_seconds = 0.3;
  options.max_windows = 3;
  std::vector<std::string> progress;
  auto steps = RunSweep(options, [&](const std::string& line) { progress.push_back(line); });
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].value, 1);
  EXPECT_EQ((*steps)[1].result.options.concurrency, 2);
  for (const SweepStep& step : *steps) {
    EXPECT_EQ(step.windows, 3);
    EXPECT_NEAR(step.result.measured_seconds, 0.9, 1e-9);
    EXPECT_GT(step.result.Total().requests, 0u);
    EXPECT_EQ(step.result.Total().errors, 0u);
  }
  EXPECT_GE(progress.size(), 6u);

  std::istringstream csv(SweepCsv(*steps));
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  const std::vector<std::string> header = absl::StrSplit(line, ',');
  EXPECT_EQ(header[0], "sweep");
  EXPECT_EQ(header[1], "concurrency");
  std::set<std::string> seen;
  int lines = 0;
  while (std::getline(csv, line)) {
    const std::vector<std::string> cells = absl::StrSplit(line, ',');
    ASSERT_EQ(cells.size(), header.size()) << line;
    EXPECT_EQ(cells[0], "concurrency");
    seen.insert(cells[1] + " " + cells[7]);
    ++lines;
  }
  EXPECT_EQ(lines, 2 * 4);  // 2 variants, TOTAL, 1 target per step
  EXPECT_TRUE(seen.contains("1 tiny/relu"));
  EXPECT_TRUE(seen.contains("2 TOTAL"));

  const std::string dir = ::testing::TempDir();
  for (const std::string name : {"sweep_test.svg", "sweep_test.png"}) {
    const std::string path = dir + "/" + name;
    const absl::Status plotted = PlotSweep(*steps, path, "sweep test");
    ASSERT_TRUE(plotted.ok()) << plotted;
    ASSERT_TRUE(std::filesystem::exists(path));
    EXPECT_GT(std::filesystem::file_size(path), 1000u) << path;
    EXPECT_TRUE(std::filesystem::exists(path + ".gp"));
    std::ifstream image(path, std::ios::binary);
    std::string head(256, '\0');
    image.read(head.data(), static_cast<std::streamsize>(head.size()));
    if (name.ends_with(".svg")) {
      EXPECT_NE(head.find("<svg"), std::string::npos) << head;
    } else {
      EXPECT_EQ(head.substr(1, 3), "PNG");
    }
  }
  EXPECT_EQ(PlotSweep(*steps, dir + "/x.pdf", "t").code(), absl::StatusCode::kInvalidArgument);
}

TEST(SweepTest, ScriptHoldsEveryPanelAndStep) {
  SweepStep a, b;
  a.value = 1;
  a.stable = true;
  a.result = Window(100, 50);
  a.result.variants[0].variant = {"m", "relu"};
  b = a;
  b.value = 2;
  b.stable = false;
  const std::string script = SweepPlotScript({a, b}, "out.svg", "t");
  EXPECT_NE(script.find("set terminal svg"), std::string::npos);
  EXPECT_NE(script.find("set output 'out.svg'"), std::string::npos);
  EXPECT_NE(script.find("\"1\"\n"), std::string::npos) << script;
  EXPECT_NE(script.find("\"2*\"\n"), std::string::npos) << script;  // not stable
  EXPECT_NE(script.find("set title 'TOTAL'"), std::string::npos);
}

}  // namespace
}  // namespace ffn::client
