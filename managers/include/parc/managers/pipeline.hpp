#pragma once
// parc::Pipeline: items stream through a chain of stages (closures); a stage with several
// workers is a task farm inside the pipeline. Items travel through rank 0 between stages,
// as encoded bytes: stage k's result is stage k+1's argument, never decoded on the way.

#include <parc/closures/call.hpp>
#include <parc/managers/runtime.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <vector>

namespace parc {

namespace detail {

// One stage of the byte-level engine: stage k > 0 runs closure(prefix + stage k-1's
// result bytes). C++ stages have no prefix; Python's carries the task flags and callable.
struct PipelineStage {
  ClosureId closure = 0;
  Bytes prefix;
  int workers = 1;
  std::string name;
};

// A result of the last stage: views the received message, which `owner` keeps alive.
struct PipelineOutput {
  std::size_t index = 0;  // the item's position in the input
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  std::size_t size = 0;
  ByteReader reader() const { return ByteReader(data, size, owner); }
};

struct PipelineFailure {
  std::size_t index;  // the item's position in the input
  std::size_t stage;  // 0-based
  TaskError error;    // its input_index() is `index`
};

// The workers of each stage: stage k takes `wanted[k]` ranks (at most all of them) from
// a cursor going round `workers`, so stages share ranks only when there are too few, and
// a pipeline's one-worker stage always runs on the same rank.
std::vector<std::vector<int>> assign_pipeline_ranks(const std::vector<int>& workers,
                                                    const std::vector<int>& wanted);

// Items in flight when the user sets no window: enough to batch and to keep every worker
// busy, few enough to stay small.
std::size_t default_pipeline_window(const Scheduler& scheduler);

// One run of a pipeline: one scheduler farm per stage, pinned to the stage's ranks. Every
// call (as the scheduler's progress, which calls back into it) holds the engine's lock,
// except the destructor, which may wait for the scheduler.
class PipelineEngine {
 public:
  // `options` are every stage farm's policy, retries and timeout; window 0: the default.
  // `ordered`: outputs in input order, else in arrival order.
  PipelineEngine(ProgressEngine& engine, std::vector<PipelineStage> stages, FarmOptions options,
                 std::size_t window, bool ordered);
  ~PipelineEngine();
  PipelineEngine(const PipelineEngine&) = delete;
  PipelineEngine& operator=(const PipelineEngine&) = delete;

  const std::vector<std::vector<int>>& ranks() const;
  std::size_t window() const;
  // Items fed and not yet taken by the consumer (outputs waiting for their turn count).
  std::size_t in_flight() const;
  std::size_t fed() const;
  // How many more items may be fed now: 0 once the window is full, a fail_fast failure
  // is known, or the engine is closed.
  std::size_t room() const;

  // Stage 0's prefix: append an item's encoded argument to it and feed() the result.
  Bytes start_item() const;
  // Queues the next item (index fed()); call scheduler.dispatch() after a burst.
  void feed(Bytes arguments);

  bool has_output() const;
  // The next output (the next in input order when ordered), if there is one.
  std::optional<PipelineOutput> take();

  // A fail_fast failure is known: stop and raise.
  bool stopped() const;
  bool has_failures() const;
  // The failures recorded since the last call, in the order they were known.
  std::vector<PipelineFailure> take_failures();

  // There is something for the consumer: an output, a failure, room for input it has
  // (`more_input`), or nothing left in flight.
  bool ready(bool more_input) const;

  // Closes the stage farms: queued items are dropped, nothing more starts, and the
  // results of items still running are discarded when they come. Idempotent.
  void close();
  // No task of this pipeline is queued or running (after close(): the running ones have
  // returned). The destructor closes and waits for this, driving the scheduler.
  bool drained() const;
  // Stops tracking the tasks still running (their results are discarded when they come):
  // drained() is then true. For a scheduler that is gone, or a wait that was interrupted.
  void detach();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

template <class F>
inline constexpr std::size_t closure_arity_v = std::tuple_size_v<closure_arguments_t<F>>;

template <class F>
struct pipeline_parameter {
  using type = void;
};
template <class F>
requires(closure_arity_v<F> == 1) struct pipeline_parameter<F> {
  using type = std::tuple_element_t<0, closure_arguments_t<F>>;
};

template <class... Fs>
constexpr bool stages_connect() {
  if constexpr (sizeof...(Fs) < 2) {
    return true;
  } else {
    using Parameters = std::tuple<typename pipeline_parameter<Fs>::type...>;
    using Results = std::tuple<closure_result_t<Fs>...>;
    auto connect = []<std::size_t... I>(std::index_sequence<I...>) {
      return (std::is_same_v<std::tuple_element_t<I, Results>,
                             std::tuple_element_t<I + 1, Parameters>> &&
              ...);
    };
    return connect(std::make_index_sequence<sizeof...(Fs) - 1>{});
  }
}

}  // namespace detail

struct PipelineOptions {
  Policy policy = Policy::fail_fast;
  int retries = 0;                           // extra attempts of a failed item, per stage
  RetryFilter retry_on = {};                 // empty: retry every failure
  std::chrono::duration<double> timeout{0};  // per stage task; zero means none
  std::size_t window = 0;                    // items in flight; 0: 64 per worker
};

// A stage of a Pipeline: a declared closure taking one parameter, run by `workers` ranks.
template <class F>
struct Stage {
  using Pointer = std::conditional_t<std::is_function_v<F>, F*, const F*>;
  Pointer fn;
  int workers = 1;
};

template <class F>
Stage<F> stage(const F& fn, int workers = 1) {
  return Stage<F>{&fn, workers};
}

template <class... Fs>
class Pipeline {
  static_assert(sizeof...(Fs) >= 1, "parc::Pipeline needs at least one stage");
  static_assert(((detail::closure_arity_v<Fs> == 1) && ...),
                "parc::Pipeline: every stage must take exactly one parameter (the item, or "
                "the previous stage's result); pass several values as a struct or tuple");
  static_assert(!(detail::function_traits<detail::closure_signature_t<Fs>>::takes_context || ...),
                "parc::Pipeline: a closure taking parc::SpmdContext& runs in an SPMD region, "
                "not in a pipeline");
  static_assert((!std::is_void_v<detail::closure_result_t<Fs>> && ...),
                "parc::Pipeline: every stage must return a value (the next stage's input, or "
                "the pipeline's output)");
  static_assert(detail::stages_connect<Fs...>(),
                "parc::Pipeline: each stage's result type must be the next stage's parameter "
                "type (after decay): the result's bytes are passed on as they are");

  using First = std::tuple_element_t<0, std::tuple<Fs...>>;

 public:
  using Input = std::tuple_element_t<0, detail::closure_arguments_t<First>>;
  using Output =
      detail::closure_result_t<std::tuple_element_t<sizeof...(Fs) - 1, std::tuple<Fs...>>>;
  static_assert(std::is_default_constructible_v<Output>,
                "parc::Pipeline: the last stage's result type must be default-constructible "
                "(it is decoded on rank 0)");

  Pipeline(Runtime& runtime, Stage<Fs>... stages)
      : Pipeline(runtime, PipelineOptions{}, stages...) {}
  Pipeline(Runtime& runtime, PipelineOptions options, Stage<Fs>... stages)
      : engine_(&runtime.engine()), options_(std::move(options)) {
    (add(stages), ...);
    if (options_.retries < 0)
      throw UsageError("parc::Pipeline: retries must be >= 0, got " +
                       std::to_string(options_.retries));
    if (options_.timeout.count() < 0)
      throw UsageError("parc::Pipeline: timeout must be >= 0 seconds");
  }

  const PipelineOptions& options() const { return options_; }

  // The world ranks each stage runs on (see assign_pipeline_ranks).
  std::vector<std::vector<int>> stage_ranks() const {
    std::vector<int> wanted;
    for (const auto& s : stages_) wanted.push_back(s.workers);
    auto lock = engine_->lock();
    return detail::assign_pipeline_ranks(engine_->scheduler().worker_ranks(), wanted);
  }

  // The outputs of every input, in input order. Streams: at most `window` items are in
  // flight, however long `inputs` is (the outputs themselves are all kept). Failures
  // raise one ParallelException, per the policy.
  template <std::ranges::input_range Inputs>
  std::vector<Output> run(Inputs&& inputs) {
    std::vector<Output> outputs;
    if constexpr (std::ranges::sized_range<Inputs>) {
      outputs.reserve(static_cast<std::size_t>(std::ranges::size(inputs)));
    }
    for_each(std::forward<Inputs>(inputs),
             [&](Output&& value) { outputs.push_back(std::move(value)); });
    return outputs;
  }

  // Calls callback(output) — or callback(index, output), index the item's position in
  // `inputs` — on rank 0 for each output as it comes: in input order, or in arrival
  // order when !ordered. Inputs are read as the window frees, so memory stays bounded
  // for unbounded ranges. Failures: under fail_fast the first one stops the stream and
  // raises ParallelException at once; under collect_all failed items are skipped and one
  // ParallelException with every failure (by item) is raised at the end.
  template <std::ranges::input_range Inputs, class Callback>
  void for_each(Inputs&& inputs, Callback&& callback, bool ordered = true) {
    // Inputs are read and encoded, and outputs decoded and called back, without the
    // engine's lock; the pipeline's state is read and changed under it.
    std::unique_ptr<detail::PipelineEngine> pipeline;
    {
      auto lock = engine_->lock();
      pipeline = std::make_unique<detail::PipelineEngine>(*engine_, stages_, farm_options(),
                                                          options_.window, ordered);
    }
    auto it = std::ranges::begin(inputs);
    auto end = std::ranges::end(inputs);
    std::vector<Bytes> items;
    std::vector<detail::PipelineOutput> outputs;
    while (true) {
      std::size_t room = 0;
      Bytes prefix;
      {
        auto lock = engine_->lock();
        room = pipeline->room();
        if (room > 0 && it != end) prefix = pipeline->start_item();
      }
      items.clear();
      for (; it != end && items.size() < room; ++it) {
        Bytes& arguments = items.emplace_back(prefix);
        ByteWriter out(arguments);
        detail::write_arguments<First>(out, *it);
      }
      bool stopped = false;
      {
        auto lock = engine_->lock();
        for (Bytes& item : items) pipeline->feed(std::move(item));
        if (!items.empty()) engine_->scheduler().dispatch();
        stopped = pipeline->stopped();
        outputs.clear();
        while (!stopped) {
          auto output = pipeline->take();
          if (!output) break;
          outputs.push_back(std::move(*output));
        }
      }
      if (!items.empty()) engine_->wake();
      if (stopped) fail(*pipeline);
      for (auto& output : outputs) {
        ByteReader in = output.reader();
        Output value = in.read<Output>();
        if constexpr (std::is_invocable_v<Callback&, std::size_t, Output&&>) {
          callback(output.index, std::move(value));
        } else {
          callback(std::move(value));
        }
      }
      {
        auto lock = engine_->lock();
        if (pipeline->stopped()) fail(*pipeline);
        if (it == end && pipeline->in_flight() == 0) break;
      }
      if (!outputs.empty()) continue;  // the window has room again: read more input first
      const bool more_input = it != end;
      engine_->wait_until([&] { return pipeline->ready(more_input); });
    }
    auto lock = engine_->lock();
    pipeline->close();
    if (pipeline->has_failures()) fail(*pipeline);
  }

 private:
  template <class F>
  void add(const Stage<F>& s) {
    if (s.workers < 1) {
      throw UsageError("parc::Pipeline: stage " + std::to_string(stages_.size() + 1) +
                       " asks for " + std::to_string(s.workers) +
                       " workers; a stage needs at least 1");
    }
    detail::PipelineStage stage;
    stage.closure = detail::closure_id_of(*s.fn, "parc::Pipeline");
    stage.workers = s.workers;
    stage.name = detail::ClosureRegistry::instance().entry(stage.closure).name;
    stages_.push_back(std::move(stage));
  }

  FarmOptions farm_options() const {
    FarmOptions options;
    options.policy = options_.policy;
    options.retries = options_.retries;
    options.retry_on = options_.retry_on;
    options.timeout = options_.timeout;
    return options;
  }

  // Raises the run's failures, by item; each names its stage after its closure.
  [[noreturn]] void fail(detail::PipelineEngine& pipeline) {
    std::vector<detail::PipelineFailure> failures;
    {
      auto lock = engine_->lock();
      pipeline.close();
      failures = pipeline.take_failures();
    }
    std::stable_sort(failures.begin(), failures.end(),
                     [](const auto& a, const auto& b) { return a.index < b.index; });
    std::vector<TaskError> errors;
    errors.reserve(failures.size());
    for (const auto& failure : failures) {
      ErrorInfo info = failure.error.info();
      info.closure += ", pipeline stage " + std::to_string(failure.stage + 1) + " of " +
                      std::to_string(stages_.size());
      errors.emplace_back(std::move(info), failure.error.exception());
    }
    throw ParallelException(std::move(errors));
  }

  detail::ProgressEngine* engine_;
  PipelineOptions options_;
  std::vector<detail::PipelineStage> stages_;
};

}  // namespace parc
