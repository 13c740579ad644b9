#pragma once
// parc::TaskFarm: independent tasks on every worker, with dynamic load balancing. Its
// calls may come from several threads; futures finish on their own (see Future).

#include <parc/closures/call.hpp>
#include <parc/managers/future.hpp>
#include <parc/managers/runtime.hpp>

#include <atomic>
#include <iterator>
#include <ranges>
#include <tuple>
#include <vector>

namespace parc {

class TaskFarm {
 public:
  explicit TaskFarm(Runtime& runtime, Policy policy = Policy::fail_fast)
      : TaskFarm(runtime, make_options(policy)) {}
  TaskFarm(Runtime& runtime, FarmOptions options)
      : engine_(&runtime.engine()), options_(std::move(options)) {
    auto lock = engine_->lock();
    farm_ = engine_->scheduler().open_farm(options_);
  }
  ~TaskFarm() {
    try {
      shutdown();
    } catch (...) {
    }
  }
  TaskFarm(const TaskFarm&) = delete;
  TaskFarm& operator=(const TaskFarm&) = delete;

  const FarmOptions& options() const { return options_; }

  template <class F, class... Args>
  Future<detail::closure_result_t<F>> submit(const F& fn, Args&&... args) {
    check_open("submit");
    Bytes arguments = encode(fn, std::forward<Args>(args)...);
    const ClosureId closure = detail::closure_id_of(fn, "TaskFarm::submit");
    Future<detail::closure_result_t<F>> future;
    queue([&](detail::Scheduler& scheduler) {
      future = queue_task<detail::closure_result_t<F>>(scheduler, closure, std::move(arguments));
    });
    return future;
  }

  // One task per tuple of arguments, queued at once: under fail_fast, a failure of one
  // cancels every other that has not started, however soon it comes.
  template <class F, class... Args>
  std::vector<Future<detail::closure_result_t<F>>> submit_batch(
      const F& fn, const std::vector<std::tuple<Args...>>& calls) {
    check_open("submit_batch");
    std::vector<Bytes> arguments;
    arguments.reserve(calls.size());
    for (const auto& call : calls) {
      arguments.push_back(std::apply([&](const auto&... a) { return encode(fn, a...); }, call));
    }
    const ClosureId closure = detail::closure_id_of(fn, "TaskFarm::submit_batch");
    std::vector<Future<detail::closure_result_t<F>>> futures;
    futures.reserve(calls.size());
    queue([&](detail::Scheduler& scheduler) {
      for (Bytes& call : arguments) {
        futures.push_back(
            queue_task<detail::closure_result_t<F>>(scheduler, closure, std::move(call)));
      }
    });
    return futures;
  }

  // fn(x) for every x of `inputs` (tuples are spread over several parameters), results
  // in input order. Streams: at most a window of tasks is in flight, however long
  // `inputs` is. Failures raise one ParallelException, per the farm's policy.
  template <class F, std::ranges::input_range Inputs>
  std::vector<detail::closure_result_t<F>> map(const F& fn, Inputs&& inputs) {
    using R = detail::closure_result_t<F>;
    static_assert(
        !std::is_void_v<R>,
        "TaskFarm::map needs a closure that returns a value; use submit for void closures");
    static_assert(std::is_default_constructible_v<R>,
                  "TaskFarm::map: the result type must be default-constructible");
    check_open("map");
    const ClosureId closure = detail::closure_id_of(fn, "TaskFarm::map");
    auto sink = std::make_shared<MapSink<R>>();
    if constexpr (std::ranges::sized_range<Inputs>) {
      sink->results.reserve(static_cast<std::size_t>(std::ranges::size(inputs)));
    }
    const std::size_t window = map_window();
    auto it = std::ranges::begin(inputs);
    auto end = std::ranges::end(inputs);
    std::size_t submitted = 0;
    // The sink is written under the engine's lock; read it under the lock too.
    auto stop = [&] { return options_.policy == Policy::fail_fast && !sink->errors.empty(); };
    auto finished = [&] { return stop() || (it == end && sink->finished == submitted); };
    std::vector<Bytes> encoded;  // inputs are read and encoded without the lock
    while (true) {
      std::size_t room = 0;
      {
        auto lock = engine_->lock();
        if (!stop()) room = window - (submitted - sink->finished);
      }
      encoded.clear();
      for (; it != end && encoded.size() < room; ++it) encoded.push_back(encode_element(fn, *it));
      {
        auto lock = engine_->lock();
        auto& scheduler = engine_->scheduler();
        for (Bytes& arguments : encoded) {
          if (stop()) break;  // a failure came in while we encoded
          sink->results.emplace_back();
          scheduler.submit(farm_, closure, std::move(arguments), sink, submitted++);
        }
        scheduler.dispatch();
        if (finished()) break;
      }
      engine_->wake();
      engine_->wait_until(
          [&] { return finished() || (it != end && submitted - sink->finished < window); });
    }
    // Failures that arrived together are picked up by one more round.
    if (!sink->errors.empty()) engine_->wait_until([] { return false; }, Clock::now());
    auto lock = engine_->lock();
    if (!sink->errors.empty()) {
      std::sort(sink->errors.begin(), sink->errors.end(),
                [](const TaskError& a, const TaskError& b) { return a.task_id() < b.task_id(); });
      throw ParallelException(std::move(sink->errors));
    }
    return std::move(sink->results);
  }

  // Waits for this farm's outstanding tasks; later submissions raise UsageError.
  void shutdown() {
    if (closed_.exchange(true)) return;
    engine_->wait_until([this] { return engine_->scheduler().outstanding(farm_) == 0; });
    auto lock = engine_->lock();
    engine_->scheduler().close_farm(farm_);
  }

 private:
  static FarmOptions make_options(Policy policy) {
    FarmOptions options;
    options.policy = policy;
    return options;
  }

  template <class R>
  struct MapSink : detail::Sink {
    std::vector<R> results;
    std::vector<TaskError> errors;
    std::size_t finished = 0;
    void on_result(std::size_t index, ByteReader& in) override {
      if constexpr (std::is_same_v<R, bool>) {
        results[index] = in.read<bool>();  // vector<bool> has no bool& to decode into
      } else {
        in.read_into(results[index]);
      }
      ++finished;
    }
    void on_error(std::size_t index, TaskError error) override {
      errors.push_back(error.with_input_index(index));
      ++finished;
    }
    void on_cancel(std::size_t) override { ++finished; }
  };

  // Queues what `add` submits under one lock (a failure handled meanwhile cannot split
  // a batch between generations), and sends it to free workers now, not at the first
  // wait.
  template <class Add>
  void queue(Add&& add) {
    {
      auto lock = engine_->lock();
      auto& scheduler = engine_->scheduler();
      add(scheduler);
      scheduler.dispatch();
    }
    engine_->wake();
  }

  // Under the engine's lock.
  template <class R>
  Future<R> queue_task(detail::Scheduler& scheduler, ClosureId closure, Bytes arguments) {
    auto state = std::make_shared<detail::FutureState<R>>();
    Future<R> future(state, engine_);
    scheduler.submit(farm_, closure, std::move(arguments), std::move(state), 0);
    return future;
  }

  template <class F, class... Args>
  static Bytes encode(const F&, Args&&... args) {
    Bytes arguments;
    ByteWriter out(arguments);
    detail::write_arguments<F>(out, std::forward<Args>(args)...);
    return arguments;
  }

  template <class F, class Element>
  static Bytes encode_element(const F& fn, Element&& element) {
    using Parameters = detail::closure_arguments_t<F>;
    if constexpr (std::tuple_size_v<Parameters> == 1) {
      return encode(fn, std::forward<Element>(element));
    } else {
      return std::apply([&](auto&&... a) { return encode(fn, std::forward<decltype(a)>(a)...); },
                        std::forward<Element>(element));
    }
  }

  using Clock = std::chrono::steady_clock;

  std::size_t map_window() const {
    return static_cast<std::size_t>(std::max(1, engine_->scheduler().workers())) * 2 * 4096;
  }

  void check_open(const char* what) const {
    if (closed_) {
      throw UsageError(std::string("TaskFarm::") + what +
                       " after shutdown(): create a new TaskFarm for more work");
    }
  }

  detail::ProgressEngine* engine_;
  FarmOptions options_;
  std::uint32_t farm_ = 0;
  std::atomic<bool> closed_{false};  // read by every thread that submits
};

}  // namespace parc
