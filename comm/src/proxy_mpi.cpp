// The proxy service over MPI: a progress thread per rank answers requests to the objects
// this rank owns, whatever its main thread is doing, and sends the batched reference
// changes. Callers wait for their replies themselves (any thread: MPI_THREAD_MULTIPLE).
//
// Communicators (duplicates of MPI_COMM_WORLD):
//   requests_: requests (tag_request) and reference batches (tag_records), probed by the
//              owner's progress thread with MPI_ANY_SOURCE/MPI_ANY_TAG, so that one rank's
//              messages to an owner are handled in the order it sent them;
//   replies_:  a reply, tagged with the request's tag;
//   raw_:      the data of a raw read, tagged likewise, sent straight from the object's
//              memory into the reader's.

#include "mpi_endpoint.hpp"
#include "proxy_wire.hpp"

#include <parc/comm/backoff.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/proxy_service.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/monitor/flight_record.hpp>

#include <mpi.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>

namespace parc {

namespace {

using proxy_wire::Op;
using proxy_wire::Status;

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
  std::shared_ptr<OwnedObject> keep_alive;  // a raw read's source
  std::uint64_t records_seq = 0;            // non-zero for a reference batch
};

class MpiProxyService;

class MpiReply final : public PendingReply {
 public:
  MpiReply(MpiProxyService& service, ObjectId id, int tag)
      : service_(service), id_(id), tag_(tag) {}
  ~MpiReply() override;
  bool ready() override;
  bool wait_until(std::chrono::steady_clock::time_point deadline) override;
  Outcome wait() override;

  // A raw read: the data receive, posted before the request went out.
  MPI_Request data_request = MPI_REQUEST_NULL;

 private:
  friend class MpiProxyService;
  bool poll();
  MpiProxyService& service_;
  ObjectId id_;
  int tag_;
  bool have_reply_ = false;
  bool done_ = false;
  Status status_ = Status::ok;
  Outcome outcome_;
};

class MpiProxyService final : public ProxyService {
 public:
  MpiProxyService(int rank, int size, bool threads_allowed, std::string thread_problem)
      : rank_(rank), size_(size), enabled_(threads_allowed), problem_(std::move(thread_problem)) {
    for (MPI_Comm* comm : {&requests_, &replies_, &raw_}) {
      check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, comm), "MPI_Comm_dup");
    }
    void* value = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &found);
    tag_limit_ = found ? std::min(*static_cast<int*>(value), 1 << 24) : 32767;
    if (enabled_) thread_ = std::thread([this] { serve_loop(); });
  }

  ~MpiProxyService() override {
    if (thread_.joinable()) {
      stopping_ = true;
      thread_.join();
    }
    // Without stop() (an exception unwinding the runtime) the communicators stay: a peer
    // may still have messages in flight on them.
  }

  int rank() const override { return rank_; }
  int owners() const override { return size_; }

  ObjectId create(int owner, FactoryKind kind, Bytes arguments, Outcome& reply) override {
    check_owner(owner);
    if (owner == rank_) {
      ByteReader reader(arguments.data(), arguments.size());
      auto object = build(kind, reader, reply);
      if (!object) return {};
      reply = Outcome{true, object->describe()};
      return adopt(std::move(object));
    }
    Bytes request = header(Op::create, 0);
    request.push_back(static_cast<char>(kind));
    append(request, arguments.data(), arguments.size());
    Outcome outcome = send_request(owner, std::move(request), ObjectId{owner, 0})->wait();
    if (!outcome.ok) {
      reply = std::move(outcome);
      return {};
    }
    ByteReader reader(outcome.bytes.data(), outcome.bytes.size());
    const ObjectId id{owner, reader.read<std::uint64_t>()};
    const auto described = reader.take(reader.remaining());
    reply = Outcome{true, Bytes(described.begin(), described.end())};
    hold_new(id);
    return id;
  }

  std::unique_ptr<PendingReply> call(ObjectId id, Bytes request) override {
    check_owner(id.owner);
    Bytes message = header(Op::call, id.serial);
    append(message, request.data(), request.size());
    return send_request(id.owner, std::move(message), id);
  }

  std::unique_ptr<PendingReply> read_raw(ObjectId id, std::uint64_t begin, std::uint64_t end,
                                         char* destination, std::uint64_t bytes) override {
    check_owner(id.owner);
    const int count = checked_int(bytes, "a raw read");
    Bytes message = header(Op::raw, id.serial);
    ByteWriter writer(message);
    writer.write(begin);
    writer.write(end);
    writer.write(bytes);
    const int tag = next_tag();
    auto reply = std::make_unique<MpiReply>(*this, id, tag);
    // Posted first, so that the data lands in place however early it comes.
    check_mpi(MPI_Irecv(destination, count, MPI_BYTE, id.owner, tag, raw_, &reply->data_request),
              "MPI_Irecv");
    post_request(id.owner, tag, std::move(message));
    return reply;
  }

  std::uint64_t live_objects(int owner) override {
    check_owner(owner);
    // Every rank sends what it has queued and answers once its batches have been received
    // (synchronous sends), with how many it has posted in all. Applying them may release
    // objects that held proxies, which queues more: rounds repeat until none posts more.
    std::vector<std::uint64_t> posted(static_cast<std::size_t>(size_), ~std::uint64_t{0});
    for (bool changed = true; changed;) {
      std::vector<std::unique_ptr<PendingReply>> flushes;
      for (int r = 0; r < size_; ++r) {
        flushes.push_back(send_request(r, header(Op::flush, 0), ObjectId{r, 0}));
      }
      changed = false;
      for (int r = 0; r < size_; ++r) {
        Outcome outcome = flushes[static_cast<std::size_t>(r)]->wait();
        ByteReader reader(outcome.bytes.data(), outcome.bytes.size());
        const auto total = reader.read<std::uint64_t>();
        changed = changed || total != posted[static_cast<std::size_t>(r)];
        posted[static_cast<std::size_t>(r)] = total;
      }
    }
    Outcome outcome = send_request(owner, header(Op::count, 0), ObjectId{owner, 0})->wait();
    ByteReader reader(outcome.bytes.data(), outcome.bytes.size());
    return reader.read<std::uint64_t>();
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    Backoff backoff;
    if (enabled_) {
      // Every reply this rank waits for, and every reference change it queued, first.
      while (outstanding_.load() > 0 || has_outgoing() || record_sends_pending()) {
        backoff.pause();
      }
    }
    // Then every rank: no request or batch is in flight anywhere once all are here.
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
    take_all_objects();
    for (MPI_Comm* comm : {&requests_, &replies_, &raw_}) MPI_Comm_free(comm);
  }

  // --- used by MpiReply ---
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
  // proxy of its own must not stop this rank from answering), others back off.
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

 protected:
  bool keeps(int owner) const override { return owner == rank_; }

 private:
  void check_owner(int owner) const {
    if (!enabled_) throw UsageError(problem_);
    if (stopped_) throw UsageError(stopped_message);
    if (owner < 0 || owner >= size_) {
      throw UsageError("parc: owner rank " + std::to_string(owner) +
                       " does not exist: the job has " + std::to_string(size_) + " ranks (0-" +
                       std::to_string(size_ - 1) + ")");
    }
  }

  Bytes header(Op op, std::uint64_t serial) {
    Bytes bytes;
    bytes.push_back(static_cast<char>(op));
    ByteWriter(bytes).write(serial);
    return bytes;
  }

  int next_tag() {
    return 1 + static_cast<int>(tag_counter_++ % static_cast<unsigned>(tag_limit_));
  }

  std::unique_ptr<PendingReply> send_request(int owner, Bytes message, ObjectId id) {
    const int tag = next_tag();
    auto reply = std::make_unique<MpiReply>(*this, id, tag);
    post_request(owner, tag, std::move(message));
    return reply;
  }

  // The request carries its reply tag in front of the header.
  void post_request(int owner, int tag, Bytes message) {
    Bytes framed(sizeof(std::int32_t));
    const auto tag32 = static_cast<std::int32_t>(tag);
    std::memcpy(framed.data(), &tag32, sizeof tag32);
    append(framed, message.data(), message.size());
    ++outstanding_;
    post(owner, requests_, tag_request, std::move(framed));
  }

  void post(int dest, MPI_Comm comm, int tag, Bytes bytes,
            std::shared_ptr<OwnedObject> keep_alive = nullptr, const char* data = nullptr,
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

  void reply(int dest, int tag, Status status, const Bytes& payload) {
    Bytes bytes;
    bytes.reserve(1 + payload.size());
    bytes.push_back(static_cast<char>(status));
    append(bytes, payload.data(), payload.size());
    post(dest, replies_, tag, std::move(bytes));
  }
  void reply_text(int dest, int tag, Status status, const std::string& text) {
    reply(dest, tag, status, Bytes(text.begin(), text.end()));
  }

  bool park_until(const std::function<bool()>& ready) override {
    if (!enabled_ || stopping_.load()) return false;
    std::unique_lock lock(park_mutex_);
    park_ready_ = &ready;
    parked_.store(true);
    park_changed_.wait(lock, [&] { return !parked_.load() || stopping_.load(); });
    parked_.store(false);
    park_ready_ = nullptr;
    return true;
  }

  bool runs_progress_thread() const override { return enabled_; }

  bool set_background_poll(std::function<void()> poll) override {
    if (!enabled_) return false;
    std::lock_guard lock(background_mutex_);
    background_poll_ = std::move(poll);
    return true;
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

  // One round: requests that came, queued reference changes, replies nobody waits for,
  // finished sends. True when something happened or is still in flight.
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
          apply_records(decode_records(*bytes, status.MPI_SOURCE));
        } else {
          serve_request(status.MPI_SOURCE, bytes);
        }
      } catch (const std::exception& e) {
        // Too short to name its reply tag, or a batch cut short: nobody waits for an
        // answer, and the thread must go on serving the others.
        log().error("dropped a malformed proxy message ({} bytes) from rank {}: {}", count,
                    status.MPI_SOURCE, e.what());
      }
      active = true;
    }
    active = post_outgoing() || active;
    active = drain_orphans() || active;
    active = reap_sends() || active;
    answer_flushes();
    return active;
  }

  bool post_outgoing() {
    auto batches = take_outgoing();
    for (auto& [owner, records] : batches) {
      post(owner, requests_, tag_records, encode_records(records), nullptr, nullptr, -1,
           ++record_batches_);
    }
    return !batches.empty();
  }

  void serve_request(int source, const std::shared_ptr<Bytes>& bytes) {
    struct Serving {  // in the flight record while this request is handled
      explicit Serving(int requester) : outer(flight::note_serving(requester)) {}
      ~Serving() { flight::note_serving(outer); }
      int outer;
    } serving(source);
    ByteReader reader(bytes->data(), bytes->size(), bytes);
    const int tag = proxy_wire::read_request_tag(reader);
    try {
      const auto [op, serial] = proxy_wire::read_request(reader, source);
      switch (op) {
        case Op::create: {
          const auto kind = proxy_wire::read_factory_kind(reader, source);
          Outcome failure;
          auto object = build(kind, reader, failure);
          if (!object) {
            reply(source, tag, Status::failed, failure.bytes);
            return;
          }
          const Bytes described = object->describe();
          Bytes payload;
          ByteWriter(payload).write(keep(std::move(object), rank_));
          append(payload, described.data(), described.size());
          reply(source, tag, Status::ok, payload);
          return;
        }
        case Op::call: {
          auto object = find(serial);
          if (!object) {
            reply(source, tag, Status::released, {});
            return;
          }
          trace::Span span(trace::Category::proxy, rank_, "proxy call");
          span.set_peer(source);
          Outcome outcome = object->handle(reader);
          reply(source, tag, outcome.ok ? Status::ok : Status::failed, outcome.bytes);
          return;
        }
        case Op::raw:
          serve_raw(source, tag, serial, reader);
          return;
        case Op::flush: {
          post_outgoing();
          flushes_.push_back({source, tag, record_batches_});
          return;
        }
        case Op::count: {
          Bytes payload;
          ByteWriter(payload).write(count_kept(rank_));
          reply(source, tag, Status::ok, payload);
          return;
        }
      }
      reply_text(source, tag, Status::error,
                 "parc: unknown proxy request " + std::to_string(static_cast<int>(op)));
    } catch (const std::exception& e) {
      reply_text(source, tag, Status::error, e.what());
    }
  }

  void serve_raw(int source, int tag, std::uint64_t serial, ByteReader& reader) {
    const auto [begin, end, bytes] = proxy_wire::read_raw_request(reader);
    auto object = find(serial);
    if (!object) {
      reply(source, tag, Status::released, {});
      return;
    }
    const auto view = object->raw_view();
    if (!view || end > view->rows || begin > end || (end - begin) * view->row_bytes != bytes) {
      reply_text(source, tag, Status::error,
                 "parc: the raw read does not match the object's memory (rows " +
                     std::to_string(begin) + "-" + std::to_string(end) + " of " +
                     std::to_string(view ? view->rows : 0) + ")");
      return;
    }
    reply(source, tag, Status::ok, {});
    post(source, raw_, tag, {}, std::move(object), view->data + begin * view->row_bytes,
         static_cast<int>(bytes));
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
    // Folded at once, not when a flush asks: else the set keeps a node per batch ever sent.
    while (records_done_.erase(records_contiguous_ + 1) != 0) ++records_contiguous_;
    return !sends_.empty();
  }

  // The last batch received by its owner with all before it.
  std::uint64_t records_received_up_to() {
    std::lock_guard lock(sends_mutex_);
    return records_contiguous_;
  }

  bool record_sends_pending() { return records_received_up_to() < record_batches_.load(); }

  void answer_flushes() {
    if (flushes_.empty()) return;
    const auto received = records_received_up_to();
    for (auto it = flushes_.begin(); it != flushes_.end();) {
      if (it->batches > received) {
        ++it;
        continue;
      }
      Bytes payload;
      ByteWriter(payload).write(record_batches_.load());
      reply(it->source, it->tag, Status::ok, payload);
      it = flushes_.erase(it);
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

  struct Flush {
    int source;
    int tag;
    std::uint64_t batches;  // answered once these have been received
  };

  int rank_;
  int size_;
  bool enabled_;
  std::string problem_;
  MPI_Comm requests_ = MPI_COMM_NULL;
  MPI_Comm replies_ = MPI_COMM_NULL;
  MPI_Comm raw_ = MPI_COMM_NULL;
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
  std::atomic<bool> stopped_{false};
  std::thread thread_;

  std::mutex sends_mutex_;
  std::list<Send> sends_;  // stable addresses: MPI holds the buffers
  // Posted so far: counted by the progress thread, read by stop() on the main thread.
  std::atomic<std::uint64_t> record_batches_{0};
  std::set<std::uint64_t> records_done_;  // received while an earlier one is in flight
  std::uint64_t records_contiguous_ = 0;
  std::list<Flush> flushes_;  // progress thread only

  std::mutex orphans_mutex_;
  std::list<std::pair<int, int>> orphans_;
};

MpiReply::~MpiReply() {
  if (done_) return;
  if (data_request != MPI_REQUEST_NULL) {
    // The data lands in the caller's memory: it must not outlive this wait.
    try {
      wait();
    } catch (...) {
    }
    return;
  }
  if (!have_reply_) service_.abandon(id_.owner, tag_);
}

bool MpiReply::poll() {
  if (!have_reply_) {
    Bytes bytes;
    if (!service_.poll_reply(id_.owner, tag_, bytes)) return false;
    have_reply_ = true;
    service_.reply_received();
    try {
      status_ = proxy_wire::reply_status(bytes, id_.owner);
      if (!bytes.empty()) outcome_.bytes.assign(bytes.begin() + 1, bytes.end());
    } catch (const DecodeError& e) {  // wait() throws it as a ProxyError
      status_ = Status::error;
      const std::string what = e.what();
      outcome_.bytes.assign(what.begin(), what.end());
    }
    outcome_.ok = status_ == Status::ok;
    if (status_ != Status::ok && data_request != MPI_REQUEST_NULL) {
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

bool MpiReply::ready() { return done_ || poll(); }

bool MpiReply::wait_until(std::chrono::steady_clock::time_point deadline) {
  Backoff backoff;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (have_reply_ && data_request != MPI_REQUEST_NULL) {
      // The data is on its way: a sleeping receiver would stall a transfer that MPI
      // moves in pieces, each needing progress at both ends.
      std::this_thread::yield();
      continue;
    }
    service_.idle(backoff);
  }
  return true;
}

Outcome MpiReply::wait() {
  wait_until(std::chrono::steady_clock::time_point::max());
  switch (status_) {
    case Status::ok:
    case Status::failed:
      return std::move(outcome_);
    case Status::released:
      throw ProxyError(ProxyService::released_message(id_));
    case Status::error:
      break;
  }
  throw ProxyError(std::string(outcome_.bytes.begin(), outcome_.bytes.end()));
}

}  // namespace

std::unique_ptr<ProxyService> make_mpi_proxy_service(int rank, int size, int thread_level) {
  std::string problem;
  if (thread_level < MPI_THREAD_MULTIPLE) {
    problem =
        "parc: proxies need MPI_THREAD_MULTIPLE (a progress thread answers requests), but MPI "
        "was initialized by the host program with a lower thread level; initialize it with "
        "MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) or let parc::Runtime do it";
  }
  return std::make_unique<MpiProxyService>(rank, size, problem.empty(), problem);
}

}  // namespace parc
