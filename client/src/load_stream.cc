// The closed loop over InferStream: one bidirectional stream per endpoint
// (target × connection), the `concurrency` requests in flight shared out
// among them. The server answers a stream's requests in order, so each
// stream keeps a FIFO of what it sent; an answer files the oldest entry and
// sends the next request on the same stream. A request's own failure comes
// in-band (error_code, error_message); a broken stream fails every request
// it still owes with the stream's status.
//
// Every event of a stream is handled on the one completion thread its queue
// belongs to, so a stream's state needs no lock.
#include <atomic>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "completion_threads.h"
#include "load_driver.h"

namespace ffn::client {
namespace {

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
      s.rw = plan_.endpoints[s.index].stub->PrepareAsyncInferStream(
          &s.context, threads_.Queue(static_cast<uint64_t>(s.index)));
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
    std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::InferRequest, v1::InferResponse>> rw;
    std::deque<Sent> owed;                 // sent, not yet answered, oldest first
    std::deque<v1::InferRequest> pending;  // made, not yet handed to Write
    v1::InferRequest writing;
    v1::InferResponse reading;
    grpc::Status status;
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
    s.pending.push_back(plan_.MakeRequest(deal));
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
      case Kind::kRead: {
        if (!ok) {
          s.rw->Finish(&s.status, &s.finish_op);
          return;
        }
        if (!s.owed.empty()) {
          const Sent sent = s.owed.front();
          s.owed.pop_front();
          const grpc::Status status =
              s.reading.error_code() == 0
                  ? grpc::Status::OK
                  : grpc::Status(static_cast<grpc::StatusCode>(s.reading.error_code()),
                                 s.reading.error_message());
          File(s, sent, status, s.reading);
          SendNext(s);
        }
        s.rw->Read(&s.reading, &s.read_op);
        return;
      }
      case Kind::kWritesDone:
        return;  // the Read in flight ends when the server closes
      case Kind::kFinish: {
        // Whatever the stream still owed failed with its status (OK only if
        // the server closed early, which it never does with answers owed).
        const grpc::Status failed =
            s.status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL,
                                         "stream closed with answers outstanding")
                          : s.status;
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
  return std::make_unique<StreamLoop>(plan, recorder, timing);
}

}  // namespace ffn::client
