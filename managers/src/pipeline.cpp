#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/managers/pipeline.hpp>

#include <algorithm>
#include <unordered_map>

namespace parc::detail {

std::vector<std::vector<int>> assign_pipeline_ranks(const std::vector<int>& workers,
                                                    const std::vector<int>& wanted) {
  if (workers.empty()) throw UsageError("parc::Pipeline: the runtime has no workers");
  std::vector<std::vector<int>> ranks;
  std::size_t cursor = 0;
  for (int count : wanted) {
    const std::size_t n = std::min(static_cast<std::size_t>(std::max(count, 1)), workers.size());
    std::vector<int>& stage = ranks.emplace_back();
    for (std::size_t i = 0; i < n; ++i) stage.push_back(workers[(cursor + i) % workers.size()]);
    cursor = (cursor + n) % workers.size();
  }
  return ranks;
}

std::size_t default_pipeline_window(const Scheduler& scheduler) {
  // Enough for batches of a few dozen items per worker with one batch waiting behind it.
  return 64 * static_cast<std::size_t>(std::max(1, scheduler.workers()));
}

namespace {
class StageSink;
}

struct PipelineEngine::State {
  ProgressEngine* engine = nullptr;
  Scheduler* scheduler = nullptr;
  std::vector<PipelineStage> stages;
  std::vector<std::uint32_t> farms;
  std::vector<std::shared_ptr<StageSink>> sinks;  // dropped by close(): tasks keep theirs
  std::vector<std::vector<int>> ranks;
  Policy policy = Policy::fail_fast;
  std::size_t window = 0;
  bool ordered = true;
  bool closed = false;
  bool stopped = false;

  std::size_t fed = 0;
  std::size_t retired = 0;   // taken by the consumer, or dropped (failed, cancelled)
  std::size_t next_out = 0;  // ordered: the index the consumer waits for
  // ordered: finished items ahead of next_out (nullopt: dropped, to be skipped)
  std::map<std::size_t, std::optional<PipelineOutput>> waiting;
  std::deque<PipelineOutput> arrived;  // unordered
  std::vector<PipelineFailure> failures;
  // Items with a task queued or running: item -> (stage, submission order). close()
  // cancels the queued ones and drained() waits for the running ones.
  std::unordered_map<std::size_t, std::pair<std::size_t, std::uint64_t>> pending;
  std::uint64_t submissions = 0;

  void submit(std::size_t stage, std::size_t index, Bytes arguments);
  void forward(std::size_t stage, std::size_t index, ByteReader& result);
  void output(std::size_t index, ByteReader& result);
  void drop(std::size_t index);
  void skip_dropped();
  void failed(std::size_t stage, std::size_t index, TaskError error);
};

namespace {

// Outcomes of one stage's tasks. Holds the engine's state, not the engine: tasks still
// running when the engine closes come back to a closed state and are discarded.
class StageSink : public Sink {
 public:
  StageSink(std::shared_ptr<PipelineEngine::State> state, std::size_t stage)
      : state_(std::move(state)), stage_(stage) {}

  void on_result(std::size_t index, ByteReader& result) override {
    if (state_->closed) {
      state_->pending.erase(index);
      return;
    }
    if (stage_ + 1 < state_->stages.size()) {
      // A failure to hand it on throws: the scheduler reports it as this task's error.
      state_->forward(stage_ + 1, index, result);
    } else {
      state_->output(index, result);
    }
  }
  void on_error(std::size_t index, TaskError error) override {
    state_->pending.erase(index);
    if (state_->closed) return;
    state_->failed(stage_, index, std::move(error));
  }
  void on_cancel(std::size_t index) override {
    state_->pending.erase(index);
    if (state_->closed) return;
    state_->drop(index);
  }

 private:
  std::shared_ptr<PipelineEngine::State> state_;
  std::size_t stage_;
};

}  // namespace

void PipelineEngine::State::forward(std::size_t stage, std::size_t index, ByteReader& result) {
  const PipelineStage& next = stages[stage];
  const std::size_t size = result.remaining();
  Bytes arguments;
  arguments.reserve(next.prefix.size() + size);
  append(arguments, next.prefix.data(), next.prefix.size());
  const std::span<const char> bytes = result.take(size);
  append(arguments, bytes.data(), bytes.size());
  submit(stage, index, std::move(arguments));
}

void PipelineEngine::State::submit(std::size_t stage, std::size_t index, Bytes arguments) {
  scheduler->submit(farms[stage], stages[stage].closure, std::move(arguments), sinks[stage], index);
  pending[index] = {stage, submissions++};
}

void PipelineEngine::State::output(std::size_t index, ByteReader& result) {
  pending.erase(index);
  PipelineOutput out;
  out.index = index;
  out.size = result.remaining();
  out.owner = result.owner();
  out.data = result.take(out.size).data();
  if (!out.owner) {  // nothing keeps the bytes alive: keep a copy
    auto copy = std::make_shared<Bytes>(out.data, out.data + out.size);
    out.data = copy->data();
    out.owner = std::move(copy);
  }
  if (ordered) {
    waiting[index] = std::move(out);
  } else {
    arrived.push_back(std::move(out));
  }
}

void PipelineEngine::State::drop(std::size_t index) {
  if (!ordered) {
    ++retired;
    return;
  }
  waiting[index] = std::nullopt;
  skip_dropped();
}

void PipelineEngine::State::skip_dropped() {
  while (!waiting.empty() && waiting.begin()->first == next_out && !waiting.begin()->second) {
    waiting.erase(waiting.begin());
    ++next_out;
    ++retired;
  }
}

void PipelineEngine::State::failed(std::size_t stage, std::size_t index, TaskError error) {
  failures.push_back(PipelineFailure{index, stage, error.with_input_index(index)});
  if (policy == Policy::fail_fast) stopped = true;
  drop(index);
}

PipelineEngine::PipelineEngine(ProgressEngine& engine, std::vector<PipelineStage> stages,
                               FarmOptions options, std::size_t window, bool ordered)
    : state_(std::make_shared<State>()) {
  Scheduler& scheduler = engine.scheduler();
  if (stages.empty()) throw UsageError("parc::Pipeline: a pipeline needs at least one stage");
  std::vector<int> wanted;
  for (std::size_t k = 0; k < stages.size(); ++k) {
    if (stages[k].workers < 1) {
      throw UsageError("parc::Pipeline: stage " + std::to_string(k + 1) + " (" + stages[k].name +
                       ") asks for " + std::to_string(stages[k].workers) +
                       " workers; a stage needs at least 1");
    }
    wanted.push_back(stages[k].workers);
  }
  State& s = *state_;
  s.engine = &engine;
  s.scheduler = &scheduler;
  s.stages = std::move(stages);
  s.ranks = assign_pipeline_ranks(scheduler.worker_ranks(), wanted);
  s.policy = options.policy;
  s.window = window == 0 ? default_pipeline_window(scheduler) : window;
  s.ordered = ordered;
  try {
    for (std::size_t k = 0; k < s.stages.size(); ++k) {
      FarmOptions stage_options = options;
      stage_options.ranks = s.ranks[k];
      s.farms.push_back(scheduler.open_farm(stage_options));
      if (trace::enabled)
        trace::label_farm(s.farms.back(), std::to_string(k + 1) + ": " + s.stages[k].name);
    }
  } catch (...) {
    for (std::uint32_t farm : s.farms) scheduler.close_farm(farm);
    throw;
  }
  for (std::size_t k = 0; k < s.stages.size(); ++k) {
    s.sinks.push_back(std::make_shared<StageSink>(state_, k));
  }
}

PipelineEngine::~PipelineEngine() {
  try {
    {
      auto lock = state_->engine->lock();
      close();
      if (drained()) return;
    }
    state_->engine->wait_until([this] { return drained(); });
  } catch (...) {
  }
}

const std::vector<std::vector<int>>& PipelineEngine::ranks() const { return state_->ranks; }
std::size_t PipelineEngine::window() const { return state_->window; }
std::size_t PipelineEngine::in_flight() const { return state_->fed - state_->retired; }
std::size_t PipelineEngine::fed() const { return state_->fed; }

std::size_t PipelineEngine::room() const {
  if (state_->closed || state_->stopped) return 0;
  return state_->window > in_flight() ? state_->window - in_flight() : 0;
}

Bytes PipelineEngine::start_item() const { return state_->stages.front().prefix; }

void PipelineEngine::feed(Bytes arguments) {
  State& s = *state_;
  if (s.closed) throw UsageError("parc::Pipeline: feeding a closed pipeline");
  s.submit(0, s.fed++, std::move(arguments));
}

bool PipelineEngine::has_output() const {
  const State& s = *state_;
  if (s.ordered) return !s.waiting.empty() && s.waiting.begin()->first == s.next_out;
  return !s.arrived.empty();
}

std::optional<PipelineOutput> PipelineEngine::take() {
  if (!has_output()) return std::nullopt;
  State& s = *state_;
  PipelineOutput out;
  if (s.ordered) {
    out = std::move(*s.waiting.begin()->second);
    s.waiting.erase(s.waiting.begin());
    ++s.next_out;
    ++s.retired;
    s.skip_dropped();
  } else {
    out = std::move(s.arrived.front());
    s.arrived.pop_front();
    ++s.retired;
  }
  return out;
}

bool PipelineEngine::stopped() const { return state_->stopped; }
bool PipelineEngine::has_failures() const { return !state_->failures.empty(); }

std::vector<PipelineFailure> PipelineEngine::take_failures() {
  std::vector<PipelineFailure> failures;
  failures.swap(state_->failures);
  return failures;
}

bool PipelineEngine::ready(bool more_input) const {
  return has_output() || has_failures() || (more_input && room() > 0) || in_flight() == 0;
}

void PipelineEngine::close() {
  State& s = *state_;
  if (s.closed) return;
  s.closed = true;
  // Queued tasks are dropped; `pending` keeps exactly the running ones.
  for (std::uint32_t farm : s.farms) {
    for (std::size_t index : s.scheduler->drop_queued(farm)) s.pending.erase(index);
  }
  for (std::uint32_t farm : s.farms) s.scheduler->close_farm(farm);
  s.sinks.clear();  // the tasks still running keep theirs
  s.waiting.clear();
  s.arrived.clear();
}

bool PipelineEngine::drained() const { return state_->pending.empty(); }

void PipelineEngine::detach() {
  state_->closed = true;
  state_->pending.clear();
  state_->sinks.clear();
}

}  // namespace parc::detail
