// The request channel over MPI: a progress thread per rank receives the requests and
// records sent to this rank, hands them to the handler, and completes the sends, whatever
// the rank's main thread is doing. Callers wait for their replies themselves (any thread:
// MPI_THREAD_MULTIPLE).
//
// Communicators (duplicates of MPI_COMM_WORLD):
//   requests_: requests (tag_request) and records (tag_records), probed by the owner's
//              progress thread with MPI_ANY_SOURCE/MPI_ANY_TAG, so that one rank's
//              messages to an owner are handled in the order it sent them;
//   replies_:  a reply, tagged with the request's tag;
//   data_:     the data of a read, tagged likewise, sent straight from the owner's memory
//              into the reader's.
// The messages' framing is request_frame.hpp's.

#include "mpi_endpoint.hpp"
#include "request_frame.hpp"

#include <parc/comm/backoff.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/request_channel.hpp>
#include <parc/exceptions/errors.hpp>

#include <mpi.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <list>
#include <mutex>
#include <set>
#include <thread>

namespace parc {

namespace {

constexpr int tag_request = 1;
constexpr int tag_records = 2;
// Requests handled per round before the progress thread looks at its own sends.
constexpr int requests_per_round = 32;

thread_local bool on_progress_thread = false;

int checked_int(std::uint64_t bytes, const char* what) {
  if (bytes > static_cast<std::uint64_t>(INT_MAX)) {
    throw UsageError(std::string("parc: ") + what + " of " + std::to_string(bytes) +
                     " bytes exceeds the 2 GiB limit of one MPI message; split it (read "
                     "slices of the array)");
  }
  return static_cast<int>(bytes);
}

struct Send {
  Bytes bytes;
  MPI_Request request = MPI_REQUEST_NULL;
  std::shared_ptr<const void> keep_alive;  // a read's source
  std::uint64_t records_seq = 0;           // non-zero for a records message
};

class MpiRequestChannel;

class MpiRequest final : public PendingRequest {
 public:
  MpiRequest(MpiRequestChannel& channel, int owner, int tag)
      : channel_(channel), owner_(owner), tag_(tag) {}
  ~MpiRequest() override;
  bool ready() override { return done_ || poll(); }
  bool wait_until(std::chrono::steady_clock::time_point deadline) override;
  std::uint8_t code() const override { return code_; }
  Bytes& payload() override { return payload_; }

  // A read: the data receive, posted before the request went out.
  MPI_Request data_request = MPI_REQUEST_NULL;

 private:
  bool poll();
  MpiRequestChannel& channel_;
  int owner_;
  int tag_;
  bool have_reply_ = false;
  bool done_ = false;
  std::uint8_t code_ = 0;
  Bytes payload_;
};

class MpiRequestChannel final : public RequestChannel {
 public:
  MpiRequestChannel(int rank, int size, std::string unavailable)
      : rank_(rank), size_(size), unavailable_(std::move(unavailable)) {
    for (MPI_Comm* comm : {&requests_, &replies_, &data_}) {
      check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, comm), "MPI_Comm_dup");
    }
    void* value = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &found);
    tag_limit_ = found ? std::min(*static_cast<int*>(value), 1 << 24) : 32767;
  }

  ~MpiRequestChannel() override {
    if (thread_.joinable()) {
      stopping_ = true;
      thread_.join();
    }
    // Without stop() (an exception unwinding the runtime) the communicators stay: a peer
    // may still have messages in flight on them.
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool hosts(int rank) const override { return rank == rank_; }
  std::string describe_ranks() const override {
    return "the job has " + std::to_string(size_) + " ranks (0-" + std::to_string(size_ - 1) + ")";
  }
  const std::string& unavailable_reason() const override { return unavailable_; }

  void start(RequestHandler& handler) override {
    handler_ = &handler;
    if (unavailable_.empty()) thread_ = std::thread([this] { serve_loop(); });
  }

  std::unique_ptr<PendingRequest> request(int owner, Bytes message) override {
    const int tag = next_tag();
    auto pending = std::make_unique<MpiRequest>(*this, owner, tag);
    post_request(owner, tag, message);
    return pending;
  }

  std::unique_ptr<PendingRequest> read(int owner, Bytes message, char* destination,
                                       std::uint64_t bytes) override {
    const int count = checked_int(bytes, "a raw read");
    const int tag = next_tag();
    auto pending = std::make_unique<MpiRequest>(*this, owner, tag);
    // Posted first, so that the data lands in place however early it comes.
    check_mpi(MPI_Irecv(destination, count, MPI_BYTE, owner, tag, data_, &pending->data_request),
              "MPI_Irecv");
    post_request(owner, tag, message);
    return pending;
  }

  void reply(ReplyTo to, std::uint8_t code, Bytes payload) override {
    post(to.rank, replies_, to.tag, request_frame::frame_reply(code, payload));
  }

  void reply_with_data(ReplyTo to, const char* data, std::uint64_t bytes,
                       std::shared_ptr<const void> keep_alive) override {
    reply(to, 0, {});
    post(to.rank, data_, to.tag, {}, std::move(keep_alive), data, static_cast<int>(bytes));
  }

  void post_records(int owner, Bytes records) override {
    std::lock_guard lock(records_mutex_);
    // Once stop() has seen every rank's records received, a late one (a proxy dropped
    // meanwhile) is dropped: its owner may have stopped receiving, which would leave this
    // synchronous send, and so this rank, waiting for ever; every rank frees its objects
    // at the end anyway.
    if (records_closed_) return;
    post(owner, requests_, tag_records, std::move(records), nullptr, nullptr, -1,
         ++records_posted_);
  }
  std::uint64_t records_posted() const override { return records_posted_.load(); }
  void when_records_received(std::function<void()> answer) override {
    waiting_for_records_.push_back({std::move(answer), records_posted_.load()});
  }

  void stop() override {
    Backoff backoff;
    if (unavailable_.empty()) {
      // Every reply this rank waits for, and every records message it queued, first. The
      // handler takes its queue before it posts it: the last check and the closing happen
      // under the lock post_records() takes, so no records message leaves unseen.
      while (!records_settled()) backoff.pause();
    }
    // Then every rank: no request or records message is in flight anywhere once all are here.
    MPI_Request barrier;
    check_mpi(MPI_Ibarrier(requests_, &barrier), "MPI_Ibarrier");
    for (int done = 0; !done;) {
      MPI_Test(&barrier, &done, MPI_STATUS_IGNORE);
      if (!done) backoff.pause();
    }
    if (thread_.joinable()) {
      stopping_ = true;
      thread_.join();
    }
    for (MPI_Comm* comm : {&requests_, &replies_, &data_}) MPI_Comm_free(comm);
  }

  bool park_until(const std::function<bool()>& ready) override {
    if (!unavailable_.empty() || stopping_.load()) return false;
    std::unique_lock lock(park_mutex_);
    park_ready_ = &ready;
    parked_.store(true);
    park_changed_.wait(lock, [&] { return !parked_.load() || stopping_.load(); });
    parked_.store(false);
    park_ready_ = nullptr;
    return true;
  }

  bool runs_progress_thread() const override { return unavailable_.empty(); }

  bool set_background_poll(std::function<void()> poll) override {
    if (!unavailable_.empty()) return false;
    std::lock_guard lock(background_mutex_);
    background_poll_ = std::move(poll);
    return true;
  }

  // --- used by MpiRequest ---
  bool poll_reply(int owner, int tag, Bytes& reply) {
    int found = 0;
    MPI_Message message;
    MPI_Status status;
    check_mpi(MPI_Improbe(owner, tag, replies_, &found, &message, &status), "MPI_Improbe");
    if (!found) return false;
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    reply.resize(static_cast<std::size_t>(count));
    check_mpi(MPI_Mrecv(reply.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE), "MPI_Mrecv");
    return true;
  }
  void reply_received() { --outstanding_; }
  // A waiting thread's idle step: the progress thread serves (a handler waiting on a
  // request of its own must not stop this rank from answering), others back off.
  void idle(Backoff& backoff) {
    if (on_progress_thread) {
      if (serve_once()) backoff.reset();
    }
    backoff.pause();
  }
  void abandon(int owner, int tag) {
    std::lock_guard lock(orphans_mutex_);
    orphans_.emplace_back(owner, tag);
  }

 private:
  int next_tag() {
    return 1 + static_cast<int>(tag_counter_++ % static_cast<unsigned>(tag_limit_));
  }

  void post_request(int owner, int tag, const Bytes& message) {
    ++outstanding_;
    post(owner, requests_, tag_request, request_frame::frame_request(tag, message));
  }

  void post(int dest, MPI_Comm comm, int tag, Bytes bytes,
            std::shared_ptr<const void> keep_alive = nullptr, const char* data = nullptr,
            int count = -1, std::uint64_t records_seq = 0) {
    std::lock_guard lock(sends_mutex_);
    Send& send = sends_.emplace_back();
    send.bytes = std::move(bytes);
    send.keep_alive = std::move(keep_alive);
    send.records_seq = records_seq;
    if (data == nullptr) {
      data = send.bytes.data();
      count = static_cast<int>(send.bytes.size());
    }
    const int code = records_seq != 0
                         ? MPI_Issend(data, count, MPI_BYTE, dest, tag, comm, &send.request)
                         : MPI_Isend(data, count, MPI_BYTE, dest, tag, comm, &send.request);
    check_mpi(code, "MPI_Isend");
  }

  void serve_loop() {
    on_progress_thread = true;
    Backoff backoff;
    while (!stopping_.load(std::memory_order_relaxed)) {
      if (parked_.load(std::memory_order_relaxed)) wake_parked_thread_if_ready();
      {
        std::lock_guard lock(background_mutex_);
        if (background_poll_) {
          try {
            background_poll_();
          } catch (const std::exception& e) {
            log().error("on the progress thread: {}", e.what());
          }
        }
      }
      if (serve_once()) {
        backoff.reset();
      } else {
        backoff.pause();
      }
    }
    {
      std::lock_guard lock(park_mutex_);
      park_changed_.notify_all();
    }
    // Sends still in flight (a reader's data) complete before the communicators go.
    while (reap_sends()) backoff.pause();
  }

  void wake_parked_thread_if_ready() {
    std::lock_guard lock(park_mutex_);
    if (park_ready_ != nullptr && (*park_ready_)()) {
      parked_.store(false);
      park_changed_.notify_all();
    }
  }

  // One round: requests and records that came, the handler's queued records, replies
  // nobody waits for, finished sends. True when something happened or is still in flight.
  bool serve_once() {
    bool active = false;
    for (int i = 0; i < requests_per_round; ++i) {
      int found = 0;
      MPI_Message handle;
      MPI_Status status;
      check_mpi(MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, requests_, &found, &handle, &status),
                "MPI_Improbe");
      if (!found) break;
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      auto bytes = std::make_shared<Bytes>(static_cast<std::size_t>(count));
      check_mpi(MPI_Mrecv(bytes->data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE), "MPI_Mrecv");
      try {
        if (status.MPI_TAG == tag_records) {
          handler_->receive_records(status.MPI_SOURCE, *bytes);
        } else {
          serve_request(status.MPI_SOURCE, bytes);
        }
      } catch (const std::exception& e) {
        // Too short to name its reply tag, or records cut short: nobody waits for an
        // answer, and the thread must go on serving the others.
        log().error("dropped a malformed request-channel message ({} bytes) from rank {}: {}",
                    count, status.MPI_SOURCE, e.what());
      }
      active = true;
    }
    active = handler_->post_queued_records() || active;
    active = drain_orphans() || active;
    active = reap_sends() || active;
    answer_when_records_received();
    return active;
  }

  void serve_request(int source, const std::shared_ptr<Bytes>& bytes) {
    ByteReader reader(bytes->data(), bytes->size(), bytes);
    const int tag = request_frame::read_reply_tag(reader);
    handler_->serve_request(rank_, ReplyTo{source, tag}, reader);
  }

  bool reap_sends() {
    std::lock_guard lock(sends_mutex_);
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
      if (!done) {
        ++it;
        continue;
      }
      if (it->records_seq != 0) records_done_.insert(it->records_seq);
      it = sends_.erase(it);
    }
    // Folded at once, not when asked: else the set keeps a node per message ever sent.
    while (records_done_.erase(records_contiguous_ + 1) != 0) ++records_contiguous_;
    return !sends_.empty();
  }

  // The last records message received by its owner with all before it.
  std::uint64_t records_received_up_to() {
    std::lock_guard lock(sends_mutex_);
    return records_contiguous_;
  }

  bool record_sends_pending() { return records_received_up_to() < records_posted_.load(); }

  // stop()'s test: true (and records closed) once nothing of this rank's is in flight.
  bool records_settled() {
    if (outstanding_.load() > 0 || handler_->has_queued_records()) return false;
    std::lock_guard lock(records_mutex_);
    if (record_sends_pending()) return false;
    records_closed_ = true;
    return true;
  }

  void answer_when_records_received() {
    if (waiting_for_records_.empty()) return;
    const auto received = records_received_up_to();
    for (auto it = waiting_for_records_.begin(); it != waiting_for_records_.end();) {
      if (it->records > received) {
        ++it;
        continue;
      }
      it->answer();
      it = waiting_for_records_.erase(it);
    }
  }

  bool drain_orphans() {
    std::lock_guard lock(orphans_mutex_);
    Bytes ignored;
    for (auto it = orphans_.begin(); it != orphans_.end();) {
      if (poll_reply(it->first, it->second, ignored)) {
        reply_received();
        it = orphans_.erase(it);
      } else {
        ++it;
      }
    }
    return !orphans_.empty();
  }

  struct WaitingForRecords {
    std::function<void()> answer;
    std::uint64_t records;  // answered once these have been received
  };

  int rank_;
  int size_;
  std::string unavailable_;  // empty: the progress thread runs
  RequestHandler* handler_ = nullptr;
  MPI_Comm requests_ = MPI_COMM_NULL;
  MPI_Comm replies_ = MPI_COMM_NULL;
  MPI_Comm data_ = MPI_COMM_NULL;
  int tag_limit_ = 32767;
  std::atomic<unsigned> tag_counter_{0};
  std::atomic<std::int64_t> outstanding_{0};
  std::atomic<bool> stopping_{false};
  std::mutex background_mutex_;
  std::function<void()> background_poll_;
  // The main thread parked in park_until, and what wakes it.
  std::mutex park_mutex_;
  std::condition_variable park_changed_;
  std::atomic<bool> parked_{false};
  const std::function<bool()>* park_ready_ = nullptr;
  std::thread thread_;

  std::mutex sends_mutex_;
  std::list<Send> sends_;  // stable addresses: MPI holds the buffers
  // Posted so far: counted by the progress thread, read by stop() on the main thread.
  std::atomic<std::uint64_t> records_posted_{0};
  std::mutex records_mutex_;              // a records message's posting against stop()'s last check
  bool records_closed_ = false;           // stop() has passed that check: post no more
  std::set<std::uint64_t> records_done_;  // received while an earlier one is in flight
  std::uint64_t records_contiguous_ = 0;
  std::list<WaitingForRecords> waiting_for_records_;  // progress thread only

  std::mutex orphans_mutex_;
  std::list<std::pair<int, int>> orphans_;
};

MpiRequest::~MpiRequest() {
  if (done_) return;
  if (data_request != MPI_REQUEST_NULL) {
    // The data lands in the caller's memory: it must not outlive this wait.
    try {
      wait_until(std::chrono::steady_clock::time_point::max());
    } catch (...) {
    }
    return;
  }
  if (!have_reply_) channel_.abandon(owner_, tag_);
}

bool MpiRequest::poll() {
  if (!have_reply_) {
    Bytes bytes;
    if (!channel_.poll_reply(owner_, tag_, bytes)) return false;
    have_reply_ = true;
    channel_.reply_received();
    request_frame::read_reply(bytes, code_, payload_);
    if (code_ != 0 && data_request != MPI_REQUEST_NULL) {
      MPI_Cancel(&data_request);
      MPI_Wait(&data_request, MPI_STATUS_IGNORE);
    }
  }
  if (data_request != MPI_REQUEST_NULL) {
    int done = 0;
    check_mpi(MPI_Test(&data_request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (!done) return false;
  }
  done_ = true;
  return true;
}

bool MpiRequest::wait_until(std::chrono::steady_clock::time_point deadline) {
  Backoff backoff;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (have_reply_ && data_request != MPI_REQUEST_NULL) {
      // The data is on its way: a sleeping receiver would stall a transfer that MPI
      // moves in pieces, each needing progress at both ends.
      std::this_thread::yield();
      continue;
    }
    channel_.idle(backoff);
  }
  return true;
}

}  // namespace

std::unique_ptr<RequestChannel> make_mpi_request_channel(int rank, int size, int thread_level) {
  std::string unavailable;
  if (thread_level < MPI_THREAD_MULTIPLE) {
    unavailable =
        "MPI_THREAD_MULTIPLE (a progress thread answers requests), but MPI was initialized "
        "by the host program with a lower thread level; initialize it with "
        "MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) or let parc::Runtime do it";
  }
  return std::make_unique<MpiRequestChannel>(rank, size, std::move(unavailable));
}

}  // namespace parc
