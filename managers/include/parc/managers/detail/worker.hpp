#pragma once
// The worker side: runs task batches from the manager, reports every outcome; its
// RegionMember runs this rank's part of SPMD regions.

#include <parc/comm/endpoint.hpp>
#include <parc/comm/request_channel.hpp>
#include <parc/managers/detail/region_member.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace parc::detail {

class Worker {
 public:
  // A simulated worker (serial mode) runs SPMD regions on a thread of its own, since the
  // region's ranks wait for each other; an MPI worker runs them inline.
  Worker(Endpoint& endpoint, std::string host, std::int64_t pid, bool simulated = false);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Handles one waiting message; false when there was none.
  bool step();
  // Serves until the manager shuts the runtime down; returns the job's exit code. Idle for
  // long, it lets `channel`'s progress thread watch for messages instead of polling too,
  // and that thread answers the manager's revokes while a task runs.
  int serve(RequestChannel* channel = nullptr);
  bool shut_down() const { return shut_down_; }
  int exit_code() const { return exit_code_; }

 private:
  void run_batch(Message& message);
  ErrorInfo error_info(ClosureId closure, std::uint64_t task_id) const;
  void poll_control();
  void handle_control(const Message& message);
  bool cancelled(std::uint32_t farm, std::uint32_t generation, std::uint64_t task) const;
  // Revokes: the progress thread answers them; the main thread counts each batch it takes
  // in and asks whether that one was given back.
  void answer_revokes();
  bool begin_batch();
  void cancel(std::uint32_t farm, std::uint32_t generation, std::uint64_t after_task);
  // Before a closure runs: no result's memory lent by the host language may still be
  // read (see Tail::borrowed). Those in `reply` (not sent yet) are copied; those of
  // replies sent are waited for.
  void return_lent(Splices* reply);

  Endpoint& endpoint_;
  std::string host_;
  std::int64_t pid_;
  bool simulated_;
  struct Cancelled {
    std::uint32_t up_to;       // generations below this one are cancelled
    std::uint64_t after_task;  // for tasks with a larger id (0: all)
  };
  std::map<std::uint32_t, std::vector<Cancelled>> cancelled_;  // by farm
  std::mutex start_mutex_;
  std::set<std::uint64_t> given_back_;  // sequence numbers revoked before they came in
  std::uint64_t batches_taken_ = 0;     // task batches the main thread has taken in
  bool shut_down_ = false;
  bool sending_ = false;         // a result still being sent: serve() must not sleep
  bool lent_in_flight_ = false;  // a reply sent may still read memory lent by a task
  int exit_code_ = 0;
  RegionMember regions_;  // last: its hooks call into the members above
};

}  // namespace parc::detail
