// The picture of a sweep: latency percentiles against achieved throughput,
// one panel for all calls (TOTAL) and one per variant, drawn by gnuplot.
//
// Example:
//   std::vector<ffn::client::SweepStep> steps;  // from RunSweep
//   RETURN_IF_ERROR(ffn::client::PlotSweep(steps, "sweep.svg", "ffn-768, closed loop"));
//
// Needs the `gnuplot` program on PATH (Debian: apt-get install gnuplot-nox).
#ifndef FFN_CLIENT_PLOT_H_
#define FFN_CLIENT_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ffn/client/sweep.h"

namespace ffn::client {

// The gnuplot script PlotSweep runs: each panel plots p50, p90, p99 and
// p99.9 (milliseconds, log scale) against OK requests/s, one point per step,
// the p99 points labelled with the step's concurrency or rate ("*" marks a
// step that did not stabilise). The data sit in the script, so it redraws
// the picture on its own. The terminal follows `image_path`'s extension:
// ".svg" (svg) or ".png" (pngcairo). Requires at least one step.
std::string SweepPlotScript(const std::vector<SweepStep>& steps, const std::string& image_path,
                            const std::string& title);

// Writes SweepPlotScript to image_path + ".gp" and runs gnuplot on it.
// INVALID_ARGUMENT for no steps or an extension other than .svg and .png;
// FAILED_PRECONDITION if gnuplot cannot be started (not installed); INTERNAL
// if it fails (its own messages go to stderr) or leaves no image;
// UNAVAILABLE if the script cannot be written.
absl::Status PlotSweep(const std::vector<SweepStep>& steps, const std::string& image_path,
                       const std::string& title);

}  // namespace ffn::client

#endif  // FFN_CLIENT_PLOT_H_
