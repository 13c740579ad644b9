#pragma once
// The manager side of SPMD regions: claims the members' slots (the farms then send them
// no new batch), starts the region once they hold none, gathers each rank's outcome,
// cancels the others when one fails or the region times out, and decides whether the
// members may reuse their communicator for the next region over the same ranks. Runs
// under the scheduler's lock, driven by Scheduler::progress().

#include <parc/comm/endpoint.hpp>
#include <parc/managers/detail/slot_table.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace parc::detail {

class RegionCoordinator {
 public:
  // `next_id`: the scheduler's task ids, which regions share (a trace or an error names
  // either by its id alone).
  RegionCoordinator(Endpoint& endpoint, SlotTable& slots, std::uint64_t& next_id);

  // See Scheduler::open_region.
  std::uint64_t open(ClosureId closure, std::vector<int> members, Bytes arguments,
                     std::shared_ptr<Sink> sink, std::chrono::duration<double> timeout);
  bool finished(std::uint64_t region) const;
  void cancel(std::uint64_t region, const std::string& reason);
  bool empty() const { return regions_.empty(); }

  // One round's share: time out regions that ran too long, start those whose members are
  // free.
  void progress();
  // A region_result message from a member.
  void handle_result(Message& message);
  // Members still running a region that timed out: their rank, and "SPMD region 2".
  void add_stuck(std::vector<std::pair<int, std::string>>& stuck) const;

 private:
  struct Region {
    std::uint64_t id = 0;
    ClosureId closure = 0;
    std::vector<int> members;
    Bytes arguments;
    std::shared_ptr<Sink> sink;
    std::chrono::duration<double> timeout{0};
    bool started = false;
    Clock::time_point start_time{};
    std::vector<bool> answered;
    std::size_t answers = 0;
    bool timed_out = false;
    Clock::time_point timed_out_at{};
    // Whether its communicator may serve the next region over the same members: every
    // rank finished cleanly and every message sent was received.
    bool clean = true;
    std::vector<std::vector<std::uint64_t>> sent, received;  // by region rank, per peer
  };

  void start_ready();
  void check_timeouts();
  void send_cancel(const Region& region, const std::string& reason);
  void release_slots(const Region& region);
  void release_slot(const Region& region, int rank);

  Endpoint& endpoint_;
  SlotTable& slots_;
  std::uint64_t& next_id_;
  std::map<std::uint64_t, Region> regions_;
  // Per worker: the members of the last region it ran, when that region was clean on
  // every rank (the worker kept its communicator, which may then be reused or freed);
  // empty otherwise.
  std::map<int, std::vector<int>> clean_communicator_of_;
};

}  // namespace parc::detail
