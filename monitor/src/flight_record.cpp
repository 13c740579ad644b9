#include <parc/monitor/flight_record.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <new>
#include <vector>

namespace parc::flight {

namespace {

enum class State : std::uint32_t { running, finalized, exited, aborting };

// Where a rank's watcher hears claims: a UDP port on each of its host's addresses.
struct ClaimAddress {
  static constexpr int max_addresses = 3;
  std::uint16_t port = 0;                       // network order
  std::uint32_t addresses[max_addresses] = {};  // IPv4, network order; 0: unused
};

// A watcher that explains the end of the job tells every other watcher first, so that
// those whose ranks the launcher (or parc) then kills, on any node, stay silent.
struct Claim {
  static constexpr std::uint64_t magic_value = 0x70617263'636c6d31ULL;  // "parcclm1"
  std::uint64_t magic = magic_value;
  std::uint64_t job = 0;
  std::int32_t rank = -1;
};

// Text a dead rank's watcher may read at any moment: two buffers, the complete one
// published by index, so a rank killed mid-write leaves the previous text whole. One
// writer per slot.
class TextSlot {
 public:
  static constexpr std::size_t capacity = 200;

  void set(std::string_view text) {
    const std::uint32_t next = 1 - current_.load(std::memory_order_relaxed);
    const std::size_t size = std::min(text.size(), capacity - 1);
    text.copy(buffers_[next], size);  // not memcpy: an empty view's data() may be null
    buffers_[next][size] = '\0';
    current_.store(next, std::memory_order_release);
  }
  const char* get() const { return buffers_[current_.load(std::memory_order_acquire)]; }

 private:
  char buffers_[2][capacity] = {};
  std::atomic<std::uint32_t> current_{0};
};

struct Record {
  static constexpr int max_neighbours = 64;
  static constexpr int max_peers = 4096;
  std::atomic<State> state{State::running};
  std::atomic<std::int32_t> signal{0};  // the SIGINT, SIGTERM or SIGHUP that ended the rank
  std::int32_t launched_rank = -1;
  std::atomic<std::uint64_t> task{0};  // the running task's id + 1; 0: none
  std::atomic<std::int32_t> serving{-1};
  TextSlot identity;
  TextSlot activity;
  TextSlot closure;
  TextSlot call;
  // The other ranks of the job on this node, published once after MPI starts.
  std::atomic<std::int32_t> neighbour_count{0};
  std::int32_t neighbours[max_neighbours] = {};
  // Every watcher of the job, published once after MPI starts.
  std::uint64_t job = 0;
  std::atomic<std::int32_t> peer_count{0};
  ClaimAddress peers[max_peers] = {};
  ClaimAddress own;  // where this rank's watcher listens
};
static_assert(std::atomic<State>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

Record local_record;             // no watcher: the notes go nowhere
Record* record = &local_record;  // or the page shared with the watcher
int watcher_pipe = -1;           // the write end: a byte rings, its closing at death wakes
pid_t watcher_pid_ = 0;
// The watchers of this node's other ranks: an aborting rank tells them to stay silent.
int neighbour_watchers[Record::max_neighbours];
int neighbour_watcher_count = 0;

// In the watcher: a rank of this node is ending the job on purpose (SIGUSR2 from it). The
// launcher then kills the ranks in any order, and the first to go is not what went wrong.
volatile sig_atomic_t job_aborting = 0;
void on_job_aborting(int) { job_aborting = 1; }

// The watcher runs in a child forked from a process that may have had threads: from
// here on only async-signal-safe calls (no malloc, no stdio).
class Line {
 public:
  Line& operator<<(const char* text) {
    while (*text != '\0' && size_ < sizeof buffer_ - 1) buffer_[size_++] = *text++;
    return *this;
  }
  Line& operator<<(std::uint64_t value) {
    char digits[24];
    int count = 0;
    do {
      digits[count++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (count > 0 && size_ < sizeof buffer_ - 1) buffer_[size_++] = digits[--count];
    return *this;
  }
  void write_to(int fd) const {
    std::size_t done = 0;
    while (done < size_) {
      const ssize_t n = ::write(fd, buffer_ + done, size_ - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  char buffer_[1024];
  std::size_t size_ = 0;
};

int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// The ranks of this node as the watcher follows them, through pidfds in one epoll set.
class NodeWatch {
 public:
  NodeWatch(int pipe_fd, pid_t rank_pid) : pipe_fd_(pipe_fd), rank_pid_(rank_pid) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    add(pipe_fd, pipe_event);
    rank_fd_ = open_pidfd(rank_pid);
    if (rank_fd_ >= 0) add(rank_fd_, static_cast<std::uint64_t>(rank_pid));
  }

  // Waits until the rank is gone; returns whether it was the first rank of this node to
  // go. The kernel queues epoll events in the order processes end, so the first exit
  // event is the first death, however late each watcher gets to run. The launcher kills
  // the other ranks only once it has reaped the dead one (the watchers hold the ranks' PMI
  // sockets, so it learns of the death from its child's exit, as pidfds do).
  bool wait_for_rank(const Record& shared) {
    if (rank_fd_ < 0) {  // no pidfds (Linux < 5.3): every rank that dies is reported
      char byte = 0;
      ssize_t n = 0;
      while ((n = ::read(pipe_fd_, &byte, 1)) != 0) {
        if (n < 0 && errno != EINTR) break;
      }
      return true;
    }
    pid_t first_gone = 0;
    bool pipe_closed = false;
    for (;;) {
      epoll_event ready[Record::max_neighbours + 2];
      // The pipe closes a moment before the rank's exit event: wait for the event too.
      const int count =
          epoll_wait(epoll_fd_, ready, Record::max_neighbours + 2, pipe_closed ? 2000 : -1);
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) return first_gone == 0 || first_gone == rank_pid_;
      for (int i = 0; i < count; ++i) {
        const std::uint64_t key = ready[i].data.u64;
        if (key == pipe_event) {
          char bytes[64];
          const ssize_t n = ::read(pipe_fd_, bytes, sizeof bytes);
          if (n == 0) {
            pipe_closed = true;
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, pipe_fd_, nullptr);
          } else if (n > 0) {  // the neighbours are published
            follow_neighbours(shared);
          }
          continue;
        }
        const auto pid = static_cast<pid_t>(key);
        if (first_gone == 0) first_gone = pid;
        if (pid == rank_pid_) return first_gone == rank_pid_;
        // Level-triggered: an ended process stays ready; stop listening to it.
        for (int k = 0; k < neighbour_count_; ++k) {
          if (neighbour_pids_[k] == pid && neighbour_fds_[k] >= 0) {
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, neighbour_fds_[k], nullptr);
            ::close(neighbour_fds_[k]);
            neighbour_fds_[k] = -1;
          }
        }
      }
    }
  }

  // The rank died first: end the others on this node at once. A rank that exited with
  // status 0 would otherwise leave the launcher waiting, and the job status at 0. After a
  // Ctrl-C or a cancel they get the same signal, so that they end the same way (hydra ORs
  // the ranks' statuses: SIGINT's 130 and SIGKILL's 9 would read as another signal).
  void end_neighbours(int sig) const {
    for (int k = 0; k < neighbour_count_; ++k) {
      if (neighbour_fds_[k] >= 0) syscall(SYS_pidfd_send_signal, neighbour_fds_[k], sig, 0, 0);
    }
    // Hold the PMI socket until they are gone, so the launcher reaps them as killed (and
    // fails the job) before it learns that this rank never finalized.
    for (int k = 0; k < neighbour_count_; ++k) {
      if (neighbour_fds_[k] < 0) continue;
      pollfd gone{neighbour_fds_[k], POLLIN, 0};
      int ready = 0;
      while ((ready = poll(&gone, 1, 2000)) < 0 && errno == EINTR) {
      }
      if (ready == 0 && sig != SIGKILL) syscall(SYS_pidfd_send_signal, gone.fd, SIGKILL, 0, 0);
    }
  }

 private:
  static constexpr std::uint64_t pipe_event = ~std::uint64_t{0};

  void add(int fd, std::uint64_t key) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = key;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
  }

  void follow_neighbours(const Record& shared) {
    const int count = shared.neighbour_count.load(std::memory_order_acquire);
    for (int k = 0; k < count && neighbour_count_ < Record::max_neighbours; ++k) {
      const pid_t pid = shared.neighbours[k];
      const int fd = open_pidfd(pid);
      if (fd < 0) continue;
      neighbour_pids_[neighbour_count_] = pid;
      neighbour_fds_[neighbour_count_++] = fd;
      add(fd, static_cast<std::uint64_t>(pid));
    }
  }

  int pipe_fd_;
  pid_t rank_pid_;
  int epoll_fd_ = -1;
  int rank_fd_ = -1;
  int neighbour_count_ = 0;
  pid_t neighbour_pids_[Record::max_neighbours] = {};
  int neighbour_fds_[Record::max_neighbours] = {};
};

std::int64_t monotonic_ms() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

// Tells every other watcher of the job that the end of the job is explained (async-signal-
// safe: the rank sends these too, as it aborts). UDP: a claim lost or blocked only brings
// back a line from a node whose ranks the launcher killed.
void send_claims(const Record& shared, int fd) {
  const int count = shared.peer_count.load(std::memory_order_acquire);
  if (count == 0) return;
  Claim claim;
  claim.job = shared.job;
  claim.rank = shared.launched_rank;
  for (int r = 0; r < count; ++r) {
    if (r == shared.launched_rank) continue;
    const ClaimAddress& peer = shared.peers[r];
    for (std::uint32_t address : peer.addresses) {
      if (address == 0 || peer.port == 0) continue;
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = peer.port;
      to.sin_addr.s_addr = address;
      sendto(fd, &claim, sizeof claim, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to),
             sizeof to);
    }
  }
}

// Whether another watcher of this job has claimed the end of the job, or does so within
// `wait_ms`: claims sent while the rank still ran wait in the socket.
bool heard_claim(const Record& shared, int fd, int wait_ms) {
  if (fd < 0 || shared.job == 0) return false;
  const std::int64_t deadline = monotonic_ms() + wait_ms;
  for (;;) {
    const std::int64_t left = deadline - monotonic_ms();
    pollfd ready{fd, POLLIN, 0};
    const int count = poll(&ready, 1, static_cast<int>(std::max<std::int64_t>(left, 0)));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return false;
    Claim claim{};
    const ssize_t n = recv(fd, &claim, sizeof claim, MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof claim) && claim.magic == Claim::magic_value &&
        claim.job == shared.job && claim.rank != shared.launched_rank) {
      return true;
    }
  }
}

// Asks Slurm to end the whole step through the rank's PMI socket (the PMI-1 wire that
// MPICH's simple PMI speaks, which srun --mpi=pmi2 answers by killing the step on every
// node). Without it, ranks on the other nodes would sleep in their idle wait until the
// time limit: srun's default KillOnBadExit=0 leaves them running. Hydra (also inside an
// sbatch job, where its proxies run in a step of --mpi=none) needs no asking: it ends the
// job when a rank exits unfinalized, while its abort would replace the job's exit status.
void ask_slurm_to_abort(int pmi_fd, bool slurm_pmi) {
  if (pmi_fd < 0 || !slurm_pmi) return;
  const char request[] = "cmd=abort exitcode=1\n";
  [[maybe_unused]] const ssize_t written = ::write(pmi_fd, request, sizeof request - 1);
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "interrupted (SIGINT)";
    case SIGTERM:
      return "cancelled (SIGTERM)";
    case SIGHUP:
      return "hung up (SIGHUP)";
    default:
      return "ended by a signal";
  }
}

// `pmi_fd`: the rank's socket to its launcher, held so that the launcher learns of a death
// when it reaps the rank (see NodeWatch), not a moment earlier when the socket closes.
// `claim_fd`: where the other watchers' claims arrive.
[[noreturn]] void watch(int pipe_fd, int pmi_fd, bool slurm_pmi, int claim_fd,
                        const Record& shared) {
  prctl(PR_SET_NAME, "parc-watcher");
  setsid();  // out of the rank's process group, which the launcher kills at teardown
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) signal(sig, SIG_IGN);
  // Sent before the launcher is asked to abort, so it is handled before the death events
  // that follow (a pending signal runs its handler as epoll_wait returns).
  struct sigaction aborting {};
  aborting.sa_handler = on_job_aborting;
  sigaction(SIGUSR2, &aborting, nullptr);
  // Hold nothing else of the rank's: the launcher waits for its stdout to close.
  constexpr int kept_from = 1000;
  pipe_fd = fcntl(pipe_fd, F_DUPFD, kept_from);
  if (pmi_fd >= 0) pmi_fd = fcntl(pmi_fd, F_DUPFD, kept_from);
  if (claim_fd >= 0) claim_fd = fcntl(claim_fd, F_DUPFD, kept_from);
  close_range(3, kept_from - 1, 0);
  close_range(kept_from + 3, ~0U, 0);
  const int null_fd = ::open("/dev/null", O_RDWR);
  if (null_fd >= 0) {
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    if (null_fd > 2) ::close(null_fd);
  }
  NodeWatch node(pipe_fd, getppid());
  const bool first = node.wait_for_rank(shared);
  // Silent when parc ended the rank (it said why), when the rank finalized or exited
  // outside a task, and when the launcher killed it because a rank of this node died first.
  // A signal (Ctrl-C, scancel) reaches every rank: say so once, not as a crash.
  const int sig = shared.signal.load(std::memory_order_acquire);
  if ((!first && sig == 0) || job_aborting ||
      shared.state.load(std::memory_order_acquire) != State::running)
    ::_exit(0);
  // The same, on other nodes: a watcher that explained the end claimed it before the
  // launcher could kill anything. Rank 0's watcher speaks for a signal that every rank got.
  const bool wait_for_rank_0 = sig != 0 && shared.launched_rank != 0;
  if (heard_claim(shared, claim_fd, wait_for_rank_0 ? 1000 : 50)) ::_exit(0);
  if (claim_fd >= 0) send_claims(shared, claim_fd);
  Line line;
  line << "parc: ";
  if (sig != 0) line << signal_name(sig) << ": ";
  line << shared.identity.get() << (sig != 0 ? " was " : " died while ");
  if (const std::uint64_t task = shared.task.load(std::memory_order_acquire); task != 0) {
    const char* call = shared.call.get();
    line << "running task " << task - 1 << ": " << (*call != '\0' ? call : shared.closure.get());
  } else {
    line << shared.activity.get();
  }
  if (const int requester = shared.serving.load(std::memory_order_acquire); requester >= 0) {
    line << ", serving a proxy request from rank " << static_cast<std::uint64_t>(requester);
  }
  if (sig != 0) {
    line << "; the job ends\n";
  } else {
    line << " (killed, crashed, or exited without finalizing MPI); MPICH ends the whole job "
            "when a rank dies, see docs/faults.md\n";
  }
  line.write_to(2);
  wait_until_stderr_is_read();
  node.end_neighbours(sig != 0 ? sig : SIGKILL);
  ask_slurm_to_abort(pmi_fd, slurm_pmi);
  ::_exit(0);
}

// SIGINT, SIGTERM, SIGHUP in a rank: noted for the watcher, then the rank leaves with the
// shell's status for the signal (130 for SIGINT). A rank cannot finish a task or a
// collective once the others are going, and Python's KeyboardInterrupt on one rank would
// only leave the others waiting for it. An exit status rather than death by the signal:
// hydra ORs the ranks' statuses and names the result as a signal (SIGINT's 2 with
// SIGKILL's 9 read "Segmentation fault (signal 11)").
void on_ending_signal(int sig) {
  record->signal.store(sig, std::memory_order_release);
  ::_exit(128 + sig);
}

// The UDP socket the watcher hears claims on, bound to every address of this host.
int open_claim_socket(ClaimAddress& own) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t size = sizeof any;
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&any), &size) != 0) {
    ::close(fd);
    return -1;
  }
  own.port = any.sin_port;
  int count = 0;
  ifaddrs* interfaces = nullptr;
  if (getifaddrs(&interfaces) == 0) {
    for (const ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
      if (count == ClaimAddress::max_addresses - 1) break;
      if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
      const auto address = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr;
      if (address != htonl(INADDR_LOOPBACK)) own.addresses[count++] = address;
    }
    freeifaddrs(interfaces);
  }
  own.addresses[count] = htonl(INADDR_LOOPBACK);  // a host without a network
  return fd;
}

void at_exit() {
  // exit() in the middle of a task still loses the task: let the watcher say so.
  if (record->task.load(std::memory_order_relaxed) == 0 &&
      record->state.load(std::memory_order_relaxed) == State::running) {
    record->state.store(State::exited, std::memory_order_release);
  }
}

const char* environment_value(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

void start_watcher() {
  if (watching()) return;
  const char* launched_rank = environment_value("PMI_RANK");
  if (launched_rank == nullptr) launched_rank = environment_value("PMIX_RANK");
  if (launched_rank == nullptr) return;
  void* page =
      mmap(nullptr, sizeof(Record), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return;  // a job without reports is still a job
  auto* shared = new (page) Record;
  shared->identity.set(std::string("rank ") + launched_rank);
  shared->launched_rank = std::atoi(launched_rank);
  const int claim_fd = open_claim_socket(shared->own);
  const char* pmi_fd = environment_value("PMI_FD");
  const int launcher_fd = pmi_fd != nullptr ? std::atoi(pmi_fd) : -1;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    if (claim_fd >= 0) ::close(claim_fd);
    munmap(page, sizeof(Record));
    return;
  }
  const char* slurm_mpi = environment_value("SLURM_MPI_TYPE");
  const bool slurm_pmi = slurm_mpi != nullptr && std::string_view(slurm_mpi) == "pmi2";
  const pid_t child = fork();
  if (child == 0) watch(fds[0], launcher_fd, slurm_pmi, claim_fd, *shared);
  ::close(fds[0]);
  if (claim_fd >= 0) ::close(claim_fd);
  if (child < 0) {
    ::close(fds[1]);
    munmap(page, sizeof(Record));
    return;
  }
  watcher_pipe = fds[1];  // open until this process ends, on purpose
  watcher_pid_ = child;
  shared->activity.set("starting");
  record = shared;
  std::atexit(at_exit);
  struct sigaction ending {};
  ending.sa_handler = on_ending_signal;
  sigemptyset(&ending.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &ending, nullptr);
}

bool watching() { return watcher_pipe >= 0; }

void note_identity(int rank, std::string_view host, std::int64_t pid) {
  char text[TextSlot::capacity];
  const int size =
      std::snprintf(text, sizeof text, "rank %d (host %.*s, pid %lld)", rank,
                    static_cast<int>(host.size()), host.data(), static_cast<long long>(pid));
  record->identity.set(std::string_view(text, static_cast<std::size_t>(std::max(size, 0))));
}

void note_activity(std::string_view activity) { record->activity.set(activity); }

void note_task(std::uint64_t task_id, std::string_view closure) {
  // Most batches run one closure: copy its name only when it changes.
  if (std::string_view(record->closure.get()) != closure) {
    record->closure.set(closure);
    record->call.set({});
  }
  record->task.store(task_id + 1, std::memory_order_release);
}

void note_task_call(std::string_view call) { record->call.set(call); }

void note_task_done() { record->task.store(0, std::memory_order_release); }

int note_serving(int requester) {
  return record->serving.exchange(requester, std::memory_order_acq_rel);
}

void note_finalized() { record->state.store(State::finalized, std::memory_order_release); }

void note_aborting() {
  record->state.store(State::aborting, std::memory_order_release);
  if (const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); fd >= 0) {
    send_claims(*record, fd);  // the watchers of other nodes stay silent too
    ::close(fd);
  }
  for (int k = 0; k < neighbour_watcher_count; ++k) {
    syscall(SYS_pidfd_send_signal, neighbour_watchers[k], SIGUSR2, nullptr, 0);
  }
}

void wait_until_stderr_is_read() {
  struct stat info {};
  if (fstat(2, &info) != 0 || !S_ISFIFO(info.st_mode)) return;
  const timespec millisecond{0, 1'000'000};
  for (int waited = 0; waited < 2000; ++waited) {
    pollfd reader{2, 0, 0};  // POLLERR: nobody reads the pipe any more
    if (poll(&reader, 1, 0) > 0 && (reader.revents & POLLERR) != 0) return;
    int unread = 0;
    if (ioctl(2, FIONREAD, &unread) != 0 || unread == 0) return;
    nanosleep(&millisecond, nullptr);
  }
}

std::int64_t watcher_pid() { return watcher_pid_; }

void note_neighbours(const std::vector<std::int64_t>& pids,
                     const std::vector<std::int64_t>& watchers) {
  if (!watching() || record->neighbour_count.load() != 0) return;
  int count = 0;
  for (std::int64_t pid : pids) {
    if (count == Record::max_neighbours) break;
    record->neighbours[count++] = static_cast<std::int32_t>(pid);
  }
  for (std::int64_t pid : watchers) {  // pidfds: a signal never reaches a reused pid
    if (neighbour_watcher_count == Record::max_neighbours) break;
    if (pid <= 0) continue;
    const int fd = open_pidfd(static_cast<pid_t>(pid));
    if (fd >= 0) neighbour_watchers[neighbour_watcher_count++] = fd;
  }
  record->neighbour_count.store(count, std::memory_order_release);
  const char ring = 1;
  [[maybe_unused]] const ssize_t written = ::write(watcher_pipe, &ring, 1);
}

namespace {

constexpr int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
struct sigaction crash_previous[std::size(crash_signals)];

// Serial mode: the task that crashed, then the handlers that were there before (Python's
// faulthandler dumps the Python stacks, UCX prints its backtrace, or the default action).
void on_crash(int signal) {
  std::size_t k = 0;
  while (crash_signals[k] != signal) ++k;
  if (const std::uint64_t task = record->task.load(std::memory_order_acquire); task != 0) {
    Line line;
    const char* call = record->call.get();
    line << "parc: " << record->identity.get() << " crashed (signal "
         << static_cast<std::uint64_t>(signal) << ") while running task " << task - 1 << ": "
         << (*call != '\0' ? call : record->closure.get()) << "\n";
    line.write_to(2);
  }
  sigaction(signal, &crash_previous[k], nullptr);
  raise(signal);  // a fault raises again when the handler returns; abort() needs this
}

}  // namespace

void report_crashes() {
  if (watching()) return;  // the watcher reports under a launcher
  struct sigaction action {};
  action.sa_handler = on_crash;
  action.sa_flags = SA_NODEFER | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (std::size_t k = 0; k < std::size(crash_signals); ++k) {
    sigaction(crash_signals[k], &action, &crash_previous[k]);
  }
}

std::string claim_address() {
  if (!watching()) return {};
  return std::string(reinterpret_cast<const char*>(&record->own), sizeof(ClaimAddress));
}

void note_claim_addresses(std::uint64_t job, const std::vector<std::string>& addresses) {
  if (!watching() || record->peer_count.load() != 0) return;
  int count = 0;
  for (const std::string& address : addresses) {
    if (count == Record::max_peers) break;
    ClaimAddress& peer = record->peers[count++];
    if (address.size() == sizeof(ClaimAddress)) std::memcpy(&peer, address.data(), sizeof peer);
  }
  record->job = job;
  record->peer_count.store(count, std::memory_order_release);
}

void note_finalize_abandoned() { record->state.store(State::exited, std::memory_order_release); }

}  // namespace parc::flight
