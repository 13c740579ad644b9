#pragma once
// parc::Spmd: one closure on every worker of a set, with collectives among them
// (parc::SpmdContext). A failure on one rank releases the others, even those waiting in
// a collective, and the region raises one ParallelException with the real failures.

#include <parc/closures/call.hpp>
#include <parc/managers/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

namespace parc {

struct SpmdOptions {
  std::vector<int> ranks;                    // world ranks of the workers; empty: all
  std::chrono::duration<double> timeout{0};  // for the whole region; zero means none
};

namespace detail {

template <class R>
class RegionState : public Sink {
 public:
  explicit RegionState(std::size_t size) : values(size) {}
  void on_result(std::size_t index, ByteReader& in) override {
    if constexpr (!std::is_void_v<R>) values[index].emplace(in.read<R>());
  }
  // A region's failures carry their region rank as the input index.
  void on_error(std::size_t index, TaskError error) override {
    errors.push_back(error.with_input_index(index));
  }
  void on_cancel(std::size_t) override { ++cancelled; }

  using Slot = std::conditional_t<std::is_void_v<R>, std::optional<bool>, std::optional<R>>;
  std::vector<Slot> values;
  std::vector<TaskError> errors;
  std::size_t cancelled = 0;
};

}  // namespace detail

// A region started with Spmd::submit; get() waits for it.
template <class R>
class SpmdRun {
 public:
  SpmdRun(std::shared_ptr<detail::RegionState<R>> state, std::uint64_t region,
          detail::ProgressEngine* engine)
      : state_(std::move(state)), region_(region), engine_(engine) {}

  bool ready() const { return engine_->wait_until(finished(), std::chrono::steady_clock::now()); }

  // Per-rank results in region-rank order (nothing for void closures); throws
  // ParallelException with every rank's own failure (ranks released because of another
  // rank's failure are not in it), or TaskTimeout's when the region ran out of time.
  // Each TaskError's input_index() is its region rank.
  auto get() {
    engine_->wait_until(finished());
    auto lock = engine_->lock();  // ranks that timed out may still answer
    if (!state_->errors.empty()) {
      std::sort(
          state_->errors.begin(), state_->errors.end(),
          [](const TaskError& a, const TaskError& b) { return a.input_index() < b.input_index(); });
      throw ParallelException(std::move(state_->errors));
    }
    if (state_->cancelled > 0) {
      throw CancelledError("parc: the SPMD region was cancelled before its ranks finished");
    }
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      std::vector<R> results;
      results.reserve(state_->values.size());
      for (auto& value : state_->values) results.push_back(std::move(*value));
      return results;
    }
  }

  // Releases the region's ranks now: they stop at their next parc call.
  void cancel() {
    auto lock = engine_->lock();
    engine_->scheduler().cancel_region(region_, "the manager cancelled the region");
  }

 private:
  std::function<bool()> finished() const {
    return [this] { return engine_->scheduler().region_finished(region_); };
  }

  std::shared_ptr<detail::RegionState<R>> state_;
  std::uint64_t region_;
  detail::ProgressEngine* engine_;
};

class Spmd {
 public:
  explicit Spmd(Runtime& runtime, SpmdOptions options = {})
      : engine_(&runtime.engine()), options_(std::move(options)) {
    auto lock = engine_->lock();
    if (options_.ranks.empty()) options_.ranks = engine_->scheduler().worker_ranks();
  }

  // The region's ranks, as world ranks (region rank r is ranks()[r]).
  const std::vector<int>& ranks() const { return options_.ranks; }

  // Starts fn(ctx, args...) on every rank of the region; returns at once.
  template <class F, class... Args>
  SpmdRun<detail::closure_result_t<F>> submit(const F& fn, Args&&... args) {
    using R = detail::closure_result_t<F>;
    static_assert(detail::function_traits<detail::closure_signature_t<F>>::takes_context,
                  "parc::Spmd runs closures whose first parameter is parc::SpmdContext&");
    Bytes arguments;
    ByteWriter out(arguments);
    detail::write_arguments<F>(out, std::forward<Args>(args)...);
    auto state = std::make_shared<detail::RegionState<R>>(options_.ranks.size());
    const ClosureId closure = detail::closure_id_of(fn, "Spmd::run");
    std::uint64_t region = 0;
    {
      auto lock = engine_->lock();
      region = engine_->scheduler().open_region(closure, options_.ranks, std::move(arguments),
                                                state, options_.timeout);
    }
    engine_->wake();
    return SpmdRun<R>(std::move(state), region, engine_);
  }

  // fn(ctx, args...) on every rank of the region; the results in region-rank order.
  template <class F, class... Args>
  auto run(const F& fn, Args&&... args) {
    return submit(fn, std::forward<Args>(args)...).get();
  }

 private:
  detail::ProgressEngine* engine_;
  SpmdOptions options_;
};

}  // namespace parc
