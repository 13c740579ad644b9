// The manager's progress engine: who drives the scheduler, and how a round's hand-offs
// run. See progress_engine.hpp and docs/threading.md.

#include <parc/comm/log.hpp>
#include <parc/managers/detail/progress_engine.hpp>

namespace parc::detail {

namespace {
// How deep the drive this thread holds is nested (a hand-off that waits again).
thread_local int drive_depth = 0;
}  // namespace

std::recursive_mutex& ProgressEngine::mutex() {
  static std::recursive_mutex scheduler_mutex;
  return scheduler_mutex;
}

ProgressEngine::ProgressEngine(Scheduler& scheduler, bool serial)
    : scheduler_(scheduler), serial_(serial) {}

ProgressEngine::~ProgressEngine() { stop(); }

void ProgressEngine::notify_blocked_waiters() {
  if (blocked_waiters_ == 0) return;
  { std::lock_guard lock(handed_mutex_); }  // a waiter between its check and its wait
  handed_cv_.notify_all();
}

bool ProgressEngine::try_drive() {
  if (drive_depth > 0) {
    ++drive_depth;
    return true;
  }
  std::thread::id none{};
  if (!driver_.compare_exchange_strong(none, std::this_thread::get_id())) return false;
  drive_depth = 1;
  return true;
}

void ProgressEngine::release_drive() {
  if (--drive_depth != 0) return;
  driver_.store(std::thread::id{});
  notify_blocked_waiters();
}

void ProgressEngine::hand_off(std::shared_ptr<Handoff> handoff) {
  handoffs_.push_back(std::move(handoff));
}

// One scheduler round under the lock, by the thread that holds the drive.
ProgressEngine::Round ProgressEngine::drive_round(const std::function<bool()>* done) {
  Round round;
  std::lock_guard lock(mutex());
  round.active = scheduler_.progress();
  if (!handoffs_.empty()) {
    round.handoffs.reserve(handoffs_.size());
    for (auto& handoff : handoffs_) round.handoffs.push_back(handoff->take());
    handoffs_.clear();
  }
  round.busy = scheduler_.busy();
  round.sending = scheduler_.sending();
  round.answer_due = scheduler_.answer_due();
  if (done != nullptr) round.done = (*done)();
  return round;
}

void ProgressEngine::run_handoffs(Round& round) {
  if (hooks_.run_handoffs) {
    hooks_.run_handoffs(round.handoffs);
  } else {
    for (auto& handoff : round.handoffs) {
      try {
        handoff();
      } catch (const std::exception& e) {
        log().error("parc: a future's done-callback threw: {}", e.what());
      } catch (...) {
        log().error("parc: a future's done-callback threw");
      }
    }
  }
  round.handoffs.clear();
  {
    std::lock_guard lock(handed_mutex_);
    ++handed_over_;
  }
  notify_blocked_waiters();
}

std::uint64_t ProgressEngine::rounds_handed_over() {
  std::lock_guard lock(handed_mutex_);
  return handed_over_;
}

void ProgressEngine::engine_main() {
  if (hooks_.thread_started) hooks_.thread_started();
  std::uint64_t ticket_seen = 0;
  auto last_work = Clock::now();
  // The engine waits on its condition variable (a waiter or a submit may need it), and
  // yields for only 100 us after activity: it shares the cores with the workers.
  Backoff backoff(std::chrono::microseconds(100));
  for (;;) {
    {
      std::unique_lock lock(engine_mutex_);
      const auto ready = [&] {
        return stopping_ || (waiters_ == 0 && (outstanding_ || work_ticket_ != ticket_seen));
      };
      if (!ready()) {
        // Shortly after work, look every millisecond (submits then need not wake it), or
        // every 10 while a thread waits inside parc (it drives; the last one to leave
        // wakes the engine if work is left); after that, sleep until wake().
        if (Clock::now() - last_work < std::chrono::milliseconds(100)) {
          engine_cv_.wait_for(lock, std::chrono::milliseconds(waiters_ > 0 ? 10 : 1), ready);
        } else {
          deep_sleep_ = true;
          engine_cv_.wait(lock, ready);
          deep_sleep_ = false;
        }
      }
      if (stopping_) break;
      if (!ready()) continue;
      const bool new_work = work_ticket_ != ticket_seen;
      ticket_seen = work_ticket_;
      last_work = Clock::now();
      if (new_work && !outstanding_) {
        // Submitting sent the tasks already; leave their outcomes to the submitting
        // thread if it waits for them at once (a synchronous round trip then pays no
        // hand-off). Serially tasks run on the driving thread: a longer grace keeps them
        // on the thread that waits (debugger breakpoints in tasks stop there).
        engine_cv_.wait_for(
            lock, serial_ ? std::chrono::microseconds(2000) : std::chrono::microseconds(100),
            [&] { return stopping_ || waiters_ > 0; });
        if (stopping_) break;
        if (waiters_ > 0) continue;
      }
    }
    if (!try_drive()) {
      std::this_thread::yield();
      continue;
    }
    Round round;
    try {
      round = drive_round(nullptr);
    } catch (const std::exception& e) {
      log().error("parc's progress engine: {}", e.what());
    }
    release_drive();
    outstanding_ = round.busy;
    if (!round.handoffs.empty()) run_handoffs(round);
    if (!round.busy) {
      backoff.reset();
      continue;
    }
    if (round.active) backoff.reset();
    const auto pause = round.active ? Clock::duration::zero()
                                    : backoff.next_sleep(round.sending, round.answer_due);
    if (pause == Clock::duration::zero()) {
      std::this_thread::yield();
      continue;
    }
    std::unique_lock lock(engine_mutex_);
    engine_cv_.wait_for(lock, pause,
                        [&] { return stopping_ || waiters_ > 0 || work_ticket_ != ticket_seen; });
  }
  if (hooks_.thread_ending) hooks_.thread_ending();
}

void ProgressEngine::start(Hooks hooks) {
  std::lock_guard lock(engine_mutex_);
  if (engine_thread_.joinable()) return;
  hooks_ = std::move(hooks);
  stopping_ = false;
  outstanding_ = false;
  engine_thread_ = std::thread([this] { engine_main(); });
}

void ProgressEngine::stop() {
  {
    std::lock_guard lock(engine_mutex_);
    if (!engine_thread_.joinable()) return;
    stopping_ = true;
  }
  engine_cv_.notify_all();
  engine_thread_.join();
}

void ProgressEngine::wake() {
  ++work_ticket_;
  if (!deep_sleep_) return;                 // it looks again within a millisecond
  { std::lock_guard lock(engine_mutex_); }  // the engine between its check and its wait
  engine_cv_.notify_all();
}

bool ProgressEngine::wait_until(const std::function<bool()>& done, Clock::time_point deadline,
                                const WaitHooks* hooks) {
  const auto start = Clock::now();
  auto next_periodic = start + std::chrono::milliseconds(50);
  ++waiters_;
  struct Leave {
    ProgressEngine& engine;
    ~Leave() {
      // Work goes on behind us: the engine takes over.
      if (--engine.waiters_ == 0 && engine.outstanding_) engine.engine_cv_.notify_all();
    }
  } leave{*this};
  Backoff backoff;
  std::uint64_t seen = rounds_handed_over();
  const bool watch_handoffs = hooks != nullptr && hooks->after_handoffs;
  for (;;) {
    bool finished = false;
    if (try_drive()) {
      Round round;
      try {
        round = drive_round(&done);
      } catch (...) {
        release_drive();
        throw;
      }
      release_drive();
      if (!round.handoffs.empty()) run_handoffs(round);
      outstanding_ = round.busy;
      finished = round.done;
      if (round.active) {
        backoff.reset();
      } else if (!finished && Clock::now() < deadline) {
        backoff.pause(round.sending, round.answer_due);
      }
    } else {
      // Another thread drives: wait for its next round (or for it to let go).
      {
        ++blocked_waiters_;
        std::unique_lock lock(handed_mutex_);
        handed_cv_.wait_for(lock, std::chrono::milliseconds(1), [&] {
          return handed_over_ != seen || driver_.load() == std::thread::id{};
        });
        if (!watch_handoffs) seen = handed_over_;
        --blocked_waiters_;
      }
      std::lock_guard lock(mutex());
      finished = done();
    }
    if (!finished && watch_handoffs) {
      const std::uint64_t now_handed = rounds_handed_over();
      if (now_handed != seen) {
        seen = now_handed;
        finished = hooks->after_handoffs();
      }
    }
    if (finished) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (now >= next_periodic && hooks != nullptr && hooks->periodic) {
      next_periodic = now + std::chrono::milliseconds(50);
      if (hooks->periodic()) return true;
    }
  }
}

}  // namespace parc::detail
