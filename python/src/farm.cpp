// parc._core bindings of parc.TaskFarm: one scheduler farm per farm operation, whose
// outcomes a FarmSink hands to the operation's Python side.

#include "core.hpp"

#include <pybind11/pybind11.h>

#include <chrono>
#include <mutex>

namespace parc::python {

FarmOptions farm_options(const std::string& policy, int retries, py::object retry_filter,
                         double timeout) {
  FarmOptions options;
  options.policy = policy == "collect_all" ? Policy::collect_all : Policy::fail_fast;
  options.retries = retries;
  options.timeout = std::chrono::duration<double>(timeout);
  if (!retry_filter.is_none()) {
    // The scheduler drops its options without the GIL; the filter must take it to die.
    std::shared_ptr<py::object> filter(new py::object(std::move(retry_filter)),
                                       [](py::object* object) {
                                         py::gil_scoped_acquire gil;
                                         delete object;
                                       });
    options.retry_on = [filter](const TaskError& error) {
      py::gil_scoped_acquire gil;
      return (*filter)(error_tuple(error)).cast<bool>();
    };
  }
  return options;
}

namespace {

// One parc.TaskFarm's handle on the scheduler.
class Farm {
 public:
  // `deliver(outcomes)` gets the outcomes as (index, kind, data) with data a Buffer, an
  // error tuple or None; it is held as a weakref.WeakMethod. `batching`, `ordered`: see
  // FarmOptions.
  Farm(const std::string& policy, int retries, py::object retry_filter, double timeout,
       py::object deliver, bool batching, bool ordered)
      : sink_(std::make_shared<FarmSink>()) {
    FarmOptions options = farm_options(policy, retries, std::move(retry_filter), timeout);
    options.batching = batching;
    options.ordered = ordered;
    options.stop_after_failure = true;  // each _core.Farm is one map, batch or submits' op
    sink_->deliver = py::module_::import("weakref").attr("WeakMethod")(std::move(deliver));
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    id_ = started().scheduler().open_farm(options);
  }

  ~Farm() {
    sink_->deliver = py::object();  // with the GIL: the scheduler may outlive us
    py::gil_scoped_release release;
    close();
  }

  // Drops the tasks still queued; the ones running finish unreported. Without the GIL.
  void close() {
    std::lock_guard lock(scheduler_mutex);
    if (closed_) return;
    closed_ = true;
    if (runtime) runtime->scheduler().close_farm(id_);
  }

  // Queues one task per payload; a payload is a sequence of buffer-protocol parts.
  void submit(ClosureId closure, const py::list& payloads, std::size_t first_index) {
    std::vector<Bytes> arguments;
    arguments.reserve(payloads.size());
    for (py::handle payload : payloads) {
      Bytes& bytes = arguments.emplace_back();
      for_each_part(py::reinterpret_borrow<py::iterable>(payload),
                    [&](const char* data, std::size_t size) { append(bytes, data, size); });
    }
    auto queue = [&] {
      auto& scheduler = started().scheduler();
      for (std::size_t i = 0; i < arguments.size(); ++i) {
        scheduler.submit(id_, closure, std::move(arguments[i]), sink_, first_index + i);
      }
      scheduler.dispatch();  // runs no task: this thread may keep the GIL
    };
    // With the lock free, queue without giving the GIL up: giving it up lets the engine
    // thread take it (to deliver outcomes) and makes this thread wait to get it back, once
    // per submit. Blocking on the lock with the GIL held could deadlock (core.hpp).
    if (std::unique_lock lock(scheduler_mutex, std::try_to_lock); lock.owns_lock()) {
      queue();
    } else {
      py::gil_scoped_release release;
      lock.lock();
      queue();
    }
    engine::wake();
  }

  bool cancel(std::size_t index) {
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    return started().scheduler().cancel_queued(sink_.get(), index);
  }

 private:
  std::shared_ptr<FarmSink> sink_;
  std::uint32_t id_ = 0;
  bool closed_ = false;
};

}  // namespace

void export_farm(py::module_& m) {
  py::class_<Farm>(m, "Farm")
      .def(py::init<const std::string&, int, py::object, double, py::object, bool, bool>())
      .def("submit", &Farm::submit)
      .def("cancel", &Farm::cancel)
      .def("close", [](Farm& farm) {
        py::gil_scoped_release release;
        farm.close();
      });
}

}  // namespace parc::python
