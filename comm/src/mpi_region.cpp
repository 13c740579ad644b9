// An SPMD region's communicator over MPI: collectives and messages among its members,
// cancellable while any of them waits (see RegionComm).

#include "mpi_region.hpp"

#include <parc/comm/backoff.hpp>
#include <parc/comm/detail/region_wire.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace parc::mpi {

namespace {

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

}  // namespace

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

bool drop_message(int source, MPI_Comm comm, MPI_Status& status) {
  int found = 0;
  MPI_Message message;
  if (MPI_Improbe(source, MPI_ANY_TAG, comm, &found, &message, &status) != MPI_SUCCESS || !found) {
    return false;
  }
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  Bytes ignored(static_cast<std::size_t>(count));
  MPI_Mrecv(ignored.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE);
  return true;
}

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

namespace {

// Completing one of these locally means every rank posted it: nobody needs the log up to it.
bool synchronizes(CollectiveKind kind) {
  return kind == CollectiveKind::barrier || kind == CollectiveKind::allgather_size ||
         kind == CollectiveKind::allgatherv || kind == CollectiveKind::allreduce;
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

class MpiRegion : public RegionComm {
 public:
  MpiRegion(RegionHost& host, std::uint64_t id, std::vector<int> members, int rank, MPI_Comm comm,
            std::function<void()> poll)
      : host_(host),
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

  RegionHost& host_;
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
    host_.adopt(sends_);
    host_.keep(std::move(state));
    return;
  }
  // Peers may never receive these sends, so the endpoint must not wait for them, and the
  // communicator is not freed: operations still pending on it (here or on a peer) would
  // otherwise let a later region's communicator reuse its context id and receive them.
  state.sends.splice(state.sends.end(), sends_);
  host_.abandon(std::move(state));
}

void MpiRegion::finish() {
  if (cancelled()) return;
  for (int peer = 0; peer < size(); ++peer) {
    if (peer == rank_) continue;
    detail::RegionDone done{id_, static_cast<std::int32_t>(rank_), collectives_, {}};
    for (auto it = sent_.lower_bound({peer, 0}); it != sent_.end() && it->first.first == peer; ++it)
      done.sends[it->first.second] = it->second;
    host_.send_control(members_[static_cast<std::size_t>(peer)], MessageKind::region_done,
                       detail::write_region_done(done));
  }
}

void MpiRegion::cancel_all(const std::string& reason) {
  cancel(reason);
  if (announced_) return;
  announced_ = true;
  const detail::RegionCancel cancel{id_, this->reason()};
  for (const int member : members_) {
    if (member == members_[static_cast<std::size_t>(rank_)]) continue;
    host_.send_control(member, MessageKind::region_cancel, detail::write_region_cancel(cancel));
  }
}

}  // namespace

std::unique_ptr<RegionComm> make_mpi_region(RegionHost& host, std::uint64_t id,
                                            std::vector<int> members, int rank, MPI_Comm comm,
                                            std::function<void()> poll) {
  return std::make_unique<MpiRegion>(host, id, std::move(members), rank, comm, std::move(poll));
}

}  // namespace parc::mpi
