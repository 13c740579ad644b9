#pragma once
// The manager's progress engine, shared by the C++ managers and the Python module (see
// docs/threading.md#who-drives-progress). One thread at a time drives the scheduler:
//   - a thread waiting inside parc drives it itself, so a synchronous round trip pays no
//     hand-off between threads;
//   - otherwise the engine thread drives it while work is outstanding, so futures finish,
//     and their callbacks run, while the program's threads do anything else.
// Every call into the scheduler holds mutex(). Sinks run under it (on whichever thread
// drives); what must run outside it (done-callbacks, Python's deliveries) is queued as a
// Handoff and run by the driving thread after its round.

#include <parc/managers/detail/scheduler.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace parc::detail {

// Work a round produced for the driving thread to run after it, without the lock.
class Handoff {
 public:
  virtual ~Handoff() = default;
  // Under the lock, once per hand_off(): what to run after the round.
  virtual std::function<void()> take() = 0;
};

class ProgressEngine {
 public:
  using Clock = std::chrono::steady_clock;

  // How a host (the Python module) runs the engine's thread and its hand-offs.
  struct Hooks {
    std::function<void()> thread_started;  // on the engine thread, first
    std::function<void()> thread_ending;   // on the engine thread, last
    // Runs a round's hand-offs (default: each in turn). Exceptions are the hook's to handle.
    std::function<void(std::vector<std::function<void()>>&)> run_handoffs;
  };

  // What a wait checks besides its condition.
  struct WaitHooks {
    // After rounds that ran hand-offs (this thread's or another's); true ends the wait.
    std::function<bool()> after_handoffs;
    // Every 50 ms; true ends the wait. May throw (a Ctrl-C).
    std::function<bool()> periodic;
  };

  // `serial`: tasks run on the driving thread (simulated workers).
  ProgressEngine(Scheduler& scheduler, bool serial);
  ~ProgressEngine();
  ProgressEngine(const ProgressEngine&) = delete;
  ProgressEngine& operator=(const ProgressEngine&) = delete;

  // The lock around the scheduler: one per process, as the runtime, so that a host can
  // hold it while the runtime itself goes away.
  static std::recursive_mutex& mutex();
  std::unique_lock<std::recursive_mutex> lock() const { return std::unique_lock(mutex()); }

  // The scheduler; call it with lock() held.
  Scheduler& scheduler() { return scheduler_; }

  // Starts the engine thread (rank 0, while managers run); idempotent.
  void start(Hooks hooks = {});
  // Stops and joins it; idempotent. Not from a hand-off.
  void stop();
  // Work was queued: the engine looks at it soon (at once when it was in deep sleep).
  void wake();

  // Queues `handoff` for the round under way; under the lock (from a sink).
  void hand_off(std::shared_ptr<Handoff> handoff);

  // Drives the scheduler (or, while another thread drives it, waits for that thread's
  // rounds) until done() (checked under the lock), a hook ends the wait, or `deadline`
  // (now: one round). False when the deadline ended it. Call it without the lock held:
  // the thread that drives may need it.
  bool wait_until(const std::function<bool()>& done,
                  Clock::time_point deadline = Clock::time_point::max(),
                  const WaitHooks* hooks = nullptr);

 private:
  struct Round {
    bool active = false;   // something was received or sent
    bool busy = false;     // work is still in progress
    bool sending = false;  // a send is still being transferred
    Clock::duration answer_due = Clock::duration::max();
    bool done = false;  // the caller's condition holds
    std::vector<std::function<void()>> handoffs;
  };

  bool try_drive();
  void release_drive();
  Round drive_round(const std::function<bool()>* done);
  void run_handoffs(Round& round);
  std::uint64_t rounds_handed_over();
  void notify_blocked_waiters();
  void engine_main();

  Scheduler& scheduler_;
  const bool serial_;
  Hooks hooks_;
  std::vector<std::shared_ptr<Handoff>> handoffs_;  // under the lock

  // The drive. A driving thread that waits again inside a hand-off it runs (a
  // done-callback calling result()) keeps driving.
  std::atomic<std::thread::id> driver_{};

  // The engine thread's state, under engine_mutex_. Waiting threads never notify the
  // engine on their way in (it sees them before its next round), so a synchronous round
  // trip costs it no wake-up.
  std::mutex engine_mutex_;
  std::condition_variable engine_cv_;
  std::thread engine_thread_;
  bool stopping_ = false;
  // wake() bumps the ticket without the mutex, and notifies only an engine in deep sleep
  // (both sequentially consistent: one of the two sides sees the other's write).
  std::atomic<bool> deep_sleep_{false};  // the engine waits for wake() alone
  std::atomic<std::uint64_t> work_ticket_{0};
  std::atomic<bool> outstanding_{false};  // the last round left work in progress
  std::atomic<int> waiters_{0};           // threads in wait_until: the engine leaves them the drive

  // Rounds that ran hand-offs, for threads waiting while another drives.
  std::mutex handed_mutex_;
  std::condition_variable handed_cv_;
  std::uint64_t handed_over_ = 0;
  std::atomic<int> blocked_waiters_{0};
};

}  // namespace parc::detail
