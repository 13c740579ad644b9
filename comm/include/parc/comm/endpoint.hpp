#pragma once
// Point-to-point messaging for one rank, over MPI or in-process (serial mode).

#include <parc/comm/frame.hpp>
#include <parc/comm/region.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace parc {

// Over MPI a rank keeps the communicator of its last region that ended here with every
// operation complete, since making one is a blocking collective. The manager, who knows
// how the region ended on every rank, says at the next region start what to do with it:
enum class KeptCommunicator : std::uint8_t {
  reuse = 0,    // the region has the same members and was clean everywhere: use it
  release = 1,  // it was clean: free it, and make a new one
  abandon = 2,  // some rank failed or left messages unreceived: never free it (a peer
                // may still have operations pending on it), make a new one
};

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Takes a frame from begin_frame(); returns at once (the send completes in progress()).
  virtual void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) = 0;
  // The same, with `tails` spliced into the frame's body without copying them (large task
  // arguments and results; see ByteWriter): each goes where its splice says, and the
  // receiver gets one frame. The endpoint keeps each tail's owner until the send
  // completes, so the caller may keep it too (for a retry).
  virtual void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame, Splices tails) = 0;
  // One tail at the end of the frame.
  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& head,
            std::shared_ptr<const Bytes> tail) {
    const char* data = tail->data();
    const std::size_t size = tail->size();
    Splices tails;
    tails.push_back(Splice{head.size(), Tail{std::move(tail), data, size}});
    send(traffic, dest, kind, std::move(head), std::move(tails));
  }
  virtual std::optional<Message> try_receive(Traffic traffic) = 0;
  // Completes finished sends; true while some are still in flight.
  virtual bool progress() = 0;
  // Whether a message waits on any traffic class. Unlike try_receive, safe to call from
  // another thread while the owner of the endpoint is blocked (see
  // RequestChannel::park_until).
  virtual bool has_incoming() = 0;

  // Joins region `id` whose ranks are the world ranks `members` (this rank among them),
  // as every member does when the manager starts the region. `poll` runs now and then
  // while an operation waits (the worker reads its control channel there, where a
  // cancellation arrives). Over MPI this is collective over `members`, unless `kept` is
  // `reuse`: see KeptCommunicator.
  virtual std::unique_ptr<RegionComm> open_region(
      std::uint64_t id, const std::vector<int>& members, std::function<void()> poll,
      KeptCommunicator kept = KeptCommunicator::release) = 0;

  // At shutdown, collective over every rank: completes what regions cancelled on some
  // of their ranks left pending (collectives, receives, unreceived messages), waiting at
  // most `patience`, so that MPI finalizes with nothing outstanding.
  virtual void settle(std::chrono::milliseconds /*patience*/) {}
};

// All the endpoints of a simulated job in one process.
class LoopbackNetwork {
 public:
  explicit LoopbackNetwork(int size);
  ~LoopbackNetwork();
  Endpoint& endpoint(int rank);
  bool has_pending(int rank) const;

 private:
  class LoopbackEndpoint;
  friend class LoopbackEndpoint;
  std::vector<std::unique_ptr<LoopbackEndpoint>> endpoints_;
};

}  // namespace parc
