#include <parc/comm/backoff.hpp>
#include <parc/comm/environment.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/output.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/managers/detail/worker.hpp>
#include <parc/managers/proxy.hpp>
#include <parc/managers/runtime.hpp>
#include <parc/monitor/flight_record.hpp>

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace parc {

namespace {

// PARC_SERIAL=N: simulate N workers in this process; 0 or unset: not requested.
int serial_workers_requested() {
  const char* value = std::getenv("PARC_SERIAL");
  if (value == nullptr || *value == '\0') return 0;
  char* end = nullptr;
  const long workers = std::strtol(value, &end, 10);
  if (*end != '\0' || workers < 1 || workers > 4096) {
    throw StartupError(std::string("parc: PARC_SERIAL=") + value +
                       " is not a number of simulated workers; set it to an integer from 1 "
                       "to 4096 (e.g. PARC_SERIAL=4), or unset it");
  }
  return static_cast<int>(workers);
}

// PARC_OVERSUBSCRIBED=1|0 overrides what start-up finds (more ranks on this host than
// cores this process may run on); nullopt: not set.
std::optional<bool> oversubscribed_requested() {
  const char* value = std::getenv("PARC_OVERSUBSCRIBED");
  if (value == nullptr || *value == '\0') return std::nullopt;
  const std::string text(value);
  if (text == "1") return true;
  if (text == "0") return false;
  throw StartupError("parc: PARC_OVERSUBSCRIBED=" + text +
                     " is not 0 or 1; set it to 1 to make idle ranks sleep instead of "
                     "yielding the core, 0 to make them yield, or unset it to decide from the "
                     "number of ranks and cores on each host");
}

int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::chrono::duration<double> shutdown_grace() {
  const char* value = std::getenv("PARC_SHUTDOWN_GRACE");
  return std::chrono::duration<double>(value ? std::atof(value) : 5.0);
}

// Every rank, after the proxies' last barrier (see Endpoint::settle).
void settle_regions(Endpoint* endpoint) {
  if (endpoint == nullptr) return;
  try {
    endpoint->settle(std::chrono::duration_cast<std::chrono::milliseconds>(shutdown_grace()));
  } catch (const std::exception& e) {
    log().debug("settling cancelled SPMD regions: {}", e.what());
  }
}

// The flight record hears MPI's life from the environment (the watcher is forked before
// MPI starts, so that it holds none of MPI's state).
EnvironmentHooks flight_record_hooks() {
  EnvironmentHooks hooks;
  hooks.before_mpi_init = [] { flight::start_watcher(); };
  hooks.started = [](int rank, const std::string& host, std::int64_t pid) {
    flight::note_identity(rank, host, pid);
  };
  hooks.finalizing = [] { flight::note_activity("finalizing MPI, its work done"); };
  hooks.finalized = [] { flight::note_finalized(); };
  hooks.finalize_abandoned = [] { flight::note_finalize_abandoned(); };
  hooks.aborting = [] {
    flight::wait_until_stderr_is_read();
    flight::note_aborting();  // the reason is logged: the watchers need not speak
  };
  return hooks;
}

}  // namespace

Runtime::Runtime(int argc, char** argv, OnStartupError on_error) {
  try {
    start(argc, argv);
  } catch (const StartupError& e) {
    if (on_error == OnStartupError::raise) throw;
    const bool reporter = !environment_ || environment_->rank() == 0;
    if (reporter) {
      log().error("{}", e.what());
    } else {
      log().error("stopping: the job cannot start (rank 0 says why)");
    }
    log().flush();
    detail::attach_proxy_service(nullptr);
    proxies_.reset();
    scheduler_.reset();
    endpoint_.reset();
    environment_.reset();  // finalizes MPI
    std::exit(2);
  }
}

void Runtime::start(int argc, char** argv) {
  const int serial_workers = serial_workers_requested();
  const auto oversubscribed = oversubscribed_requested();
  const bool prefix_output = output::prefix_requested();
  environment_ = std::make_unique<Environment>(&argc, &argv, flight_record_hooks());
  if (environment_->size() == 1) check_world_of_one();
  start_trace();
  detail::ClosureRegistry::instance().seal();
  std::vector<std::string> hosts(1, environment_->host());
  std::vector<std::uint64_t> pids(1, static_cast<std::uint64_t>(environment_->pid()));
  if (environment_->size() > 1) {
    check_closure_tables();
    endpoint_ = environment_->make_endpoint();
  }
  serial_workers_ = serial_workers > 0 ? serial_workers : (environment_->size() == 1 ? 1 : 0);
  proxies_ =
      std::make_unique<ProxyService>(serial() ? make_loopback_request_channel(serial_workers_ + 1)
                                              : environment_->make_request_channel());
  detail::attach_proxy_service(proxies_.get());  // Proxy<T> decoding, make_proxy in closures
  if (environment_->size() > 1 || prefix_output) {
    output::install(prefix_output, [rank = rank()] {  // a task's: serially the simulated one
      const ProxyService* service = detail::proxy_service_if_any();
      return service != nullptr ? service->acting_rank() : rank;
    });
  }
  if (environment_->size() > 1) {
    // After the attach: these collectives keep every rank from sending a request (which may
    // carry a Proxy<T> to decode) before every rank's service is attached.
    hosts = environment_->allgather(environment_->host());
    pids = environment_->allgather(static_cast<std::uint64_t>(environment_->pid()));
    const auto watchers =
        environment_->allgather(static_cast<std::uint64_t>(flight::watcher_pid()));
    std::vector<std::int64_t> neighbours, their_watchers;  // the other ranks on this host
    for (std::size_t r = 0; r < hosts.size(); ++r) {
      if (hosts[r] == environment_->host() && static_cast<int>(r) != rank()) {
        neighbours.push_back(static_cast<std::int64_t>(pids[r]));
        their_watchers.push_back(static_cast<std::int64_t>(watchers[r]));
      }
    }
    flight::note_neighbours(neighbours, their_watchers);
    flight::note_claim_addresses(environment_->job_id(),
                                 environment_->allgather(flight::claim_address()));
    const int ranks_here = static_cast<int>(neighbours.size()) + 1;
    const int cores = usable_cores();
    Backoff::set_oversubscribed(oversubscribed.value_or(ranks_here > cores));
    log().debug("{} ranks on this host, {} usable core(s): idle waits {}{}", ranks_here, cores,
                Backoff::oversubscribed() ? "sleep" : "yield",
                oversubscribed ? " (PARC_OVERSUBSCRIBED)" : "");
  }
  if (serial() && rank() == 0) {
    flight::report_crashes();
    loopback_ = std::make_unique<LoopbackNetwork>(serial_workers_ + 1);
    std::vector<std::unique_ptr<detail::Worker>> simulated;
    for (int worker = 1; worker <= serial_workers_; ++worker) {
      simulated.push_back(std::make_unique<detail::Worker>(
          loopback_->endpoint(worker), environment_->host(), environment_->pid(), true));
    }
    scheduler_ = std::make_unique<detail::Scheduler>(loopback_->endpoint(0), std::move(simulated));
  } else if (rank() == 0) {
    scheduler_ = std::make_unique<detail::Scheduler>(
        *endpoint_, std::vector<std::unique_ptr<detail::Worker>>{});
  }
  if (scheduler_) {
    engine_ = std::make_unique<detail::ProgressEngine>(*scheduler_, serial());
    scheduler_->set_revocable(!serial() && proxies_->channel().runs_progress_thread());
    for (int worker = 1; worker <= workers(); ++worker) {
      const auto at = serial() ? 0 : static_cast<std::size_t>(worker);
      scheduler_->set_worker_identity(worker, hosts[at], static_cast<std::int64_t>(pids[at]));
    }
  }
  if (serial_workers > 0 && environment_->size() > 1 && rank() == 0) {
    log().warn(
        "PARC_SERIAL={} under a launcher of {} ranks: rank 0 runs everything with "
        "simulated workers and ranks 1-{} stay idle; unset PARC_SERIAL to use them",
        serial_workers, size(), size() - 1);
  }
  if (trace::enabled) {  // every rank's timestamps count from rank 0's end of start-up
    std::int64_t origin = trace::clock_ns();
    if (size() > 1) {
      std::vector<bool> remote;
      for (const auto& host : hosts) remote.push_back(host != hosts.front());
      const std::int64_t offset = environment_->clock_offset(remote);
      const auto origins = environment_->allgather(static_cast<std::uint64_t>(origin));
      origin = static_cast<std::int64_t>(origins.front()) + offset;
    }
    trace::set_origin(origin);
  }
  // A worker is up: its proxies may serve rank 0 before its main thread reaches serve().
  if (rank() != 0) flight::note_activity("waiting for work");
  log().debug("runtime up: {} ranks, {}", size(),
              serial() ? std::to_string(serial_workers_) + " simulated workers" : "MPI workers");
}

Runtime::~Runtime() {
  if (rank() == 0 && !ran_ && endpoint_) shut_down_workers(0);
  if (size() == 1) finish_trace();  // a serial runtime that was never run (Python scripts)
  if (proxies_ && !std::uncaught_exceptions()) {
    proxies_->stop();
    // Rank 0 never ran (python3 -m parc without parc.run): the workers it just shut down
    // settle with it.
    if (rank() == 0 && !ran_) settle_regions(endpoint_.get());
  }
  detail::attach_proxy_service(nullptr);
  proxies_.reset();
  engine_.reset();
  scheduler_.reset();
  loopback_.reset();
  endpoint_.reset();
}

void Runtime::abort(int exit_code) { environment_->abort(exit_code); }

int Runtime::rank() const { return environment_->rank(); }
int Runtime::size() const { return environment_->size(); }
int Runtime::workers() const { return serial() ? serial_workers_ : size() - 1; }
std::uint64_t Runtime::job_id() const { return environment_->job_id(); }

detail::Scheduler& Runtime::scheduler() { return engine().scheduler(); }

detail::ProgressEngine& Runtime::engine() {
  if (!engine_) {
    throw UsageError("parc: managers run on rank 0 only; rank " + std::to_string(rank()) +
                     " serves them. Create managers inside Runtime::run");
  }
  return *engine_;
}

void Runtime::start_trace() {
  // Rank 0 writes the file, so its verdict counts: every rank traces, or stops, with it.
  std::string path, error;
  try {
    path = trace::path_from_environment();
  } catch (const StartupError& e) {
    error = e.what();
  }
  std::uint64_t verdict = !error.empty() ? 2 : !path.empty() ? 1 : 0;
  if (size() > 1) verdict = environment_->allgather(verdict).front();
  if (verdict == 2) {
    throw StartupError(rank() == 0 ? error
                                   : "parc: PARC_TRACE cannot be written (rank 0 says why)");
  }
  if (verdict == 1) trace::start(path);
  tracing_ = verdict == 1;
}

void Runtime::finish_trace() {
  if (!tracing_) return;
  tracing_ = false;
  const Bytes mine = trace::take_encoded();
  std::vector<Bytes> all(1, mine);
  if (size() > 1) all = environment_->gather(mine);
  if (rank() == 0) trace::write_file(all, serial() ? serial_workers_ + 1 : size(), serial());
}

void Runtime::check_closure_tables() {
  const auto& registry = detail::ClosureRegistry::instance();
  const auto hashes = environment_->allgather(registry.table_hash());
  bool same = true;
  for (auto hash : hashes) same = same && hash == hashes.front();
  if (same) return;
  const auto tables = environment_->allgather(registry.table_text());
  std::ostringstream message;
  message << "parc: the ranks declare different closures (are they running different builds?)"
          << detail::closure_table_differences(tables);
  message << "\nRun the same executable on every rank, with PARC_CLOSURE declarations that do "
             "not depend on the rank or the environment.";
  throw StartupError(message.str());
}

void Runtime::shut_down_workers(int exit_code) {
  if (!endpoint_) return;
  if (scheduler_) {
    // A worker still inside a timed-out task would never read the shutdown message; results
    // still on their way (a map left early) are taken in, not left unmatched in MPI.
    const auto deadline = std::chrono::steady_clock::now() + shutdown_grace();
    Backoff backoff;
    while ((!scheduler_->stuck_workers().empty() || scheduler_->batches_in_flight()) &&
           std::chrono::steady_clock::now() < deadline) {
      if (scheduler_->progress()) {
        backoff.reset();
      } else {
        backoff.pause();
      }
    }
    if (const auto stuck = scheduler_->stuck_workers(); !stuck.empty()) {
      for (const auto& [worker, what] : stuck) {
        log().error("rank {} is still running {}, which timed out; ending the job", worker, what);
      }
      environment_->abort(exit_code != 0 ? exit_code : 1);
    }
  }
  for (int worker = 1; worker < size(); ++worker) {
    endpoint_->send(Traffic::control, worker, MessageKind::shutdown,
                    detail::write_shutdown(exit_code));
  }
  Backoff backoff;
  while (endpoint_->progress()) backoff.pause();
}

int Runtime::run_main(const std::function<int()>& main) {
  if (ran_) throw UsageError("parc: Runtime::run may be called once");
  ran_ = true;
  if (rank() != 0) {
    detail::Worker worker(*endpoint_, environment_->host(), environment_->pid());
    const int exit_code = worker.serve(&proxies_->channel());
    proxies_->stop();
    settle_regions(endpoint_.get());
    finish_trace();
    environment_->set_exit_code(exit_code);
    return exit_code;
  }
  int exit_code = 1;
  flight::note_activity("running main");
  engine_->start();  // the Python module started it already, with its hooks
  try {
    exit_code = main();
    engine_->stop();
  } catch (...) {
    engine_->stop();
    shut_down_workers(1);
    proxies_->stop();
    settle_regions(endpoint_.get());
    finish_trace();
    environment_->set_exit_code(1);
    throw;
  }
  shut_down_workers(exit_code);
  proxies_->stop();  // every rank: the objects they own served until all were done
  settle_regions(endpoint_.get());
  finish_trace();
  environment_->set_exit_code(exit_code);
  return exit_code;
}

}  // namespace parc
