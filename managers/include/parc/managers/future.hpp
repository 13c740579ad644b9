#pragma once
// parc::Future<T>: the outcome of one task or proxy call. Waiting drives the progress:
// the scheduler's for a task, the reply's for a call (see detail::FutureDriver).

#include <parc/comm/backoff.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/managers/scheduler.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace parc {

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

template <class T>
class FutureState : public Sink {
 public:
  enum class State { pending, ready, failed, cancelled };

  void on_result(std::size_t, ByteReader& result) override {
    slot.read(result);
    state = State::ready;
  }
  void on_error(std::size_t, TaskError e) override {
    error.emplace(std::move(e));
    state = State::failed;
  }
  void on_cancel(std::size_t) override { state = State::cancelled; }

  State state = State::pending;
  bool retrieved = false;
  ValueSlot<T> slot;
  std::optional<TaskError> error;
  std::uint64_t task_id = 0;
  std::unique_ptr<FutureDriver> driver;  // null: the scheduler completes it
};

}  // namespace detail

template <class T>
class Future {
 public:
  Future() = default;
  // A task's future: the scheduler completes it.
  Future(std::shared_ptr<detail::FutureState<T>> state, detail::Scheduler* scheduler)
      : state_(std::move(state)), scheduler_(scheduler) {}
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
      scheduler_->wait_until([this] { return !pending(); });
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
      scheduler_->wait_until(
          [&] { return !pending() || std::chrono::steady_clock::now() >= deadline; });
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

  // The scheduler of a task's future; null for a proxy call's.
  detail::Scheduler* scheduler() const noexcept { return scheduler_; }
  bool pending() const { return state_->state == detail::FutureState<T>::State::pending; }
  // One round of this future's progress; true when something happened.
  bool drive() const {
    if (state_->driver) return state_->driver->poll();
    return scheduler_ != nullptr && scheduler_->progress();
  }

 private:
  void check_valid() const {
    if (!state_)
      throw UsageError("parc: this Future has no task (default-constructed or moved from)");
  }

  std::shared_ptr<detail::FutureState<T>> state_;
  detail::Scheduler* scheduler_ = nullptr;
};

namespace detail {

// Drives `futures` until done(): one scheduler round per round (tasks of one runtime share
// it), plus one poll of each pending proxy call.
template <class T, class Done>
void drive_until(std::vector<Future<T>>& futures, Done done) {
  Scheduler* scheduler = nullptr;
  bool calls = false;
  for (const auto& f : futures) {
    if (f.scheduler() != nullptr) {
      scheduler = f.scheduler();
    } else {
      calls = true;
    }
  }
  if (!calls) {
    if (scheduler != nullptr) scheduler->wait_until(done);
    return;
  }
  Backoff backoff;
  while (!done()) {
    bool active = scheduler != nullptr && scheduler->progress();
    Future<T>* waiting = nullptr;
    for (auto& f : futures) {
      if (f.scheduler() != nullptr || !f.pending()) continue;
      active = f.drive() || active;
      if (waiting == nullptr && f.pending()) waiting = &f;
    }
    if (active || done()) {
      backoff.reset();
    } else if (scheduler == nullptr && waiting != nullptr) {
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
