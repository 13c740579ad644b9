#pragma once
// parc::Runtime: MPI start-up and shutdown, the closure-table check, and the split
// between rank 0 (runs the program) and the workers (serve managers).

#include <parc/managers/detail/progress_engine.hpp>
#include <parc/managers/detail/scheduler.hpp>
#include <parc/proxies/proxy_service.hpp>

#include <functional>
#include <memory>
#include <type_traits>

namespace parc {

class Environment;
class LoopbackNetwork;

// What the Runtime does when the job cannot start (foreign launcher, closure tables that
// differ between ranks, a bad PARC_SERIAL): print why and exit(2) on every rank, or
// throw parc::StartupError (for hosts such as the Python module).
enum class OnStartupError { exit, raise };

class Runtime {
 public:
  // Initializes MPI (a process started without a launcher runs serially), checks that
  // every rank declared the same closures. PARC_SERIAL=N simulates N workers in-process.
  Runtime(int argc, char** argv, OnStartupError on_error = OnStartupError::exit);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const;
  int size() const;
  // Managers run in this process, with simulated workers.
  bool serial() const { return serial_workers_ > 0; }
  int workers() const;
  // Random, the same on every rank: tells this job's proxy pickles from another job's.
  std::uint64_t job_id() const;

  // Rank 0 runs `main` (returning int or void); the other ranks serve managers until it
  // returns. Every rank returns main's exit code. An exception from `main` shuts the
  // workers down and propagates on rank 0.
  template <class Main>
  int run(Main&& main) {
    return run_main([&]() -> int {
      if constexpr (std::is_void_v<std::invoke_result_t<Main&>>) {
        main();
        return 0;
      } else {
        return static_cast<int>(main());
      }
    });
  }

  detail::Scheduler& scheduler();
  // Rank 0's progress engine: every manager reaches the scheduler through it. Its thread
  // runs while `run`'s main does.
  detail::ProgressEngine& engine();
  // The objects this rank owns for proxies, and its handles to others' (every rank).
  ProxyService& proxies() { return *proxies_; }

  // Ends every rank of the job now (MPI_Abort); for errors that would leave it hanging.
  [[noreturn]] void abort(int exit_code);

 private:
  void start(int argc, char** argv);
  int run_main(const std::function<int()>& main);
  void check_closure_tables();
  void shut_down_workers(int exit_code);
  // PARC_TRACE: checked and started at start-up; every rank's events written by rank 0
  // when the run ends (collective).
  void start_trace();
  void finish_trace();

  std::unique_ptr<Environment> environment_;
  std::unique_ptr<Endpoint> endpoint_;
  std::unique_ptr<LoopbackNetwork> loopback_;
  std::unique_ptr<detail::Scheduler> scheduler_;
  std::unique_ptr<detail::ProgressEngine> engine_;
  std::unique_ptr<ProxyService> proxies_;
  int serial_workers_ = 0;
  bool ran_ = false;
  bool tracing_ = false;
};

}  // namespace parc
