#pragma once
// parc::Future<T>: the outcome of one task. Waiting drives the runtime's progress.

#include <parc/exceptions/errors.hpp>
#include <parc/managers/scheduler.hpp>

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
};

}  // namespace detail

template <class T>
class Future {
 public:
  Future() = default;
  Future(std::shared_ptr<detail::FutureState<T>> state, detail::Scheduler* scheduler)
      : state_(std::move(state)), scheduler_(scheduler) {}

  bool valid() const noexcept { return state_ != nullptr; }

  // True once the task has an outcome; polls the network once.
  bool ready() const {
    check_valid();
    if (pending()) scheduler_->progress();
    return !pending();
  }

  void wait() const {
    check_valid();
    scheduler_->wait_until([this] { return !pending(); });
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

  detail::Scheduler& scheduler() const { return *scheduler_; }
  bool pending() const { return state_->state == detail::FutureState<T>::State::pending; }

 private:
  void check_valid() const {
    if (!state_)
      throw UsageError("parc: this Future has no task (default-constructed or moved from)");
  }

  std::shared_ptr<detail::FutureState<T>> state_;
  detail::Scheduler* scheduler_ = nullptr;
};

// Waits for every future; throws one ParallelException with every failure (tasks that
// were cancelled are not failures). Under fail_fast a failure cancels the farm's unstarted
// tasks, so the wait ends once the tasks already running have returned.
template <class T>
void wait_all(std::vector<Future<T>>& futures) {
  if (futures.empty()) return;
  detail::Scheduler& scheduler = futures.front().scheduler();
  scheduler.wait_until([&] {
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
      futures.front().scheduler().wait_until([&] {
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
