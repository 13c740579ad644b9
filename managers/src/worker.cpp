#include <parc/closures/call.hpp>
#include <parc/comm/backoff.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/output.hpp>
#include <parc/comm/request_channel.hpp>
#include <parc/comm/trace.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/managers/detail/worker.hpp>
#include <parc/monitor/flight_record.hpp>

#include <algorithm>
#include <chrono>

namespace parc::detail {

namespace {

// Idle this long, a worker's main thread parks and the request channel's progress thread
// watches for its messages: their sleeps are as long by then (5 ms), so a wake-up comes
// as soon.
constexpr auto park_after = std::chrono::seconds(1);

}  // namespace

Worker::Worker(Endpoint& endpoint, std::string host, std::int64_t pid, bool simulated)
    : endpoint_(endpoint),
      host_(std::move(host)),
      pid_(pid),
      simulated_(simulated),
      regions_(endpoint, simulated,
               {[this] { poll_control(); }, [this] { return_lent(nullptr); },
                [this](ClosureId closure, std::uint64_t id) { return error_info(closure, id); }}) {}

Worker::~Worker() = default;

bool Worker::step() {
  sending_ = endpoint_.progress();
  const bool region_finished = regions_.finish();
  if (auto control = endpoint_.try_receive(Traffic::control)) {
    handle_control(*control);
    return true;
  }
  if (regions_.active()) return region_finished;  // the manager sends nothing else meanwhile
  std::optional<Message> tasks;
  try {
    tasks = endpoint_.try_receive(Traffic::tasks);
    if (tasks && tasks->kind == MessageKind::region_start) {
      regions_.start(*tasks);
    } else if (tasks) {
      run_batch(*tasks);
    }
  } catch (const DecodeError& e) {
    // Only a different build or a corrupted message gets here: tell the manager, so its
    // tasks fail instead of waiting, and keep serving.
    log().error("rejected a task batch{}: {}",
                tasks ? " from rank " + std::to_string(tasks->source) : std::string(), e.what());
    if (tasks) {
      endpoint_.send(Traffic::tasks, tasks->source, MessageKind::result_batch,
                     write_batch_rejected("rank " + std::to_string(endpoint_.rank()) +
                                          " could not decode a task batch: " + e.what()));
    }
  }
  return tasks.has_value() || region_finished;
}

int Worker::serve(RequestChannel* channel) {
  flight::note_activity("waiting for work");
  if (channel != nullptr) channel->set_background_poll([this] { answer_revokes(); });
  struct StopAnswering {
    RequestChannel* channel;
    ~StopAnswering() {
      if (channel != nullptr) channel->set_background_poll({});
    }
  } stop_answering{channel};
  Backoff backoff;
  const std::function<bool()> message_waits = [this] { return endpoint_.has_incoming(); };
  while (!shut_down_) {
    if (step()) {
      backoff.reset();
    } else if (channel != nullptr && !sending_ && !regions_.active() &&
               backoff.idle_for() > park_after && channel->park_until(message_waits)) {
      backoff.reset();  // a message came: answer it, and what follows, without sleeping
    } else {
      backoff.pause(sending_);
    }
  }
  // Results still in flight have no reader once the manager has shut down; don't wait
  // for them forever.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (endpoint_.progress() && std::chrono::steady_clock::now() < deadline) backoff.pause();
  return exit_code_;
}

void Worker::handle_control(const Message& message) {
  ControlMessage control;
  try {
    control = read_control(message);
  } catch (const DecodeError& e) {  // nobody waits for an answer: log it and go on serving
    log().error("dropped a control message from rank {}: {}", message.source, e.what());
    return;
  }
  if (control.kind == MessageKind::cancel) {
    cancel(control.farm, control.generation, control.after_task);
  } else if (control.kind == MessageKind::region_cancel ||
             control.kind == MessageKind::region_done) {
    regions_.on_control(message, control);
  } else {  // shutdown
    exit_code_ = control.exit_code;
    shut_down_ = true;
    regions_.shut_down("the job is shutting down");
    log().debug("shutdown received, exit code {}", exit_code_);
  }
}

void Worker::poll_control() {
  while (auto control = endpoint_.try_receive(Traffic::control)) handle_control(*control);
}

void Worker::cancel(std::uint32_t farm, std::uint32_t generation, std::uint64_t after_task) {
  cancelled_[farm].push_back(Cancelled{generation + 1, after_task});
}

bool Worker::cancelled(std::uint32_t farm, std::uint32_t generation, std::uint64_t task) const {
  auto it = cancelled_.find(farm);
  if (it == cancelled_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const Cancelled& c) {
    return generation < c.up_to && task > c.after_task;
  });
}

ErrorInfo Worker::error_info(ClosureId closure, std::uint64_t task_id) const {
  ErrorInfo info;
  info.chain = record_chain(std::current_exception());
  info.foreign = foreign_encoding(std::current_exception());
  info.rank = endpoint_.rank();
  info.host = host_;
  info.pid = pid_;
  info.task_id = task_id;
  try {
    info.closure = ClosureRegistry::instance().entry(closure).name;
  } catch (...) {
    info.closure = "<unknown closure " + std::to_string(closure) + ">";
  }
  return info;
}

void Worker::answer_revokes() {
  while (auto message = endpoint_.try_receive(Traffic::steal)) {
    Revoke revoke;
    try {
      revoke = read_revoke(*message);
    } catch (const DecodeError& e) {
      log().error("dropped a message from rank {}: {}", message->source, e.what());
      continue;
    }
    RevokeAnswer answer;
    answer.batch = revoke.batch;
    {
      // Batches start as the main thread takes them in: one not taken in yet is given back.
      std::lock_guard lock(start_mutex_);
      answer.given_back = revoke.sequence > batches_taken_;
      if (answer.given_back) given_back_.insert(revoke.sequence);
    }
    endpoint_.send(Traffic::steal, message->source, MessageKind::revoke_answer,
                   write_revoke_answer(answer));
  }
}

bool Worker::begin_batch() {
  std::lock_guard lock(start_mutex_);
  return given_back_.erase(++batches_taken_) == 0;
}

void Worker::return_lent(Splices* reply) {
  if (reply != nullptr) {
    for (Splice& splice : *reply) {
      if (!splice.tail.borrowed) continue;
      auto copy = std::make_shared<Bytes>();
      append(*copy, splice.tail.data, splice.tail.size);
      const char* data = copy->data();
      splice.tail = Tail{std::move(copy), data, splice.tail.size};
    }
  }
  if (!lent_in_flight_) return;
  // The manager receives results at once, so this is about as long as copying them would
  // have taken. A shutdown ends the wait: its results have no reader any more.
  Backoff backoff;
  while (endpoint_.progress() && !shut_down_) {
    poll_control();
    backoff.pause(true);
  }
  lent_in_flight_ = false;
}

void Worker::run_batch(Message& message) {
  const ActingAs acting(endpoint_.rank());  // serially: the proxies' simulated rank
  if (!begin_batch()) return;               // given back
  ByteReader body = message.take_body();
  const auto count = read_task_count(body, message.source);
  Bytes reply = begin_frame();
  // Large results go as tails of the reply, from where they lie (see ByteWriter).
  Splices tails;
  ByteWriter out(reply, &tails);
  write_outcome_count(out, count);
  // Serially one record serves every simulated worker: a crash names this one.
  if (simulated_) flight::note_identity(endpoint_.rank(), host_, pid_);
  for (std::uint32_t i = 0; i < count; ++i) {
    auto [task_id, closure, farm, generation, flags, in] = read_task(body, message.source);

    poll_control();
    if (cancelled(farm, generation, task_id)) {
      write_empty_outcome(out, task_id, TaskStatus::cancelled);
      continue;
    }
    const OpenOutcome open = open_outcome(out, task_id);
    return_lent(&tails);
    trace::Span span(trace::Category::task, endpoint_.rank(), {}, task_id);
    span.set_farm(farm);
    const auto start = std::chrono::steady_clock::now();
    TaskStatus status = TaskStatus::ok;
    try {
      const std::string& name = ClosureRegistry::instance().entry(closure).name;
      flight::note_task(task_id, name);
      span.set_name(name);
      run_closure(closure, in, out);
    } catch (...) {
      out.rewind(open.payload_at);
      status = TaskStatus::error;
      out.write(error_info(closure, task_id));
      if (flags & task_flag_fail_fast) cancel(farm, generation, task_id);  // the rest
    }
    const auto duration_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
    output::end_task();  // its last partial line, as its own line
    close_outcome(reply, out, open, status, duration_ns);
  }
  flight::note_task_done();
  const bool lent = std::any_of(tails.begin(), tails.end(),
                                [](const Splice& splice) { return splice.tail.borrowed; });
  endpoint_.send(Traffic::tasks, message.source, MessageKind::result_batch, std::move(reply),
                 std::move(tails));
  lent_in_flight_ = lent_in_flight_ || lent;
}

}  // namespace parc::detail
