// echo_server: the floor any ffnserve-like server can reach on this machine.
//
// A minimal gRPC callback server with the FfnService API whose Infer (and
// InferStream, request by request) copies the input tensor into the output
// and does nothing else: no validation
// beyond the shape, no queue, no compute. Because it speaks the same API,
// `ffn-client load` drives it unchanged, so the floor and ffn-server are
// measured with the same client in the same run:
//
//   build/bench/echo_server --address 127.0.0.1:50070 --d-model 768 &
//   build/client/ffn-client load --target 127.0.0.1:50070 --concurrency 64 ...
#include <csignal>

#include "CLI/CLI.hpp"
#include "ffn/v1/ffn.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

// The answer ffn-server would give, minus the computation.
void Echo(const ffn::v1::InferRequest& request, ffn::v1::InferResponse& response) {
  *response.mutable_output() = request.input();
  response.mutable_variant()->set_model(request.model());
  response.mutable_variant()->set_activation(request.activation());
  response.mutable_variant()->set_dtype(ffn::v1::FLOAT32);
  response.set_batch_tokens(request.input().shape_size() > 0 ? request.input().shape(0) : 0);
}

class EchoService final : public ffn::v1::FfnService::CallbackService {
 public:
  explicit EchoService(int64_t d_model) : d_model_(d_model) {}

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const ffn::v1::InferRequest* request,
                                  ffn::v1::InferResponse* response) override {
    Echo(*request, *response);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // Each request read is echoed before the next is read: answers in order.
  grpc::ServerBidiReactor<ffn::v1::InferRequest, ffn::v1::InferResponse>* InferStream(
      grpc::CallbackServerContext*) override {
    class Reactor final
        : public grpc::ServerBidiReactor<ffn::v1::InferRequest, ffn::v1::InferResponse> {
     public:
      Reactor() { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        response_.Clear();
        Echo(request_, response_);
        StartWrite(&response_);
      }
      void OnWriteDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
          return;
        }
        StartRead(&request_);
      }
      void OnDone() override { delete this; }

     private:
      ffn::v1::InferRequest request_;
      ffn::v1::InferResponse response_;
    };
    return new Reactor;
  }

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const ffn::v1::ListModelsRequest*,
                                       ffn::v1::ListModelsResponse* response) override {
    ffn::v1::ModelInfo* model = response->add_models();
    model->set_name("echo");
    model->set_d_model(d_model_);
    model->set_d_ff(d_model_);
    model->set_kind(ffn::v1::PLAIN);
    model->set_default_activation("relu");
    model->add_activations("relu");
    model->set_dtype(ffn::v1::FLOAT32);
    model->set_max_tokens(1 << 20);
    model->mutable_random()->set_seed(0);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const int64_t d_model_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"echo_server: the gRPC floor for ffnserve's load figures"};
  std::string address = "127.0.0.1:50070";
  int64_t d_model = 768;
  app.add_option("--address", address, "HOST:PORT")->capture_default_str();
  app.add_option("--d-model", d_model, "row width the listed 'echo' model reports")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  EchoService service(d_model);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  auto server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen on %s\n", address.c_str());
    return 1;
  }
  std::printf("echo_server listening on port %d\n", port);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown();
  return 0;
}
