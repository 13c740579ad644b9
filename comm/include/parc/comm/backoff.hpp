#pragma once
// Idle waiting without burning a core: MPICH's blocking calls spin, and on small
// machines ranks share cores. Spin briefly, then yield, then sleep up to ~1 ms.

#include <chrono>

namespace parc {

class Backoff {
 public:
  void reset() { idle_since_ = Clock::time_point{}; }
  void pause();

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point idle_since_{};
  std::chrono::microseconds sleep_{0};
};

}  // namespace parc
