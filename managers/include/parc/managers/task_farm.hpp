#pragma once
// parc::TaskFarm: independent tasks on every worker, with dynamic load balancing.

#include <parc/closures/call.hpp>
#include <parc/managers/future.hpp>
#include <parc/managers/runtime.hpp>

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
      : scheduler_(&runtime.scheduler()), options_(std::move(options)) {
    farm_ = scheduler_->open_farm(options_);
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
    using R = detail::closure_result_t<F>;
    check_open("submit");
    auto state = std::make_shared<detail::FutureState<R>>();
    scheduler_->submit(farm_, detail::closure_id_of(fn, "TaskFarm::submit"),
                       encode(fn, std::forward<Args>(args)...), state, 0);
    scheduler_->dispatch();  // a free worker starts now, not at the first wait
    return Future<R>(std::move(state), scheduler_);
  }

  // One task per tuple of arguments.
  template <class F, class... Args>
  std::vector<Future<detail::closure_result_t<F>>> submit_batch(
      const F& fn, const std::vector<std::tuple<Args...>>& calls) {
    std::vector<Future<detail::closure_result_t<F>>> futures;
    futures.reserve(calls.size());
    for (const auto& call : calls) {
      futures.push_back(std::apply([&](const auto&... a) { return submit(fn, a...); }, call));
    }
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
    auto stop = [&] { return options_.policy == Policy::fail_fast && !sink->errors.empty(); };
    Backoff backoff;
    while (true) {
      while (it != end && submitted - sink->finished < window && !stop()) {
        sink->results.emplace_back();
        scheduler_->submit(farm_, closure, encode_element(fn, *it), sink, submitted++);
        ++it;
      }
      if (stop() || (it == end && sink->finished == submitted)) break;
      if (scheduler_->progress()) {
        backoff.reset();
      } else {
        backoff.pause();
      }
    }
    if (!sink->errors.empty()) {
      scheduler_->progress();  // pick up failures that arrived together
      std::sort(sink->errors.begin(), sink->errors.end(),
                [](const TaskError& a, const TaskError& b) { return a.task_id() < b.task_id(); });
      throw ParallelException(std::move(sink->errors));
    }
    return std::move(sink->results);
  }

  // Waits for this farm's outstanding tasks; later submissions raise UsageError.
  void shutdown() {
    if (closed_) return;
    closed_ = true;
    scheduler_->wait_until([this] { return scheduler_->outstanding(farm_) == 0; });
    scheduler_->close_farm(farm_);
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

  std::size_t map_window() const {
    return static_cast<std::size_t>(std::max(1, scheduler_->workers())) * 2 * 4096;
  }

  void check_open(const char* what) const {
    if (closed_) {
      throw UsageError(std::string("TaskFarm::") + what +
                       " after shutdown(): create a new TaskFarm for more work");
    }
  }

  detail::Scheduler* scheduler_;
  FarmOptions options_;
  std::uint32_t farm_ = 0;
  bool closed_ = false;
};

}  // namespace parc
