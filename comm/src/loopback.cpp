#include <parc/comm/endpoint.hpp>
#include <parc/exceptions/errors.hpp>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace parc {

namespace {

// What the ranks of one in-process region share. Its ranks run on threads of their own,
// so everything here is under `mutex`; waits wake on `changed`.
struct RegionState {
  explicit RegionState(std::vector<int> members_in) : members(std::move(members_in)) {}

  // The k-th collective of every rank: each deposits its contribution (one or more
  // byte strings), and the last of them to read erases the round.
  struct Round {
    std::vector<std::vector<Bytes>> contributions;
    int deposited = 0;
    int read = 0;
  };

  int size() const { return static_cast<int>(members.size()); }

  const std::vector<int> members;  // loopback ranks, in region-rank order
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<bool> joined = std::vector<bool>(members.size(), false);
  bool cancelled = false;
  std::string reason;
  std::map<std::uint64_t, Round> rounds;
  std::map<std::tuple<int, int, int>, std::deque<Bytes>> mailboxes;  // (source, dest, tag)
  // Per rank whose closure returned: how many collectives it ran.
  std::map<int, std::uint64_t> finished;
};

class LocalRegion : public RegionComm {
  using Contributions = std::vector<std::vector<Bytes>>;

 public:
  LocalRegion(std::shared_ptr<RegionState> state, int rank)
      : state_(std::move(state)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return state_->size(); }

  void barrier() override {
    exchange({}, [](const auto&) { return 0; });
  }

  Bytes bcast(Bytes data, int root) override {
    check_rank(root, "bcast", "root");
    std::vector<Bytes> contribution;
    if (rank_ == root) contribution.push_back(std::move(data));
    return exchange(std::move(contribution),
                    [&](const auto& all) { return all[static_cast<std::size_t>(root)].front(); });
  }

  std::vector<Bytes> gather(Bytes data, int root) override {
    check_rank(root, "gather", "root");
    std::vector<Bytes> contribution;
    contribution.push_back(std::move(data));
    return exchange(std::move(contribution), [&](const auto& all) {
      return rank_ == root ? firsts(all) : std::vector<Bytes>{};
    });
  }

  std::vector<Bytes> allgather(Bytes data) override {
    std::vector<Bytes> contribution;
    contribution.push_back(std::move(data));
    return exchange(std::move(contribution), [&](const auto& all) { return firsts(all); });
  }

  Bytes scatter(std::vector<Bytes> parts, int root) override {
    check_rank(root, "scatter", "root");
    if (rank_ != root) {
      parts.clear();
    } else if (parts.size() != static_cast<std::size_t>(size())) {
      throw UsageError("parc: region scatter: the root gave " + std::to_string(parts.size()) +
                       " parts for " + std::to_string(size()) + " ranks");
    }
    return exchange(std::move(parts), [&](const auto& all) {
      return all[static_cast<std::size_t>(root)][static_cast<std::size_t>(rank_)];
    });
  }

  void allreduce(void* data, std::size_t count, ScalarType type, ReduceOp op) override {
    Bytes folded = reduce_all(data, count, type, op, "allreduce");
    if (!folded.empty()) std::memcpy(data, folded.data(), folded.size());
  }

  void reduce(void* data, std::size_t count, ScalarType type, ReduceOp op, int root) override {
    check_rank(root, "reduce", "root");
    Bytes folded = reduce_all(data, count, type, op, "reduce");
    if (rank_ == root && !folded.empty()) std::memcpy(data, folded.data(), folded.size());
  }

  void send(Bytes data, int dest, int tag) override {
    check_rank(dest, "send", "dest");
    check_tag(tag, "send");
    std::lock_guard lock(state_->mutex);
    throw_if_cancelled();
    state_->mailboxes[{rank_, dest, tag}].push_back(std::move(data));
    state_->changed.notify_all();
  }

  Bytes recv(int source, int tag) override {
    check_rank(source, "recv", "source");
    check_tag(tag, "recv");
    std::unique_lock lock(state_->mutex);
    auto& mailbox = state_->mailboxes[{source, rank_, tag}];
    const auto source_returned = [&] { return state_->finished.count(source) > 0; };
    state_->changed.wait(
        lock, [&] { return state_->cancelled || !mailbox.empty() || source_returned(); });
    throw_if_cancelled();
    if (mailbox.empty()) throw region_rank_returned_without_sending(source, tag);
    Bytes data = std::move(mailbox.front());
    mailbox.pop_front();
    return data;
  }

  // In-process, cancelling one rank cancels the whole region: its ranks share one state.
  void cancel(const std::string& reason) override {
    std::lock_guard lock(state_->mutex);
    if (state_->cancelled) return;  // the first reason wins
    state_->cancelled = true;
    state_->reason = reason;
    state_->changed.notify_all();
  }

  void cancel_all(const std::string& reason) override { cancel(reason); }

  void finish() override {
    std::lock_guard lock(state_->mutex);
    state_->finished[rank_] = next_round_;
    state_->changed.notify_all();
  }

  bool cancelled() const override {
    std::lock_guard lock(state_->mutex);
    return state_->cancelled;
  }

 private:
  static std::vector<Bytes> firsts(const Contributions& all) {
    std::vector<Bytes> values;
    values.reserve(all.size());
    for (const auto& contribution : all) values.push_back(contribution.front());
    return values;
  }

  // Called with the mutex held.
  void throw_if_cancelled() const {
    if (state_->cancelled) throw CancelledError(state_->reason);
  }

  void check_rank(int rank, const char* operation, const char* what) const {
    check_region_rank(rank, size(), operation, what);
  }

  static void check_tag(int tag, const char* operation) { check_region_tag(tag, operation); }

  // This rank's next collective: deposits `contribution`, waits for every rank's, and
  // returns `read(contributions)` (called under the lock).
  template <class Read>
  std::invoke_result_t<Read&, const Contributions&> exchange(std::vector<Bytes> contribution,
                                                             Read read) {
    std::unique_lock lock(state_->mutex);
    throw_if_cancelled();
    const std::uint64_t round_index = next_round_++;
    auto& round = state_->rounds[round_index];
    if (round.contributions.empty()) round.contributions.resize(members_count());
    round.contributions[static_cast<std::size_t>(rank_)] = std::move(contribution);
    if (++round.deposited == size()) state_->changed.notify_all();
    // A rank that returned before this round will never deposit into it.
    const auto deserted = [&]() -> const std::pair<const int, std::uint64_t>* {
      for (const auto& entry : state_->finished) {
        if (entry.second <= round_index) return &entry;
      }
      return nullptr;
    };
    state_->changed.wait(lock, [&] {
      return state_->cancelled || round.deposited == size() || deserted() != nullptr;
    });
    throw_if_cancelled();
    if (round.deposited != size()) {
      const auto* gone = deserted();
      throw region_rank_returned_before_collective(gone->first, gone->second, round_index + 1);
    }
    // The last reader erases the round, also when `read` throws.
    const auto leave = [&] {
      if (++round.read == size()) state_->rounds.erase(round_index);
    };
    try {
      auto result = read(std::as_const(round.contributions));
      leave();
      return result;
    } catch (...) {
      leave();
      throw;
    }
  }

  // Every rank's `count` scalars folded in rank order: the same bits on every rank.
  Bytes reduce_all(const void* data, std::size_t count, ScalarType type, ReduceOp op,
                   const char* operation) {
    reduce_op_name(op);  // throws on a value outside the enum
    const std::size_t bytes = count * scalar_size(type);
    std::vector<Bytes> contribution(1);
    if (bytes > 0) {
      const char* begin = static_cast<const char*>(data);
      contribution.front().assign(begin, begin + bytes);
    }
    return exchange(std::move(contribution), [&](const Contributions& all) {
      for (std::size_t r = 0; r < all.size(); ++r) {
        if (all[r].front().size() != bytes) {
          throw UsageError(std::string("parc: region ") + operation + ": rank " +
                           std::to_string(r) + " passed " + std::to_string(all[r].front().size()) +
                           " bytes, rank " + std::to_string(rank_) + " " + std::to_string(bytes));
        }
      }
      Bytes folded = all.front().front();
      for (std::size_t r = 1; r < all.size(); ++r) {
        reduce_scalars(folded.data(), all[r].front().data(), count, type, op);
      }
      return folded;
    });
  }

  std::size_t members_count() const { return state_->members.size(); }

  std::shared_ptr<RegionState> state_;
  const int rank_;
  std::uint64_t next_round_ = 0;  // only this rank's thread touches it
};

}  // namespace

// The regions open on one network, by id: every rank's open of an id joins one state.
struct RegionRegistry {
  std::mutex mutex;
  std::map<std::uint64_t, std::weak_ptr<RegionState>> regions;
};

class LoopbackNetwork::LoopbackEndpoint : public Endpoint {
 public:
  LoopbackEndpoint(LoopbackNetwork& network, int rank, std::shared_ptr<RegionRegistry> registry)
      : network_(network), rank_(rank), registry_(std::move(registry)) {}

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(network_.endpoints_.size()); }

  using Endpoint::send;
  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) override {
    finish_frame(frame, kind);
    network_.endpoints_.at(static_cast<std::size_t>(dest))
        ->inbox_[static_cast<std::size_t>(traffic)]
        .push_back(Message{rank_, kind, std::move(frame)});
  }

  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame, Splices tails) override {
    if (tails.empty()) {
      send(traffic, dest, kind, std::move(frame));
      return;
    }
    // In memory a copy is as fast as a send: the tails are copied into one frame.
    Bytes whole;
    whole.reserve(frame.size() + spliced_size(tails));
    std::size_t from = 0;
    for (const Splice& splice : tails) {
      if (splice.at < from || splice.at > frame.size()) {
        throw std::logic_error("parc: a frame's tails are out of order or outside its buffer");
      }
      append(whole, frame.data() + from, splice.at - from);
      append(whole, splice.tail.data, splice.tail.size);
      from = splice.at;
    }
    append(whole, frame.data() + from, frame.size() - from);
    send(traffic, dest, kind, std::move(whole));
  }

  std::optional<Message> try_receive(Traffic traffic) override {
    auto& queue = inbox_[static_cast<std::size_t>(traffic)];
    if (queue.empty()) return std::nullopt;
    Message message = std::move(queue.front());
    queue.pop_front();
    message.kind = check_frame(message.frame, message.source);
    return message;
  }

  bool progress() override { return false; }

  bool has_incoming() override {
    return !inbox_[static_cast<std::size_t>(Traffic::tasks)].empty() ||
           !inbox_[static_cast<std::size_t>(Traffic::control)].empty();
  }

  // `poll` is not needed: cancellation reaches in-process regions through their shared
  // state, from any thread.
  std::unique_ptr<RegionComm> open_region(std::uint64_t id, const std::vector<int>& members,
                                          std::function<void()> /*poll*/,
                                          KeptCommunicator /*kept*/) override {
    const auto region_rank = check_members(members);
    std::lock_guard lock(registry_->mutex);
    std::erase_if(registry_->regions, [](const auto& entry) { return entry.second.expired(); });
    auto& entry = registry_->regions[id];
    auto state = entry.lock();
    if (!state) {
      state = std::make_shared<RegionState>(members);
      entry = state;
    } else if (state->members != members) {
      throw UsageError("parc: open_region: region " + std::to_string(id) +
                       " was opened with different members on another rank");
    }
    std::lock_guard state_lock(state->mutex);
    if (state->joined[region_rank]) {
      throw UsageError("parc: open_region: rank " + std::to_string(rank_) + " opened region " +
                       std::to_string(id) + " twice");
    }
    state->joined[region_rank] = true;
    return std::make_unique<LocalRegion>(state, static_cast<int>(region_rank));
  }

  bool has_pending() const {
    for (const auto& queue : inbox_) {
      if (!queue.empty()) return true;
    }
    return false;
  }

 private:
  // This rank's region rank; throws UsageError unless `members` are distinct ranks of
  // the network with this one among them.
  std::size_t check_members(const std::vector<int>& members) const {
    std::size_t region_rank = members.size();
    for (std::size_t i = 0; i < members.size(); ++i) {
      const int member = members[i];
      if (member < 0 || member >= size()) {
        throw UsageError("parc: open_region: member " + std::to_string(member) +
                         " is not a rank of this job (0.." + std::to_string(size() - 1) + ")");
      }
      if (std::count(members.begin(), members.end(), member) > 1) {
        throw UsageError("parc: open_region: rank " + std::to_string(member) +
                         " is listed twice among the members");
      }
      if (member == rank_) region_rank = i;
    }
    if (region_rank == members.size()) {
      throw UsageError("parc: open_region: this rank (" + std::to_string(rank_) +
                       ") is not among the region's members");
    }
    return region_rank;
  }

  LoopbackNetwork& network_;
  int rank_;
  std::shared_ptr<RegionRegistry> registry_;
  std::array<std::deque<Message>, traffic_class_count> inbox_;
};

LoopbackNetwork::LoopbackNetwork(int size) {
  auto registry = std::make_shared<RegionRegistry>();
  for (int rank = 0; rank < size; ++rank) {
    endpoints_.push_back(std::make_unique<LoopbackEndpoint>(*this, rank, registry));
  }
}

LoopbackNetwork::~LoopbackNetwork() = default;

Endpoint& LoopbackNetwork::endpoint(int rank) {
  return *endpoints_.at(static_cast<std::size_t>(rank));
}

bool LoopbackNetwork::has_pending(int rank) const {
  return endpoints_.at(static_cast<std::size_t>(rank))->has_pending();
}

}  // namespace parc
