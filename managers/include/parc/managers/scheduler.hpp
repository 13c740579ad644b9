#pragma once
// The manager side of task execution, shared by every farm of a runtime: the queue,
// batching, dispatch to free workers, retries, timeouts and cancellation.

#include <parc/closures/closure.hpp>
#include <parc/comm/backoff.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/managers/options.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

namespace parc::detail {

// Receives the outcomes of tasks; `index` is the one given at submit.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void on_result(std::size_t index, ByteReader& result) = 0;
  virtual void on_error(std::size_t index, TaskError error) = 0;
  virtual void on_cancel(std::size_t index) = 0;
};

class Worker;

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  // `endpoint` is rank 0's; in serial mode `simulated` are the in-process workers.
  Scheduler(Endpoint& endpoint, std::vector<std::unique_ptr<Worker>> simulated);
  ~Scheduler();

  int workers() const { return static_cast<int>(slots_.size()); }
  // Where worker `rank` runs, for errors the manager reports on its behalf (timeouts).
  void set_worker_identity(int rank, std::string host, std::int64_t pid);

  std::uint32_t open_farm(const FarmOptions& options);
  void close_farm(std::uint32_t farm);

  void submit(std::uint32_t farm, ClosureId closure, Bytes arguments, std::shared_ptr<Sink> sink,
              std::size_t index);

  // Drops a task still queued (not sent to a worker); false when it was not queued.
  bool cancel_queued(const Sink* sink, std::size_t index);

  // Tasks of `farm` queued or running.
  std::size_t outstanding(std::uint32_t farm) const;

  // One round: receive outcomes, check timeouts, dispatch. True when anything happened.
  bool progress();

  template <class Done>
  void wait_until(Done done) {
    Backoff backoff;
    while (!done()) {
      if (progress()) {
        backoff.reset();
      } else {
        backoff.pause();
      }
    }
  }

  struct Counters {
    std::uint64_t batches_sent = 0;
    std::uint64_t tasks_sent = 0;
  };
  const Counters& counters() const { return counters_; }

  // Sends queued tasks to workers with room; receives nothing, so outcomes (and the
  // cancellations they cause) are only seen at the next progress().
  void dispatch();

  // Workers still running a task that timed out (their rank and task).
  std::vector<std::pair<int, std::uint64_t>> stuck_workers() const;

 private:
  struct Task {
    std::uint64_t id;
    ClosureId closure;
    std::uint32_t farm;
    std::uint32_t generation;
    Bytes arguments;
    int attempts = 0;
    std::shared_ptr<Sink> sink;
    std::size_t index;
  };
  struct Batch {
    std::vector<Task> tasks;
    Clock::time_point sent;
    bool timed_out = false;
  };
  struct Slot {
    int rank;
    std::string host;
    std::int64_t pid = 0;
    std::deque<Batch> batches;  // in flight, oldest first: workers answer in order
  };
  struct Farm {
    FarmOptions options;
    std::uint32_t generation = 0;
    std::size_t outstanding = 0;
  };
  struct ClosureStats {
    double mean_ns = 0;
    std::uint64_t samples = 0;
  };

  bool receive_results();
  std::uint8_t task_flags(const Task& task) const;
  void handle_results(Message& message);
  void finish(Task& task, std::uint8_t status, ByteReader& payload, std::uint64_t duration_ns,
              int rank);
  void fail(Task& task, TaskError error);
  void cancel_farm(std::uint32_t farm);
  void check_timeouts();
  std::size_t batch_size_for(const Task& front) const;
  std::size_t depth_for(const Task& front) const;
  Farm& farm(std::uint32_t id);
  void release(Task& task);
  // An error the manager reports on behalf of worker `rank` (timeouts, bad replies).
  ErrorInfo manager_error(const Task& task, int rank, const std::string& type,
                          const std::string& message) const;

  Endpoint& endpoint_;
  std::vector<std::unique_ptr<Worker>> simulated_;
  std::vector<Slot> slots_;
  std::deque<Task> queue_;
  std::map<std::uint32_t, Farm> farms_;
  std::unordered_map<ClosureId, ClosureStats> stats_;
  Counters counters_;
  std::size_t farms_with_timeout_ = 0;  // check_timeouts() reads the clock only when needed
  std::uint32_t next_farm_ = 1;
  std::uint64_t next_task_ = 1;
};

}  // namespace parc::detail
