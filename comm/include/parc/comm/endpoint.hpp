#pragma once
// Point-to-point messaging for one rank, over MPI or in-process (serial mode).

#include <parc/comm/frame.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace parc {

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Takes a frame from begin_frame(); returns at once (the send completes in progress()).
  virtual void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) = 0;
  virtual std::optional<Message> try_receive(Traffic traffic) = 0;
  // Completes finished sends; true while some are still in flight.
  virtual bool progress() = 0;
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
