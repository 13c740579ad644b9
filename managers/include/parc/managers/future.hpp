#pragma once
// parc::Future<T>: the outcome of one task or proxy call. A task's future finishes on its
// own (rank 0's progress engine drives the scheduler); waiting for it drives the
// scheduler on the waiting thread. A call's future progresses while it is waited for (see
// detail::FutureDriver).

#include <parc/comm/backoff.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/managers/detail/progress_engine.hpp>
#include <parc/managers/detail/scheduler.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace parc {

template <class T>
class Future;

namespace detail {

template <class T>
struct ValueSlot {
  std::optional<T> value;
  void read(ByteReader& in) { value.emplace(in.read<T>()); }
  T take() { return std::move(*value); }
};
template <>
struct ValueSlot<void> {
  void read(ByteReader&) {}
  void take() {}
};

// Completes a future that the scheduler does not: a proxy call's reply. Its owner, the
// future's state, outlives it.
class FutureDriver {
 public:
  virtual ~FutureDriver() = default;
  // Polls once; true when something happened (the outcome may now be in the state).
  virtual bool poll() = 0;
  // Waits until the outcome is in the state or `deadline`. Waiting on a proxy's progress
  // thread serves requests meanwhile, so a proxied method may wait for another proxy.
  virtual void wait_until(std::chrono::steady_clock::time_point deadline) = 0;
};

// A task's outcome is written under the engine's lock by the thread that drives, then
// `state` is published (release); readers that see it not pending (acquire) read the
// rest without the lock.
template <class T>
class FutureState : public Sink,
                    public Handoff,
                    public std::enable_shared_from_this<FutureState<T>> {
 public:
  enum class State { pending, ready, failed, cancelled };

  void on_result(std::size_t, ByteReader& result) override {
    slot.read(result);
    complete(State::ready);
  }
  void on_error(std::size_t, TaskError e) override {
    error.emplace(std::move(e));
    complete(State::failed);
  }
  void on_cancel(std::size_t) override { complete(State::cancelled); }

  // The done-callbacks, to run after the round that completed the task.
  std::function<void()> take() override {
    return [self = this->shared_from_this(), callbacks = std::move(callbacks)] {
      Future<T> future(self, self->engine);
      for (const auto& callback : callbacks) callback(future);
    };
  }

  std::atomic<State> state{State::pending};
  bool retrieved = false;
  ValueSlot<T> slot;
  std::optional<TaskError> error;
  std::uint64_t task_id = 0;
  std::unique_ptr<FutureDriver> driver;  // null: the scheduler completes it
  ProgressEngine* engine = nullptr;      // a task's: the engine that drives its scheduler
  std::vector<std::function<void(Future<T>&)>> callbacks;  // under the engine's lock

 private:
  void complete(State outcome) {
    state.store(outcome, std::memory_order_release);
    if (engine != nullptr && !callbacks.empty()) engine->hand_off(this->shared_from_this());
  }
};

}  // namespace detail

template <class T>
class Future {
 public:
  Future() = default;
  // A task's future: the scheduler `engine` drives completes it.
  Future(std::shared_ptr<detail::FutureState<T>> state, detail::ProgressEngine* engine)
      : state_(std::move(state)), engine_(engine) {
    state_->engine = engine;
  }
  // A future that is complete already or has its own driver (a proxy call).
  explicit Future(std::shared_ptr<detail::FutureState<T>> state) : state_(std::move(state)) {}

  bool valid() const noexcept { return state_ != nullptr; }

  // True once the task or call has an outcome; polls the network once.
  bool ready() const {
    check_valid();
    if (pending()) drive();
    return !pending();
  }

  void wait() const {
    check_valid();
    if (!pending()) return;
    if (state_->driver) {
      state_->driver->wait_until(std::chrono::steady_clock::time_point::max());
    } else {
      engine_->wait_until([this] { return !pending(); });
    }
  }

  // Waits at most `timeout`; true once the outcome is in.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    check_valid();
    if (!pending()) return true;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
    if (state_->driver) {
      state_->driver->wait_until(deadline);
    } else {
      engine_->wait_until([this] { return !pending(); }, deadline);
    }
    return !pending();
  }

  // The result; rethrows the task's exception (its registered type, or RemoteError),
  // or throws CancelledError when fail_fast cancelled the task before it started.
  // Call once: the value is moved out.
  T get() {
    wait();
    using State = typename detail::FutureState<T>::State;
    if (state_->state == State::failed) state_->error->rethrow();
    if (state_->retrieved) {
      throw UsageError(
          "parc: Future::get() was already called; it moves the result out, so "
          "call it once and keep the value");
    }
    state_->retrieved = true;
    if (state_->state == State::cancelled) {
      throw CancelledError(
          "parc: the task was cancelled before it started, because another "
          "task of its fail_fast farm failed");
    }
    return state_->slot.take();
  }

  bool failed() const { return ready() && state_->state == detail::FutureState<T>::State::failed; }
  bool cancelled() const {
    return ready() && state_->state == detail::FutureState<T>::State::cancelled;
  }
  // The failure, if the task failed.
  const std::optional<TaskError>& error() const {
    wait();
    return state_->error;
  }

  // Calls callback(future) once the task has an outcome: at once on this thread when it
  // has one already, else on the thread that drives the scheduler then (the engine's,
  // or one waiting inside parc), after the round that completed it. A callback may
  // submit and wait; an exception it throws is logged. Task futures only.
  template <class Callback>
  void add_done_callback(Callback callback) {
    check_valid();
    if (engine_ == nullptr) {
      throw UsageError(
          "parc: add_done_callback is for task futures; a proxy call's future progresses "
          "only while it is waited for");
    }
    {
      auto lock = engine_->lock();
      if (pending()) {
        state_->callbacks.emplace_back(std::move(callback));
        return;
      }
    }
    callback(*this);
  }

  // The engine of a task's future; null for a proxy call's.
  detail::ProgressEngine* engine() const noexcept { return engine_; }
  bool pending() const {
    return state_->state.load(std::memory_order_acquire) == detail::FutureState<T>::State::pending;
  }
  // One round of this future's progress; true when something happened.
  bool drive() const {
    if (state_->driver) return state_->driver->poll();
    return engine_ != nullptr &&
           engine_->wait_until([this] { return !pending(); }, std::chrono::steady_clock::now());
  }

 private:
  void check_valid() const {
    if (!state_)
      throw UsageError("parc: this Future has no task (default-constructed or moved from)");
  }

  std::shared_ptr<detail::FutureState<T>> state_;
  detail::ProgressEngine* engine_ = nullptr;
};

namespace detail {

// Drives `futures` until done(): the engine of their tasks (tasks of one runtime share
// it), plus one poll of each pending proxy call per round.
template <class T, class Done>
void drive_until(std::vector<Future<T>>& futures, Done done) {
  ProgressEngine* engine = nullptr;
  bool calls = false;
  for (const auto& f : futures) {
    if (f.engine() != nullptr) {
      engine = f.engine();
    } else {
      calls = true;
    }
  }
  if (!calls) {
    if (engine != nullptr) engine->wait_until(done);
    return;
  }
  Backoff backoff;
  while (!done()) {
    bool active = false;
    if (engine != nullptr) engine->wait_until(done, std::chrono::steady_clock::now());
    Future<T>* waiting = nullptr;
    for (auto& f : futures) {
      if (f.engine() != nullptr || !f.pending()) continue;
      active = f.drive() || active;
      if (waiting == nullptr && f.pending()) waiting = &f;
    }
    if (active || done()) {
      backoff.reset();
    } else if (engine == nullptr && waiting != nullptr) {
      // Only calls: idle inside one of them, which serves requests when this is a progress
      // thread (a proxied method waiting for several proxies).
      waiting->wait_for(std::chrono::milliseconds(1));
    } else {
      backoff.pause();
    }
  }
}

}  // namespace detail

// Waits for every future; throws one ParallelException with every failure (tasks that
// were cancelled are not failures). Under fail_fast a failure cancels the farm's unstarted
// tasks, so the wait ends once the tasks already running have returned.
template <class T>
void wait_all(std::vector<Future<T>>& futures) {
  if (futures.empty()) return;
  detail::drive_until(futures, [&] {
    for (auto& f : futures) {
      if (f.pending()) return false;
    }
    return true;
  });
  std::vector<TaskError> errors;
  for (auto& f : futures) {
    if (f.failed()) errors.push_back(*f.error());
  }
  if (!errors.empty()) throw ParallelException(std::move(errors));
}

// Iterates over futures in the order they complete: for (auto& f : as_completed(fs)).
template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<Future<T>>& futures)
      : futures_(futures), yielded_(futures.size(), false) {}

  class iterator {
   public:
    using difference_type = std::ptrdiff_t;
    using value_type = Future<T>;
    iterator() = default;
    explicit iterator(AsCompleted* owner) : owner_(owner) { advance(); }
    Future<T>& operator*() const { return owner_->futures_[current_]; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    bool operator==(std::default_sentinel_t) const { return owner_ == nullptr; }

   private:
    void advance() {
      if (owner_->remaining_ == 0) {
        owner_ = nullptr;
        return;
      }
      auto& futures = owner_->futures_;
      auto& yielded = owner_->yielded_;
      std::size_t found = futures.size();
      detail::drive_until(futures, [&] {
        for (std::size_t i = 0; i < futures.size(); ++i) {
          if (!yielded[i] && !futures[i].pending()) {
            found = i;
            return true;
          }
        }
        return false;
      });
      yielded[found] = true;
      --owner_->remaining_;
      current_ = found;
    }
    AsCompleted* owner_ = nullptr;
    std::size_t current_ = 0;
  };

  iterator begin() {
    if (futures_.empty()) return iterator();
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::vector<Future<T>>& futures_;
  std::vector<bool> yielded_;
  std::size_t remaining_ = futures_.size();
};

template <class T>
AsCompleted<T> as_completed(std::vector<Future<T>>& futures) {
  return AsCompleted<T>(futures);
}

}  // namespace parc
