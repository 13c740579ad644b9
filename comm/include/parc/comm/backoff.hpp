#pragma once
// Idle waiting without burning a core: MPICH's blocking calls spin, and on small
// machines ranks share cores. Spin briefly, then yield, then sleep up to ~1 ms.

#include <chrono>

namespace parc {

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;

  // `yield_for`: how long after the last activity a wait only yields before it sleeps.
  explicit Backoff(std::chrono::microseconds yield_for = std::chrono::microseconds(300))
      : yield_for_(yield_for) {}

  void reset() { idle_since_ = Clock::time_point{}; }
  // Set at start-up when this host runs more ranks than it has cores: waits that would
  // yield sleep briefly instead, since a yielding rank keeps taking time slices from the
  // ranks that compute (sched_yield gives the core up only for a moment).
  static void set_oversubscribed(bool oversubscribed);
  static bool oversubscribed();

  // How long the waits since the last reset() have lasted.
  Clock::duration idle_for() const {
    return idle_since_ == Clock::time_point{} ? Clock::duration{0} : Clock::now() - idle_since_;
  }
  // Waits a little before the next poll. While a transfer is in flight (a send not
  // complete yet) it only yields: a large message's rendezvous needs both sides polling,
  // and a sleeping sender stalls it for the whole sleep. `answer_due`: when an answer is
  // expected (a batch's usual run time after it was sent); no sleep lasts past it, and
  // from shortly before it the wait only yields, so a result is picked up at once.
  void pause(bool transfer_in_flight = false, Clock::duration answer_due = Clock::duration::max());

  // What pause() would do now, for a thread that waits its own way (on a condition
  // variable that other threads may notify): 0 to yield (or spin), else how long to
  // sleep. Advances the back-off as pause() does.
  Clock::duration next_sleep(bool transfer_in_flight = false,
                             Clock::duration answer_due = Clock::duration::max());

 private:
  Clock::duration begin_idle();  // how long idle, counting from now if not yet

  std::chrono::microseconds yield_for_;
  Clock::time_point idle_since_{};
  std::chrono::microseconds sleep_{0};
};

}  // namespace parc
