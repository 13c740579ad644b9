#include "mpi_endpoint.hpp"

#include <parc/comm/backoff.hpp>
#include <parc/comm/detail/region_wire.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace parc {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("parc: ") + what + " failed: " + std::string(text, length));
}

namespace {

struct PendingSend {
  Bytes frame;  // a whole frame (without tails)
  MPI_Request request = MPI_REQUEST_NULL;
  // A part of a frame with tails, sent as a message of its own: the tail's owner, or the
  // frame's buffer for a part of it.
  std::shared_ptr<const void> part;
  std::int64_t traced_since = -1;  // a large message's post time, for its trace event
  std::size_t bytes = 0;
  int from = -1;
  int dest = -1;
};

// The tag of every message of a frame after its first (its tails, and the parts of its
// buffer between and after them): they follow the first from the same sender on the same
// communicator, so MPI's ordering matches them to the frame just received (kinds are
// 1..10).
constexpr int tail_tag = 64;
using SendList = std::list<PendingSend>;  // stable addresses: MPI holds the buffers

// A large send (a frame, or a part of one), from its post until this rank saw it complete.
void trace_send(const PendingSend& send) {
  trace::Event event;
  event.category = trace::Category::message;
  event.rank = send.from;
  event.start_ns = send.traced_since;
  event.duration_ns = trace::now_ns() - send.traced_since;
  event.peer = send.dest;
  event.bytes = static_cast<std::int64_t>(send.bytes);
  event.name = "send";
  trace::record(std::move(event));
}

// Drops the sends that have completed. Never throws (it runs in destructors; MPI errors
// abort under the default error handler anyway).
void reap(SendList& sends) {
  for (auto it = sends.begin(); it != sends.end();) {
    int done = 0;
    MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
    if (done && it->traced_since >= 0) trace_send(*it);
    it = done ? sends.erase(it) : std::next(it);
  }
}

// Every buffer a region's MPI operations read or write. A cancelled region leaves
// operations pending that MPI may still progress (in any later MPI call), so they must
// outlive the region: callers' data is copied in and out rather than handed to MPI.
struct RegionBuffers {
  Bytes send;
  Bytes recv;
  std::uint64_t size_word = 0;
  std::vector<std::uint64_t> sizes;
  std::vector<int> counts;
  std::vector<int> displacements;
};

// One MPI collective as this rank posted it: what a rank that never reached it must post
// at shutdown for it to complete (see MpiEndpoint::settle).
enum class CollectiveKind : std::uint8_t {
  barrier,
  bcast_size,
  bcast,
  gather_size,
  gatherv,
  allgather_size,
  allgatherv,
  scatter_size,
  scatterv,
  allreduce,
  reduce,
};

struct PostedCollective {
  std::uint64_t number = 0;  // 1, 2, ... in the region's order
  CollectiveKind kind = CollectiveKind::barrier;
  std::int32_t root = 0;
  std::int32_t count = 0;  // bytes or elements; a gatherv's or scatterv's: this rank's part
  std::uint8_t type = 0;   // ScalarType and ReduceOp of a reduction
  std::uint8_t op = 0;
  std::vector<int> counts;  // every rank's part, where this rank knows them (v-variants)
};

// Completing one of these locally means every rank posted it: nobody needs the log up to it.
bool synchronizes(CollectiveKind kind) {
  return kind == CollectiveKind::barrier || kind == CollectiveKind::allgather_size ||
         kind == CollectiveKind::allgatherv || kind == CollectiveKind::allreduce;
}

// What a region left on this rank that may still need peers: its communicator, counts and
// log for settling (MpiEndpoint::settle), and what its pending operations use.
struct RegionState {
  std::uint64_t id = 0;
  std::vector<int> members;
  int rank = -1;
  MPI_Comm comm = MPI_COMM_NULL;
  std::uint64_t posted = 0;  // collectives
  std::vector<PostedCollective> log;
  std::vector<std::uint64_t> sent;         // messages, per region rank
  std::vector<std::uint64_t> received;     // the same, with a receive under way
  MPI_Request pending = MPI_REQUEST_NULL;  // the operation it was waiting in
  std::unique_ptr<RegionBuffers> buffers;
  SendList sends;
};

// Keeps what unsettled regions left behind for the rest of the process: their pending
// operations may never complete, so there is no moment at which freeing would be safe.
void bury(RegionState state) {
  struct Graveyard {
    std::mutex mutex;
    std::vector<std::unique_ptr<RegionBuffers>> buffers;
    SendList sends;
  };
  static auto* graveyard = new Graveyard;  // never destroyed: MPI may finalize after us
  std::lock_guard lock(graveyard->mutex);
  // state.pending is left as it is: MPI does not let a collective's request be freed.
  for (auto& pending : state.sends) MPI_Request_free(&pending.request);
  graveyard->buffers.push_back(std::move(state.buffers));
  graveyard->sends.splice(graveyard->sends.end(), state.sends);
}

MPI_Datatype mpi_type(ScalarType type) {
  switch (type) {
    case ScalarType::i8:
      return MPI_INT8_T;
    case ScalarType::u8:
      return MPI_UINT8_T;
    case ScalarType::i16:
      return MPI_INT16_T;
    case ScalarType::u16:
      return MPI_UINT16_T;
    case ScalarType::i32:
      return MPI_INT32_T;
    case ScalarType::u32:
      return MPI_UINT32_T;
    case ScalarType::i64:
      return MPI_INT64_T;
    case ScalarType::u64:
      return MPI_UINT64_T;
    case ScalarType::f32:
      return MPI_FLOAT;
    case ScalarType::f64:
      return MPI_DOUBLE;
  }
  throw UsageError("parc: unknown scalar type " + std::to_string(static_cast<int>(type)));
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return MPI_SUM;
    case ReduceOp::prod:
      return MPI_PROD;
    case ReduceOp::min:
      return MPI_MIN;
    case ReduceOp::max:
      return MPI_MAX;
  }
  throw UsageError("parc: unknown reduction " + std::to_string(static_cast<int>(op)));
}

// MPI counts are ints.
int checked_count(std::uint64_t count, const char* operation, const char* what,
                  const char* unit = "bytes") {
  if (count > static_cast<std::uint64_t>(INT_MAX)) {
    throw UsageError(std::string("parc: region ") + operation + ": " + what + " (" +
                     std::to_string(count) + " " + unit + ") exceeds the limit of " +
                     std::to_string(INT_MAX) + " " + unit + " of one MPI operation");
  }
  return static_cast<int>(count);
}

// Fills counts and displacements for the v-variants; the total must fit an int too,
// because displacements are ints.
int layout(const std::vector<std::uint64_t>& sizes, RegionBuffers& buffers, const char* operation) {
  std::uint64_t total = 0;
  for (auto size : sizes) total += size;
  checked_count(total, operation, "the data of all ranks together");
  buffers.counts.resize(sizes.size());
  buffers.displacements.resize(sizes.size());
  int offset = 0;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    buffers.counts[r] = static_cast<int>(sizes[r]);
    buffers.displacements[r] = offset;
    offset += buffers.counts[r];
  }
  return offset;
}

std::vector<Bytes> split(const RegionBuffers& buffers) {
  std::vector<Bytes> parts;
  parts.reserve(buffers.counts.size());
  for (std::size_t r = 0; r < buffers.counts.size(); ++r) {
    const char* begin = buffers.recv.data() + buffers.displacements[r];
    parts.emplace_back(begin, begin + buffers.counts[r]);
  }
  return parts;
}

// Tests before the first back-off pause: a few microseconds, so that short collectives
// (allreduce of a scalar on shared memory) complete without reading the clock.
constexpr int spin_tests = 128;
constexpr auto poll_interval = std::chrono::milliseconds(1);
// A scatter size that tells every rank the root's parts were too large together.
constexpr std::uint64_t too_large = ~std::uint64_t{0};

class MpiEndpoint;

class MpiRegion : public RegionComm {
 public:
  MpiRegion(MpiEndpoint& endpoint, std::uint64_t id, std::vector<int> members, int rank,
            MPI_Comm comm, std::function<void()> poll)
      : endpoint_(endpoint),
        id_(id),
        members_(std::move(members)),
        rank_(rank),
        comm_(comm),
        poll_(std::move(poll)) {}

  ~MpiRegion() override;

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }

  void barrier() override {
    begin();
    record(CollectiveKind::barrier);
    check_mpi(MPI_Ibarrier(comm_, &request_), "MPI_Ibarrier");
    wait();
  }

  Bytes bcast(Bytes data, int root) override {
    check_rank(root, "bcast", "root");
    begin();
    RegionBuffers& b = *buffers_;
    if (rank_ == root) {
      b.recv = std::move(data);
      b.size_word = b.recv.size();
    }
    record(CollectiveKind::bcast_size, root);
    check_mpi(MPI_Ibcast(&b.size_word, 1, MPI_UINT64_T, root, comm_, &request_), "MPI_Ibcast");
    wait();
    const int count = checked_count(b.size_word, "bcast", "the root's data");
    if (count == 0) return {};
    if (rank_ != root) b.recv.resize(b.size_word);
    record(CollectiveKind::bcast, root, count);
    check_mpi(MPI_Ibcast(b.recv.data(), count, MPI_BYTE, root, comm_, &request_), "MPI_Ibcast");
    wait();
    return std::move(b.recv);
  }

  std::vector<Bytes> gather(Bytes data, int root) override {
    check_rank(root, "gather", "root");
    begin();
    RegionBuffers& b = *buffers_;
    b.send = std::move(data);
    b.size_word = b.send.size();
    if (rank_ == root) b.sizes.resize(members_.size());
    record(CollectiveKind::gather_size, root);
    check_mpi(MPI_Igather(&b.size_word, 1, MPI_UINT64_T, b.sizes.data(), 1, MPI_UINT64_T, root,
                          comm_, &request_),
              "MPI_Igather");
    wait();
    int count = 0;
    try {
      count = checked_count(b.size_word, "gather", "this rank's data");
      if (rank_ == root) b.recv.resize(static_cast<std::size_t>(layout(b.sizes, b, "gather")));
    } catch (const UsageError& e) {
      // Only some ranks see this, the others go on into the gather: the region is out
      // of step for good.
      cancel(e.what());
      throw;
    }
    record(CollectiveKind::gatherv, root, count, rank_ == root ? b.counts : std::vector<int>{});
    check_mpi(MPI_Igatherv(b.send.data(), count, MPI_BYTE, b.recv.data(), b.counts.data(),
                           b.displacements.data(), MPI_BYTE, root, comm_, &request_),
              "MPI_Igatherv");
    wait();
    if (rank_ != root) return {};
    return split(b);
  }

  std::vector<Bytes> allgather(Bytes data) override {
    begin();
    RegionBuffers& b = *buffers_;
    b.send = std::move(data);
    b.size_word = b.send.size();
    b.sizes.resize(members_.size());
    record(CollectiveKind::allgather_size);
    check_mpi(MPI_Iallgather(&b.size_word, 1, MPI_UINT64_T, b.sizes.data(), 1, MPI_UINT64_T, comm_,
                             &request_),
              "MPI_Iallgather");
    wait();
    const int total = layout(b.sizes, b, "allgather");  // the same verdict on every rank
    b.recv.resize(static_cast<std::size_t>(total));
    if (total > 0) {
      record(CollectiveKind::allgatherv, 0, 0, b.counts);
      check_mpi(
          MPI_Iallgatherv(b.send.data(), static_cast<int>(b.send.size()), MPI_BYTE, b.recv.data(),
                          b.counts.data(), b.displacements.data(), MPI_BYTE, comm_, &request_),
          "MPI_Iallgatherv");
      wait();
    }
    return split(b);
  }

  Bytes scatter(std::vector<Bytes> parts, int root) override {
    check_rank(root, "scatter", "root");
    if (rank_ == root && parts.size() != members_.size()) {
      throw UsageError("parc: region scatter: the root gave " + std::to_string(parts.size()) +
                       " parts for " + std::to_string(members_.size()) + " ranks");
    }
    begin();
    RegionBuffers& b = *buffers_;
    if (rank_ == root) {
      b.sizes.clear();
      std::uint64_t total = 0;
      for (const auto& part : parts) {
        b.sizes.push_back(part.size());
        total += part.size();
      }
      if (total > static_cast<std::uint64_t>(INT_MAX)) {
        std::fill(b.sizes.begin(), b.sizes.end(), too_large);  // every rank throws below
      }
    }
    record(CollectiveKind::scatter_size, root);
    check_mpi(MPI_Iscatter(b.sizes.data(), 1, MPI_UINT64_T, &b.size_word, 1, MPI_UINT64_T, root,
                           comm_, &request_),
              "MPI_Iscatter");
    wait();
    if (b.size_word == too_large) {
      throw UsageError("parc: region scatter: the root's parts together exceed the limit of " +
                       std::to_string(INT_MAX) + " bytes of one MPI operation");
    }
    if (rank_ == root) {
      layout(b.sizes, b, "scatter");
      b.send.clear();
      for (const auto& part : parts) append(b.send, part.data(), part.size());
    }
    b.recv.resize(b.size_word);
    record(CollectiveKind::scatterv, root, static_cast<int>(b.size_word),
           rank_ == root ? b.counts : std::vector<int>{});
    check_mpi(MPI_Iscatterv(b.send.data(), b.counts.data(), b.displacements.data(), MPI_BYTE,
                            b.recv.data(), static_cast<int>(b.size_word), MPI_BYTE, root, comm_,
                            &request_),
              "MPI_Iscatterv");
    wait();
    return std::move(b.recv);
  }

  void allreduce(void* data, std::size_t count, ScalarType type, ReduceOp op) override {
    const MPI_Datatype datatype = mpi_type(type);
    const MPI_Op mpi_reduction = mpi_op(op);
    const int elements = checked_count(count, "allreduce", "the count", "elements");
    begin();
    const std::size_t bytes = count * scalar_size(type);
    Bytes& buffer = buffers_->send;
    buffer.resize(bytes);
    if (bytes > 0) std::memcpy(buffer.data(), data, bytes);
    record(CollectiveKind::allreduce, 0, elements, {}, static_cast<std::uint8_t>(type),
           static_cast<std::uint8_t>(op));
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), elements, datatype, mpi_reduction, comm_,
                             &request_),
              "MPI_Iallreduce");
    wait();
    if (bytes > 0) std::memcpy(data, buffer.data(), bytes);
  }

  void reduce(void* data, std::size_t count, ScalarType type, ReduceOp op, int root) override {
    check_rank(root, "reduce", "root");
    const MPI_Datatype datatype = mpi_type(type);
    const MPI_Op mpi_reduction = mpi_op(op);
    const int elements = checked_count(count, "reduce", "the count", "elements");
    begin();
    const std::size_t bytes = count * scalar_size(type);
    Bytes& buffer = buffers_->send;
    buffer.resize(bytes);
    if (bytes > 0) std::memcpy(buffer.data(), data, bytes);
    record(CollectiveKind::reduce, root, elements, {}, static_cast<std::uint8_t>(type),
           static_cast<std::uint8_t>(op));
    check_mpi(MPI_Ireduce(rank_ == root ? MPI_IN_PLACE : buffer.data(),
                          rank_ == root ? buffer.data() : nullptr, elements, datatype,
                          mpi_reduction, root, comm_, &request_),
              "MPI_Ireduce");
    wait();
    if (rank_ == root && bytes > 0) std::memcpy(data, buffer.data(), bytes);
  }

  void send(Bytes data, int dest, int tag) override {
    check_rank(dest, "send", "dest");
    check_tag(tag, "send");
    const int count = checked_count(data.size(), "send", "the message");
    begin();
    reap(sends_);
    sends_.push_back(PendingSend{std::move(data), MPI_REQUEST_NULL, nullptr});
    PendingSend& pending = sends_.back();
    const int code =
        MPI_Isend(pending.frame.data(), count, MPI_BYTE, dest, tag, comm_, &pending.request);
    if (code != MPI_SUCCESS) sends_.pop_back();
    check_mpi(code, "MPI_Isend");
    ++sent_[{dest, tag}];
  }

  Bytes recv(int source, int tag) override {
    check_rank(source, "recv", "source");
    check_tag(tag, "recv");
    begin();
    MPI_Message message;
    MPI_Status status;
    waiting_for_ = Waiting{false, source, tag};
    wait_until([&] {
      int found = 0;
      check_mpi(MPI_Improbe(source, tag, comm_, &found, &message, &status), "MPI_Improbe");
      return found != 0;
    });
    int count = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    // Received through a request too: a large message needs its sender to progress.
    Bytes& buffer = buffers_->recv;
    buffer.resize(static_cast<std::size_t>(count));
    check_mpi(MPI_Imrecv(buffer.data(), count, MPI_BYTE, &message, &request_), "MPI_Imrecv");
    waiting_for_ = Waiting{};
    ++received_[{source, tag}];  // matched: a settle must not wait for it again
    complete();
    return std::move(buffer);
  }

  void cancel(const std::string& reason) override {
    std::lock_guard lock(mutex_);
    if (cancelled_.load(std::memory_order_relaxed)) return;  // the first reason wins
    reason_ = reason;
    cancelled_.store(true, std::memory_order_release);
  }

  void cancel_all(const std::string& reason) override;
  void finish() override;

  std::vector<std::uint64_t> messages_sent() const override { return totals(sent_); }
  std::vector<std::uint64_t> messages_received() const override { return totals(received_); }

  void peer_finished(int rank, std::uint64_t collectives,
                     const std::map<int, std::uint64_t>& sends) override {
    finished_[rank] = Finished{collectives, sends};
  }

  bool cancelled() const override { return cancelled_.load(std::memory_order_acquire); }

 private:
  using Clock = std::chrono::steady_clock;

  std::string reason() const {
    std::lock_guard lock(mutex_);
    return reason_;
  }

  // Every operation starts here: a cancelled region is abandoned for good.
  void begin() const {
    if (cancelled()) throw CancelledError(reason());
  }

  void check_rank(int rank, const char* operation, const char* what) const {
    check_region_rank(rank, size(), operation, what);
  }

  static void check_tag(int tag, const char* operation) { check_region_tag(tag, operation); }

  // Notes the collective about to be posted, for settling an abandoned region.
  void record(CollectiveKind kind, int root = 0, int count = 0, std::vector<int> counts = {},
              std::uint8_t type = 0, std::uint8_t op = 0) {
    log_.push_back({collectives_ + 1, kind, root, count, type, op, std::move(counts)});
  }

  // The collective just posted; its number lets a wait see that a peer which returned
  // never entered it.
  void wait() {
    ++collectives_;
    waiting_for_ = Waiting{true, -1, 0};
    complete();
    if (synchronizes(log_.back().kind)) log_.clear();  // every rank posted it
  }

  // Waits for request_: left pending (for MpiEndpoint::settle) if the wait throws.
  void complete() {
    wait_until([&] {
      int done = 0;
      check_mpi(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test");
      return done != 0;
    });
  }

  // Calls `done` until it returns true: a short spin first (no clock, no poll), then
  // with back-off, reaping sends and polling about every millisecond. Anything thrown
  // abandons the region, since the operation under way is left pending.
  template <class Done>
  void wait_until(Done done) {
    try {
      for (int i = 0; i < spin_tests; ++i) {
        if (done()) return;
      }
      Backoff backoff;
      auto last_poll = Clock::now();
      // Read the clock every 8 tests while they come fast (spinning, yielding); once
      // past the first poll the back-off sleeps between tests and a clock read is cheap.
      unsigned clock_mask = 7;
      for (unsigned n = 1;; ++n) {
        begin();
        if (!finished_.empty()) check_not_deserted();
        backoff.pause();
        if (done()) return;
        if ((n & clock_mask) == 0) {
          reap(sends_);
          if (Clock::now() - last_poll >= poll_interval) {
            if (poll_) poll_();
            last_poll = Clock::now();
            clock_mask = 0;
          }
        }
      }
    } catch (const std::exception& e) {
      cancel(e.what());  // keeps an earlier reason
      throw;
    } catch (...) {
      cancel("parc: a region operation was interrupted");
      throw;
    }
  }

  // Messages per region rank, over every tag.
  std::vector<std::uint64_t> totals(
      const std::map<std::pair<int, int>, std::uint64_t>& counts) const {
    std::vector<std::uint64_t> per_rank(members_.size(), 0);
    for (const auto& [key, count] : counts) per_rank[static_cast<std::size_t>(key.first)] += count;
    return per_rank;
  }

  // Throws when the wait under way waits for a peer that returned without entering it.
  void check_not_deserted() const {
    if (waiting_for_.collective) {
      for (const auto& [rank, finished] : finished_) {
        if (finished.collectives < collectives_) {
          throw region_rank_returned_before_collective(rank, finished.collectives, collectives_);
        }
      }
    } else if (waiting_for_.source >= 0) {
      auto it = finished_.find(waiting_for_.source);
      if (it == finished_.end()) return;
      auto sent = it->second.sends.find(waiting_for_.tag);
      const std::uint64_t promised = sent == it->second.sends.end() ? 0 : sent->second;
      auto got = received_.find({waiting_for_.source, waiting_for_.tag});
      if ((got == received_.end() ? 0 : got->second) >= promised) {
        throw region_rank_returned_without_sending(waiting_for_.source, waiting_for_.tag);
      }
    }
  }

  struct Waiting {
    bool collective = false;
    int source = -1;  // a recv's; -1: none
    int tag = 0;
  };
  struct Finished {
    std::uint64_t collectives;
    std::map<int, std::uint64_t> sends;  // to this rank, by tag
  };

  MpiEndpoint& endpoint_;
  const std::uint64_t id_;
  const std::vector<int> members_;  // world ranks, in region-rank order
  const int rank_;
  MPI_Comm comm_;
  std::function<void()> poll_;
  std::unique_ptr<RegionBuffers> buffers_ = std::make_unique<RegionBuffers>();
  MPI_Request request_ = MPI_REQUEST_NULL;  // the operation under way
  std::vector<PostedCollective> log_;       // since the last one that synchronizes
  SendList sends_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::string reason_;
  bool announced_ = false;  // cancel_all sent its messages
  // Who returned, and what this rank did, so that waiting for a rank that returned fails
  // instead of hanging (see RegionComm::finish).
  std::uint64_t collectives_ = 0;
  Waiting waiting_for_;
  std::map<std::pair<int, int>, std::uint64_t> sent_;      // (dest, tag) -> messages
  std::map<std::pair<int, int>, std::uint64_t> received_;  // (source, tag) -> messages
  std::map<int, Finished> finished_;                       // region rank -> what it did
};

class MpiEndpoint : public Endpoint {
 public:
  MpiEndpoint(int rank, int size) : rank_(rank), size_(size) {
    for (auto& comm : comms_) check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &region_parent_), "MPI_Comm_dup");
    // A failed region operation (or creation) must become that region's error, not end
    // the job; regions' communicators inherit this.
    MPI_Comm_set_errhandler(region_parent_, MPI_ERRORS_RETURN);
  }

  ~MpiEndpoint() override {
    // Sends still in flight at shutdown go to ranks that no longer read them.
    for (auto& pending : pending_) MPI_Request_free(&pending.request);
    for (auto& comm : comms_) MPI_Comm_free(&comm);
    if (kept_.comm != MPI_COMM_NULL) MPI_Comm_free(&kept_.comm);
    for (auto& state : abandoned_) bury(std::move(state));  // settle() did not complete them
    MPI_Comm_free(&region_parent_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  using Endpoint::send;
  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) override {
    finish_frame(frame, kind);
    if (traffic == Traffic::steal) {  // see Traffic: no pending list shared between threads
      check_mpi(MPI_Send(frame.data(), static_cast<int>(frame.size()), MPI_BYTE, dest,
                         static_cast<int>(kind), comm(traffic)),
                "MPI_Send");
      return;
    }
    pending_.push_back(PendingSend{std::move(frame), MPI_REQUEST_NULL, nullptr});
    PendingSend& pending = pending_.back();
    pending.bytes = pending.frame.size();
    if (trace::enabled && pending.frame.size() >= trace::message_event_bytes) {
      pending.traced_since = trace::now_ns();
      pending.from = rank_;
      pending.dest = dest;
    }
    check_mpi(MPI_Isend(pending.frame.data(), static_cast<int>(pending.frame.size()), MPI_BYTE,
                        dest, static_cast<int>(kind), comm(traffic), &pending.request),
              "MPI_Isend");
  }

  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame, Splices tails) override {
    std::erase_if(tails, [](const Splice& splice) { return splice.tail.size == 0; });
    if (tails.empty()) {
      send(traffic, dest, kind, std::move(frame));
      return;
    }
    std::size_t at = sizeof(FrameHeader);
    for (const Splice& splice : tails) {
      if (splice.at < at || splice.at > frame.size()) {
        throw std::logic_error("parc: a frame's tails are out of order or outside its buffer");
      }
      at = splice.at;
      if (splice.tail.size > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw UsageError("parc: a message of " + std::to_string(splice.tail.size) +
                         " bytes is larger than MPI's count limit (2 GiB): split the data");
      }
    }
    finish_frame(frame, kind, spliced_size(tails));
    // The frame's first part goes on the kind's tag; every part after it (each tail, and
    // the buffer's bytes between and after them) as a message of its own on tail_tag,
    // each straight from where it lies: contiguous, so MPI moves it without packing (a
    // single copy within a node).
    auto buffer = std::make_shared<const Bytes>(std::move(frame));
    int tag = static_cast<int>(kind);
    const auto post = [&](const char* data, std::size_t size, std::shared_ptr<const void> part) {
      pending_.push_back(PendingSend{Bytes{}, MPI_REQUEST_NULL, std::move(part)});
      PendingSend& pending = pending_.back();
      pending.bytes = size;
      if (trace::enabled && size >= trace::message_event_bytes) {
        pending.traced_since = trace::now_ns();
        pending.from = rank_;
        pending.dest = dest;
      }
      check_mpi(MPI_Isend(data, static_cast<int>(size), MPI_BYTE, dest, tag, comm(traffic),
                          &pending.request),
                "MPI_Isend");
      tag = tail_tag;
    };
    std::size_t from = 0;
    for (Splice& splice : tails) {
      if (splice.at > from) post(buffer->data() + from, splice.at - from, buffer);
      post(splice.tail.data, splice.tail.size, std::move(splice.tail.owner));
      from = splice.at;
    }
    if (buffer->size() > from) post(buffer->data() + from, buffer->size() - from, buffer);
  }

  std::optional<Message> try_receive(Traffic traffic) override {
    int flag = 0;
    MPI_Message handle;
    MPI_Status status;
    check_mpi(MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm(traffic), &flag, &handle, &status),
              "MPI_Improbe");
    if (!flag) return std::nullopt;
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    Message message;
    message.source = status.MPI_SOURCE;
    message.frame.resize(static_cast<std::size_t>(count));
    trace::Span span(trace::Category::message, rank_, "receive");
    check_mpi(MPI_Mrecv(message.frame.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE),
              "MPI_Mrecv");
    if (status.MPI_TAG != tail_tag) receive_tail(traffic, message);
    span.set_peer(message.source);
    span.set_bytes(message.frame.size());  // with its tail
    if (message.frame.size() < trace::message_event_bytes) span.drop();
    message.kind = check_frame(message.frame, message.source);
    return message;
  }

  // A frame whose header announces more body than it carries is followed by the rest of
  // it, in one or more messages (see send); check_frame then rejects a frame that still
  // falls short.
  void receive_tail(Traffic traffic, Message& message) {
    std::size_t received = message.frame.size();
    if (received < sizeof(FrameHeader) ||
        announced_body_size(message.frame) <= received - sizeof(FrameHeader)) {
      return;
    }
    const std::uint64_t announced = announced_body_size(message.frame);
    const auto lacking = [&] {
      return "parc: a message from rank " + std::to_string(message.source) + " announces " +
             std::to_string(announced) + " body bytes but carries " +
             std::to_string(received - sizeof(FrameHeader));
    };
    // Room for all of it at once, so that no part is copied again as the frame grows.
    try {
      message.frame.reserve(sizeof(FrameHeader) + announced);
    } catch (const std::exception&) {  // bad_alloc, length_error: a size no frame has
      throw DecodeError(lacking());
    }
    // The sender posts every part right after the first, so each is announced at once; a
    // frame that lies about its size must not hang this rank.
    while (received - sizeof(FrameHeader) < announced) {
      MPI_Message handle;
      MPI_Status status;
      int found = 0;
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!found) {
        check_mpi(MPI_Improbe(message.source, tail_tag, comm(traffic), &found, &handle, &status),
                  "MPI_Improbe");
        if (!found && std::chrono::steady_clock::now() > give_up) {
          throw DecodeError(lacking() + " and no continuation followed");
        }
      }
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      const auto part = static_cast<std::size_t>(count);
      if (part > announced - (received - sizeof(FrameHeader))) {
        // Receive it anyway (it must not match a later frame), then reject the frame.
        Bytes discarded(part);
        MPI_Mrecv(discarded.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
        throw DecodeError(lacking() + " and continues with " + std::to_string(part) +
                          " bytes more than that");
      }
      message.frame.resize(received + part);
      check_mpi(
          MPI_Mrecv(message.frame.data() + received, count, MPI_BYTE, &handle, MPI_STATUS_IGNORE),
          "MPI_Mrecv");
      received += part;
    }
  }

  bool has_incoming() override {
    for (Traffic traffic : {Traffic::tasks, Traffic::control}) {  // steal: the progress thread's
      const MPI_Comm c = comm(traffic);
      int flag = 0;
      // An error is for the owner's next receive to report.
      if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
          flag) {
        return true;
      }
    }
    return false;
  }

  bool progress() override {
    reap(pending_);
    return !pending_.empty();
  }

  std::unique_ptr<RegionComm> open_region(std::uint64_t id, const std::vector<int>& members,
                                          std::function<void()> poll,
                                          KeptCommunicator kept_mode) override {
    int region_rank = -1;
    for (std::size_t i = 0; i < members.size(); ++i) {
      const int member = members[i];
      if (member < 0 || member >= size_) {
        throw UsageError("parc: open_region: member " + std::to_string(member) +
                         " is not a rank of this job (0.." + std::to_string(size_ - 1) + ")");
      }
      if (std::find(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(i), member) !=
          members.begin() + static_cast<std::ptrdiff_t>(i)) {
        throw UsageError("parc: open_region: rank " + std::to_string(member) +
                         " is listed twice among the members");
      }
      if (member == rank_) region_rank = static_cast<int>(i);
    }
    if (region_rank < 0) {
      throw UsageError("parc: open_region: this rank (" + std::to_string(rank_) +
                       ") is not among the region's members");
    }
    if (kept_mode == KeptCommunicator::reuse) {
      if (kept_.comm == MPI_COMM_NULL || kept_.members != members) {
        throw std::logic_error(
            "parc: open_region: the manager asked to reuse a communicator "
            "this rank did not keep");
      }
      const MPI_Comm comm = std::exchange(kept_, RegionState{}).comm;
      return std::make_unique<MpiRegion>(*this, id, members, region_rank, comm, std::move(poll));
    }
    if (kept_.comm != MPI_COMM_NULL) {
      // Abandoned ones are settled at shutdown, never freed before: see ~MpiRegion.
      if (kept_mode == KeptCommunicator::release) {
        MPI_Comm_free(&kept_.comm);
      } else {
        abandoned_.push_back(std::move(kept_));
      }
      kept_ = RegionState{};
    }
    MPI_Group world_group;
    MPI_Group group;
    check_mpi(MPI_Comm_group(region_parent_, &world_group), "MPI_Comm_group");
    check_mpi(MPI_Group_incl(world_group, static_cast<int>(members.size()), members.data(), &group),
              "MPI_Group_incl");
    // Collective over the members only. The tag keeps creations of different regions
    // apart on the shared parent.
    MPI_Comm comm = MPI_COMM_NULL;
    const int code = MPI_Comm_create_group(region_parent_, group,
                                           static_cast<int>(id % (max_region_tag + 1)), &comm);
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    if (code != MPI_SUCCESS) {
      try {
        check_mpi(code, "MPI_Comm_create_group");
      } catch (const std::exception& e) {
        throw std::runtime_error(
            std::string(e.what()) +
            " (every SPMD region cancelled by a failure or a timeout keeps its MPI "
            "communicator for the rest of the job, and MPICH has about 2000)");
      }
    }
    return std::make_unique<MpiRegion>(*this, id, members, region_rank, comm, std::move(poll));
  }

  // A region's sends still in flight when it closes: completed by progress().
  void adopt(SendList& sends) { pending_.splice(pending_.end(), sends); }
  // A region that finished here with every operation complete: its communicator serves
  // the next region over the same members (creating one is a blocking collective).
  void keep(RegionState state) {
    // Usually open_region took the previous one; not when two regions were open at once.
    if (kept_.comm != MPI_COMM_NULL) MPI_Comm_free(&kept_.comm);
    kept_ = std::move(state);
  }
  // A cancelled region, for settle().
  void abandon(RegionState state) { abandoned_.push_back(std::move(state)); }

  void settle(std::chrono::milliseconds patience) override;

  // Messages nobody reads any more (a revoke that crossed the end of its batch): taken
  // and dropped at shutdown, since MPI wants every message matched before it finalizes.
  void drain_unread() {
    for (std::size_t traffic = 0; traffic < comms_.size(); ++traffic) {
      for (;;) {
        int found = 0;
        MPI_Message handle;
        MPI_Status status;
        if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comms_[traffic], &found, &handle, &status) !=
                MPI_SUCCESS ||
            !found) {
          break;
        }
        int count = 0;
        MPI_Get_count(&status, MPI_BYTE, &count);
        Bytes ignored(static_cast<std::size_t>(count));
        MPI_Mrecv(ignored.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
        log().debug("shutdown: dropped a message of kind {} from rank {} that nobody read",
                    status.MPI_TAG, status.MPI_SOURCE);
      }
    }
  }

 private:
  MPI_Comm comm(Traffic traffic) const { return comms_[static_cast<std::size_t>(traffic)]; }

  int rank_;
  int size_;
  std::array<MPI_Comm, traffic_class_count> comms_{};
  MPI_Comm region_parent_ = MPI_COMM_NULL;  // regions' communicators are made from it
  SendList pending_;
  RegionState kept_;  // of the last region, for the next (see keep)
  std::vector<RegionState> abandoned_;
};

MpiRegion::~MpiRegion() {
  reap(sends_);
  RegionState state{id_,
                    members_,
                    rank_,
                    comm_,
                    collectives_,
                    std::move(log_),
                    totals(sent_),
                    totals(received_),
                    request_,
                    std::move(buffers_),
                    {}};
  if (!cancelled()) {  // every operation completed here
    endpoint_.adopt(sends_);
    endpoint_.keep(std::move(state));
    return;
  }
  // Peers may never receive these sends, so the endpoint must not wait for them, and the
  // communicator is not freed: operations still pending on it (here or on a peer) would
  // otherwise let a later region's communicator reuse its context id and receive them.
  state.sends.splice(state.sends.end(), sends_);
  endpoint_.abandon(std::move(state));
}

void MpiRegion::finish() {
  if (cancelled()) return;
  for (int peer = 0; peer < size(); ++peer) {
    if (peer == rank_) continue;
    detail::RegionDone done{id_, static_cast<std::int32_t>(rank_), collectives_, {}};
    for (auto it = sent_.lower_bound({peer, 0}); it != sent_.end() && it->first.first == peer; ++it)
      done.sends[it->first.second] = it->second;
    endpoint_.send(Traffic::control, members_[static_cast<std::size_t>(peer)],
                   MessageKind::region_done, detail::write_region_done(done));
  }
}

void MpiRegion::cancel_all(const std::string& reason) {
  cancel(reason);
  if (announced_) return;
  announced_ = true;
  const detail::RegionCancel cancel{id_, this->reason()};
  for (const int member : members_) {
    if (member == members_[static_cast<std::size_t>(rank_)]) continue;
    endpoint_.send(Traffic::control, member, MessageKind::region_cancel,
                   detail::write_region_cancel(cancel));
  }
}

// --- settling abandoned regions at shutdown -------------------------------------------
//
// MPI requires every rank to complete its part of every operation before MPI_Finalize
// (UCX prints "was not returned to mpool" / "unexpected tag-receive descriptor" for the
// leftovers). A cancelled region leaves some ranks inside a collective the others never
// posted, receives under way, and messages nobody received. At shutdown every rank is
// idle, so each posts, with throwaway buffers, the collectives its peers posted after it
// stopped (the log of each rank gives their arguments), and receives the messages sent
// to it that it never took; then everything completes.

// What a rank tells the others about one region.
struct RegionRecord {
  std::uint64_t posted = 0;
  std::vector<std::uint64_t> sent;
  std::vector<std::uint64_t> received;
  std::vector<PostedCollective> log;
};

void encode_record(ByteWriter& out, const RegionState& state) {
  out.write(state.id);
  out.write(state.posted);
  out.write(state.sent);
  out.write(state.received);
  out.write(static_cast<std::uint64_t>(state.log.size()));
  for (const auto& c : state.log) {
    out.write(c.number);
    out.write(static_cast<std::uint8_t>(c.kind));
    out.write(c.root);
    out.write(c.count);
    out.write(c.type);
    out.write(c.op);
    out.write(c.counts);
  }
}

// (world rank, region id) -> record, from every rank's encoded records.
std::map<std::pair<int, std::uint64_t>, RegionRecord> decode_records(
    const Bytes& all, const std::vector<int>& sizes) {
  std::map<std::pair<int, std::uint64_t>, RegionRecord> records;
  std::size_t offset = 0;
  for (std::size_t world = 0; world < sizes.size(); ++world) {
    ByteReader in(all.data() + offset, static_cast<std::size_t>(sizes[world]));
    offset += static_cast<std::size_t>(sizes[world]);
    for (auto n = in.read<std::uint64_t>(); n > 0; --n) {
      const auto id = in.read<std::uint64_t>();
      RegionRecord& record = records[{static_cast<int>(world), id}];
      record.posted = in.read<std::uint64_t>();
      record.sent = in.read<std::vector<std::uint64_t>>();
      record.received = in.read<std::vector<std::uint64_t>>();
      for (auto entries = in.read<std::uint64_t>(); entries > 0; --entries) {
        PostedCollective& c = record.log.emplace_back();
        c.number = in.read<std::uint64_t>();
        c.kind = static_cast<CollectiveKind>(in.read<std::uint8_t>());
        c.root = in.read<std::int32_t>();
        c.count = in.read<std::int32_t>();
        c.type = in.read<std::uint8_t>();
        c.op = in.read<std::uint8_t>();
        c.counts = in.read<std::vector<int>>();
      }
    }
  }
  return records;
}

// A collective posted only to complete it, and its throwaway buffers.
struct Replay {
  Bytes send;
  Bytes recv;
  std::vector<std::uint64_t> words;
  std::vector<int> counts;
  std::vector<int> displacements;
  MPI_Request request = MPI_REQUEST_NULL;
};

// Posts `c` as region rank `rank` of `size`. `counts`: each rank's part of a v-variant.
void post_replay(Replay& x, const PostedCollective& c, std::vector<int> counts, int rank, int size,
                 MPI_Comm comm) {
  const auto n = static_cast<std::size_t>(size);
  const bool root = rank == c.root;
  x.words.assign(n + 1, 0);  // words[n]: this rank's own
  x.counts = std::move(counts);
  x.displacements.assign(n, 0);
  int total = 0;
  for (std::size_t r = 0; r < x.counts.size(); ++r) {
    x.displacements[r] = total;
    total += x.counts[r];
  }
  const int mine = x.counts.empty() ? 0 : x.counts[static_cast<std::size_t>(rank)];
  std::uint64_t* own = &x.words[n];
  MPI_Request* request = &x.request;
  switch (c.kind) {
    case CollectiveKind::barrier:
      MPI_Ibarrier(comm, request);
      return;
    case CollectiveKind::bcast_size:
      MPI_Ibcast(own, 1, MPI_UINT64_T, c.root, comm, request);
      return;
    case CollectiveKind::bcast:
      x.recv.resize(static_cast<std::size_t>(c.count));
      MPI_Ibcast(x.recv.data(), c.count, MPI_BYTE, c.root, comm, request);
      return;
    case CollectiveKind::gather_size:
      MPI_Igather(own, 1, MPI_UINT64_T, x.words.data(), 1, MPI_UINT64_T, c.root, comm, request);
      return;
    case CollectiveKind::gatherv:
      x.send.resize(static_cast<std::size_t>(mine));
      x.recv.resize(root ? static_cast<std::size_t>(total) : 0);
      MPI_Igatherv(x.send.data(), mine, MPI_BYTE, x.recv.data(), x.counts.data(),
                   x.displacements.data(), MPI_BYTE, c.root, comm, request);
      return;
    case CollectiveKind::allgather_size:
      MPI_Iallgather(own, 1, MPI_UINT64_T, x.words.data(), 1, MPI_UINT64_T, comm, request);
      return;
    case CollectiveKind::allgatherv:
      x.send.resize(static_cast<std::size_t>(mine));
      x.recv.resize(static_cast<std::size_t>(total));
      MPI_Iallgatherv(x.send.data(), mine, MPI_BYTE, x.recv.data(), x.counts.data(),
                      x.displacements.data(), MPI_BYTE, comm, request);
      return;
    case CollectiveKind::scatter_size:
      MPI_Iscatter(x.words.data(), 1, MPI_UINT64_T, own, 1, MPI_UINT64_T, c.root, comm, request);
      return;
    case CollectiveKind::scatterv:
      x.send.resize(root ? static_cast<std::size_t>(total) : 0);
      x.recv.resize(static_cast<std::size_t>(mine));
      MPI_Iscatterv(x.send.data(), x.counts.data(), x.displacements.data(), MPI_BYTE, x.recv.data(),
                    mine, MPI_BYTE, c.root, comm, request);
      return;
    case CollectiveKind::allreduce:
    case CollectiveKind::reduce: {
      const auto type = static_cast<ScalarType>(c.type);
      x.recv.resize(static_cast<std::size_t>(c.count) * scalar_size(type));
      const MPI_Op op = mpi_op(static_cast<ReduceOp>(c.op));
      if (c.kind == CollectiveKind::allreduce) {
        MPI_Iallreduce(MPI_IN_PLACE, x.recv.data(), c.count, mpi_type(type), op, comm, request);
      } else {
        MPI_Ireduce(root ? MPI_IN_PLACE : x.recv.data(), root ? x.recv.data() : nullptr, c.count,
                    mpi_type(type), op, c.root, comm, request);
      }
      return;
    }
  }
}

// True once `request` is done; an operation that failed is done too (its error no longer
// matters at shutdown).
bool finished(MPI_Request& request) {
  if (request == MPI_REQUEST_NULL) return true;
  int done = 0;
  if (MPI_Test(&request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) request = MPI_REQUEST_NULL;
  return done != 0 || request == MPI_REQUEST_NULL;
}

// One region being settled on this rank.
struct Settling {
  RegionState* state;
  std::list<Replay> replays;           // stable addresses: MPI holds the buffers
  std::vector<std::uint64_t> missing;  // messages still to receive, per region rank
};

void MpiEndpoint::settle(std::chrono::milliseconds patience) {
  std::vector<RegionState*> mine;
  for (auto& state : abandoned_) mine.push_back(&state);
  if (kept_.comm != MPI_COMM_NULL) mine.push_back(&kept_);  // clean here, maybe not elsewhere
  Bytes encoded;
  ByteWriter out(encoded);
  out.write(static_cast<std::uint64_t>(mine.size()));
  for (const RegionState* state : mine) encode_record(out, *state);
  // Blocking, over every rank: each is here, idle, at shutdown.
  std::vector<int> sizes(static_cast<std::size_t>(size_));
  const int length = static_cast<int>(encoded.size());
  // Non-blocking, with the same patience: a rank that never comes (a program whose rank 0
  // skipped rt.run's shutdown) must not hang the others at exit.
  const auto deadline = std::chrono::steady_clock::now() + patience;
  Backoff backoff;
  MPI_Request exchange = MPI_REQUEST_NULL;
  check_mpi(
      MPI_Iallgather(&length, 1, MPI_INT, sizes.data(), 1, MPI_INT, region_parent_, &exchange),
      "MPI_Iallgather");
  while (!finished(exchange)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      log().debug("shutdown: not every rank came to settle SPMD regions; leaving them");
      return;
    }
    backoff.pause();
  }
  drain_unread();  // every rank is here: nobody sends on the endpoint's communicators any more
  if (std::all_of(sizes.begin(), sizes.end(), [](int size) { return size == 8; })) return;
  std::vector<int> displacements(sizes.size());
  int total = 0;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    displacements[r] = total;
    total += sizes[r];
  }
  Bytes all(static_cast<std::size_t>(total));
  check_mpi(MPI_Allgatherv(encoded.data(), length, MPI_BYTE, all.data(), sizes.data(),
                           displacements.data(), MPI_BYTE, region_parent_),
            "MPI_Allgatherv");
  const auto records = decode_records(all, sizes);

  std::list<Settling> work;
  for (RegionState* state : mine) {
    const auto n = state->members.size();
    std::vector<const RegionRecord*> peers;
    for (const int member : state->members) {
      auto it = records.find({member, state->id});
      if (it == records.end()) break;  // a member kept nothing of it: nothing to match
      peers.push_back(&it->second);
    }
    if (peers.size() != n) continue;
    Settling& s = work.emplace_back(Settling{state, {}, std::vector<std::uint64_t>(n, 0)});
    std::uint64_t last = state->posted;
    for (const auto* peer : peers) last = std::max(last, peer->posted);
    for (std::uint64_t number = state->posted + 1; number <= last; ++number) {
      const PostedCollective* found = nullptr;
      std::vector<int> counts(n, 0);
      bool all_counts = false;
      for (std::size_t q = 0; q < n; ++q) {
        for (const auto& c : peers[q]->log) {
          if (c.number != number) continue;
          if (!found) found = &c;
          if (!c.counts.empty() && !all_counts) {
            counts = c.counts;
            all_counts = true;
          } else if (!all_counts) {
            counts[q] = c.count;  // a non-root's own part of a gatherv or scatterv
          }
        }
      }
      if (!found) break;  // no rank logged it: cannot happen for a rank that posted it
      post_replay(s.replays.emplace_back(), *found, std::move(counts), state->rank,
                  static_cast<int>(n), state->comm);
    }
    for (std::size_t q = 0; q < n; ++q) {
      const std::uint64_t sent =
          peers[q]->sent.size() == n ? peers[q]->sent[static_cast<std::size_t>(state->rank)] : 0;
      const std::uint64_t got = state->received.size() == n ? state->received[q] : 0;
      s.missing[q] = sent > got ? sent - got : 0;
    }
  }

  while (!work.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = work.begin(); it != work.end();) {
      RegionState& state = *it->state;
      bool done = finished(state.pending);
      for (auto& replay : it->replays) done = finished(replay.request) && done;
      for (std::size_t q = 0; q < it->missing.size(); ++q) {
        while (it->missing[q] > 0) {
          int found = 0;
          MPI_Message message;
          MPI_Status status;
          if (MPI_Improbe(static_cast<int>(q), MPI_ANY_TAG, state.comm, &found, &message,
                          &status) != MPI_SUCCESS ||
              !found) {
            break;
          }
          int count = 0;
          MPI_Get_count(&status, MPI_BYTE, &count);
          Bytes ignored(static_cast<std::size_t>(count));
          MPI_Mrecv(ignored.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE);
          --it->missing[q];
        }
        done = done && it->missing[q] == 0;
      }
      reap(state.sends);
      done = done && state.sends.empty();
      it = done ? work.erase(it) : std::next(it);
    }
    backoff.pause();
  }
  // Settled ones go; the others stay buried for the rest of the process (~MpiEndpoint).
  std::set<RegionState*> unsettled;
  for (const auto& s : work) unsettled.insert(s.state);
  std::erase_if(abandoned_, [&](RegionState& state) {
    if (unsettled.contains(&state)) return false;
    MPI_Comm_free(&state.comm);
    return true;
  });
  if (!work.empty()) {
    log().debug(
        "{} SPMD region(s) could not be completed before shutdown; MPI may warn of "
        "unfinished operations at exit",
        work.size());
  }
}

}  // namespace

std::unique_ptr<Endpoint> make_mpi_endpoint(int rank, int size) {
  return std::make_unique<MpiEndpoint>(rank, size);
}

}  // namespace parc
