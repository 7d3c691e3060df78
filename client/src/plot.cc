#include "ffn/client/plot.h"

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "ffn/client/report.h"

extern char** environ;

namespace ffn::client {
namespace {

constexpr int kPanelWidth = 560;
constexpr int kPanelHeight = 400;

// A single-quoted gnuplot string: only '' needs escaping.
std::string Quoted(const std::string& text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "''"}}), "'");
}

// Milliseconds, or NaN (a gap) where a log axis cannot show the value.
std::string Ms(double us) { return us > 0 ? absl::StrFormat("%.6g", us / 1e3) : "NaN"; }

std::string StepLabel(const SweepStep& step) {
  return absl::StrFormat("%g%s", step.value, step.stable ? "" : "*");
}

// One data block per panel: x = OK req/s, then p50 p90 p99 p99.9 in ms and
// the step's label.
std::string DataBlock(const std::string& name, size_t panel, const std::vector<SweepStep>& steps) {
  std::string out = absl::StrCat("$panel", panel, " << EOD\n");
  for (const SweepStep& step : steps) {
    for (const LoadRow& row : LoadRows(step.result)) {
      if (row.variant != name) continue;
      absl::StrAppend(&out, absl::StrFormat("%.6g %s %s %s %s \"%s\"\n", row.requests_per_second,
                                            Ms(row.p50_us), Ms(row.p90_us), Ms(row.p99_us),
                                            Ms(row.p999_us), StepLabel(step)));
    }
  }
  return absl::StrCat(out, "EOD\n");
}

}  // namespace

std::string SweepPlotScript(const std::vector<SweepStep>& steps, const std::string& image_path,
                            const std::string& title) {
  // TOTAL first; the variants only if there are several (else TOTAL is it).
  std::vector<std::string> panels = {"TOTAL"};
  const std::vector<LoadRow> rows = LoadRows(steps.front().result);
  if (rows.size() > 2) {
    for (size_t i = 0; i + 1 < rows.size(); ++i) panels.push_back(rows[i].variant);
  }
  const int columns = static_cast<int>(std::min<size_t>(panels.size(), 3));
  const int lines = static_cast<int>((panels.size() + static_cast<size_t>(columns) - 1) /
                                     static_cast<size_t>(columns));
  const bool png = absl::EndsWith(image_path, ".png");
  std::string s = "# Drawn by ffn-client sweep; run `gnuplot THIS_FILE` to redraw.\n";
  absl::StrAppend(
      &s,
      absl::StrFormat("set terminal %s size %d,%d noenhanced font 'Sans,10' "
                      "background rgb 'white'\n",
                      png ? "pngcairo" : "svg", columns * kPanelWidth, lines * kPanelHeight + 40),
      "set output ", Quoted(image_path), "\n");
  for (size_t i = 0; i < panels.size(); ++i) absl::StrAppend(&s, DataBlock(panels[i], i, steps));
  absl::StrAppend(&s,
                  "set logscale y\n"
                  "set grid xtics ytics mytics lc rgb '#dddddd'\n"
                  "set xlabel 'throughput (OK requests/s)'\n"
                  "set ylabel 'latency (ms)'\n"
                  "set key top left\n"
                  "set xrange [0:*]\n"
                  "set offsets 0, graph 0.05, 0, 0\n",
                  absl::StrFormat("set multiplot layout %d,%d title %s\n", lines, columns,
                                  Quoted(absl::StrCat(title, "  (labels: step; * not stable)"))));
  for (size_t i = 0; i < panels.size(); ++i) {
    const std::string data = absl::StrCat("$panel", i);
    absl::StrAppend(&s, "set title ", Quoted(panels[i]), "\n", "plot ", data,
                    " using 1:2 with linespoints pt 7 ps 0.6 title 'p50', \\\n     ", data,
                    " using 1:3 with linespoints pt 7 ps 0.6 title 'p90', \\\n     ", data,
                    " using 1:4 with linespoints pt 7 ps 0.6 title 'p99', \\\n     ", data,
                    " using 1:5 with linespoints pt 7 ps 0.6 title 'p99.9', \\\n     ", data,
                    " using 1:4:6 with labels offset 0,0.9 font ',8' notitle\n");
  }
  absl::StrAppend(&s, "unset multiplot\n");
  return s;
}

absl::Status PlotSweep(const std::vector<SweepStep>& steps, const std::string& image_path,
                       const std::string& title) {
  if (steps.empty()) return absl::InvalidArgumentError("plot: the sweep has no steps");
  if (!absl::EndsWith(image_path, ".svg") && !absl::EndsWith(image_path, ".png")) {
    return absl::InvalidArgumentError(
        absl::StrCat("plot '", image_path, "': the file name must end in .svg or .png"));
  }
  const std::string script_path = image_path + ".gp";
  {
    std::ofstream script(script_path);
    script << SweepPlotScript(steps, image_path, title);
    if (!script) return absl::UnavailableError(absl::StrCat("cannot write ", script_path));
  }
  std::error_code ignored;
  std::filesystem::remove(image_path, ignored);
  std::string program = "gnuplot";
  std::vector<char*> argv = {program.data(), const_cast<char*>(script_path.c_str()), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, "gnuplot", nullptr, nullptr, argv.data(), environ);
  if (spawned != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run gnuplot (", std::strerror(spawned),
        "): install it (Debian: apt-get install gnuplot-nox) or skip the picture; the script is ",
        script_path));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("gnuplot failed on ", script_path));
  }
  if (!std::filesystem::exists(image_path)) {
    return absl::InternalError(absl::StrCat("gnuplot wrote no ", image_path));
  }
  return absl::OkStatus();
}

}  // namespace ffn::client
