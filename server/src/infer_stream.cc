#include "infer_stream.h"

#include "ffn/server/status.h"

namespace ffn {

InferStreamReactor::InferStreamReactor(const InferBackend& backend,
                                       grpc::CallbackServerContext* context, int64_t max_inflight,
                                       const absl::Status& auth)
    : backend_(backend), context_(context), max_inflight_(static_cast<size_t>(max_inflight)) {
  backend_.stats.RecordCallStarted();
  if (!auth.ok()) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    Finish(ToGrpcStatus(auth));
    return;
  }
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    actions = NextActions();
  }
  Run(actions);
}

void InferStreamReactor::OnReadDone(bool ok) {
  Slot* slot = nullptr;
  {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) {
      reads_done_ = true;
      incoming_.reset();
    } else {
      slot = incoming_.get();
      slots_.push_back(std::move(incoming_));
    }
  }
  if (slot != nullptr) {
    absl::Status parsed = ParseInferRequest(slot->received, &slot->request);
    if (!parsed.ok() && context_->IsCancelled()) parsed = CallEnded(*context_);
    slot->received.Clear();
    if (!parsed.ok()) {
      backend_.stats.RecordRejected(parsed.code());
      OnComputed(slot, parsed);
      return;
    }
    // The slot stays in slots_ until its answer is written, so the pointers
    // the computation holds stay valid.
    InferCall::Start(
        backend_, slot->request, &slot->response, LimitsOf(context_),
        [this, slot](const absl::Status& status) { OnComputed(slot, status); }, &slot->held);
  }
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    actions = NextActions();
  }
  Run(actions);
}

void InferStreamReactor::OnComputed(Slot* slot, const absl::Status& status) {
  absl::Status answer = status;
  if (answer.ok()) answer = SerializeInferResponse(slot->response, &slot->answer);
  if (!answer.ok()) {
    slot->response.Clear();
    slot->response.set_error_code(static_cast<int32_t>(answer.code()));
    slot->response.set_error_message(std::string(answer.message()));
    // An error answer is a few bytes; serializing it cannot fail.
    SerializeInferResponse(slot->response, &slot->answer).IgnoreError();
  }
  // What stays until the write is done is the serialized answer.
  slot->request.Clear();
  slot->response.Clear();
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    slot->ready = true;
    actions = NextActions();
  }
  Run(actions);
}

void InferStreamReactor::OnWriteDone(bool ok) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    slots_.pop_front();
    if (!ok) broken_ = true;
    actions = NextActions();
  }
  Run(actions);
}

InferStreamReactor::Actions InferStreamReactor::NextActions() {
  Actions actions;
  if (finished_) return actions;
  // Answers in request order; after a failed write they are dropped.
  while (!writing_ && !slots_.empty() && slots_.front()->ready) {
    if (!broken_) {
      writing_ = true;
      actions.write = &slots_.front()->answer;
      break;
    }
    slots_.pop_front();
  }
  if (broken_) reads_done_ = reads_done_ || !reading_;
  if (!reads_done_ && !reading_ && !broken_ && slots_.size() < max_inflight_) {
    reading_ = true;
    incoming_ = std::make_unique<Slot>();
    actions.read = true;
  }
  // Finish once the client is done sending and every answer is out; never
  // while a computation still holds a slot.
  if (reads_done_ && !reading_ && !writing_ && slots_.empty()) {
    finished_ = true;
    actions.finish = true;
    actions.finish_status =
        broken_ ? absl::CancelledError("the stream broke while answers were pending")
                : absl::OkStatus();
  }
  return actions;
}

void InferStreamReactor::Run(const Actions& actions) {
  if (actions.write != nullptr) StartWrite(actions.write);
  if (actions.read) {
    grpc::ByteBuffer* request;
    {
      absl::MutexLock lock(&mu_);
      request = &incoming_->received;
    }
    StartRead(request);
  }
  if (actions.finish) Finish(ToGrpcStatus(actions.finish_status));
}

void InferStreamReactor::OnDone() {
  backend_.stats.RecordCallEnded(context_->IsCancelled());
  delete this;
}

}  // namespace ffn
