#include <parc/closures/call.hpp>
#include <parc/comm/backoff.hpp>
#include <parc/comm/flight_record.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/output.hpp>
#include <parc/comm/request_channel.hpp>
#include <parc/comm/trace.hpp>
#include <parc/managers/wire.hpp>
#include <parc/managers/worker.hpp>

#include <algorithm>
#include <chrono>

namespace parc::detail {

namespace {

// Idle this long, a worker's main thread parks and the request channel's progress thread
// watches for its messages: their sleeps are as long by then (5 ms), so a wake-up comes
// as soon.
constexpr auto park_after = std::chrono::seconds(1);

// A rank released from a region (not a failure of its own): parc::CancelledError, or its
// host-language form (Python's parc._core.CancelledError).
bool is_cancellation(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
    return true;
  } catch (const ForeignException& e) {
    return e.type_name().ends_with("CancelledError");
  } catch (...) {
  }
  return false;
}

void patch_outcome(Bytes& reply, std::size_t header_at, TaskStatus status,
                   std::uint64_t payload_size) {
  char* header = reply.data() + header_at;
  std::memcpy(header, &status, sizeof status);
  std::memcpy(header + sizeof status, &payload_size, sizeof payload_size);
}

// After a region's outcome: whether this rank can reuse its communicator, and the messages
// it sent to and received from each region rank (the manager checks that none is left).
void write_region_hygiene(ByteWriter& out, const RegionComm* comm, TaskStatus status) {
  const bool reusable = comm != nullptr && status == TaskStatus::ok && !comm->cancelled();
  out.write(static_cast<std::uint8_t>(reusable));
  out.write(comm != nullptr ? comm->messages_sent() : std::vector<std::uint64_t>{});
  out.write(comm != nullptr ? comm->messages_received() : std::vector<std::uint64_t>{});
}

}  // namespace

Worker::Worker(Endpoint& endpoint, std::string host, std::int64_t pid, bool simulated)
    : endpoint_(endpoint), host_(std::move(host)), pid_(pid), simulated_(simulated) {}

Worker::~Worker() {
  if (region_ && region_->thread.joinable()) {
    region_->comm->cancel("the runtime is shutting down");
    region_->thread.join();
  }
}

bool Worker::step() {
  sending_ = endpoint_.progress();
  const bool region_finished = finish_region();
  if (auto control = endpoint_.try_receive(Traffic::control)) {
    handle_control(*control);
    return true;
  }
  if (region_) return region_finished;  // the manager sends nothing else meanwhile
  std::optional<Message> tasks;
  try {
    tasks = endpoint_.try_receive(Traffic::tasks);
    if (tasks && tasks->kind == MessageKind::region_start) {
      start_region(*tasks);
    } else if (tasks) {
      run_batch(*tasks);
    }
  } catch (const DecodeError& e) {
    // Only a different build or a corrupted message gets here: tell the manager, so its
    // tasks fail instead of waiting, and keep serving.
    log().error("rejected a task batch{}: {}",
                tasks ? " from rank " + std::to_string(tasks->source) : std::string(), e.what());
    if (tasks) {
      Bytes reply = begin_frame();
      ByteWriter out(reply);
      out.write(batch_rejected);
      out.write("rank " + std::to_string(endpoint_.rank()) +
                " could not decode a task batch: " + e.what());
      endpoint_.send(Traffic::tasks, tasks->source, MessageKind::result_batch, std::move(reply));
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
    } else if (channel != nullptr && !sending_ && !region_ && backoff.idle_for() > park_after &&
               channel->park_until(message_waits)) {
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
    const auto id = control.region;
    if (region_ && region_->id == id) {
      if (control.kind == MessageKind::region_cancel) {
        region_->comm->cancel(control.reason);
      } else {
        region_->comm->peer_finished(control.region_rank, control.collectives, control.sends);
      }
    } else if (id > last_region_) {  // overtook its region_start (another channel)
      early_control_[id].push_back(message);
    }
  } else {  // shutdown
    exit_code_ = control.exit_code;
    shut_down_ = true;
    if (region_) region_->comm->cancel("the job is shutting down");
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

void Worker::start_region(Message& message) {
  auto region = std::make_unique<ActiveRegion>();
  region->manager = message.source;
  // The region fails on this rank, which keeps serving: the manager learns it now instead
  // of at the region's timeout (or never, without one).
  const auto fail_region = [&](ClosureId closure) {
    Bytes reply = begin_frame();
    ByteWriter out(reply);
    out.write(region->id);
    const std::size_t header_at = reply.size();
    out.write(TaskStatus::error);
    out.write(std::uint64_t{0});
    const std::size_t payload_at = reply.size();
    out.write(error_info(closure, region->id));
    patch_outcome(reply, header_at, TaskStatus::error, reply.size() - payload_at);
    write_region_hygiene(out, nullptr, TaskStatus::error);
    endpoint_.send(Traffic::tasks, message.source, MessageKind::region_result, std::move(reply));
  };
  RegionStart start;
  ByteReader body = message.take_body();
  ByteReader named = body;  // its first field names the region, even when the rest is bad
  try {
    start = read_region_start(body, message.source);
  } catch (const DecodeError& e) {
    if (named.remaining() < sizeof(std::uint64_t)) throw;  // nameless: rejected as a batch
    region->id = named.read<std::uint64_t>();
    const ClosureId closure =
        named.remaining() >= sizeof(ClosureId) ? named.read<ClosureId>() : ClosureId{};
    log().error("rejected the start of region {}: {}", region->id, e.what());
    fail_region(closure);
    return;
  }
  region->id = start.id;
  const auto closure = start.closure;
  const auto& members = start.members;
  const auto kept = start.kept;
  ByteReader arguments = start.arguments;
  last_region_ = region->id;
  try {
    region->comm = endpoint_.open_region(
        region->id, members, [this] { poll_control(); }, kept);
  } catch (...) {
    fail_region(closure);
    return;
  }
  region_ = std::move(region);
  for (auto it = early_control_.begin(); it != early_control_.end();) {
    if (it->first == region_->id) {
      for (const Message& early : it->second) handle_control(early);
    }
    it = it->first <= region_->id ? early_control_.erase(it) : std::next(it);
  }
  ActiveRegion* active = region_.get();
  return_lent(nullptr);
  if (simulated_) {
    active->thread = std::thread([this, active, closure, arguments] {
      active->reply = run_region(*active, closure, arguments);
      active->done = true;
    });
  } else {
    active->reply = run_region(*active, closure, arguments);
    active->done = true;
    finish_region();
  }
}

Bytes Worker::run_region(ActiveRegion& region, ClosureId closure, ByteReader arguments) {
  const ActingAs acting(endpoint_.rank());  // serially: the proxies' simulated rank
  Bytes reply = begin_frame();
  ByteWriter out(reply);
  out.write(region.id);
  const std::size_t header_at = reply.size();
  out.write(TaskStatus::ok);
  out.write(std::uint64_t{0});
  const std::size_t payload_at = reply.size();
  TaskStatus status = TaskStatus::ok;
  SpmdContext context(*region.comm, region.id);
  current_spmd_context() = &context;
  trace::Span span(trace::Category::region, endpoint_.rank(), {}, region.id);
  if (!simulated_) {  // serially, regions run on threads of their own: no single writer
    flight::note_activity("running SPMD region " + std::to_string(region.id) + " (" +
                          ClosureRegistry::instance().entry(closure).name + ")");
  }
  try {
    span.set_name(ClosureRegistry::instance().entry(closure).name);
    run_closure(closure, arguments, out);
    region.comm->finish();
  } catch (...) {
    reply.resize(payload_at);
    if (region.comm->cancelled() && is_cancellation(std::current_exception())) {
      status = TaskStatus::cancelled;
    } else {
      status = TaskStatus::error;
      const ErrorInfo info = error_info(closure, region.id);
      out.write(info);
      region.comm->cancel_all("region rank " + std::to_string(region.comm->rank()) +
                              " (world rank " + std::to_string(endpoint_.rank()) + ") raised " +
                              info.type_name() + ": " + info.message());
    }
  }
  current_spmd_context() = nullptr;
  output::end_task();
  patch_outcome(reply, header_at, status, reply.size() - payload_at);
  write_region_hygiene(out, region.comm.get(), status);
  if (!simulated_) flight::note_activity("waiting for work");
  return reply;
}

bool Worker::finish_region() {
  if (!region_ || !region_->done) return false;
  if (region_->thread.joinable()) region_->thread.join();
  endpoint_.send(Traffic::tasks, region_->manager, MessageKind::region_result,
                 std::move(region_->reply));
  region_.reset();
  return true;
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
  out.write(count);
  // Serially one record serves every simulated worker: a crash names this one.
  if (simulated_) flight::note_identity(endpoint_.rank(), host_, pid_);
  for (std::uint32_t i = 0; i < count; ++i) {
    auto [task_id, closure, farm, generation, flags, in] = read_task(body, message.source);

    poll_control();
    out.write(task_id);
    if (cancelled(farm, generation, task_id)) {
      out.write(TaskStatus::cancelled);
      out.write(std::uint64_t{0});
      out.write(std::uint64_t{0});
      continue;
    }
    // Status, duration and length are patched in once the task has run.
    const std::size_t header_at = reply.size();
    out.write(TaskStatus::ok);
    out.write(std::uint64_t{0});
    out.write(std::uint64_t{0});
    const ByteWriter::Mark payload_at = out.mark();
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
      out.rewind(payload_at);
      status = TaskStatus::error;
      out.write(error_info(closure, task_id));
      if (flags & task_flag_fail_fast) cancel(farm, generation, task_id);  // the rest
    }
    const auto duration_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
    output::end_task();  // its last partial line, as its own line
    const std::uint64_t payload_size = out.written_since(payload_at);
    char* header = reply.data() + header_at;
    std::memcpy(header, &status, sizeof status);
    std::memcpy(header + sizeof status, &duration_ns, sizeof duration_ns);
    std::memcpy(header + sizeof status + sizeof duration_ns, &payload_size, sizeof payload_size);
  }
  flight::note_task_done();
  const bool lent = std::any_of(tails.begin(), tails.end(),
                                [](const Splice& splice) { return splice.tail.borrowed; });
  endpoint_.send(Traffic::tasks, message.source, MessageKind::result_batch, std::move(reply),
                 std::move(tails));
  lent_in_flight_ = lent_in_flight_ || lent;
}

}  // namespace parc::detail
