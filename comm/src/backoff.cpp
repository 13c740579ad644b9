#include <parc/comm/backoff.hpp>

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace parc {

namespace {
// A short spin: when ranks share a core, every spinning microsecond is taken from the
// rank that would answer (bench/README.md measured 20 us of spin as a 50 us round trip).
constexpr auto spin_for = std::chrono::microseconds(2);
constexpr auto first_sleep = std::chrono::microseconds(20);
constexpr auto longest_sleep = std::chrono::microseconds(1000);
// Long idleness (a worker between managers) sleeps longer: each wake-up costs about
// 10 us of polling, which at 1 kHz is already ~1.5% of a core.
constexpr auto long_idle = std::chrono::milliseconds(50);
constexpr auto longest_sleep_when_long_idle = std::chrono::microseconds(2000);
// Idle for a second (a worker between jobs of its manager): 10 ms sleeps, a wake-up
// delay of at most 1% of the idle time. A wake-up costs ~30 us of a core on a VM (mostly
// the kernel's): at 5 ms, a Python worker measured 1.1-1.5% with its two polling threads.
constexpr auto very_long_idle = std::chrono::seconds(1);
constexpr auto longest_sleep_when_very_long_idle = std::chrono::microseconds(10000);
// Oversubscribed, the shortest sleep replaces a yield (the kernel's timer slack makes it
// about 50-60 us).
constexpr auto oversubscribed_sleep = std::chrono::microseconds(1);
std::atomic<bool> host_oversubscribed{false};
// An answer due this soon is waited for without sleeping.
constexpr auto answer_margin = std::chrono::microseconds(100);
}  // namespace

Backoff::Clock::duration Backoff::next_sleep(bool transfer_in_flight, Clock::duration answer_due) {
  const auto idle = begin_idle();
  // A transfer in flight, or an answer due soon or just now: yield, never sleep. An
  // answer later than that is late (the batch ran longer than usual): back off as usual.
  const bool answer_now = answer_due <= answer_margin && answer_due >= -4 * answer_margin;
  if (idle < yield_for_ || transfer_in_flight || answer_now) {
    return host_oversubscribed.load(std::memory_order_relaxed) ? Clock::duration(oversubscribed_sleep)
                                                               : Clock::duration::zero();
  }
  const Clock::duration sleep = answer_due > answer_margin
                                    ? std::min<Clock::duration>(sleep_, answer_due - answer_margin)
                                    : sleep_;
  sleep_ = std::min(sleep_ * 2, idle < long_idle        ? longest_sleep
                                : idle < very_long_idle ? longest_sleep_when_long_idle
                                                        : longest_sleep_when_very_long_idle);
  return sleep;
}

Backoff::Clock::duration Backoff::begin_idle() {
  const auto now = Clock::now();
  if (idle_since_ == Clock::time_point{}) {
    idle_since_ = now;
    sleep_ = first_sleep;
  }
  return now - idle_since_;
}

void Backoff::set_oversubscribed(bool oversubscribed) { host_oversubscribed = oversubscribed; }

bool Backoff::oversubscribed() { return host_oversubscribed; }

void Backoff::pause(bool transfer_in_flight, Clock::duration answer_due) {
  if (begin_idle() < spin_for) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    return;
  }
  const auto sleep = next_sleep(transfer_in_flight, answer_due);
  if (sleep == Clock::duration::zero()) {
    sched_yield();
  } else {
    std::this_thread::sleep_for(sleep);
  }
}

}  // namespace parc
