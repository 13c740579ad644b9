#pragma once
// The manager side of task execution, shared by every farm of a runtime: the queue,
// batching, dispatch to free workers, retries, timeouts and cancellation. SPMD regions
// are the RegionCoordinator's, over the same slot table; the scheduler's progress()
// drives both.

#include <parc/closures/closure.hpp>
#include <parc/comm/backoff.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/managers/detail/region_coordinator.hpp>
#include <parc/managers/detail/slot_table.hpp>
#include <parc/managers/options.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <vector>

namespace parc::detail {

class Worker;

class Scheduler {
 public:
  using Clock = detail::Clock;

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
  // Drops every task of `farm` still queued; returns their indices (sinks are not told).
  std::vector<std::size_t> drop_queued(std::uint32_t farm);

  // Tasks of `farm` queued or running.
  std::size_t outstanding(std::uint32_t farm) const;
  // Tasks of every farm queued or running.
  std::size_t outstanding() const;
  // Something for progress() to do: tasks queued or at workers, regions, sends in flight.
  bool busy() const;

  // Runs `closure` on each worker of `members` (world ranks, in region-rank order) once
  // they are free; the sink gets one outcome per region rank (its index). A failure on
  // one rank cancels the others; after `timeout` (zero: none) the ranks still running
  // are cancelled and the region fails with TaskTimeout. Returns the region's id.
  std::uint64_t open_region(ClosureId closure, std::vector<int> members, Bytes arguments,
                            std::shared_ptr<Sink> sink, std::chrono::duration<double> timeout);
  // True once every rank answered, or the region timed out and its ranks had a grace
  // period to answer (those that did not stay reserved until they do).
  bool region_finished(std::uint64_t region) const;
  // Releases the region's ranks (an interrupt on the manager): they answer cancelled.
  void cancel_region(std::uint64_t region, const std::string& reason);
  // The worker ranks of the task farm's slots, in order.
  std::vector<int> worker_ranks() const;

  // One round: receive outcomes, check timeouts, dispatch. True when anything happened.
  // Managers call it through the ProgressEngine, which also waits.
  bool progress();

  struct Counters {
    std::uint64_t batches_sent = 0;
    std::uint64_t tasks_sent = 0;
    std::uint64_t revokes_sent = 0;
    std::uint64_t batches_given_back = 0;
  };
  // Workers answer revokes (their progress thread runs): every batch may then be sent
  // ahead, and taken back for a worker that would idle.
  void set_revocable(bool revocable) { revocable_ = revocable; }
  const Counters& counters() const { return counters_; }

  // Sends queued tasks to workers with room; receives nothing, so outcomes (and the
  // cancellations they cause) are only seen at the next progress().
  void dispatch();

  // Task batches sent and not answered yet.
  bool batches_in_flight() const;
  // Sends still being transferred after the last progress(): waits must not sleep.
  bool sending() const { return sending_; }
  // How long until the next result batch is expected (its tasks' usual run time after it
  // was sent); max() when none is (nothing in flight, no timing yet, or long overdue).
  Clock::duration answer_due() const;

  // Workers still running a task or SPMD region that timed out: their rank, and what
  // ("task 6", "SPMD region 2").
  std::vector<std::pair<int, std::string>> stuck_workers() const;

 private:
  struct Farm {
    FarmOptions options;
    std::uint32_t generation = 0;
    std::size_t outstanding = 0;
    std::vector<bool> allowed;  // by slot index; empty: every slot
    // Each cancel: the generation it ended and the task after which it applies (0: all).
    std::vector<std::pair<std::uint32_t, std::uint64_t>> cancels;
  };
  struct ClosureStats {
    double mean_ns = 0;
    std::uint64_t samples = 0;
  };

  bool receive_results();
  bool allowed_on(const Task& task, std::size_t slot) const;
  std::uint8_t task_flags(const Task& task) const;
  void handle_results(Message& message);
  void finish(Task& task, std::uint8_t status, ByteReader& payload, std::uint64_t duration_ns,
              int rank);
  void fail(Task& task, TaskError error);
  // fail_fast: skips the farm's tasks not started, or only those after `after_task`.
  void cancel_farm(std::uint32_t farm, std::uint64_t after_task = 0);
  void check_timeouts();
  std::size_t batch_size_for(const Task& front) const;
  std::size_t depth_for(const Task& front) const;
  // Sends batches to slot `s` until it holds `depth` of them (fewer when depth_for says
  // so) or nothing it may run is queued.
  void dispatch_to(std::size_t s, std::size_t depth);
  // With the queue empty, asks workers holding a batch sent ahead to give it back for the
  // idle ones; the answers come on the steal channel.
  void revoke_for_idle_workers();
  bool receive_revoke_answers();
  // A task given back whose farm generation was cancelled meanwhile (as the worker would
  // have judged it).
  bool cancelled_since_sent(const Task& task) const;
  Farm& farm(std::uint32_t id);
  void release(Task& task);
  // An error the manager reports on behalf of worker `rank` about `task`.
  ErrorInfo manager_error(const Task& task, int rank, const std::string& type,
                          const std::string& message) const;

  Endpoint& endpoint_;
  std::vector<std::unique_ptr<Worker>> simulated_;
  SlotTable slots_;
  std::deque<Task> queue_;
  std::map<std::uint32_t, Farm> farms_;
  std::unordered_map<ClosureId, ClosureStats> stats_;
  Counters counters_;
  bool revocable_ = false;
  std::size_t revokes_pending_ = 0;
  std::size_t farms_with_timeout_ = 0;  // check_timeouts() reads the clock only when needed
  std::size_t farms_with_ranks_ = 0;    // dispatch() looks past the queue's front only then
  std::uint32_t next_farm_ = 1;
  std::uint64_t next_task_ = 1;
  bool sending_ = false;
  RegionCoordinator regions_{endpoint_, slots_, next_task_};
};

}  // namespace parc::detail
