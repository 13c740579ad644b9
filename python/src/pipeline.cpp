// parc._core bindings of the pipeline manager: one PipelineEngine per parc.Pipeline run.
// Items move between stages inside the engine, in C++ and without the GIL: a stage's
// pickled result is the next stage's argument, never unpickled on the manager.

#include "core.hpp"

#include <pybind11/stl.h>

namespace parc::python {

namespace {

class Pipeline {
  detail::PipelineEngine& open_engine() {
    if (!engine_) throw UsageError("parc.Pipeline: this run is closed");
    return *engine_;
  }

  // Calls f(engine) under the scheduler's lock, with the GIL released.
  template <class F>
  auto locked(F f) {
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    return f(open_engine());
  }

 public:
  // `stages`: (closure id, prefix bytes, workers, name) per stage.
  Pipeline(const py::list& stages, const std::string& policy, int retries, py::object retry_filter,
           double timeout, std::size_t window, bool ordered) {
    std::vector<detail::PipelineStage> specs;
    for (py::handle item : stages) {
      auto spec = item.cast<py::tuple>();
      detail::PipelineStage stage;
      stage.closure = spec[0].cast<ClosureId>();
      const std::string prefix = spec[1].cast<std::string>();
      stage.prefix.assign(prefix.begin(), prefix.end());
      stage.workers = spec[2].cast<int>();
      stage.name = spec[3].cast<std::string>();
      specs.push_back(std::move(stage));
    }
    FarmOptions options = farm_options(policy, retries, std::move(retry_filter), timeout);
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    engine_ = std::make_unique<detail::PipelineEngine>(started().engine(), std::move(specs),
                                                       std::move(options), window, ordered);
  }

  ~Pipeline() {
    py::gil_scoped_release release;
    try {
      close();
    } catch (...) {  // interrupted while waiting for the running items: forget them
      std::lock_guard lock(scheduler_mutex);
      if (engine_) engine_->detach();
      engine_.reset();
    }
  }

  // With the GIL released. Closes the stage farms and waits for the items still running,
  // so that the workers are free for the next manager when it returns.
  void close() {
    {
      std::lock_guard lock(scheduler_mutex);
      if (!engine_) return;
      if (!runtime) {  // the runtime shut down first: its scheduler is gone
        engine_->detach();
        engine_.reset();
        return;
      }
      engine_->close();
    }
    try {
      progress_until([this] { return engine_->drained(); }, -1);
    } catch (...) {
      std::lock_guard lock(scheduler_mutex);
      engine_->detach();
      engine_.reset();
      throw;
    }
    std::lock_guard lock(scheduler_mutex);
    engine_.reset();
  }

  std::size_t room() {
    return locked([](detail::PipelineEngine& e) { return e.room(); });
  }
  std::size_t in_flight() {
    return locked([](detail::PipelineEngine& e) { return e.in_flight(); });
  }
  std::size_t window() {
    return locked([](detail::PipelineEngine& e) { return e.window(); });
  }
  std::vector<std::vector<int>> ranks() {
    return locked([](detail::PipelineEngine& e) { return e.ranks(); });
  }

  // Feeds one item per payload (a sequence of buffer-protocol parts: the item's encoded
  // argument, after stage 0's prefix).
  void feed(const py::list& payloads) {
    Bytes prefix = locked([](detail::PipelineEngine& e) { return e.start_item(); });
    std::vector<Bytes> items;
    items.reserve(payloads.size());
    for (py::handle payload : payloads) {
      Bytes& bytes = items.emplace_back(prefix);
      for_each_part(py::reinterpret_borrow<py::iterable>(payload),
                    [&](const char* data, std::size_t size) { append(bytes, data, size); });
    }
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    detail::PipelineEngine& engine = open_engine();
    for (Bytes& item : items) engine.feed(std::move(item));
    started().scheduler().dispatch();
    engine::wake();
  }

  // Runs the scheduler until there is something for the consumer (see
  // PipelineEngine::ready) or `timeout` seconds pass (negative: no limit; zero: one
  // round). Returns (outputs, failures, in flight): outputs as (index, Buffer), failures
  // as (index, stage, error tuple), and the items still in flight after those.
  py::tuple wait(double timeout, bool more_input) {
    std::vector<detail::PipelineOutput> outputs;
    std::vector<detail::PipelineFailure> failures;
    std::size_t in_flight = 0;
    {
      py::gil_scoped_release release;
      detail::PipelineEngine* engine = nullptr;
      {
        std::lock_guard lock(scheduler_mutex);
        engine = &open_engine();
      }
      progress_until([&] { return engine->ready(more_input); }, timeout);
      std::lock_guard lock(scheduler_mutex);
      while (auto output = engine->take()) outputs.push_back(std::move(*output));
      failures = engine->take_failures();
      in_flight = engine->in_flight();  // with the take: the engine thread may go on
    }
    py::list out;
    for (auto& output : outputs) {
      out.append(
          py::make_tuple(output.index, py::cast(Buffer(output.owner, output.data, output.size))));
    }
    py::list failed;
    for (auto& failure : failures) {
      failed.append(py::make_tuple(failure.index, failure.stage, error_tuple(failure.error)));
    }
    return py::make_tuple(out, failed, in_flight);
  }

 private:
  std::unique_ptr<detail::PipelineEngine> engine_;
};

}  // namespace

void export_pipeline(py::module_& m) {
  py::class_<Pipeline>(m, "Pipeline")
      .def(py::init<const py::list&, const std::string&, int, py::object, double, std::size_t,
                    bool>())
      .def("room", &Pipeline::room)
      .def("in_flight", &Pipeline::in_flight)
      .def("window", &Pipeline::window)
      .def("ranks", &Pipeline::ranks)
      .def("feed", &Pipeline::feed)
      .def("wait", &Pipeline::wait)
      .def("close", [](Pipeline& pipeline) {
        py::gil_scoped_release release;
        pipeline.close();
      });
  m.def(
      "pipeline_ranks",
      [](const std::vector<int>& workers) {
        py::gil_scoped_release release;
        std::lock_guard lock(scheduler_mutex);
        return detail::assign_pipeline_ranks(started().scheduler().worker_ranks(), workers);
      },
      "The world ranks of each stage of a pipeline whose stages want `workers` workers.");
}

}  // namespace parc::python
