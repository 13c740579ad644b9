#pragma once
// Idle waiting without burning a core: MPICH's blocking calls spin, and on small
// machines ranks share cores. Spin briefly, then yield, then sleep up to ~1 ms.

#include <chrono>

namespace parc {

class Backoff {
 public:
  void reset() { idle_since_ = Clock::time_point{}; }
  // Waits a little before the next poll. While a transfer is in flight (a send not
  // complete yet) it only yields: a large message's rendezvous needs both sides polling,
  // and a sleeping sender stalls it for the whole sleep.
  void pause(bool transfer_in_flight = false);

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point idle_since_{};
  std::chrono::microseconds sleep_{0};
};

}  // namespace parc
