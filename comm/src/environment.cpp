#include "mpi_endpoint.hpp"

#include <parc/comm/endpoint.hpp>
#include <parc/comm/environment.hpp>
#include <parc/comm/log.hpp>
#include <parc/exceptions/errors.hpp>

#include <mpi.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <thread>

namespace parc {

namespace {

const char* environment_value(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

std::chrono::duration<double> finalize_timeout() {
  const char* value = environment_value("PARC_FINALIZE_TIMEOUT");
  return std::chrono::duration<double>(value != nullptr ? std::atof(value) : 10.0);
}

// Where the thread `tid` of this process is: spinning on a CPU (state R in most of 20
// looks over 0.2 s), blocked reading `pmi_fd` (MPICH waits for the launcher), or else.
enum class Whereabouts { spinning, in_pmi, elsewhere };
Whereabouts whereabouts(pid_t tid, int pmi_fd) {
  const std::string task = "/proc/self/task/" + std::to_string(tid);
  const auto first_line = [](const std::string& path) {
    char line[512] = {};
    if (std::FILE* file = std::fopen(path.c_str(), "r")) {
      if (std::fgets(line, sizeof line, file) == nullptr) line[0] = '\0';
      std::fclose(file);
    }
    return std::string(line);
  };
  int running = 0;
  for (int look = 0; look < 20; ++look) {
    const std::string stat = first_line(task + "/stat");
    const auto after_name = stat.rfind(") ");
    if (after_name != std::string::npos && stat.compare(after_name + 2, 1, "R") == 0) ++running;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (running >= 15) return Whereabouts::spinning;
  // "0 0x6 ...": read(2) on fd 6.
  char expected[32];
  std::snprintf(expected, sizeof expected, "0 0x%x ", static_cast<unsigned>(pmi_fd));
  return first_line(task + "/syscall").starts_with(expected) ? Whereabouts::in_pmi
                                                             : Whereabouts::elsewhere;
}

// One PMI-1 request on the launcher's socket, and its answer's line (hydra and srun
// --mpi=pmi2 both speak PMI-1 to MPICH's simple PMI client).
bool pmi_request(int fd, std::string_view request, std::string_view answer) {
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size()))
    return false;
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd readable{fd, POLLIN, 0};
    if (poll(&readable, 1, 100) <= 0) continue;
    char byte = 0;
    if (::read(fd, &byte, 1) != 1) return false;
    if (byte != '\n') {
      line += byte;
      continue;
    }
    if (line.find(answer) != std::string::npos) return true;
    line.clear();
  }
  return false;
}

void freeze(int) {
  for (;;) pause();
}

// MPICH 4.0.2 over UCX's tcp transport (UCX_TLS=tcp, or hosts without shared memory or a
// faster network) now and then never returns from MPI_Finalize (pmodels/mpich#6596, fixed
// in MPICH 4.2 by dropping the barrier): a rank spins closing its UCX endpoints while a
// peer, already waiting in the launcher's barrier, no longer answers, and that peer waits
// for the spinning rank for ever. Every rank passed a barrier of ours before, so the
// job's work is done. A rank still in MPI_Finalize after PARC_FINALIZE_TIMEOUT seconds
// whose main thread spins stops that thread and does the rest of MPICH's part with the
// launcher itself (PMI-1 on MPICH's socket: the barrier, unless MPICH was seen waiting in
// it, then finalize), and exits with its status: its peers go on, and the launcher sees a
// job that ended well. A rank blocked in the launcher's barrier keeps waiting.
void finalize_with_timeout(int exit_code, const std::function<void()>& abandoned) {
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  const auto main_tid = static_cast<pid_t>(syscall(SYS_gettid));
  const pthread_t main_thread = pthread_self();
  const char* pmi_fd_text = environment_value("PMI_FD");
  const int pmi_fd = pmi_fd_text != nullptr ? std::atoi(pmi_fd_text) : -1;
  std::thread watchdog([&] {
    std::unique_lock lock(mutex);
    if (finished.wait_for(lock, finalize_timeout(), [&] { return done; })) return;
    // Stuck: spinning through 5 looks in a row (1 s). A rank that MPICH still moves on
    // spins for moments only, and must reach the launcher by itself.
    bool passed_barrier = false;
    for (int spins = 0; spins < 5;) {
      const Whereabouts where = whereabouts(main_tid, pmi_fd);
      spins = where == Whereabouts::spinning ? spins + 1 : 0;
      passed_barrier = passed_barrier || where == Whereabouts::in_pmi;
      if (spins == 0 &&
          finished.wait_for(lock, std::chrono::milliseconds(300), [&] { return done; }))
        return;
      if (done) return;
    }
    log().warn(
        "MPI_Finalize has not returned after {} s (a known hang of MPICH 4.0.2 over "
        "UCX's tcp transport, see docs/launching.md); finishing with the launcher directly "
        "and leaving with exit status {}, the work is done",
        finalize_timeout().count(), exit_code);
    log().flush();
    std::fflush(stdout);
    std::fflush(stderr);
    if (abandoned) abandoned();
    struct sigaction stop {};
    stop.sa_handler = freeze;
    sigaction(SIGRTMIN + 7, &stop, nullptr);
    pthread_kill(main_thread, SIGRTMIN + 7);  // MPICH must not reach the launcher meanwhile
    if (pmi_fd >= 0 &&
        (passed_barrier || pmi_request(pmi_fd, "cmd=barrier_in\n", "cmd=barrier_out"))) {
      pmi_request(pmi_fd, "cmd=finalize\n", "cmd=finalize_ack");
    }
    std::_Exit(exit_code);
  });
  MPI_Finalize();
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  finished.notify_one();
  watchdog.join();
}

}  // namespace

void check_launcher() {
#ifdef MPICH_VERSION
  const char* open_mpi_size = environment_value("OMPI_COMM_WORLD_SIZE");
  if (open_mpi_size != nullptr) {
    throw StartupError(
        std::string("parc: this program was built with MPICH but started by Open MPI's "
                    "launcher (OMPI_COMM_WORLD_SIZE=") +
        open_mpi_size +
        " is set), so its ranks could not find each other. Start it with MPICH's "
        "launcher instead: mpiexec.mpich -n " +
        open_mpi_size + " <program> (or srun with --mpi=pmi2).");
  }
#endif
}

void check_world_of_one() {
  // srun --mpi=none or --mpi=pmix starts N copies whose PMI this MPICH (PMI-1/2) cannot
  // read: each sees a world of 1 and would run the whole program alone.
  const char* step_tasks = environment_value("SLURM_STEP_NUM_TASKS");
  const long tasks = step_tasks != nullptr ? std::strtol(step_tasks, nullptr, 10) : 0;
  if (tasks > 1) {
    const char* plugin = environment_value("SLURM_MPI_TYPE");
    const std::string count = std::to_string(tasks);
    throw StartupError(
        "parc: srun started " + count + " copies of this program (SLURM_STEP_NUM_TASKS=" + count +
        (plugin != nullptr ? std::string(", SLURM_MPI_TYPE=") + plugin : std::string()) +
        "), but MPI sees each as a job of 1 process: this MPICH reads PMI-1/2, not the "
        "interface srun offered, so every copy would run the whole program alone. Start it "
        "with srun --mpi=pmi2 -n " +
        count + " <program> (or mpiexec.mpich -n " + count + " <program>).");
  }
  // Other PMIx launchers (prterun) do not say how many copies they started; in Slurm a
  // step of one task under --mpi=pmix is a plain serial run.
  const char* pmix_rank = environment_value("PMIX_RANK");
  if (pmix_rank != nullptr && step_tasks == nullptr) {
    throw StartupError(std::string("parc: this program was started by a PMIx launcher "
                                   "(PMIX_RANK=") +
                       pmix_rank +
                       " is set), which this MPICH cannot use (it reads PMI-1/2), so its "
                       "copies could not find each other. Start it with mpiexec.mpich -n "
                       "<ranks> <program> (or srun --mpi=pmi2), or without a launcher to run "
                       "it serially.");
  }
}

struct Environment::Impl {
  bool initialized_here = false;
  int thread_level = MPI_THREAD_SINGLE;
};

Environment::Environment(int* argc, char*** argv, EnvironmentHooks hooks)
    : impl_(std::make_unique<Impl>()), hooks_(std::move(hooks)) {
  check_launcher();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (hooks_.before_mpi_init) hooks_.before_mpi_init();
    int provided = 0;
    // MULTIPLE: the proxy service's progress thread calls MPI alongside the main thread.
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    impl_->initialized_here = true;
  }
  MPI_Query_thread(&impl_->thread_level);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  set_log_rank(rank_);
  std::array<char, 256> name{};
  gethostname(name.data(), name.size() - 1);
  host_ = name.data();
  pid_ = static_cast<std::int64_t>(getpid());
  if (hooks_.started) hooks_.started(rank_, host_, pid_);
  // A pickled proxy names its job (another job's rank 2 is not this one's).
  std::random_device entropy;
  job_id_ = std::uint64_t{entropy()} << 32 | entropy();
  if (size_ > 1) job_id_ = allgather(job_id_)[0];
}

Environment::~Environment() {
  if (!impl_->initialized_here) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    if (hooks_.finalizing) hooks_.finalizing();
    if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);  // from here on only MPI_Finalize is left
    finalize_with_timeout(exit_code_, hooks_.finalize_abandoned);
  }
  if (hooks_.finalized) hooks_.finalized();
}

std::vector<std::uint64_t> Environment::allgather(std::uint64_t value) const {
  std::vector<std::uint64_t> values(static_cast<std::size_t>(size_));
  check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, values.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD),
            "MPI_Allgather");
  return values;
}

std::vector<std::string> Environment::allgather(const std::string& value) const {
  const int length = static_cast<int>(value.size());
  std::vector<int> lengths(static_cast<std::size_t>(size_));
  check_mpi(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD),
            "MPI_Allgather");
  std::vector<int> offsets(lengths.size(), 0);
  std::exclusive_scan(lengths.begin(), lengths.end(), offsets.begin(), 0);
  std::string all(static_cast<std::size_t>(offsets.back() + lengths.back()), '\0');
  check_mpi(MPI_Allgatherv(value.data(), length, MPI_CHAR, all.data(), lengths.data(),
                           offsets.data(), MPI_CHAR, MPI_COMM_WORLD),
            "MPI_Allgatherv");
  std::vector<std::string> values;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    values.push_back(
        all.substr(static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(lengths[i])));
  }
  return values;
}

std::vector<Bytes> Environment::gather(const Bytes& value) const {
  const int length = static_cast<int>(value.size());
  std::vector<int> lengths(static_cast<std::size_t>(size_));
  check_mpi(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD),
            "MPI_Gather");
  std::vector<int> offsets(lengths.size(), 0);
  std::exclusive_scan(lengths.begin(), lengths.end(), offsets.begin(), 0);
  Bytes all(rank_ == 0 ? static_cast<std::size_t>(offsets.back() + lengths.back()) : 0);
  check_mpi(MPI_Gatherv(value.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                        MPI_CHAR, 0, MPI_COMM_WORLD),
            "MPI_Gatherv");
  std::vector<Bytes> values;
  if (rank_ != 0) return values;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    values.emplace_back(all.begin() + offsets[i], all.begin() + offsets[i] + lengths[i]);
  }
  return values;
}

std::int64_t Environment::clock_offset(const std::vector<bool>& remote) const {
  constexpr int tag = 0x7ace;
  constexpr int rounds = 8;  // the round trip with the least delay gives the estimate
  const auto now = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  std::int64_t offset = 0;
  if (rank_ == 0) {
    for (int r = 1; r < size_; ++r) {
      if (!remote[static_cast<std::size_t>(r)]) continue;
      std::int64_t best_rtt = std::numeric_limits<std::int64_t>::max(), estimate = 0;
      for (int k = 0; k < rounds; ++k) {
        std::int64_t theirs = 0;
        const std::int64_t sent = now();
        check_mpi(MPI_Send(&sent, 1, MPI_INT64_T, r, tag, MPI_COMM_WORLD), "MPI_Send");
        check_mpi(MPI_Recv(&theirs, 1, MPI_INT64_T, r, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                  "MPI_Recv");
        const std::int64_t back = now();
        if (back - sent < best_rtt) {
          best_rtt = back - sent;
          estimate = theirs - (sent + back) / 2;
        }
      }
      check_mpi(MPI_Send(&estimate, 1, MPI_INT64_T, r, tag, MPI_COMM_WORLD), "MPI_Send");
    }
  } else if (remote[static_cast<std::size_t>(rank_)]) {
    for (int k = 0; k < rounds; ++k) {
      std::int64_t theirs = 0;
      check_mpi(MPI_Recv(&theirs, 1, MPI_INT64_T, 0, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                "MPI_Recv");
      const std::int64_t mine = now();
      check_mpi(MPI_Send(&mine, 1, MPI_INT64_T, 0, tag, MPI_COMM_WORLD), "MPI_Send");
    }
    check_mpi(MPI_Recv(&offset, 1, MPI_INT64_T, 0, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "MPI_Recv");
  }
  return offset;
}

void Environment::barrier() const { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

std::unique_ptr<Endpoint> Environment::make_endpoint() const {
  return make_mpi_endpoint(rank_, size_);
}

std::unique_ptr<RequestChannel> Environment::make_request_channel() const {
  return make_mpi_request_channel(rank_, size_, impl_->thread_level);
}

void Environment::abort(int code) const {
  log().flush();
  std::fflush(stderr);
  if (hooks_.aborting) hooks_.aborting();
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace parc
