#include <parc/comm/endpoint.hpp>

#include <array>

namespace parc {

class LoopbackNetwork::LoopbackEndpoint : public Endpoint {
 public:
  LoopbackEndpoint(LoopbackNetwork& network, int rank) : network_(network), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(network_.endpoints_.size()); }

  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) override {
    finish_frame(frame, kind);
    network_.endpoints_.at(static_cast<std::size_t>(dest))
        ->inbox_[static_cast<std::size_t>(traffic)]
        .push_back(Message{rank_, kind, std::move(frame)});
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

  bool has_pending() const {
    for (const auto& queue : inbox_) {
      if (!queue.empty()) return true;
    }
    return false;
  }

 private:
  LoopbackNetwork& network_;
  int rank_;
  std::array<std::deque<Message>, traffic_class_count> inbox_;
};

LoopbackNetwork::LoopbackNetwork(int size) {
  for (int rank = 0; rank < size; ++rank) {
    endpoints_.push_back(std::make_unique<LoopbackEndpoint>(*this, rank));
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
