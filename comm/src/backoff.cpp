#include <parc/comm/backoff.hpp>

#include <sched.h>

#include <algorithm>
#include <thread>

namespace parc {

namespace {
constexpr auto spin_for = std::chrono::microseconds(20);
constexpr auto yield_for = std::chrono::microseconds(300);
constexpr auto first_sleep = std::chrono::microseconds(20);
constexpr auto longest_sleep = std::chrono::microseconds(1000);
}  // namespace

void Backoff::pause() {
  const auto now = Clock::now();
  if (idle_since_ == Clock::time_point{}) {
    idle_since_ = now;
    sleep_ = first_sleep;
  }
  const auto idle = now - idle_since_;
  if (idle < spin_for) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    return;
  }
  if (idle < yield_for) {
    sched_yield();
    return;
  }
  std::this_thread::sleep_for(sleep_);
  sleep_ = std::min(sleep_ * 2, longest_sleep);
}

}  // namespace parc
