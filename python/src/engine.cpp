// The manager's progress engine: who drives the scheduler, and how outcomes reach Python.
// See core.hpp and docs/threading.md.

#include "core.hpp"

#include <parc/comm/log.hpp>

#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>

namespace parc::python {

void Collector::on_result(std::size_t index, ByteReader& reader) {
  const std::size_t size = reader.remaining();
  outcomes.push_back({index, result, reader.owner(), reader.take(size).data(), size, {}});
}

void Collector::on_error(std::size_t index, TaskError failure) {
  outcomes.push_back({index, error, {}, nullptr, 0, std::move(failure)});
}

void Collector::on_cancel(std::size_t index) {
  outcomes.push_back({index, cancelled, {}, nullptr, 0, {}});
}

namespace {

using Clock = std::chrono::steady_clock;

// Collectors whose outcomes rounds hand over; under scheduler_mutex.
std::vector<std::shared_ptr<Collector>> collectors;

// The drive: one thread at a time runs scheduler rounds. A thread that drives may wait
// again inside a callback it runs (a done-callback calling result()): it keeps driving.
std::atomic<std::thread::id> driver{};
thread_local int drive_depth = 0;

// The engine thread's state, under engine_mutex. Waiting threads never notify the engine
// on their way in (it sees them before its next round), so a synchronous round trip costs
// it no wake-up.
std::mutex engine_mutex;
std::condition_variable engine_cv;
std::thread engine_thread;
bool stopping = false;
bool deep_sleep = false;               // the engine waits for wake() alone
std::uint64_t work_ticket = 0;         // bumped by wake()
std::atomic<bool> outstanding{false};  // the last round left work in progress
std::atomic<int> waiters{0};  // threads in progress_until: the engine leaves them the drive

// Rounds that handed outcomes over, for threads waiting while another drives.
std::mutex handed_mutex;
std::condition_variable handed_cv;
std::uint64_t handed_over = 0;
std::atomic<int> blocked_waiters{0};

void notify_blocked_waiters() {
  if (blocked_waiters == 0) return;
  { std::lock_guard lock(handed_mutex); }  // a waiter between its check and its wait
  handed_cv.notify_all();
}

bool try_drive() {
  if (drive_depth > 0) {
    ++drive_depth;
    return true;
  }
  std::thread::id none{};
  if (!driver.compare_exchange_strong(none, std::this_thread::get_id())) return false;
  drive_depth = 1;
  return true;
}

void release_drive() {
  if (--drive_depth != 0) return;
  driver.store(std::thread::id{});
  notify_blocked_waiters();
}

struct Round {
  bool active = false;                                  // something was received or sent
  bool busy = false;                                    // work is still in progress
  bool sending = false;                                 // a send is still being transferred
  Clock::duration answer_due = Clock::duration::max();  // see Scheduler::answer_due
  bool done = false;                                    // the caller's condition holds
  std::vector<std::pair<std::shared_ptr<Collector>, std::vector<Collector::Outcome>>> taken;
};

// One scheduler round under scheduler_mutex, by the thread that holds the drive.
Round drive_round(const std::function<bool()>* done) {
  Round round;
  std::lock_guard lock(scheduler_mutex);
  if (!runtime) {
    round.done = true;
    return round;
  }
  auto& scheduler = runtime->scheduler();
  round.active = scheduler.progress();
  for (auto& collector : collectors) {
    if (collector->outcomes.empty()) continue;
    round.taken.emplace_back(collector, std::move(collector->outcomes));
    collector->outcomes.clear();
  }
  round.busy = scheduler.busy();
  round.sending = scheduler.sending();
  round.answer_due = scheduler.answer_due();
  if (done != nullptr) round.done = (*done)();
  return round;
}

py::list outcome_list(std::vector<Collector::Outcome>& outcomes) {
  py::list list;
  for (auto& outcome : outcomes) {
    py::object data = py::none();
    if (outcome.kind == Collector::result) {
      data = py::cast(Buffer(outcome.owner, outcome.data, outcome.size));
    } else if (outcome.kind == Collector::error) {
      data = error_tuple(*outcome.failure);
    }
    list.append(py::make_tuple(outcome.index, static_cast<int>(outcome.kind), data));
  }
  return list;
}

// Hands a round's outcomes to their operations' Python side. With the GIL.
void hand_over(Round& round) {
  for (auto& [collector, outcomes] : round.taken) {
    if (!collector->deliver) continue;  // the operation is gone: nobody wants them
    py::object deliver = collector->deliver();
    if (deliver.is_none()) continue;
    try {
      deliver(outcome_list(outcomes));
    } catch (py::error_already_set& e) {
      if (e.matches(PyExc_KeyboardInterrupt)) {
        interrupted = true;
      } else {
        e.discard_as_unraisable("parc: handing task outcomes to their futures");
      }
    }
  }
  round.taken.clear();  // with the GIL: a collector may die here
  {
    std::lock_guard lock(handed_mutex);
    ++handed_over;
  }
  notify_blocked_waiters();
}

std::uint64_t rounds_handed_over() {
  std::lock_guard lock(handed_mutex);
  return handed_over;
}

void engine_main() {
  PyGILState_STATE gil_state = PyGILState_Ensure();
  PyThreadState* thread_state = PyEval_SaveThread();
  const bool serial = runtime && runtime->serial();
  std::uint64_t ticket_seen = 0;
  auto last_work = Clock::now();
  // The engine waits on its condition variable (a waiter or a submit may need it), and
  // yields for only 100 us after activity: it shares the cores with the workers.
  Backoff backoff(std::chrono::microseconds(100));
  for (;;) {
    {
      std::unique_lock lock(engine_mutex);
      const auto ready = [&] {
        return stopping || (waiters == 0 && (outstanding || work_ticket != ticket_seen));
      };
      if (!ready()) {
        // Shortly after work, look every millisecond (submits then need not wake it);
        // after that, sleep until wake().
        if (Clock::now() - last_work < std::chrono::milliseconds(100)) {
          engine_cv.wait_for(lock, std::chrono::milliseconds(1), ready);
        } else {
          deep_sleep = true;
          engine_cv.wait(lock, ready);
          deep_sleep = false;
        }
      }
      if (stopping) break;
      if (!ready()) continue;
      const bool new_work = work_ticket != ticket_seen;
      ticket_seen = work_ticket;
      last_work = Clock::now();
      if (new_work && !outstanding) {
        // Submitting sent the tasks already; leave their outcomes to the submitting
        // thread if it waits for them at once (a synchronous round trip then pays no
        // hand-off). Serially tasks run on the driving thread: a longer grace keeps them
        // on the thread that waits (pdb breakpoints in tasks stop there).
        engine_cv.wait_for(
            lock, serial ? std::chrono::microseconds(2000) : std::chrono::microseconds(100),
            [&] { return stopping || waiters > 0; });
        if (stopping) break;
        if (waiters > 0) continue;
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
    outstanding = round.busy;
    if (!round.taken.empty()) {
      PyEval_RestoreThread(thread_state);
      hand_over(round);
      thread_state = PyEval_SaveThread();
    }
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
    std::unique_lock lock(engine_mutex);
    engine_cv.wait_for(lock, pause,
                       [&] { return stopping || waiters > 0 || work_ticket != ticket_seen; });
  }
  PyEval_RestoreThread(thread_state);
  PyGILState_Release(gil_state);
}

}  // namespace

namespace engine {

void start() {
  std::lock_guard lock(engine_mutex);
  if (engine_thread.joinable()) return;
  stopping = false;
  outstanding = false;
  engine_thread = std::thread(engine_main);
}

void stop() {
  {
    std::lock_guard lock(engine_mutex);
    if (!engine_thread.joinable()) return;
    stopping = true;
  }
  engine_cv.notify_all();
  engine_thread.join();
}

void wake() {
  {
    std::lock_guard lock(engine_mutex);
    ++work_ticket;
    if (!deep_sleep) return;  // it looks again within a millisecond
  }
  engine_cv.notify_all();
}

void add(std::shared_ptr<Collector> collector) { collectors.push_back(std::move(collector)); }

void remove(const Collector* collector) {
  std::erase_if(collectors, [&](const auto& c) { return c.get() == collector; });
}

}  // namespace engine

void progress_until(const std::function<bool()>& done, double timeout,
                    const py::object* python_done) {
  const auto start = Clock::now();
  auto next_signal_check = start + std::chrono::milliseconds(50);
  ++waiters;
  struct Leave {
    ~Leave() {
      if (--waiters == 0 && outstanding) engine_cv.notify_all();  // work goes on behind us
    }
  } leave;
  Backoff backoff;
  std::uint64_t seen = rounds_handed_over();
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
      if (!round.taken.empty()) {
        py::gil_scoped_acquire gil;
        hand_over(round);
      }
      outstanding = round.busy;
      finished = round.done;
      if (round.active) {
        backoff.reset();
      } else if (!finished) {
        backoff.pause(round.sending, round.answer_due);
      }
    } else {
      // Another thread drives: wait for its next round to hand outcomes over.
      {
        ++blocked_waiters;
        std::unique_lock lock(handed_mutex);
        handed_cv.wait_for(lock, std::chrono::milliseconds(1), [&] {
          return handed_over != seen || driver.load() == std::thread::id{};
        });
        if (python_done == nullptr) seen = handed_over;
        --blocked_waiters;
      }
      std::lock_guard lock(scheduler_mutex);
      finished = !runtime || done();
    }
    if (!finished && python_done != nullptr) {
      const std::uint64_t now_handed = rounds_handed_over();
      if (now_handed != seen) {
        seen = now_handed;
        py::gil_scoped_acquire gil;
        finished = (*python_done)().cast<bool>();
      }
    }
    if (finished || interrupted) break;
    const auto now = Clock::now();
    if (timeout >= 0 && now - start >= std::chrono::duration<double>(timeout)) break;
    if (now >= next_signal_check) {  // Ctrl-C reaches Python only through the GIL
      next_signal_check = now + std::chrono::milliseconds(50);
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      // A condition another thread made true without outcomes (a cancel, a close).
      if (python_done != nullptr && (*python_done)().cast<bool>()) break;
    }
  }
  if (interrupted.exchange(false)) {
    py::gil_scoped_acquire gil;
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}

}  // namespace parc::python
