#pragma once
// Rank 0's table of workers, shared by the two jobs of the manager: farm scheduling (the
// batches each worker holds; Scheduler) and SPMD region coordination (which region has
// claimed each worker; RegionCoordinator). A worker claimed by a region gets no new batch,
// and a region starts once its members hold none.

#include <parc/closures/closure.hpp>
#include <parc/comm/archive.hpp>
#include <parc/exceptions/error_info.hpp>
#include <parc/exceptions/parallel_exception.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace parc::detail {

// Receives the outcomes of tasks and of region ranks; `index` is the one given at submit
// (a region rank's: its region rank).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void on_result(std::size_t index, ByteReader& result) = 0;
  virtual void on_error(std::size_t index, TaskError error) = 0;
  virtual void on_cancel(std::size_t index) = 0;
};

using Clock = std::chrono::steady_clock;

struct Task {
  std::uint64_t id;
  ClosureId closure;
  std::uint32_t farm;
  std::uint32_t generation;
  Bytes arguments;  // small ones: copied into their batch's frame
  int attempts = 0;
  std::shared_ptr<Sink> sink;
  std::size_t index;
  // Large ones (see large_arguments_bytes): sent as the frame's tail without a copy, and
  // shared with the endpoint so that a retry can send them again.
  std::shared_ptr<const Bytes> large_arguments;
  // Given back once by a worker: a batch it leads is not revoked again, so that a
  // batch's name (its first task's id) is never revoked twice.
  bool given_back = false;

  std::size_t arguments_size() const {
    return large_arguments ? large_arguments->size() : arguments.size();
  }
};

struct Batch {
  std::vector<Task> tasks;
  Clock::time_point sent;
  double expected_ns = 0;  // the tasks' usual run time; 0: unknown
  bool timed_out = false;
  bool revoke_sent = false;
  std::uint64_t sequence = 0;  // the slot's how-manieth batch (revokes name it)
  // Sent with a large tail still on its way: `sent` is reset when every send completed,
  // so that its answer is expected a run time after the worker has it (answer_due).
  bool tail_on_the_way = false;
};

struct Slot {
  int rank;
  std::string host;
  std::int64_t pid = 0;
  std::deque<Batch> batches;  // in flight, oldest first: workers answer in order
  std::uint64_t region = 0;   // the region that has (or waits for) this worker
  std::uint64_t batches_sent = 0;
};

class SlotTable {
 public:
  explicit SlotTable(int workers);

  std::size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }
  Slot& operator[](std::size_t s) { return slots_[s]; }
  const Slot& operator[](std::size_t s) const { return slots_[s]; }
  auto begin() { return slots_.begin(); }
  auto end() { return slots_.end(); }
  auto begin() const { return slots_.begin(); }
  auto end() const { return slots_.end(); }

  // nullptr when `rank` is no worker of this table.
  Slot* slot_of(int rank);
  std::size_t index_of(const Slot& slot) const {
    return static_cast<std::size_t>(&slot - slots_.data());
  }
  std::vector<int> ranks() const;
  void set_identity(int rank, std::string host, std::int64_t pid);

  // An error the manager reports on behalf of worker `rank` (timeouts, bad replies).
  ErrorInfo manager_error(std::uint64_t task_id, ClosureId closure, int rank,
                          const std::string& type, const std::string& message) const;

 private:
  std::vector<Slot> slots_;
};

// "1.5", not std::to_string's "1.500000": seconds in the manager's messages.
std::string seconds_text(double seconds);

}  // namespace parc::detail
