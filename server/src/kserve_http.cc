#include "ffn/server/kserve_http.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ffn/kernels/dtype.h"
#include "ffn/server/bearer_token.h"
#include "ffn/server/kserve_service.h"
#include "ffn/server/listen_address.h"
#include "infer_call.h"
#include "kserve_infer.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace ffn {
namespace {

using nlohmann::json;

constexpr char kHeaderLength[] = "Inference-Header-Content-Length";
// A model path: name, then optionally /versions/VERSION.
constexpr char kModelPath[] = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void SendError(httplib::Response& res, const absl::Status& status) {
  SendJson(res, HttpStatusOf(status.code()), json{{"error", std::string(status.message())}});
}

// The model name and version of a matched model path.
std::pair<std::string, std::string> ModelOf(const httplib::Request& req) {
  return {req.matches[1].str(), req.matches.size() > 2 ? req.matches[2].str() : std::string()};
}

// A JSON parameter value as the protocol's InferParameter.
absl::Status ToParameter(const std::string& key, const json& value,
                         inference::InferParameter* out) {
  if (value.is_string()) {
    out->set_string_param(value.get<std::string>());
  } else if (value.is_boolean()) {
    out->set_bool_param(value.get<bool>());
  } else if (value.is_number_integer()) {
    out->set_int64_param(value.get<int64_t>());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", key, "' must be a string, a boolean or an integer"));
  }
  return absl::OkStatus();
}

// Appends the numbers of a (possibly nested) JSON array.
absl::Status Flatten(const json& data, std::vector<double>* out) {
  if (data.is_number()) {
    out->push_back(data.get<double>());
    return absl::OkStatus();
  }
  if (!data.is_array()) {
    return absl::InvalidArgumentError("input 'data' must hold numbers (nested arrays allowed)");
  }
  for (const json& item : data) {
    if (absl::Status s = Flatten(item, out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// JSON numbers as the raw little-endian bytes of a 16-bit datatype.
std::string HalfBytes(const std::vector<double>& values, kserve::WireType wire) {
  std::string bytes(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const auto f = static_cast<float>(values[i]);
    const uint16_t h = wire == kserve::WireType::kBf16 ? FloatToBf16(f) : kserve::FloatToHalf(f);
    std::memcpy(bytes.data() + 2 * i, &h, sizeof(h));
  }
  return bytes;
}

// An HTTP infer body (JSON, or a JSON header then binary tensors) as a
// ModelInferRequest. `binary_output` says whether the answer's output goes
// back as binary data.
absl::Status ParseInferBody(const httplib::Request& req, const std::string& name,
                            const std::string& version, inference::ModelInferRequest* request,
                            bool* binary_output) {
  size_t header_bytes = req.body.size();
  if (req.has_header(kHeaderLength)) {
    const std::string given = req.get_header_value(kHeaderLength);
    if (!absl::SimpleAtoi(given, &header_bytes) || header_bytes > req.body.size()) {
      return absl::InvalidArgumentError(absl::StrCat(kHeaderLength, " '", given,
                                                     "' is not a length within the body's ",
                                                     req.body.size(), " bytes"));
    }
  }
  const json body = json::parse(req.body.begin(), req.body.begin() + static_cast<std::ptrdiff_t>(header_bytes),
                                nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return absl::InvalidArgumentError("the request body is not a JSON object");
  }
  request->set_model_name(name);
  request->set_model_version(version);
  if (body.contains("id") && body["id"].is_string()) request->set_id(body["id"].get<std::string>());
  *binary_output = false;
  if (body.contains("parameters")) {
    if (!body["parameters"].is_object()) {
      return absl::InvalidArgumentError("'parameters' must be a JSON object");
    }
    for (const auto& [key, value] : body["parameters"].items()) {
      if (key == "binary_data_output") {
        *binary_output = value.is_boolean() && value.get<bool>();
        continue;
      }
      if (absl::Status s = ToParameter(key, value, &(*request->mutable_parameters())[key]);
          !s.ok()) {
        return s;
      }
    }
  }
  if (!body.contains("inputs") || !body["inputs"].is_array()) {
    return absl::InvalidArgumentError("the request has no 'inputs' array");
  }
  size_t binary_offset = header_bytes;
  bool any_raw = false;
  std::vector<std::string> raw;
  for (const json& input : body["inputs"]) {
    if (!input.is_object() || !input.contains("name") || !input["name"].is_string() ||
        !input.contains("datatype") || !input["datatype"].is_string() ||
        !input.contains("shape") || !input["shape"].is_array()) {
      return absl::InvalidArgumentError("each input needs 'name', 'datatype' and 'shape'");
    }
    auto* tensor = request->add_inputs();
    tensor->set_name(input["name"].get<std::string>());
    tensor->set_datatype(input["datatype"].get<std::string>());
    for (const json& dim : input["shape"]) {
      if (!dim.is_number_integer()) {
        return absl::InvalidArgumentError("input 'shape' must hold integers");
      }
      tensor->add_shape(dim.get<int64_t>());
    }
    const json* parameters = input.contains("parameters") ? &input["parameters"] : nullptr;
    if (parameters != nullptr && parameters->contains("binary_data_size")) {
      const json& size = (*parameters)["binary_data_size"];
      if (!size.is_number_unsigned() || size.get<uint64_t>() > req.body.size() - binary_offset) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", tensor->name(), "': binary_data_size does not fit the ",
            req.body.size() - binary_offset, " bytes of binary data left in the body"));
      }
      const auto bytes = static_cast<size_t>(size.get<uint64_t>());
      raw.push_back(req.body.substr(binary_offset, bytes));
      binary_offset += bytes;
      any_raw = true;
      continue;
    }
    if (!input.contains("data")) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", tensor->name(), "' has neither 'data' nor binary_data_size"));
    }
    std::vector<double> values;
    if (absl::Status s = Flatten(input["data"], &values); !s.ok()) return s;
    const std::optional<kserve::WireType> wire = kserve::ParseWireType(tensor->datatype());
    if (wire == kserve::WireType::kFp16 || wire == kserve::WireType::kBf16) {
      raw.push_back(HalfBytes(values, *wire));
      any_raw = true;
    } else {
      // FP32 (another datatype is refused by the translation that follows).
      raw.emplace_back();
      for (double v : values) tensor->mutable_contents()->add_fp32_contents(static_cast<float>(v));
    }
  }
  if (any_raw) {
    // Raw contents are all or nothing: typed FP32 values go raw too.
    for (int i = 0; i < request->inputs_size(); ++i) {
      auto* tensor = request->mutable_inputs(i);
      if (tensor->contents().fp32_contents_size() > 0) {
        const auto& values = tensor->contents().fp32_contents();
        raw[static_cast<size_t>(i)].assign(reinterpret_cast<const char*>(values.data()),
                                           values.size() * sizeof(float));
        tensor->clear_contents();
      }
      request->add_raw_input_contents(std::move(raw[static_cast<size_t>(i)]));
    }
  }
  if (body.contains("outputs")) {
    if (!body["outputs"].is_array()) {
      return absl::InvalidArgumentError("'outputs' must be a JSON array");
    }
    for (const json& output : body["outputs"]) {
      if (!output.is_object() || !output.contains("name") || !output["name"].is_string()) {
        return absl::InvalidArgumentError("each requested output needs a 'name'");
      }
      request->add_outputs()->set_name(output["name"].get<std::string>());
      if (output.contains("parameters") && output["parameters"].contains("binary_data")) {
        const json& binary = output["parameters"]["binary_data"];
        *binary_output = binary.is_boolean() && binary.get<bool>();
      }
    }
  }
  return absl::OkStatus();
}

json ParametersJson(const google::protobuf::Map<std::string, inference::InferParameter>& map) {
  json out = json::object();
  for (const auto& [key, value] : map) {
    switch (value.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam: out[key] = value.bool_param(); break;
      case inference::InferParameter::kInt64Param: out[key] = value.int64_param(); break;
      case inference::InferParameter::kStringParam: out[key] = value.string_param(); break;
      default: break;
    }
  }
  return out;
}

// The answer's output values as JSON numbers.
json OutputData(const inference::ModelInferResponse& response) {
  json data = json::array();
  const auto& output = response.outputs(0);
  if (response.raw_output_contents_size() == 0) {
    for (float v : output.contents().fp32_contents()) data.push_back(v);
    return data;
  }
  const std::string& raw = response.raw_output_contents(0);
  const kserve::WireType wire = kserve::ParseWireType(output.datatype()).value_or(kserve::WireType::kFp32);
  const size_t n = raw.size() / kserve::WireElementBytes(wire);
  for (size_t i = 0; i < n; ++i) {
    if (wire == kserve::WireType::kFp32) {
      float v;
      std::memcpy(&v, raw.data() + 4 * i, sizeof(v));
      data.push_back(v);
    } else {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, sizeof(h));
      data.push_back(wire == kserve::WireType::kBf16 ? Bf16ToFloat(h) : kserve::HalfToFloat(h));
    }
  }
  return data;
}

// The output's bytes as the binary extension sends them.
std::string OutputBytes(const inference::ModelInferResponse& response) {
  if (response.raw_output_contents_size() > 0) return response.raw_output_contents(0);
  const auto& values = response.outputs(0).contents().fp32_contents();
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

void SendInferResponse(httplib::Response& res, const inference::ModelInferResponse& response,
                       bool binary_output) {
  json body = {{"model_name", response.model_name()},
               {"model_version", response.model_version()},
               {"parameters", ParametersJson(response.parameters())}};
  if (!response.id().empty()) body["id"] = response.id();
  const auto& output = response.outputs(0);
  json tensor = {{"name", output.name()},
                 {"datatype", output.datatype()},
                 {"shape", json(std::vector<int64_t>(output.shape().begin(), output.shape().end()))}};
  std::string binary;
  if (binary_output) {
    binary = OutputBytes(response);
    tensor["parameters"] = {{"binary_data_size", binary.size()}};
  } else {
    tensor["data"] = OutputData(response);
  }
  body["outputs"] = json::array({tensor});
  res.status = 200;
  if (!binary_output) {
    res.set_content(body.dump(), "application/json");
    return;
  }
  std::string header = body.dump();
  res.set_header(kHeaderLength, std::to_string(header.size()));
  header += binary;
  res.set_content(std::move(header), "application/octet-stream");
}

json DurationJson(const inference::StatisticDuration& d) {
  return {{"count", d.count()}, {"ns", d.ns()}};
}

json StatisticsJson(const inference::ModelStatisticsResponse& response) {
  json models = json::array();
  for (const auto& m : response.model_stats()) {
    const auto& s = m.inference_stats();
    json batches = json::array();
    for (const auto& b : m.batch_stats()) {
      batches.push_back({{"batch_size", b.batch_size()},
                         {"compute_input", DurationJson(b.compute_input())},
                         {"compute_infer", DurationJson(b.compute_infer())},
                         {"compute_output", DurationJson(b.compute_output())}});
    }
    models.push_back({{"name", m.name()},
                      {"version", m.version()},
                      {"last_inference", m.last_inference()},
                      {"inference_count", m.inference_count()},
                      {"execution_count", m.execution_count()},
                      {"inference_stats",
                       {{"success", DurationJson(s.success())},
                        {"fail", DurationJson(s.fail())},
                        {"queue", DurationJson(s.queue())},
                        {"compute_input", DurationJson(s.compute_input())},
                        {"compute_infer", DurationJson(s.compute_infer())},
                        {"compute_output", DurationJson(s.compute_output())}}},
                      {"batch_stats", batches}});
  }
  return {{"model_stats", models}};
}

std::string DataTypeJson(inference::DataType type) { return inference::DataType_Name(type); }

json ConfigJson(const inference::ModelConfig& config) {
  auto tensors = [](const auto& list) {
    json out = json::array();
    for (const auto& t : list) {
      out.push_back({{"name", t.name()},
                     {"data_type", DataTypeJson(t.data_type())},
                     {"dims", json(std::vector<int64_t>(t.dims().begin(), t.dims().end()))}});
    }
    return out;
  };
  json parameters = json::object();
  for (const auto& [key, value] : config.parameters()) {
    parameters[key] = {{"string_value", value.string_value()}};
  }
  return {{"name", config.name()},
          {"platform", config.platform()},
          {"backend", config.backend()},
          {"max_batch_size", config.max_batch_size()},
          {"input", tensors(config.input())},
          {"output", tensors(config.output())},
          {"dynamic_batching",
           {{"max_queue_delay_microseconds",
             config.dynamic_batching().max_queue_delay_microseconds()}}},
          {"model_transaction_policy",
           {{"decoupled", config.model_transaction_policy().decoupled()}}},
          {"parameters", parameters}};
}

json MetadataJson(const inference::ModelMetadataResponse& metadata) {
  auto tensors = [](const auto& list) {
    json out = json::array();
    for (const auto& t : list) {
      out.push_back({{"name", t.name()},
                     {"datatype", t.datatype()},
                     {"shape", json(std::vector<int64_t>(t.shape().begin(), t.shape().end()))}});
    }
    return out;
  };
  return {{"name", metadata.name()},
          {"versions", json(std::vector<std::string>(metadata.versions().begin(),
                                                     metadata.versions().end()))},
          {"platform", metadata.platform()},
          {"inputs", tensors(metadata.inputs())},
          {"outputs", tensors(metadata.outputs())}};
}

bool IsHealthPath(const std::string& path) { return path.rfind("/v2/health/", 0) == 0; }

}  // namespace

struct KServeHttpServer::Impl {
  Impl(const ModelRegistry& r, Scheduler& sc, ServerStats& st, MemoryBudget* b, std::string token)
      : registry(r), scheduler(sc), stats(st), budget(b), auth_token(std::move(token)) {}

  const ModelRegistry& registry;
  Scheduler& scheduler;
  ServerStats& stats;
  MemoryBudget* budget;
  std::string auth_token;
  std::unique_ptr<httplib::Server> http;
  std::thread listener;
  int port = 0;
  std::atomic<bool> ready{true};
  std::atomic<bool> stopped{false};
  std::atomic<bool> listener_done{false};

  void Infer(const httplib::Request& req, httplib::Response& res);
  void Routes();
};

void KServeHttpServer::Impl::Infer(const httplib::Request& req, httplib::Response& res) {
  const auto [name, version] = ModelOf(req);
  inference::ModelInferRequest request;
  bool binary_output = false;
  if (absl::Status s = ParseInferBody(req, name, version, &request, &binary_output); !s.ok()) {
    stats.RecordRejected(s.code());
    SendError(res, s);
    return;
  }
  kserve::Translated call;
  if (absl::Status s = kserve::ToFfnRequest(registry, request, &call); !s.ok()) {
    kserve::CountRefused(stats, call, s);
    SendError(res, s);
    return;
  }
  request.Clear();
  v1::InferResponse answer;
  MemoryBudget::Reservation held;
  absl::Notification done;
  absl::Status result;
  // No cancellation: cpp-httplib 0.11 does not tell a handler that its
  // client has gone; the request's "timeout" parameter bounds the wait.
  InferCall::Start({registry, scheduler, stats, budget}, call.request, &answer,
                   kserve::WithTimeout(CallLimits{}, call),
                   [&](const absl::Status& status) {
                     result = status;
                     done.Notify();
                   },
                   &held);
  done.WaitForNotification();
  if (!result.ok()) {
    SendError(res, result);
    return;
  }
  inference::ModelInferResponse response;
  kserve::ToKServeResponse(call, answer, &response);
  SendInferResponse(res, response, binary_output);
}

void KServeHttpServer::Impl::Routes() {
  httplib::Server& s = *http;
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (IsHealthPath(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    const absl::Status auth = CheckBearerToken(auth_token, req.get_header_value("Authorization"));
    if (auth.ok()) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, auth);
    return httplib::Server::HandlerResponse::Handled;
  });
  s.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"live", true}});
  });
  s.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, ready.load() ? 200 : 503, {{"ready", ready.load()}});
  });
  s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"name", "ffnserve"}, {"version", FFN_VERSION},
                        {"extensions", KServeExtensions()}});
  });
  s.Get("/v2/models/stats", [this](const httplib::Request&, httplib::Response& res) {
    auto response =
        kserve::StatisticsOf(registry, stats.Snapshot(/*exact_batch_sizes=*/true), "", "");
    if (!response.ok()) return SendError(res, response.status());
    SendJson(res, 200, StatisticsJson(*response));
  });
  s.Get(std::string(kModelPath) + "/stats", [this](const httplib::Request& req,
                                                   httplib::Response& res) {
    const auto [name, version] = ModelOf(req);
    auto response =
        kserve::StatisticsOf(registry, stats.Snapshot(/*exact_batch_sizes=*/true), name, version);
    if (!response.ok()) return SendError(res, response.status());
    SendJson(res, 200, StatisticsJson(*response));
  });
  s.Get(std::string(kModelPath) + "/ready", [this](const httplib::Request& req,
                                                   httplib::Response& res) {
    const auto [name, version] = ModelOf(req);
    const bool model_ready = ready.load() && kserve::ResolveModel(registry, name, version).ok();
    SendJson(res, model_ready ? 200 : 400, {{"name", name}, {"ready", model_ready}});
  });
  s.Get(std::string(kModelPath) + "/config", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
    const auto [name, version] = ModelOf(req);
    auto variant = kserve::ResolveModel(registry, name, version);
    if (!variant.ok()) return SendError(res, variant.status());
    SendJson(res, 200, ConfigJson(kserve::ConfigOf(*variant->model, *variant, name)));
  });
  s.Get(kModelPath, [this](const httplib::Request& req, httplib::Response& res) {
    const auto [name, version] = ModelOf(req);
    auto variant = kserve::ResolveModel(registry, name, version);
    if (!variant.ok()) return SendError(res, variant.status());
    SendJson(res, 200, MetadataJson(kserve::MetadataOf(*variant->model, name)));
  });
  s.Post(std::string(kModelPath) + "/infer",
         [this](const httplib::Request& req, httplib::Response& res) { Infer(req, res); });
}

KServeHttpServer::KServeHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KServeHttpServer::~KServeHttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<KServeHttpServer>> KServeHttpServer::Start(
    const HttpOptions& options, const ModelRegistry& registry, Scheduler& scheduler,
    ServerStats& stats, MemoryBudget* budget) {
  absl::StatusOr<ListenAddress> address = ParseListenAddress(options.address);
  if (!address.ok()) return address.status();
  std::string host = address->host;
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto impl = std::make_unique<Impl>(registry, scheduler, stats, budget, options.auth_token);
  if (options.tls_cert.empty()) {
    impl->http = std::make_unique<httplib::Server>();
  } else {
    impl->http = std::make_unique<httplib::SSLServer>(
        options.tls_cert.c_str(), options.tls_key.c_str(),
        options.tls_client_ca.empty() ? nullptr : options.tls_client_ca.c_str());
  }
  if (!impl->http->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "REST front end: cannot use TLS certificate ", options.tls_cert, " and key ",
        options.tls_key, options.tls_client_ca.empty() ? "" : " and client CA ",
        options.tls_client_ca));
  }
  impl->http->set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  // Each request holds its worker until answered: enough workers that the
  // scheduler, not the pool, is what batches and limits concurrent requests.
  const size_t workers = static_cast<size_t>(options.worker_threads);
  impl->http->new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  impl->Routes();
  if (address->port == 0) {
    impl->port = impl->http->bind_to_any_port(host);
  } else if (impl->http->bind_to_port(host, address->port)) {
    impl->port = address->port;
  }
  if (impl->port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address,
                                               " (--http-address): the port is in use, or the "
                                               "host is not an address of this machine"));
  }
  Impl* raw = impl.get();
  impl->listener = std::thread([raw] {
    raw->http->listen_after_bind();
    raw->listener_done.store(true);
  });
  return std::unique_ptr<KServeHttpServer>(new KServeHttpServer(std::move(impl)));
}

int KServeHttpServer::port() const { return impl_->port; }

void KServeHttpServer::SetReady(bool ready) { impl_->ready.store(ready); }

void KServeHttpServer::Stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->ready.store(false);
  // stop() does nothing before the listener thread is running: wait for it.
  while (!impl_->http->is_running() && !impl_->listener_done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->http->stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace ffn
