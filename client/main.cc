// ffn-client: lists models, sends checked Infer calls, drives load tests and
// shows a server's statistics. Flags map to the options of libffn_client.
#include <fstream>
#include <iostream>

#include "CLI/CLI.hpp"
#include "ffn/client/client.h"
#include "ffn/client/format.h"
#include "ffn/client/infer.h"
#include "ffn/client/load.h"
#include "ffn/client/report.h"

namespace {

using ffn::client::ErrorLine;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Connection {
  std::string target = "127.0.0.1:50051";
  double timeout_seconds = 30;

  std::unique_ptr<ffn::v1::FfnService::Stub> Stub() const {
    return ffn::v1::FfnService::NewStub(ffn::client::MakeChannel(target));
  }
};

void AddConnectionFlags(CLI::App* command, Connection& connection) {
  command->add_option("--target", connection.target, "server HOST:PORT")->capture_default_str();
  command->add_option("--timeout", connection.timeout_seconds, "per-call deadline in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
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
  auto outcome = ffn::client::RunInfer(*connection.Stub(), options);
  if (!outcome.ok()) return Fail(outcome.status());
  std::cout << ffn::client::InferSummary(*outcome, ffn::kFp32CheckTolerance);
  if (outcome->comparison && !outcome->comparison->within(ffn::kFp32CheckTolerance)) {
    std::cerr << "error: the answer is outside the fp32 tolerance of the fp64 reference\n";
    return kExitFailed;
  }
  return 0;
}

int RunLoad(const Connection& connection, ffn::client::LoadOptions options,
            const std::string& json_path) {
  options.target = connection.target;
  options.timeout_seconds = connection.timeout_seconds;
  std::cerr << "load: " << options.target << ", variants " << options.variants << ", "
            << options.concurrency << " worker(s), " << options.warmup_seconds << " s warmup + "
            << options.duration_seconds << " s\n";
  auto result = ffn::client::RunLoad(options);
  // Before any load: INVALID_ARGUMENT means the flags asked for something
  // this server cannot serve (unknown variant, too many tokens).
  if (!result.ok()) {
    const bool usage = result.status().code() == absl::StatusCode::kInvalidArgument;
    return Fail(result.status(), usage ? kExitUsage : kExitFailed);
  }
  std::cout << ffn::client::LoadTable(*result);
  std::cerr << ffn::client::LoadErrors(*result);
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << ffn::client::LoadJson(*result).dump(2) << "\n";
    if (!out) return Fail(absl::UnavailableError("cannot write " + json_path));
  }
  if (result->Failed()) {
    std::cerr << "error: " << result->Total().errors << " request(s) failed, "
              << result->Total().requests << " succeeded\n";
    return kExitFailed;
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
  CLI::App app{"ffn-client: calls an ffn-server (models, infer, load, stats)"};
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
  infer->add_option("--tokens", infer_options.tokens, "rows of the input")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  infer->add_option("--seed", infer_options.seed, "seed of the input")->capture_default_str();
  infer->add_flag("--check", infer_options.check,
                  "compare the answer with the fp64 reference; exit 1 if out of tolerance");
  infer->add_option("--weights", infer_options.weights_override,
                    "local safetensors file for --check (default: the path the server reports)");

  CLI::App* load = app.add_subcommand("load", "closed-loop load test over model variants");
  ffn::client::LoadOptions load_options;
  std::string load_json_path;
  load->add_option("--concurrency", load_options.concurrency, "workers, one call in flight each")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  load->add_option("--connections", load_options.connections, "channels shared round-robin")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  load->add_option("--duration", load_options.duration_seconds, "measured seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  load->add_option("--warmup", load_options.warmup_seconds, "seconds before measuring")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  load->add_option("--variants", load_options.variants,
                   "all, or a comma list of ACTIVATION, MODEL:ACTIVATION, MODEL")
      ->capture_default_str();
  load->add_option("--tokens", load_options.tokens, "tokens per request")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  load->add_option("--seed", load_options.seed, "seed of the inputs")->capture_default_str();
  load->add_option("--json", load_json_path, "also write the report as JSON to this file");
  load->footer(
      "Exit status: 0 if every request succeeded; 1 if any request failed (or none "
      "completed) or listing the models failed; 2 for usage errors, including "
      "variants or tokens the server cannot serve.");

  CLI::App* stats = app.add_subcommand("stats", "the server's per-variant statistics");
  bool stats_json = false;
  stats->add_flag("--json", stats_json, "print the GetStats answer as JSON");

  for (CLI::App* command : {models, infer, load, stats}) AddConnectionFlags(command, connection);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (models->parsed()) return RunModels(connection, models_json);
  if (infer->parsed()) return RunInfer(connection, infer_options);
  if (load->parsed()) return RunLoad(connection, load_options, load_json_path);
  return RunStats(connection, stats_json);
}
