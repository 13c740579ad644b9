// parc._core: the C++ runtime, scheduler and worker under the Python package.

#include "core.hpp"
#include "parts.hpp"

#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/monitor/flight_record.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>

namespace py = pybind11;

namespace parc::python {

std::unique_ptr<Runtime> runtime;
std::recursive_mutex& scheduler_mutex = detail::ProgressEngine::mutex();
std::atomic<bool> interrupted{false};

Runtime& started() {
  if (!runtime) throw UsageError("parc: the runtime has not started (parc._core.start)");
  return *runtime;
}

py::object buffer_of(ByteReader& reader) {
  const std::size_t size = reader.remaining();
  const char* data = reader.take(size).data();
  return py::cast(Buffer(reader.owner(), data, size));
}

py::object buffer_of(Bytes&& bytes) {
  auto owner = std::make_shared<const Bytes>(std::move(bytes));
  return py::cast(Buffer(owner, owner->data(), owner->size()));
}

Bytes join_parts(const py::iterable& parts) {
  Bytes bytes;
  for_each_part(parts, [&](const char* data, std::size_t size) { append(bytes, data, size); });
  return bytes;
}

namespace {

// The Python side of a task run on this rank: parc._task.execute.
py::object& execute_hook() {
  static py::object* hook =
      new py::object(py::module_::import("parc._task").attr("execute"));  // leaked: outlives
  return *hook;                                                           // interpreter teardown
}

// What a Python closure entry points at; `function` is None for "parc.python_call", whose
// arguments carry the callable itself.
struct PythonClosure {
  py::object function;
};

void invoke_python(const void* target, ByteReader& in, ByteWriter& out) {
  py::gil_scoped_acquire gil;
  const auto* closure = static_cast<const PythonClosure*>(target);
  py::tuple outcome;
  try {
    outcome = execute_hook()(closure ? closure->function : py::none(), buffer_of(in));
  } catch (py::error_already_set& e) {
    // Only an interrupt or a bug of parc's own gets past execute().
    if (e.matches(PyExc_KeyboardInterrupt)) interrupted = true;
    throw ForeignException(py::str(e.type().attr("__name__")), e.what(), "");
  }
  if (outcome[0].cast<bool>()) {
    write_parts(outcome[1], out);  // large buffers as tails, not copied
    return;
  }
  throw ForeignException(outcome[1].cast<std::string>(), outcome[2].cast<std::string>(),
                         outcome[3].cast<std::string>());
}

void declare_python_closure(const std::string& name, py::object function) {
  auto* target = new PythonClosure{std::move(function)};  // lives as long as the registry
  detail::ClosureRegistry::instance().add(
      detail::ClosureEntry{name, "python", target, std::type_index(typeid(PythonClosure)), false,
                           &invoke_python, 0, ""});
}

}  // namespace

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

py::tuple error_tuple(const TaskError& error) {
  const ErrorInfo& info = error.info();
  py::list chain;
  for (const ExceptionRecord& record : info.chain) {
    chain.append(py::make_tuple(record.type_name, record.message, record.is_std_exception));
  }
  return py::make_tuple(py::bytes(info.foreign), chain, info.rank, info.host, info.pid,
                        info.task_id, info.closure, info.attempts);
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
      : collector_(std::make_shared<Collector>()) {
    FarmOptions options = farm_options(policy, retries, std::move(retry_filter), timeout);
    options.batching = batching;
    options.ordered = ordered;
    collector_->deliver = py::module_::import("weakref").attr("WeakMethod")(std::move(deliver));
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    id_ = started().scheduler().open_farm(options);
  }

  ~Farm() {
    collector_->deliver = py::object();  // with the GIL: the scheduler may outlive us
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
        scheduler.submit(id_, closure, std::move(arguments[i]), collector_, first_index + i);
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
    return started().scheduler().cancel_queued(collector_.get(), index);
  }

 private:
  std::shared_ptr<Collector> collector_;
  std::uint32_t id_ = 0;
  bool closed_ = false;
};

// Rank 0 runs `main` with the GIL; the other ranks serve without it.
int run(py::object main) {
  Runtime& rt = started();
  if (rt.rank() != 0) {
    py::gil_scoped_release release;
    return rt.run([] { return 0; });
  }
  // Without the GIL around the run: after main, rank 0 serves the objects it owns until
  // every rank is done, which may take Python calls on the progress thread.
  py::gil_scoped_release release;
  return rt.run([&]() -> int {
    struct StopEngine {  // before the runtime shuts down, whatever main did
      ~StopEngine() { engine::stop(); }
    } stop_engine;
    int code = 0;
    {
      py::gil_scoped_acquire gil;
      py::object returned = main();
      code = returned.is_none() ? 0 : returned.cast<int>();
    }
    // As the stdlib's executors at exit: what was submitted runs (shutdown(wait=False)).
    progress_until([] { return started().scheduler().outstanding() == 0; }, -1);
    return code;
  });
}

}  // namespace
}  // namespace parc::python

PYBIND11_MODULE(_core, m) {
  using namespace parc;
  using namespace parc::python;
  m.doc() = "parc's C++ runtime; use the parc package, not this module";
  m.attr("__version__") = PARC_VERSION;

  py::register_exception<UsageError>(m, "UsageError", PyExc_RuntimeError);
  py::register_exception<StartupError>(m, "StartupError", PyExc_RuntimeError);

  declare_python_closure("parc.python_call", py::none());
  bind_spmd(m);
  bind_pipeline(m);
  bind_proxies(m);

  py::class_<Buffer>(m, "Buffer", py::buffer_protocol())
      .def_buffer([](Buffer& buffer) {
        return py::buffer_info(const_cast<char*>(buffer.data()), 1,
                               py::format_descriptor<std::uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(buffer.size())}, {1}, false);
      })
      .def("__len__", &Buffer::size);

  m.def(
      "start",
      [](std::vector<std::string> argv) {
        if (runtime) return;
        std::vector<char*> pointers;
        for (auto& arg : argv) pointers.push_back(arg.data());
        pointers.push_back(nullptr);
        runtime = std::make_unique<Runtime>(static_cast<int>(argv.size()), pointers.data(),
                                            OnStartupError::raise);
        set_log_rank(runtime->rank());
        if (runtime->rank() == 0) engine::start();
      },
      "Starts MPI (or the serial runtime) and checks the closure tables of every rank.");
  m.def("started", [] { return runtime != nullptr; });
  m.def(
      "progress",
      [](py::object done, double timeout) {
        if (done().cast<bool>()) return;
        py::gil_scoped_release release;
        progress_until([] { return false; }, timeout, &done);
      },
      "Drives the scheduler (or waits for the thread driving it) until done() is true, "
      "checked after outcomes were handed over, or timeout seconds pass (negative: none).");
  m.def("finalize", [] {
    py::gil_scoped_release release;
    engine::stop();
    std::lock_guard lock(scheduler_mutex);
    runtime.reset();
  });
  m.def("run", &run);
  m.def("rank", [] { return started().rank(); });
  m.def(
      "abort",
      [](int code) {
        log().flush();
        started().abort(code);
      },
      "Ends the whole job (MPI_Abort): for errors that would otherwise leave it hanging.");
  m.def(
      "note_task_call",
      [](std::string_view call) {
        flight::note_task_call(call);
        trace::name_running_task(call.substr(0, call.rfind('(')));  // "simulate(...)"
      },
      "What the running task calls, for the report if this rank dies (docs/faults.md).");
  m.def("size", [] { return started().size(); });
  m.def("serial", [] { return started().serial(); });
  m.def("workers", [] { return started().workers(); });
  m.def("job_id", [] { return started().job_id(); });

  m.def("declare_closure", &declare_python_closure);
  m.def("closure_table", [] {
    const auto& registry = detail::ClosureRegistry::instance();
    py::dict table;
    for (ClosureId id = 0; id < registry.size(); ++id) {
      const auto& entry = registry.entry(id);
      table[py::str(entry.name)] = py::make_tuple(id, entry.signature, entry.wire);
    }
    return table;
  });

  py::class_<Farm>(m, "Farm")
      .def(py::init<const std::string&, int, py::object, double, py::object, bool, bool>())
      .def("submit", &Farm::submit)
      .def("cancel", &Farm::cancel)
      .def("close", [](Farm& farm) {
        py::gil_scoped_release release;
        farm.close();
      });
}
