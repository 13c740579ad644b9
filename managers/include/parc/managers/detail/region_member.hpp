#pragma once
// The worker side of SPMD regions: starts this rank's part of a region (region_start),
// runs its closure over the region's communicator (inline over MPI, on a thread of its own
// in serial mode, where the region's ranks are threads of one process), applies the
// region's control messages (region_cancel, region_done; kept when they overtake their
// region's start), and sends this rank's outcome. Its Worker owns it and runs task batches.

#include <parc/closures/closure.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/comm/region.hpp>
#include <parc/exceptions/error_info.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace parc::detail {

struct ControlMessage;

class RegionMember {
 public:
  struct Hooks {
    // Reads the control channel: while a region waits, its cancel may come.
    std::function<void()> poll_control;
    // Before the closure runs: no memory lent to a reply sent earlier may still be read.
    std::function<void()> return_lent;
    // The ErrorInfo of the exception being handled, for region `id`.
    std::function<ErrorInfo(ClosureId closure, std::uint64_t id)> error_info;
  };
  RegionMember(Endpoint& endpoint, bool simulated, Hooks hooks);
  ~RegionMember();
  RegionMember(const RegionMember&) = delete;
  RegionMember& operator=(const RegionMember&) = delete;

  // A region runs (or its outcome is not sent yet): the manager sends this rank nothing else.
  bool active() const { return region_ != nullptr; }
  // A region_start message. Over MPI the region runs to its end inside this call.
  void start(Message& message);
  // Sends the outcome of a region that ended; false when none did.
  bool finish();
  // region_cancel and region_done.
  void on_control(const Message& message, const ControlMessage& control);
  // The job ends: a region still running is cancelled.
  void shut_down(const std::string& reason);

 private:
  struct ActiveRegion {
    std::uint64_t id = 0;
    int manager = 0;
    std::unique_ptr<RegionComm> comm;
    std::thread thread;
    std::atomic<bool> done{false};
    Bytes reply;
  };

  Bytes run(ActiveRegion& region, ClosureId closure, ByteReader arguments);

  Endpoint& endpoint_;
  bool simulated_;
  Hooks hooks_;
  std::unique_ptr<ActiveRegion> region_;
  std::uint64_t last_region_ = 0;
  // Control messages of regions that have not begun here yet (they travel apart).
  std::map<std::uint64_t, std::vector<Message>> early_control_;
};

}  // namespace parc::detail
