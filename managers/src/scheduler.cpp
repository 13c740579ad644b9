#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/scheduler.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/managers/detail/worker.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

namespace parc::detail {

namespace {
// A batch should keep a worker busy this long: long enough to amortize a message,
// short enough that the tail of a map stays balanced.
constexpr double target_batch_ns = 2e6;
constexpr std::size_t max_batch = 4096;
// A worker holds this many batches of short tasks: the one it runs and the next, so it
// never waits a round trip (and the manager's wake-up) between batches.
constexpr std::size_t batches_per_worker = 2;
// Tasks shorter than this are pipelined. Longer ones are not: a batch sent ahead could
// wait behind a task that runs far longer than usual while another worker idles (taking
// it back needs the worker to answer while it computes; see docs/threading.md).
constexpr double pipeline_below_ns = 1e6;
// Several simulated workers: batches of a fair share of the queue, at most this many (a
// fail_fast map's batches already sent still run after a failure).
constexpr std::size_t serial_batch = 32;
// Arguments from this size on are not copied into a batch's frame but sent as its tail.
constexpr std::size_t large_arguments_bytes = tail_bytes;
}  // namespace

Scheduler::Scheduler(Endpoint& endpoint, std::vector<std::unique_ptr<Worker>> simulated)
    : endpoint_(endpoint),
      simulated_(std::move(simulated)),
      slots_(simulated_.empty() ? endpoint_.size() - 1 : static_cast<int>(simulated_.size())) {}

Scheduler::~Scheduler() = default;

void Scheduler::set_worker_identity(int rank, std::string host, std::int64_t pid) {
  slots_.set_identity(rank, std::move(host), pid);
}

ErrorInfo Scheduler::manager_error(const Task& task, int rank, const std::string& type,
                                   const std::string& message) const {
  return slots_.manager_error(task.id, task.closure, rank, type, message);
}

std::uint32_t Scheduler::open_farm(const FarmOptions& options) {
  if (options.retries < 0)
    throw UsageError("parc: retries must be >= 0, got " + std::to_string(options.retries));
  if (options.timeout.count() < 0) throw UsageError("parc: timeout must be >= 0 seconds");
  Farm farm;
  farm.options = options;
  if (!options.ranks.empty()) {
    farm.allowed.assign(slots_.size(), false);
    for (int rank : options.ranks) {
      Slot* slot = slots_.slot_of(rank);
      if (slot == nullptr) {
        throw UsageError("parc: rank " + std::to_string(rank) +
                         " is not a worker; the workers are ranks 1 to " +
                         std::to_string(slots_.size()));
      }
      farm.allowed[slots_.index_of(*slot)] = true;
    }
    ++farms_with_ranks_;
  }
  const std::uint32_t id = next_farm_++;
  farms_.emplace(id, std::move(farm));
  if (options.timeout.count() > 0) ++farms_with_timeout_;
  return id;
}

std::vector<int> Scheduler::worker_ranks() const { return slots_.ranks(); }

bool Scheduler::allowed_on(const Task& task, std::size_t slot) const {
  const auto& allowed = farms_.at(task.farm).allowed;
  return allowed.empty() || allowed[slot];
}

void Scheduler::close_farm(std::uint32_t farm) {
  auto it = farms_.find(farm);
  if (it == farms_.end()) return;
  // Queued tasks of a closed farm would have no options to be sent with; nobody waits for
  // them (a map left early). Tasks in flight finish and are dropped.
  std::erase_if(queue_, [&](const Task& task) { return task.farm == farm; });
  if (it->second.options.timeout.count() > 0) --farms_with_timeout_;
  if (!it->second.allowed.empty()) --farms_with_ranks_;
  farms_.erase(it);
}

Scheduler::Farm& Scheduler::farm(std::uint32_t id) { return farms_.at(id); }

void Scheduler::submit(std::uint32_t farm_id, ClosureId closure, Bytes arguments,
                       std::shared_ptr<Sink> sink, std::size_t index) {
  Farm& f = farm(farm_id);
  if (f.options.stop_after_failure && !f.cancels.empty()) {
    sink->on_cancel(index);
    return;
  }
  ++f.outstanding;
  std::shared_ptr<const Bytes> large;
  if (arguments.size() >= large_arguments_bytes) {
    large = std::make_shared<const Bytes>(std::move(arguments));
    arguments = Bytes{};
  }
  queue_.push_back(Task{next_task_++, closure, farm_id, f.generation, std::move(arguments), 0,
                        std::move(sink), index, std::move(large)});
}

std::size_t Scheduler::outstanding(std::uint32_t farm_id) const {
  auto it = farms_.find(farm_id);
  return it == farms_.end() ? 0 : it->second.outstanding;
}

std::size_t Scheduler::outstanding() const {
  std::size_t total = 0;
  for (const auto& [id, farm] : farms_) total += farm.outstanding;
  return total;
}

bool Scheduler::busy() const {
  return !queue_.empty() || batches_in_flight() || !regions_.empty() || sending_;
}

bool Scheduler::cancel_queued(const Sink* sink, std::size_t index) {
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Task& task) {
    return task.sink.get() == sink && task.index == index;
  });
  if (it == queue_.end()) return false;
  release(*it);
  queue_.erase(it);
  return true;
}

std::vector<std::size_t> Scheduler::drop_queued(std::uint32_t farm_id) {
  std::vector<std::size_t> dropped;
  std::erase_if(queue_, [&](Task& task) {
    if (task.farm != farm_id) return false;
    release(task);
    dropped.push_back(task.index);
    return true;
  });
  return dropped;
}

void Scheduler::release(Task& task) {
  auto it = farms_.find(task.farm);
  if (it != farms_.end() && it->second.outstanding > 0) --it->second.outstanding;
}

bool Scheduler::progress() {
  bool active = false;
  const bool was_sending = sending_;
  sending_ = endpoint_.progress();
  if (was_sending && !sending_) {
    // Every batch sent so far has arrived: the run time of those whose large tails took
    // a while starts now, not when they were posted.
    const auto now = Clock::now();
    for (Slot& slot : slots_) {
      for (Batch& batch : slot.batches) {
        if (std::exchange(batch.tail_on_the_way, false)) batch.sent = now;
      }
    }
  }
  if (simulated_.empty()) {
    active = receive_results();
    // Only while answers are due: a probe costs a pass of MPI's progress engine.
    if (revokes_pending_ > 0) active = receive_revoke_answers() || active;
  } else {
    // One message per simulated worker per step, in rank order, and its outcome handled
    // at once (a failure cancels before the next worker runs): serial runs are
    // deterministic and fail_fast cancels as early as it can. A round ends at the first
    // step that produced outcomes, so they reach their futures before the next worker
    // runs its (maybe long) tasks.
    // The worker holding the oldest batch runs first: serially, tasks run in the order
    // they were sent, whichever simulated worker has them.
    std::size_t oldest = slots_.size();
    for (std::size_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s].batches.empty()) continue;
      if (oldest == slots_.size() || slots_[s].batches.front().tasks.front().id <
                                         slots_[oldest].batches.front().tasks.front().id) {
        oldest = s;
      }
    }
    if (oldest != slots_.size()) {
      simulated_[oldest]->step();
      active = receive_results();
    }
    for (std::size_t s = 0; s < simulated_.size() && !active; ++s) {  // control, regions
      simulated_[s]->step();
      active = receive_results();
    }
  }
  check_timeouts();
  regions_.progress();
  const std::size_t queued = queue_.size();
  dispatch();
  return active || queue_.size() != queued;
}

bool Scheduler::receive_results() {
  bool received = false;
  while (auto message = endpoint_.try_receive(Traffic::tasks)) {
    trace::Span span(trace::Category::schedule, endpoint_.rank(), "results");
    span.set_peer(message->source);
    if (message->kind == MessageKind::region_result) {
      regions_.handle_result(*message);
    } else {
      handle_results(*message);
    }
    received = true;
  }
  return received;
}

std::size_t Scheduler::batch_size_for(const Task& front) const {
  const FarmOptions& options = farms_.at(front.farm).options;
  if (options.timeout.count() > 0 || !options.batching) return 1;  // timeout: start = send
  // Leave work for every worker at the tail of the queue.
  const std::size_t fair_share = (queue_.size() + slots_.size() - 1) / slots_.size();
  // Serial mode must not depend on timing where it shows, in which simulated worker runs
  // a task. With one worker it cannot show, and batches are timed as over MPI, so that a
  // wait with a deadline (map's timeout) comes back between slow tasks.
  if (simulated_.size() > 1) return std::clamp<std::size_t>(fair_share, 1, serial_batch);
  auto it = stats_.find(front.closure);
  if (it == stats_.end()) return 1;
  const double per_task = std::max(it->second.mean_ns, 50.0);
  auto size = static_cast<std::size_t>(target_batch_ns / per_task);
  return std::clamp<std::size_t>(std::min(size, fair_share), 1, max_batch);
}

std::size_t Scheduler::depth_for(const Task& front) const {
  // A timed task's clock starts when it is sent, so it is sent only to a free worker.
  if (farms_.at(front.farm).options.timeout.count() > 0 || !simulated_.empty()) return 1;
  if (revocable_) return batches_per_worker;  // a worker that would idle takes it back
  auto it = stats_.find(front.closure);
  return it != stats_.end() && it->second.mean_ns < pipeline_below_ns ? batches_per_worker : 1;
}

void Scheduler::dispatch() {
  // Every free worker gets a batch before any gets its next one: at the tail of a queue
  // the tasks go to idle workers, not behind a running batch.
  for (std::size_t depth = 1; depth <= batches_per_worker && !queue_.empty(); ++depth) {
    for (std::size_t s = 0; s < slots_.size() && !queue_.empty(); ++s) dispatch_to(s, depth);
  }
  revoke_for_idle_workers();
}

void Scheduler::revoke_for_idle_workers() {
  if (!revocable_ || !queue_.empty()) return;
  // Runs at every dispatch: counts without allocating, and usually stops here.
  const auto is_idle = [&](std::size_t s) {
    return slots_[s].batches.empty() && slots_[s].region == 0;
  };
  std::size_t idle = 0;
  for (std::size_t s = 0; s < slots_.size(); ++s) idle += is_idle(s) ? 1 : 0;
  while (revokes_pending_ < idle) {
    // The batch waiting behind the batch that has run longest, if an idle worker may run it.
    Slot* donor = nullptr;
    for (Slot& slot : slots_) {
      if (slot.batches.size() < 2 || slot.batches.back().revoke_sent) continue;
      const Task& task = slot.batches.back().tasks.front();
      if (task.given_back) continue;
      if (farms_with_ranks_ > 0) {
        bool idle_may_run = false;
        for (std::size_t s = 0; s < slots_.size() && !idle_may_run; ++s)
          idle_may_run = is_idle(s) && allowed_on(task, s);
        if (!idle_may_run) continue;
      }
      if (donor == nullptr || slot.batches.front().sent < donor->batches.front().sent)
        donor = &slot;
    }
    if (donor == nullptr) return;
    Batch& batch = donor->batches.back();
    batch.revoke_sent = true;
    ++revokes_pending_;
    ++counters_.revokes_sent;
    endpoint_.send(Traffic::steal, donor->rank, MessageKind::revoke,
                   write_revoke({batch.tasks.front().id, batch.sequence}));
  }
}

bool Scheduler::receive_revoke_answers() {
  bool received = false;
  while (auto message = endpoint_.try_receive(Traffic::steal)) {
    received = true;
    if (revokes_pending_ > 0) --revokes_pending_;
    RevokeAnswer answer;
    try {
      answer = read_revoke_answer(*message);
    } catch (const DecodeError& e) {
      log().error("{}", e.what());
      continue;
    }
    if (!answer.given_back) continue;  // it had started: its results will come
    Slot* slot = slots_.slot_of(message->source);
    if (slot == nullptr) continue;
    // The newest batch of that name (a retried task may lead a later batch too).
    auto it = std::find_if(slot->batches.rbegin(), slot->batches.rend(), [&](const Batch& b) {
      return b.tasks.front().id == answer.batch && b.revoke_sent;
    });
    if (it == slot->batches.rend()) {
      log().error("rank {} gave back batch {}, which it does not hold; ignored", message->source,
                  answer.batch);
      continue;
    }
    Batch batch = std::move(*it);
    slot->batches.erase(std::next(it).base());
    ++counters_.batches_given_back;
    for (auto task = batch.tasks.rbegin(); task != batch.tasks.rend(); ++task) {
      --task->attempts;  // it never ran
      task->given_back = true;
      if (cancelled_since_sent(*task)) {
        release(*task);
        task->sink->on_cancel(task->index);
      } else {
        queue_.push_front(std::move(*task));
      }
    }
  }
  return received;
}

bool Scheduler::cancelled_since_sent(const Task& task) const {
  auto it = farms_.find(task.farm);
  if (it == farms_.end()) return true;
  return std::any_of(it->second.cancels.begin(), it->second.cancels.end(), [&](const auto& c) {
    return c.first >= task.generation && (c.second == 0 || task.id > c.second);
  });
}

void Scheduler::dispatch_to(std::size_t s, std::size_t depth) {
  Slot& slot = slots_[s];
  if (slot.region != 0) return;  // held for an SPMD region
  {
    while (!queue_.empty()) {
      // The first queued task this worker may run (farms pinned to ranks: pipelines).
      std::size_t start = 0;
      if (farms_with_ranks_ > 0) {
        while (start < queue_.size() && !allowed_on(queue_[start], s)) ++start;
        if (start == queue_.size()) break;
      }
      const Task& first = queue_[start];
      if (slot.batches.size() >= std::min(depth, depth_for(first))) break;
      if (!slot.batches.empty() && slot.batches.front().timed_out) break;  // worker is stuck
      const std::size_t limit = std::min(batch_size_for(first), queue_.size() - start);
      // Large arguments end their batch: they go as the frame's tail (see Endpoint::send).
      std::size_t size = 1;
      while (size < limit && !queue_[start + size - 1].large_arguments &&
             queue_[start + size].closure == first.closure &&
             queue_[start + size].farm == first.farm) {
        ++size;
      }
      trace::Span span(trace::Category::schedule, endpoint_.rank(), "dispatch");
      span.set_peer(slot.rank);
      span.set_bytes(size);
      Batch batch;
      batch.tasks.reserve(size);
      Bytes frame = begin_frame();
      std::size_t frame_size = frame.size() + sizeof(std::uint32_t);
      for (std::size_t i = start; i < start + size; ++i)
        frame_size += task_record_header_size + queue_[i].arguments.size();
      frame.reserve(frame_size);  // one allocation
      ByteWriter out(frame);
      write_task_count(out, static_cast<std::uint32_t>(size));
      for (std::size_t i = start; i < start + size; ++i) {
        Task& task = queue_[i];
        ++task.attempts;
        write_task(out,
                   {task.id, task.closure, task.farm, task.generation, task_flags(task),
                    ByteReader(task.arguments.data(), task.arguments.size())},
                   task.arguments_size() - task.arguments.size());
        batch.tasks.push_back(std::move(task));
      }
      Splices tails;
      if (const auto& large = batch.tasks.back().large_arguments) {
        tails.push_back(Splice{frame.size(), Tail{large, large->data(), large->size()}});
        batch.tail_on_the_way = true;
      }
      const auto first_sent = queue_.begin() + static_cast<std::ptrdiff_t>(start);
      queue_.erase(first_sent, first_sent + static_cast<std::ptrdiff_t>(size));
      batch.sent = Clock::now();
      batch.sequence = ++slot.batches_sent;
      // A batch holds one closure.
      if (auto it = stats_.find(batch.tasks.front().closure); it != stats_.end())
        batch.expected_ns = it->second.mean_ns * static_cast<double>(size);
      ++counters_.batches_sent;
      counters_.tasks_sent += size;
      endpoint_.send(Traffic::tasks, slot.rank, MessageKind::task_batch, std::move(frame),
                     std::move(tails));
      slot.batches.push_back(std::move(batch));
    }
  }
}

std::uint8_t Scheduler::task_flags(const Task& task) const {
  const FarmOptions& options = farms_.at(task.farm).options;
  // Without retries a failure ends the farm's generation: the worker may skip the rest of
  // its batch at once instead of waiting for the manager's cancel.
  const bool stop_batch_on_failure = options.policy == Policy::fail_fast && options.retries == 0;
  return stop_batch_on_failure ? task_flag_fail_fast : 0;
}

void Scheduler::handle_results(Message& message) {
  auto slot = std::find_if(slots_.begin(), slots_.end(),
                           [&](const Slot& s) { return s.rank == message.source; });
  if (slot == slots_.end() || slot->batches.empty()) {
    log().error("results from rank {} that has no batch in flight; dropped", message.source);
    return;
  }
  Batch batch = std::move(slot->batches.front());
  slot->batches.pop_front();
  std::size_t handled = 0;
  try {
    ByteReader body = message.take_body();
    const auto count = read_outcome_count(body, message.source);
    if (count != batch.tasks.size()) {
      throw DecodeError("parc: rank " + std::to_string(message.source) + " answered " +
                        std::to_string(count) + " outcomes to a batch of " +
                        std::to_string(batch.tasks.size()));
    }
    for (Task& task : batch.tasks) {
      auto [task_id, status, duration_ns, payload] = read_outcome(body, message.source);
      if (task_id != task.id) {
        throw DecodeError("parc: rank " + std::to_string(message.source) + " answered task " +
                          std::to_string(task_id) + " where task " + std::to_string(task.id) +
                          " was expected");
      }
      ++handled;
      if (batch.timed_out) continue;  // its failure was reported when the timeout expired
      finish(task, static_cast<std::uint8_t>(status), payload, duration_ns, message.source);
    }
  } catch (const DecodeError& e) {
    // The outcomes cannot be trusted: fail the tasks not handled yet, so nothing waits
    // for them forever.
    log().error("{}", e.what());
    for (std::size_t i = handled; i < batch.tasks.size(); ++i) {
      Task& task = batch.tasks[i];
      if (batch.timed_out) continue;
      const ErrorInfo info = manager_error(task, message.source, "parc::DecodeError", e.what());
      fail(task, TaskError(info, rebuild_exception(info)));
    }
  }
}

void Scheduler::finish(Task& task, std::uint8_t status, ByteReader& payload,
                       std::uint64_t duration_ns, int rank) {
  auto farm_it = farms_.find(task.farm);
  if (status == static_cast<std::uint8_t>(TaskStatus::cancelled)) {
    release(task);
    task.sink->on_cancel(task.index);
    return;
  }
  if (status == static_cast<std::uint8_t>(TaskStatus::ok)) {
    // Failures often return early (a check of the input): their time would make the
    // next batches of this closure too long.
    ClosureStats& stats = stats_[task.closure];
    stats.mean_ns = stats.samples == 0
                        ? static_cast<double>(duration_ns)
                        : 0.8 * stats.mean_ns + 0.2 * static_cast<double>(duration_ns);
    ++stats.samples;
  }

  const double timeout_ns =
      farm_it == farms_.end() ? 0 : farm_it->second.options.timeout.count() * 1e9;
  if (timeout_ns > 0 && static_cast<double>(duration_ns) > timeout_ns) {
    // Serial mode runs tasks inline, so a timeout is only seen once the task returns.
    const ErrorInfo info = manager_error(task, rank, "parc::TaskTimeout",
                                         "task " + std::to_string(task.id) + " ran " +
                                             seconds_text(static_cast<double>(duration_ns) / 1e9) +
                                             " s, longer than the farm's timeout of " +
                                             seconds_text(timeout_ns / 1e9) + " s");
    fail(task, TaskError(info, rebuild_exception(info)));
    return;
  }
  if (status == static_cast<std::uint8_t>(TaskStatus::ok)) {
    release(task);
    try {
      task.sink->on_result(task.index, payload);
    } catch (const std::exception&) {
      ErrorInfo info = manager_error(task, rank, "", "");
      info.chain = record_chain(std::current_exception());
      task.sink->on_error(task.index, TaskError(info, std::current_exception()));
    }
    return;
  }
  ErrorInfo info;
  try {
    info = read_error_info(payload, rank);
  } catch (const DecodeError& e) {  // the task failed; only its report is unreadable
    info = manager_error(task, rank, "parc::DecodeError", e.what());
  }
  fail(task, TaskError(info, rebuild_exception(info)));
}

void Scheduler::fail(Task& task, TaskError error) {
  auto farm_it = farms_.find(task.farm);
  if (farm_it != farms_.end()) {
    const FarmOptions& options = farm_it->second.options;
    const bool generation_live = task.generation == farm_it->second.generation;
    if (generation_live && task.attempts <= options.retries &&
        (!options.retry_on || options.retry_on(error))) {
      log().info("retrying task {} ({}) after attempt {}: {}", task.id, error.closure(),
                 task.attempts, error.message());
      queue_.push_front(std::move(task));
      return;
    }
  }
  ErrorInfo info = error.info();
  if (task.attempts > 1 && info.attempts != task.attempts) {
    info.attempts = task.attempts;
    error = TaskError(info, error.exception());
  }
  release(task);
  task.sink->on_error(task.index, std::move(error));
  if (farm_it != farms_.end() && farm_it->second.options.policy == Policy::fail_fast &&
      task.generation == farm_it->second.generation) {
    cancel_farm(task.farm, farm_it->second.options.ordered ? task.id : 0);
  }
}

void Scheduler::cancel_farm(std::uint32_t farm_id, std::uint64_t after_task) {
  Farm& f = farm(farm_id);
  const std::uint32_t cancelled = f.generation++;
  f.cancels.emplace_back(cancelled, after_task);
  std::deque<Task> kept;
  std::vector<Task> dropped;
  for (Task& task : queue_) {
    if (task.farm == farm_id && task.id > after_task) {
      dropped.push_back(std::move(task));
    } else {
      kept.push_back(std::move(task));
    }
  }
  queue_ = std::move(kept);
  for (Task& task : dropped) {
    release(task);
    task.sink->on_cancel(task.index);
  }
  for (Slot& slot : slots_) {
    const bool has_farm =
        std::any_of(slot.batches.begin(), slot.batches.end(), [&](const Batch& b) {
          return std::any_of(b.tasks.begin(), b.tasks.end(),
                             [&](const Task& t) { return t.farm == farm_id; });
        });
    if (!has_farm) continue;
    endpoint_.send(Traffic::control, slot.rank, MessageKind::cancel,
                   write_cancel(farm_id, cancelled, after_task));
  }
}

void Scheduler::check_timeouts() {
  // Serial mode runs tasks inline, one worker after the other: a batch waits while
  // another runs, so only the measured run time counts (in finish()).
  if (farms_with_timeout_ == 0 || !simulated_.empty()) return;
  const auto now = Clock::now();
  for (Slot& slot : slots_) {
    if (slot.batches.empty()) continue;
    Batch& batch = slot.batches.front();
    if (batch.timed_out) continue;
    auto farm_it = farms_.find(batch.tasks.front().farm);
    if (farm_it == farms_.end()) continue;
    const auto timeout = farm_it->second.options.timeout;
    if (timeout.count() <= 0 || now - batch.sent <= timeout) continue;
    batch.timed_out = true;
    for (Task& task : batch.tasks) {
      const ErrorInfo info = manager_error(
          task, slot.rank, "parc::TaskTimeout",
          "task " + std::to_string(task.id) + " (" +
              ClosureRegistry::instance().entry(task.closure).name +
              ") has run longer than the farm's timeout of " + seconds_text(timeout.count()) +
              " s on rank " + std::to_string(slot.rank));
      log().warn("{}", info.chain.front().message);
      // The worker is still busy with it; a retry goes to another worker.
      Task copy = task;
      fail(copy, TaskError(info, rebuild_exception(info)));
    }
  }
}

std::uint64_t Scheduler::open_region(ClosureId closure, std::vector<int> members, Bytes arguments,
                                     std::shared_ptr<Sink> sink,
                                     std::chrono::duration<double> timeout) {
  return regions_.open(closure, std::move(members), std::move(arguments), std::move(sink), timeout);
}

bool Scheduler::region_finished(std::uint64_t region) const { return regions_.finished(region); }

void Scheduler::cancel_region(std::uint64_t region, const std::string& reason) {
  regions_.cancel(region, reason);
}

Scheduler::Clock::duration Scheduler::answer_due() const {
  auto due = Clock::duration::max();
  if (!simulated_.empty()) return due;
  const auto now = Clock::now();
  for (const Slot& slot : slots_) {
    if (slot.batches.empty() || slot.batches.front().expected_ns <= 0) continue;
    const Batch& batch = slot.batches.front();
    const auto expected = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::nano>(batch.expected_ns));
    const auto left = batch.sent + expected - now;
    // Overdue by more than its own length: an outlier; waiting for it backs off again.
    if (left < -expected - std::chrono::milliseconds(1)) continue;
    due = std::min(due, left);
  }
  return due;
}

bool Scheduler::batches_in_flight() const {
  return std::any_of(slots_.begin(), slots_.end(),
                     [](const Slot& slot) { return !slot.batches.empty(); });
}

std::vector<std::pair<int, std::string>> Scheduler::stuck_workers() const {
  std::vector<std::pair<int, std::string>> stuck;
  for (const Slot& slot : slots_) {
    if (!slot.batches.empty() && slot.batches.front().timed_out) {
      stuck.emplace_back(slot.rank,
                         "task " + std::to_string(slot.batches.front().tasks.front().id));
    }
  }
  regions_.add_stuck(stuck);
  return stuck;
}

}  // namespace parc::detail
