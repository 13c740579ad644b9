#pragma once
// MPI lifecycle and the few collectives the runtime needs at start-up.

#include <parc/comm/archive.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace parc {

class Endpoint;
class RequestChannel;

// What the rank's monitor (the flight record, which the runtime starts) hears of MPI's
// life: comm keeps no record of its own. Any hook may be empty.
struct EnvironmentHooks {
  std::function<void()> before_mpi_init;  // only when this Environment initializes MPI
  std::function<void(int rank, const std::string& host, std::int64_t pid)> started;
  std::function<void()> finalizing;  // before the last barrier and MPI_Finalize
  std::function<void()> finalized;
  // From the finalize watchdog's thread: MPI_Finalize hung and the rank leaves without it.
  std::function<void()> finalize_abandoned;
  // abort(): the reason is logged and about to reach the launcher.
  std::function<void()> aborting;
};

class Environment {
 public:
  // Initializes MPI unless it already is; throws StartupError when the program was
  // started by a launcher of another MPI implementation.
  explicit Environment(int* argc, char*** argv, EnvironmentHooks hooks = {});
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& host() const { return host_; }
  std::int64_t pid() const { return pid_; }
  // Random, the same on every rank of this job.
  std::uint64_t job_id() const { return job_id_; }

  std::vector<std::uint64_t> allgather(std::uint64_t value) const;
  std::vector<std::string> allgather(const std::string& value) const;
  void barrier() const;
  // Every rank's bytes, on rank 0 (the others get an empty vector).
  std::vector<Bytes> gather(const Bytes& value) const;
  // This rank's steady clock minus rank 0's, in ns: measured by ping-pong with rank 0 for
  // the ranks where `remote` is true (other hosts), 0 elsewhere (a host shares one
  // steady clock). Collective; call before any other traffic on MPI_COMM_WORLD.
  std::int64_t clock_offset(const std::vector<bool>& remote) const;

  // This rank's endpoint over duplicated world communicators, one per traffic class.
  std::unique_ptr<Endpoint> make_endpoint() const;
  // This rank's request channel (collective); see request_channel.hpp.
  std::unique_ptr<RequestChannel> make_request_channel() const;

  // Ends the job from any rank (only for states it cannot recover from).
  [[noreturn]] void abort(int code) const;
  // The status this rank exits with, should MPI_Finalize not return (see environment.cpp).
  void set_exit_code(int code) { exit_code_ = code; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  EnvironmentHooks hooks_;
  int rank_ = 0;
  int size_ = 1;
  std::string host_;
  std::int64_t pid_ = 0;
  std::uint64_t job_id_ = 0;
  int exit_code_ = 0;
};

// Throws StartupError when the environment shows another MPI's launcher started us.
void check_launcher();
// Throws StartupError when MPI sees a world of 1 but the launcher started several copies
// (srun --mpi=none or --mpi=pmix, PMIx launchers): each copy would run alone.
void check_world_of_one();

}  // namespace parc
