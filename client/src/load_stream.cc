// The closed loop over a bidirectional stream: one stream per endpoint
// (target × connection), the `concurrency` requests in flight shared out
// among them. Each stream keeps a FIFO of what it sent; an answer files the
// entry it settles and sends the next request on the same stream. A
// request's own failure comes in-band; a broken stream fails every request
// it still owes with the stream's status.
//
// One loop serves both protocols through a small adapter (`Api`):
//   InferStreamApi       ffn.v1 InferStream: answers come in request order,
//                        a failure as error_code and error_message.
//   ModelStreamInferApi  v2 ModelStreamInfer: each request carries its call
//                        number as its `id` and each answer the id of its
//                        request, in whatever order the server finishes them
//                        (ffnserve answers as requests complete); a failure
//                        as error_message alone.
// An answer with an id settles the request of that id; one without, the
// oldest request owed. An answer to nothing the stream owes breaks the
// stream (INTERNAL).
//
// Every event of a stream is handled on the one completion thread its queue
// belongs to, so a stream's state needs no lock.
#include <atomic>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "completion_threads.h"
#include "load_driver.h"

namespace ffn::client {
namespace {

template <typename Request, typename Answer>
using StreamRw = grpc::ClientAsyncReaderWriter<Request, Answer>;

// ffn.v1 InferStream.
struct InferStreamApi {
  using Request = v1::InferRequest;
  using Answer = v1::InferResponse;

  static std::unique_ptr<StreamRw<Request, Answer>> Open(const Endpoint& endpoint,
                                                         grpc::ClientContext* context,
                                                         grpc::CompletionQueue* queue) {
    return endpoint.stub->PrepareAsyncInferStream(context, queue);
  }
  // ffn.v1 requests carry no id: the server answers them in order.
  static Request Make(const LoadPlan& plan, const CallDeal& deal, uint64_t /*number*/) {
    return plan.MakeRequest(deal);
  }
  static absl::string_view IdOf(const Answer& /*answer*/) { return {}; }
  // How `answer` went, its content moved into `response`.
  static grpc::Status Settle(const LoadPlan& /*plan*/, const CallDeal& /*deal*/, Answer& answer,
                             v1::InferResponse* response) {
    response->Swap(&answer);
    if (response->error_code() == 0) return grpc::Status::OK;
    return grpc::Status(static_cast<grpc::StatusCode>(response->error_code()),
                        response->error_message());
  }
};

// The Open Inference Protocol's ModelStreamInfer.
struct ModelStreamInferApi {
  using Request = inference::ModelInferRequest;
  using Answer = inference::ModelStreamInferResponse;

  static std::unique_ptr<StreamRw<Request, Answer>> Open(const Endpoint& endpoint,
                                                         grpc::ClientContext* context,
                                                         grpc::CompletionQueue* queue) {
    return endpoint.v2_stub->PrepareAsyncModelStreamInfer(context, queue);
  }
  static Request Make(const LoadPlan& plan, const CallDeal& deal, uint64_t number) {
    Request request = plan.MakeV2Request(deal);
    request.set_id(absl::StrCat(number));
    return request;
  }
  static absl::string_view IdOf(const Answer& answer) { return answer.infer_response().id(); }
  // The protocol gives an in-band failure no code: it counts as UNKNOWN.
  static grpc::Status Settle(const LoadPlan& plan, const CallDeal& deal, Answer& answer,
                             v1::InferResponse* response) {
    if (!answer.error_message().empty()) {
      return grpc::Status(grpc::StatusCode::UNKNOWN, answer.error_message());
    }
    return plan.ReadV2Answer(deal, answer.infer_response(), response);
  }
};

template <typename Api>
class StreamLoop final : public LoadDriver {
 public:
  StreamLoop(const LoadPlan& plan, Recorder& recorder, const DriverTiming& timing)
      : plan_(plan),
        recorder_(recorder),
        timing_(timing),
        threads_(DefaultCompletionThreads(), [](void* tag, bool ok) {
          Op* op = static_cast<Op*>(tag);
          op->stream->owner->OnEvent(*op->stream, op->kind, ok);
        }) {
    const size_t count = plan_.endpoints.size();
    for (size_t i = 0; i < count; ++i) {
      auto stream = std::make_unique<Stream>();
      stream->owner = this;
      stream->index = i;
      // Slots i, i + count, i + 2·count, ... belong to stream i.
      stream->depth = plan_.options.concurrency / static_cast<int>(count) +
                      (static_cast<int>(i) < plan_.options.concurrency % static_cast<int>(count));
      if (stream->depth > 0) streams_.push_back(std::move(stream));
    }
  }
  ~StreamLoop() override { Stop(); }

  void Start() override {
    {
      absl::MutexLock lock(&mu_);
      live_streams_ = static_cast<int>(streams_.size());
    }
    for (auto& stream : streams_) {
      Stream& s = *stream;
      if (timing_.stop_sending != Clock::time_point::max()) {
        s.context.set_deadline(
            DeadlineIn(timing_.stop_sending - Clock::now() + std::chrono::seconds(1)));
      }
      s.rw = Api::Open(plan_.endpoints[s.index], &s.context,
                       threads_.Queue(static_cast<uint64_t>(s.index)));
      s.rw->StartCall(&s.start_op);
    }
  }

  void WaitForWindow(int w) override { WaitForClosedLoopWindow(recorder_, w); }

  void Stop() override {
    if (!stopping_.exchange(true)) {
      // Streams close once their answers are in; one that still owes answers
      // after the call timeout is cancelled.
      absl::MutexLock lock(&mu_);
      const auto grace = absl::Seconds(plan_.options.timeout_seconds);
      if (!mu_.AwaitWithTimeout(absl::Condition(
                                    +[](int* live) { return *live == 0; }, &live_streams_),
                                grace)) {
        for (auto& stream : streams_) stream->context.TryCancel();
      }
    }
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(+[](int* live) { return *live == 0; }, &live_streams_));
    }
    threads_.Shutdown();
  }

 private:
  using Request = typename Api::Request;
  using Answer = typename Api::Answer;
  enum class Kind { kStart, kWrite, kRead, kWritesDone, kFinish };
  struct Stream;
  struct Op {
    Stream* stream;
    Kind kind;
  };
  struct Sent {
    uint64_t number;
    CallDeal deal;
    Clock::time_point sent;
  };
  struct Stream {
    StreamLoop* owner = nullptr;
    size_t index = 0;  // = its endpoint
    int depth = 0;     // requests it keeps in flight
    grpc::ClientContext context;
    std::unique_ptr<StreamRw<Request, Answer>> rw;
    std::deque<Sent> owed;        // sent, not yet answered, oldest first
    std::deque<Request> pending;  // made, not yet handed to Write
    Request writing;
    Answer reading;
    v1::InferResponse settled;  // the answer being filed, in ffn.v1's terms
    grpc::Status status;
    // Set when the client gave up on a stream the server still keeps open:
    // what the stream owes fails with this rather than CANCELLED.
    grpc::Status broken;
    bool write_busy = false, closing = false, writes_done = false;
    Op start_op{this, Kind::kStart}, write_op{this, Kind::kWrite}, read_op{this, Kind::kRead},
        done_op{this, Kind::kWritesDone}, finish_op{this, Kind::kFinish};
  };

  bool SendingOver() const {
    return stopping_.load(std::memory_order_relaxed) || Clock::now() >= timing_.stop_sending;
  }

  // Queues the stream's next request, or starts closing it.
  void SendNext(Stream& s) {
    if (s.closing || SendingOver()) {
      s.closing = true;
      MaybeWritesDone(s);
      return;
    }
    const uint64_t number = next_call_.fetch_add(1, std::memory_order_relaxed);
    CallDeal deal = plan_.Deal(number);
    deal.endpoint = s.index;  // a stream's calls all go to its endpoint
    s.pending.push_back(Api::Make(plan_, deal, number));
    s.owed.push_back({number, deal, Clock::now()});
    Pump(s);
  }

  void Pump(Stream& s) {
    if (s.write_busy || s.pending.empty()) return;
    s.writing = std::move(s.pending.front());
    s.pending.pop_front();
    s.write_busy = true;
    s.rw->Write(s.writing, &s.write_op);
  }

  // Half-closes the stream once nothing is owed and no write is queued.
  void MaybeWritesDone(Stream& s) {
    if (s.writes_done || s.write_busy || !s.pending.empty() || !s.owed.empty()) return;
    s.writes_done = true;
    s.rw->WritesDone(&s.done_op);
  }

  // The owed request an answer with `id` settles: the one of that call
  // number, or with no id the oldest; owed.end() if there is none.
  typename std::deque<Sent>::iterator OwedEntry(Stream& s, absl::string_view id) {
    if (id.empty()) return s.owed.begin();
    uint64_t number = 0;
    if (!absl::SimpleAtoi(id, &number)) return s.owed.end();
    // Answers mostly come in order: the match is usually at the front.
    auto it = s.owed.begin();
    while (it != s.owed.end() && it->number != number) ++it;
    return it;
  }

  void File(Stream& s, const Sent& sent, const grpc::Status& status,
            const v1::InferResponse& response) {
    recorder_.RecordNow({.number = sent.number,
                         .deal = sent.deal,
                         .intended = sent.sent,
                         .sent = sent.sent,
                         .done = Clock::now(),
                         .status = &status,
                         .response = &response,
                         .context = &s.context});
  }

  // Files the request `s.reading` answers and sends the next one; an answer
  // to nothing owed breaks the stream.
  void OnAnswer(Stream& s) {
    const absl::string_view id = Api::IdOf(s.reading);
    const auto it = OwedEntry(s, id);
    if (it == s.owed.end()) {
      s.broken = grpc::Status(
          grpc::StatusCode::INTERNAL,
          absl::StrCat(id.empty() ? "an answer with no request in flight"
                                  : absl::StrCat("an answer to id '", id,
                                                 "', which was not in flight"),
                       "; the client cancelled the stream"));
      s.closing = true;
      s.context.TryCancel();
      return;
    }
    const Sent sent = *it;
    s.owed.erase(it);
    const grpc::Status status = Api::Settle(plan_, sent.deal, s.reading, &s.settled);
    File(s, sent, status, s.settled);
    SendNext(s);
  }

  void OnEvent(Stream& s, Kind kind, bool ok) {
    switch (kind) {
      case Kind::kStart:
        if (!ok) {
          // The stream never opened (a dead target): its first requests
          // fail with the stream's status, as unary calls would.
          for (int i = 0; i < s.depth; ++i) {
            const uint64_t number = next_call_.fetch_add(1, std::memory_order_relaxed);
            CallDeal deal = plan_.Deal(number);
            deal.endpoint = s.index;
            s.owed.push_back({number, deal, Clock::now()});
          }
          s.rw->Finish(&s.status, &s.finish_op);
          return;
        }
        for (int i = 0; i < s.depth; ++i) SendNext(s);
        s.rw->Read(&s.reading, &s.read_op);
        return;
      case Kind::kWrite:
        s.write_busy = false;
        if (ok) {
          Pump(s);
          if (s.closing) MaybeWritesDone(s);
        }
        // A failed write means a broken stream: the pending Read fails too
        // and Finish tells why.
        return;
      case Kind::kRead:
        if (!ok) {
          s.rw->Finish(&s.status, &s.finish_op);
          return;
        }
        // Once the stream is given up on, answers still on their way settle
        // nothing; the Read fails when the cancellation lands.
        if (s.broken.ok()) OnAnswer(s);
        s.rw->Read(&s.reading, &s.read_op);
        return;
      case Kind::kWritesDone:
        return;  // the Read in flight ends when the server closes
      case Kind::kFinish: {
        // Whatever the stream still owed failed with its status (OK only if
        // the server closed early, which it never does with answers owed).
        grpc::Status failed = s.status;
        if (!s.broken.ok()) {
          failed = s.broken;
        } else if (failed.ok()) {
          failed = grpc::Status(grpc::StatusCode::INTERNAL,
                                "stream closed with answers outstanding");
        }
        const v1::InferResponse none;
        for (const Sent& sent : s.owed) File(s, sent, failed, none);
        s.owed.clear();
        absl::MutexLock lock(&mu_);
        --live_streams_;
        return;
      }
    }
  }

  const LoadPlan& plan_;
  Recorder& recorder_;
  const DriverTiming timing_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_call_{0};
  std::vector<std::unique_ptr<Stream>> streams_;
  absl::Mutex mu_;
  int live_streams_ ABSL_GUARDED_BY(mu_) = 0;
  CompletionThreads threads_;  // last: its threads stop first
};

}  // namespace

std::unique_ptr<LoadDriver> MakeStreamLoop(const LoadPlan& plan, Recorder& recorder,
                                           const DriverTiming& timing) {
  if (plan.options.protocol == Protocol::kV2) {
    return std::make_unique<StreamLoop<ModelStreamInferApi>>(plan, recorder, timing);
  }
  return std::make_unique<StreamLoop<InferStreamApi>>(plan, recorder, timing);
}

}  // namespace ffn::client
