#include <parc/comm/log.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/region_coordinator.hpp>
#include <parc/managers/detail/wire.hpp>

#include <algorithm>
#include <utility>

namespace parc::detail {

RegionCoordinator::RegionCoordinator(Endpoint& endpoint, SlotTable& slots, std::uint64_t& next_id)
    : endpoint_(endpoint), slots_(slots), next_id_(next_id) {}

void RegionCoordinator::progress() {
  if (regions_.empty()) return;
  check_timeouts();
  start_ready();
}

void RegionCoordinator::add_stuck(std::vector<std::pair<int, std::string>>& stuck) const {
  for (const auto& [id, region] : regions_) {
    if (!region.timed_out) continue;
    for (std::size_t i = 0; i < region.members.size(); ++i) {
      if (!region.answered[i])
        stuck.emplace_back(region.members[i], "SPMD region " + std::to_string(id));
    }
  }
}

std::uint64_t RegionCoordinator::open(ClosureId closure, std::vector<int> members, Bytes arguments,
                                      std::shared_ptr<Sink> sink,
                                      std::chrono::duration<double> timeout) {
  if (members.empty()) {
    throw UsageError("parc: an SPMD region needs at least one worker rank" +
                     std::string(slots_.empty() ? " and this runtime has none (run under "
                                                  "mpiexec with 2 or more ranks, or serially)"
                                                : ""));
  }
  if (timeout.count() < 0) throw UsageError("parc: timeout must be >= 0 seconds");
  std::vector<int> seen;
  for (int rank : members) {
    if (slots_.slot_of(rank) == nullptr) {
      throw UsageError("parc: rank " + std::to_string(rank) +
                       " cannot be in an SPMD region: the worker ranks are 1 to " +
                       std::to_string(slots_.size()) + " (rank 0 runs the managers)");
    }
    if (std::find(seen.begin(), seen.end(), rank) != seen.end()) {
      throw UsageError("parc: rank " + std::to_string(rank) +
                       " is given twice for one SPMD region; list each rank once");
    }
    seen.push_back(rank);
  }
  const std::uint64_t id = next_id_++;
  Region region;
  region.id = id;
  region.closure = closure;
  region.members = std::move(members);
  region.arguments = std::move(arguments);
  region.sink = std::move(sink);
  region.timeout = timeout;
  region.answered.assign(region.members.size(), false);
  for (int rank : region.members) {
    Slot* slot = slots_.slot_of(rank);
    if (slot->region == 0) slot->region = id;  // farms stop sending it work
  }
  regions_.emplace(id, std::move(region));
  start_ready();
  return id;
}

void RegionCoordinator::start_ready() {
  for (auto& [id, region] : regions_) {
    if (region.started) continue;
    // Named captures: clang 14 cannot capture structured bindings.
    const bool ready =
        std::all_of(region.members.begin(), region.members.end(), [&, id = id](int rank) {
          const Slot* slot = slots_.slot_of(rank);
          return slot->region == id && slot->batches.empty();
        });
    if (!ready) continue;
    region.started = true;
    region.start_time = Clock::now();
    const bool reuse = std::all_of(region.members.begin(), region.members.end(),
                                   [&, &members = region.members](int rank) {
                                     return clean_communicator_of_[rank] == members;
                                   });
    region.sent.assign(region.members.size(), {});
    region.received.assign(region.members.size(), {});
    for (int rank : region.members) {
      const KeptCommunicator kept = reuse ? KeptCommunicator::reuse
                                    : clean_communicator_of_[rank].empty()
                                        ? KeptCommunicator::abandon
                                        : KeptCommunicator::release;
      endpoint_.send(
          Traffic::tasks, rank, MessageKind::region_start,
          write_region_start({id, region.closure, region.members, kept,
                              ByteReader(region.arguments.data(), region.arguments.size())}));
    }
    region.arguments = Bytes{};  // sent: the region may run for long
  }
}

void RegionCoordinator::send_cancel(const Region& region, const std::string& reason) {
  for (std::size_t i = 0; i < region.members.size(); ++i) {
    if (region.answered[i]) continue;
    endpoint_.send(Traffic::control, region.members[i], MessageKind::region_cancel,
                   write_region_cancel({region.id, reason}));
  }
}

void RegionCoordinator::release_slots(const Region& region) {
  for (int rank : region.members) release_slot(region, rank);
}

void RegionCoordinator::release_slot(const Region& region, int rank) {
  Slot* slot = slots_.slot_of(rank);
  if (slot->region != region.id) return;
  slot->region = 0;
  // The next region waiting for this worker holds it from now on.
  for (const auto& [id, other] : regions_) {
    if (id != region.id && !other.started &&
        std::find(other.members.begin(), other.members.end(), rank) != other.members.end()) {
      slot->region = id;
      break;
    }
  }
}

void RegionCoordinator::handle_result(Message& message) {
  ByteReader body = message.take_body();
  if (body.remaining() < sizeof(std::uint64_t)) {
    log().error("an outcome of a region from rank {} is too short to name its region; dropped",
                message.source);
    return;
  }
  const auto id = body.read<std::uint64_t>();
  auto it = regions_.find(id);
  if (it == regions_.end()) {
    log().error("an outcome of region {} from rank {}, which has no such region; dropped", id,
                message.source);
    return;
  }
  Region& region = it->second;
  const auto at = std::find(region.members.begin(), region.members.end(), message.source);
  const auto index = static_cast<std::size_t>(at - region.members.begin());
  if (at == region.members.end() || region.answered[index]) {
    log().error("an unexpected outcome of region {} from rank {}; dropped", id, message.source);
    return;
  }
  region.answered[index] = true;
  ++region.answers;
  if (region.timed_out) {  // its outcome is reported: the rank may serve other work now
    clean_communicator_of_[message.source] = {};
    release_slot(region, message.source);
  }
  RegionOutcome outcome;
  std::string unreadable;  // this rank's part failed: its report does not decode
  try {
    read_region_outcome(body, message.source, outcome);
  } catch (const DecodeError& e) {
    log().error("{}", e.what());
    outcome.status = TaskStatus::error;
    unreadable = e.what();
  }
  region.sent[index] = std::move(outcome.sent);
  region.received[index] = std::move(outcome.received);
  region.clean = region.clean && outcome.reusable && !region.timed_out;
  if (!region.timed_out) {  // after a timeout the region's failure is already reported
    if (outcome.status == TaskStatus::ok) {
      try {  // a result that does not decode fails this rank, and the region still ends
        region.sink->on_result(index, outcome.payload);
      } catch (const std::exception&) {
        ErrorInfo info = slots_.manager_error(id, region.closure, message.source, "", "");
        info.chain = record_chain(std::current_exception());
        region.sink->on_error(index, TaskError(info, std::current_exception()));
      }
    } else if (outcome.status == TaskStatus::error) {
      ErrorInfo info;
      try {
        if (!unreadable.empty()) throw DecodeError(unreadable);
        info = read_error_info(outcome.payload, message.source);
      } catch (const DecodeError& e) {
        info =
            slots_.manager_error(id, region.closure, message.source, "parc::DecodeError", e.what());
      }
      region.sink->on_error(index, TaskError(info, rebuild_exception(info)));
      // A rank that failed before joining the region (its start did not decode, its
      // communicator could not be made) cannot release the others from their collectives.
      if (region.sent[index].empty()) {
        send_cancel(region, "region rank " + std::to_string(index) + " (world rank " +
                                std::to_string(message.source) + ") could not join the region");
      }
    } else {
      region.sink->on_cancel(index);
    }
  }
  if (region.answers == region.members.size()) {
    // The next region over these members reuses the communicator only when nothing of
    // this one can reach it: no failure, and every message sent was received.
    const std::size_t n = region.members.size();
    bool clean = region.clean;
    for (std::size_t a = 0; clean && a < n; ++a) {
      for (std::size_t b = 0; clean && b < n; ++b) {
        const auto sent = b < region.sent[a].size() ? region.sent[a][b] : 0;
        const auto received = a < region.received[b].size() ? region.received[b][a] : 0;
        clean = sent == received;
      }
    }
    for (int rank : region.members) {
      clean_communicator_of_[rank] = clean ? region.members : std::vector<int>{};
    }
    release_slots(region);
    regions_.erase(it);
  }
}

void RegionCoordinator::check_timeouts() {
  const auto now = Clock::now();
  for (auto& [id, region] : regions_) {
    if (!region.started || region.timed_out || region.timeout.count() <= 0 ||
        now - region.start_time <= region.timeout) {
      continue;
    }
    region.timed_out = true;
    region.timed_out_at = now;
    std::string running;
    std::size_t first = region.members.size();
    for (std::size_t i = 0; i < region.members.size(); ++i) {
      if (region.answered[i]) continue;
      if (first == region.members.size()) first = i;
      running += (running.empty() ? "" : ", ") + std::to_string(i);
    }
    const std::string message =
        "SPMD region " + std::to_string(id) + " ran longer than its timeout of " +
        seconds_text(region.timeout.count()) + " s; region ranks still running: " + running;
    log().warn("{}", message);
    send_cancel(region, "the region timed out");
    const ErrorInfo info = slots_.manager_error(id, region.closure, region.members[first],
                                                "parc::TaskTimeout", message);
    region.sink->on_error(first, TaskError(info, rebuild_exception(info)));
  }
}

bool RegionCoordinator::finished(std::uint64_t id) const {
  auto it = regions_.find(id);
  if (it == regions_.end()) return true;
  // Ranks busy outside any parc call cannot see the cancellation; the manager stops
  // waiting for them after a grace period (they stay reserved until they answer).
  constexpr auto grace = std::chrono::seconds(2);
  return it->second.timed_out && Clock::now() - it->second.timed_out_at > grace;
}

void RegionCoordinator::cancel(std::uint64_t id, const std::string& reason) {
  auto it = regions_.find(id);
  if (it == regions_.end()) return;
  if (!it->second.started) {
    for (std::size_t i = 0; i < it->second.members.size(); ++i) it->second.sink->on_cancel(i);
    Region region = std::move(it->second);
    regions_.erase(it);
    release_slots(region);
    return;
  }
  send_cancel(it->second, reason);
}

}  // namespace parc::detail
