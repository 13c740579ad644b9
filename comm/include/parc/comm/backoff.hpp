#pragma once
// Idle waiting without burning a core: MPICH's blocking calls spin, and on small
// machines ranks share cores. Spin briefly, then yield, then sleep up to ~1 ms.

#include <chrono>

namespace parc {

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;

  void reset() { idle_since_ = Clock::time_point{}; }
  // Waits a little before the next poll. While a transfer is in flight (a send not
  // complete yet) it only yields: a large message's rendezvous needs both sides polling,
  // and a sleeping sender stalls it for the whole sleep. `answer_due`: when an answer is
  // expected (a batch's usual run time after it was sent); no sleep lasts past it, and
  // from shortly before it the wait only yields, so a result is picked up at once.
  void pause(bool transfer_in_flight = false, Clock::duration answer_due = Clock::duration::max());

 private:
  Clock::time_point idle_since_{};
  std::chrono::microseconds sleep_{0};
};

}  // namespace parc
