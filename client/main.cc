// ffn-client: lists models, sends checked Infer calls, drives load tests and
// sweeps, and shows a server's statistics. Flags map to the options of libffn_client.
#include <fstream>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "ffn/client/client.h"
#include "ffn/client/csv.h"
#include "ffn/client/check.h"
#include "ffn/client/format.h"
#include "ffn/client/infer.h"
#include "ffn/client/load.h"
#include "ffn/client/plot.h"
#include "ffn/client/report.h"
#include "ffn/client/sweep.h"

namespace {

using ffn::client::ErrorLine;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// TLS and bearer-token flags, shared by every subcommand.
void AddSecurityFlags(CLI::App* command, ffn::client::SecurityFiles& files) {
  command->add_flag("--tls", files.tls, "connect with TLS (implied by the other --tls-* flags)");
  command->add_option("--tls-ca", files.ca,
                      "PEM CA certificate(s) the server's certificate must chain to (default: "
                      "gRPC's roots)");
  command->add_option("--tls-cert", files.cert, "PEM client certificate, for mutual TLS");
  command->add_option("--tls-key", files.key, "PEM private key of --tls-cert");
  command->add_option("--tls-server-name", files.server_name,
                      "name to verify in the server's certificate (default: the target's host)");
  command->add_option("--auth-token-file", files.token,
                      "file holding the bearer token the server requires");
}

struct Connection {
  std::string target = "127.0.0.1:50051";
  double timeout_seconds = 30;
  ffn::client::SecurityFiles security_files;
  ffn::client::ChannelSecurity security;  // read from security_files after parsing

  std::string protocol = "ffn";  // infer only: ffn or v2

  std::shared_ptr<grpc::Channel> Channel() const {
    return ffn::client::MakeChannel(target, 0, "", security);
  }
  std::unique_ptr<ffn::v1::FfnService::Stub> Stub() const {
    return ffn::v1::FfnService::NewStub(Channel());
  }
};

void AddConnectionFlags(CLI::App* command, Connection& connection) {
  command->add_option("--target", connection.target, "server HOST:PORT")->capture_default_str();
  command->add_option("--timeout", connection.timeout_seconds, "per-call deadline in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  AddSecurityFlags(command, connection.security_files);
}

int Fail(const absl::Status& status, int exit_code = kExitFailed) {
  std::cerr << ErrorLine(status) << "\n";
  return exit_code;
}

int RunModels(const Connection& connection, bool json) {
  auto models = ffn::client::ListModels(*connection.Stub(), connection.timeout_seconds);
  if (!models.ok()) return Fail(models.status());
  std::cout << (json ? ffn::client::ModelsJson(*models).dump(2) + "\n"
                     : ffn::client::ModelsTable(*models));
  return 0;
}

int RunInfer(const Connection& connection, ffn::client::InferOptions options) {
  options.timeout_seconds = connection.timeout_seconds;
  options.protocol = *ffn::client::ParseProtocol(connection.protocol);  // checked by CLI11
  auto outcome = ffn::client::RunInferOn(connection.Channel(), options);
  if (!outcome.ok()) return Fail(outcome.status());
  // The bound of the path that ran (int8, or the variant's compute dtype).
  const ffn::CheckBound bound =
      ffn::client::CheckBoundFor(outcome->model, outcome->response.variant().dtype());
  std::cout << ffn::client::InferSummary(*outcome, bound);
  if (outcome->comparison && !bound.Passes(*outcome->comparison)) {
    std::cerr << "error: the answer is outside the " << bound.name
              << " tolerance of the fp64 reference\n";
    return kExitFailed;
  }
  return 0;
}

// Writes `text` to `path`; UNAVAILABLE naming the file if it cannot.
absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return absl::UnavailableError("cannot write " + path);
  return absl::OkStatus();
}

// Flags shared by `load` and `sweep`: where to send and what.
struct LoadFlags {
  ffn::client::LoadOptions options;
  ffn::client::SecurityFiles security_files;
  std::string arrival = "constant";
  std::string protocol = "ffn";
  std::string json_path;
  std::string csv_path;
};

void AddLoadTargetFlags(CLI::App* command, LoadFlags& flags) {
  command
      ->add_option("--target", flags.options.targets,
                   "server HOST:PORT, or any gRPC target (ipv4:A:P1,A:P2); repeat for several "
                   "targets, which calls visit in turn")
      ->capture_default_str()
      ->allow_extra_args(false);
  command
      ->add_option("--lb-policy", flags.options.lb_policy,
                   "how one channel spreads calls over a target's addresses")
      ->check(CLI::IsMember({"round_robin", "pick_first"}));
  command->add_option("--timeout", flags.options.timeout_seconds, "per-call deadline in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--connections", flags.options.connections, "channels per target")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--variants", flags.options.variants,
                   "all, or a comma list of ACTIVATION, MODEL:ACTIVATION, MODEL, each with an "
                   "optional =WEIGHT (relu=3,gelu); --protocol v2: v2 model names, NAME[=WEIGHT]")
      ->capture_default_str();
  command
      ->add_option("--protocol", flags.protocol,
                   "ffn (ffn.v1 Infer) or v2 (Open Inference Protocol ModelInfer, load --stream: "
                   "ModelStreamInfer, to any KServe v2 server)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ffn", "v2"}));
  command
      ->add_option("--tokens", flags.options.tokens,
                   "tokens per request: N, LOW-HIGH (uniform), or a weighted list "
                   "1=50,16=30,64-128=20")
      ->capture_default_str();
  command->add_option("--seed", flags.options.seed, "seed of inputs, sizes and arrivals")
      ->capture_default_str();
  command
      ->add_option("--compute-dtype", flags.options.compute_dtype,
                   "compute dtype of every call: f32 or bf16 (default: each model's own)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  command->add_option("--arrival", flags.arrival, "open loop arrivals")
      ->capture_default_str()
      ->check(CLI::IsMember({"constant", "poisson"}));
  command
      ->add_option("--max-outstanding", flags.options.max_outstanding,
                   "open loop: calls in flight at most; later calls wait (and count as late)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--warmup", flags.options.warmup_seconds, "seconds of load before measuring")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command->add_option("--json", flags.json_path, "also write the report as JSON to this file");
  command->add_option("--csv", flags.csv_path, "also write the report as CSV to this file");
  AddSecurityFlags(command, flags.security_files);
}

int RunLoad(LoadFlags flags) {
  ffn::client::LoadOptions& options = flags.options;
  options.arrival = *ffn::client::ParseArrival(flags.arrival);
  options.protocol = *ffn::client::ParseProtocol(flags.protocol);
  const std::string mode =
      options.OpenLoop() ? absl::StrFormat("open loop %g req/s (%s)", options.rate, flags.arrival)
                         : absl::StrFormat("closed loop of %d%s", options.concurrency,
                                           options.stream
                                               ? absl::StrCat(" over ", options.StreamRpc())
                                               : "");
  const std::string length = options.requests > 0
                                 ? absl::StrFormat("%d requests", options.requests)
                                 : absl::StrFormat("%g s", options.duration_seconds);
  std::cerr << absl::StrFormat("load: %s, variants %s, %s, %g s warmup + %s\n",
                               absl::StrJoin(options.targets, " "), options.variants, mode,
                               options.warmup_seconds, length);
  auto result = ffn::client::RunLoad(options);
  // Before any load: INVALID_ARGUMENT means the flags asked for something
  // this server cannot serve (unknown variant, too many tokens).
  if (!result.ok()) {
    const bool usage = result.status().code() == absl::StatusCode::kInvalidArgument;
    return Fail(result.status(), usage ? kExitUsage : kExitFailed);
  }
  std::cout << ffn::client::LoadTable(*result);
  std::cerr << ffn::client::LoadErrors(*result);
  if (!flags.json_path.empty()) {
    auto s = WriteFile(flags.json_path, ffn::client::LoadJson(*result).dump(2) + "\n");
    if (!s.ok()) return Fail(s);
  }
  if (!flags.csv_path.empty()) {
    if (auto s = WriteFile(flags.csv_path, ffn::client::LoadCsv(*result)); !s.ok()) return Fail(s);
  }
  if (result->Failed()) {
    std::cerr << "error: " << result->Total().errors << " request(s) failed, "
              << result->Total().requests << " succeeded\n";
    return kExitFailed;
  }
  return 0;
}

struct SweepFlags {
  LoadFlags load;
  std::string concurrency_range;
  std::string rate_range;
  std::string plot_path = "sweep.svg";
  int max_windows = 10;
  double stability_percent = 10;
  double stop_p99_ms = 0;
};

int RunSweep(SweepFlags flags) {
  ffn::client::SweepOptions options;
  options.load = flags.load.options;
  options.load.arrival = *ffn::client::ParseArrival(flags.load.arrival);
  options.load.protocol = *ffn::client::ParseProtocol(flags.load.protocol);
  options.window_seconds = flags.load.options.duration_seconds;
  const bool over_rate = !flags.rate_range.empty();
  options.over = over_rate ? ffn::client::SweepOver::kRate : ffn::client::SweepOver::kConcurrency;
  options.range = over_rate ? flags.rate_range : flags.concurrency_range;
  options.max_windows = flags.max_windows;
  options.stability_percent = flags.stability_percent;
  options.stop_p99_ms = flags.stop_p99_ms;
  if (flags.load.csv_path.empty()) flags.load.csv_path = "sweep.csv";
  std::cerr << absl::StrFormat("sweep: %s, variants %s, %s %s, windows of %g s\n",
                               absl::StrJoin(options.load.targets, " "), options.load.variants,
                               over_rate ? "rate" : "concurrency", options.range,
                               options.window_seconds);
  auto steps = ffn::client::RunSweep(
      options, [](const std::string& line) { std::cerr << "sweep: " << line << "\n"; });
  if (!steps.ok()) {
    const bool usage = steps.status().code() == absl::StatusCode::kInvalidArgument;
    return Fail(steps.status(), usage ? kExitUsage : kExitFailed);
  }
  for (const ffn::client::SweepStep& step : *steps) {
    std::cout << (over_rate ? absl::StrFormat("== rate %g req/s", step.value)
                            : absl::StrFormat("== concurrency %g", step.value))
              << (step.stable ? "" : " (not stable)") << " ==\n"
              << ffn::client::LoadTable(step.result);
  }
  if (auto s = WriteFile(flags.load.csv_path, ffn::client::SweepCsv(*steps)); !s.ok()) {
    return Fail(s);
  }
  std::cerr << "sweep: wrote " << flags.load.csv_path << "\n";
  if (!flags.load.json_path.empty()) {
    auto s =
        WriteFile(flags.load.json_path, ffn::client::SweepJson(options, *steps).dump(2) + "\n");
    if (!s.ok()) return Fail(s);
  }
  if (flags.plot_path != "none") {
    const std::string title =
        absl::StrFormat("ffn-client sweep over %s %s: %s", over_rate ? "rate" : "concurrency",
                        options.range, options.load.variants);
    if (auto s = ffn::client::PlotSweep(*steps, flags.plot_path, title); !s.ok()) return Fail(s);
    std::cerr << "sweep: wrote " << flags.plot_path << " (gnuplot script " << flags.plot_path
              << ".gp)\n";
  }
  return 0;
}

int RunStats(const Connection& connection, bool json) {
  auto stats = ffn::client::GetStats(*connection.Stub(), connection.timeout_seconds);
  if (!stats.ok()) return Fail(stats.status());
  std::cout << (json ? ffn::client::StatsJson(*stats) + "\n" : ffn::client::StatsTable(*stats));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks every Mutex acquisition (gRPC's included) for lock
  // cycles; that bookkeeping costs a load generator a few % of its CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"ffn-client: calls an ffn-server (models, infer, load, sweep, stats)"};
  app.require_subcommand(1);
  app.footer("Exit status: 0 on success, 1 if a call or check failed, 2 for usage errors.");
  Connection connection;

  CLI::App* models = app.add_subcommand("models", "list the server's models");
  bool models_json = false;
  models->add_flag("--json", models_json, "print JSON instead of a table");

  CLI::App* infer = app.add_subcommand("infer", "send one Infer with a seeded random input");
  ffn::client::InferOptions infer_options;
  infer->add_option("--model", infer_options.model, "model name")->required();
  infer->add_option("--activation", infer_options.activation, "activation (default: the model's)");
  infer
      ->add_option("--compute-dtype", infer_options.compute_dtype,
                   "compute dtype: f32 or bf16 (default: the model's)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  infer->add_option("--tokens", infer_options.tokens, "rows of the input")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  infer->add_option("--seed", infer_options.seed, "seed of the input")->capture_default_str();
  infer->add_flag("--check", infer_options.check,
                  "compare the answer with the fp64 reference; exit 1 if out of tolerance");
  infer->add_option("--weights", infer_options.weights_override,
                    "local safetensors file for --check (default: the path the server reports)");
  infer
      ->add_option("--protocol", connection.protocol,
                   "ffn (ffn.v1 Infer) or v2 (one Open Inference Protocol ModelInfer to the v2 "
                   "model --model, e.g. ffn-768:gelu)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ffn", "v2"}));

  CLI::App* load =
      app.add_subcommand("load", "load test: closed loop (--concurrency) or open loop (--rate)");
  LoadFlags load_flags;
  AddLoadTargetFlags(load, load_flags);
  CLI::Option* load_concurrency =
      load->add_option("--concurrency", load_flags.options.concurrency,
                       "closed loop: calls in flight, each answer sending the next")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
  CLI::Option* load_rate =
      load->add_option("--rate", load_flags.options.rate,
                       "open loop: requests/s on schedule, latency from each intended send time")
          ->check(CLI::PositiveNumber)
          ->excludes(load_concurrency);
  load->add_flag("--stream", load_flags.options.stream,
                 "closed loop over InferStream (--protocol v2: ModelStreamInfer): one stream "
                 "per connection, the --concurrency requests in flight shared out among them")
      ->excludes(load_rate);
  CLI::Option* load_duration =
      load->add_option("--duration", load_flags.options.duration_seconds, "measured seconds")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
  load->add_option("--requests", load_flags.options.requests,
                   "measure this many requests instead of a duration")
      ->check(CLI::PositiveNumber)
      ->excludes(load_duration);
  load->footer(
      "Closed loop: latency is each call's round trip. Open loop: latency runs from each "
      "call's intended send time (coordinated-omission free, as wrk2), and the report says how "
      "far the client fell behind its schedule.\n"
      "Exit status: 0 if every request succeeded; 1 if any request failed (or none completed) "
      "or no target answered ListModels; the report (and --json/--csv) is written in either "
      "case. 2 for usage errors, including variants or tokens the server cannot serve.");

  CLI::App* sweep = app.add_subcommand(
      "sweep", "load tests over a range of concurrencies or rates, then a CSV and a picture");
  SweepFlags sweep_flags;
  sweep_flags.load.options.duration_seconds = 2;
  AddLoadTargetFlags(sweep, sweep_flags.load);
  CLI::Option* sweep_concurrency =
      sweep->add_option("--concurrency", sweep_flags.concurrency_range,
                        "closed loop over START:END:STEP, STEP xF or +N (1:64:x2)");
  sweep
      ->add_option("--rate", sweep_flags.rate_range,
                   "open loop over START:END:STEP requests/s (100:5000:+500)")
      ->excludes(sweep_concurrency);
  sweep
      ->add_option("--window", sweep_flags.load.options.duration_seconds,
                   "seconds per measurement window")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sweep->add_option("--max-windows", sweep_flags.max_windows, "windows per step at most (>= 3)")
      ->capture_default_str()
      ->check(CLI::Range(3, 1000));
  sweep
      ->add_option("--stability", sweep_flags.stability_percent,
                   "a step is stable when 3 windows' throughput and mean latency lie within "
                   "this % of their mean")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sweep
      ->add_option("--stop-p99-ms", sweep_flags.stop_p99_ms,
                   "end the sweep after a step whose p99 exceeds this (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sweep
      ->add_option("--plot", sweep_flags.plot_path,
                   "picture of latency percentiles against throughput: FILE.svg or FILE.png, "
                   "or none")
      ->capture_default_str();
  sweep->footer(
      "Writes --csv (default sweep.csv): one line per step and variant, TOTAL and target. "
      "The picture is drawn by gnuplot, which must be on PATH (Debian: apt-get install "
      "gnuplot-nox); its script is kept as FILE.gp. Each step starts a fresh load with its own "
      "warmup and runs windows until 3 agree within --stability % (or --max-windows).\n"
      "Exit status: 0 on success; 1 if the load or the picture failed; 2 for usage errors.");

  CLI::App* stats = app.add_subcommand("stats", "the server's per-variant statistics");
  bool stats_json = false;
  stats->add_flag("--json", stats_json, "print the GetStats answer as JSON");

  for (CLI::App* command : {models, infer, stats}) AddConnectionFlags(command, connection);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  // The files the security flags name, read once.
  for (auto [files, security] :
       {std::pair{&connection.security_files, &connection.security},
        std::pair{&load_flags.security_files, &load_flags.options.security},
        std::pair{&sweep_flags.load.security_files, &sweep_flags.load.options.security}}) {
    auto loaded = ffn::client::LoadChannelSecurity(*files);
    if (!loaded.ok()) return Fail(loaded.status(), kExitUsage);
    *security = std::move(*loaded);
  }
  if (models->parsed()) return RunModels(connection, models_json);
  if (infer->parsed()) return RunInfer(connection, infer_options);
  if (load->parsed()) return RunLoad(load_flags);
  if (sweep->parsed()) {
    if (sweep_flags.concurrency_range.empty() == sweep_flags.rate_range.empty()) {
      std::cerr << "error: sweep needs exactly one of --concurrency RANGE and --rate RANGE\n";
      return kExitUsage;
    }
    return RunSweep(sweep_flags);
  }
  return RunStats(connection, stats_json);
}
