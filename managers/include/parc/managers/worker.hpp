#pragma once
// The worker side: runs task batches from the manager, reports every outcome.

#include <parc/comm/endpoint.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace parc::detail {

// Wire records shared by the scheduler and the worker.
enum class TaskStatus : std::uint8_t { ok = 0, error = 1, cancelled = 2 };
// A failure of this task cancels the rest of its farm generation on the worker too.
inline constexpr std::uint8_t task_flag_fail_fast = 1;
// A result batch with this count carries only a message: the worker could not decode
// the task batch, and every task of it failed.
inline constexpr std::uint32_t batch_rejected = 0xFFFFFFFF;

class Worker {
 public:
  Worker(Endpoint& endpoint, std::string host, std::int64_t pid);

  // Handles one waiting message; false when there was none.
  bool step();
  // Serves until the manager shuts the runtime down; returns the job's exit code.
  int serve();
  bool shut_down() const { return shut_down_; }
  int exit_code() const { return exit_code_; }

 private:
  void run_batch(Message& message);
  void poll_control();
  void handle_control(const Message& message);
  bool cancelled(std::uint32_t farm, std::uint32_t generation) const;
  void cancel(std::uint32_t farm, std::uint32_t generation);

  Endpoint& endpoint_;
  std::string host_;
  std::int64_t pid_;
  std::map<std::uint32_t, std::uint32_t> cancelled_up_to_;  // farm -> generation
  bool shut_down_ = false;
  int exit_code_ = 0;
};

}  // namespace parc::detail
