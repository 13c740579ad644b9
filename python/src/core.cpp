// parc._core: the C++ runtime, scheduler and worker under the Python package.

#include "core.hpp"

#include <parc/comm/flight_record.hpp>
#include <parc/comm/log.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>

namespace py = pybind11;

namespace parc::python {

std::unique_ptr<Runtime> runtime;
std::recursive_mutex scheduler_mutex;
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
  for_each_part(parts, [&](const char* data, std::size_t size) {
    bytes.insert(bytes.end(), data, data + size);
  });
  return bytes;
}

void progress_until(const std::function<bool()>& done, double timeout) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto next_signal_check = start + std::chrono::milliseconds(50);
  Backoff backoff;
  for (;;) {
    bool active;
    {
      std::lock_guard lock(scheduler_mutex);
      active = started().scheduler().progress();
      if (done() || interrupted) break;
    }
    const auto now = Clock::now();
    if (timeout >= 0 && now - start >= std::chrono::duration<double>(timeout)) break;
    if (now >= next_signal_check) {  // Ctrl-C reaches Python only through the GIL
      next_signal_check = now + std::chrono::milliseconds(50);
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    if (active) {
      backoff.reset();
    } else {
      backoff.pause(started().scheduler().sending());
    }
  }
  if (interrupted.exchange(false)) {
    py::gil_scoped_acquire gil;
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
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
    for_each_part(outcome[1],
                  [&](const char* data, std::size_t size) { out.write_bytes(data, size); });
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

// Outcomes of one farm's tasks, gathered while the scheduler runs without the GIL.
class Collector : public detail::Sink {
 public:
  enum Kind { result = 0, error = 1, cancelled = 2 };
  struct Outcome {
    std::size_t index;
    Kind kind;
    std::shared_ptr<const void> owner;
    const char* data = nullptr;
    std::size_t size = 0;
    std::optional<TaskError> failure;
  };

  void on_result(std::size_t index, ByteReader& reader) override {
    const std::size_t size = reader.remaining();
    outcomes.push_back({index, result, reader.owner(), reader.take(size).data(), size, {}});
  }
  void on_error(std::size_t index, TaskError failure) override {
    outcomes.push_back({index, error, {}, nullptr, 0, std::move(failure)});
  }
  void on_cancel(std::size_t index) override {
    outcomes.push_back({index, cancelled, {}, nullptr, 0, {}});
  }

  std::vector<Outcome> outcomes;
};

// One parc.TaskFarm's handle on the scheduler.
class Farm {
 public:
  Farm(const std::string& policy, int retries, py::object retry_filter, double timeout)
      : collector_(std::make_shared<Collector>()) {
    FarmOptions options = farm_options(policy, retries, std::move(retry_filter), timeout);
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    id_ = started().scheduler().open_farm(options);
  }

  ~Farm() {
    if (!closed_) {
      py::gil_scoped_release release;
      close();
    }
  }

  void close() {
    std::lock_guard lock(scheduler_mutex);
    if (closed_ || !runtime) return;
    closed_ = true;
    runtime->scheduler().close_farm(id_);
  }

  // Queues one task per payload; a payload is a sequence of buffer-protocol parts.
  void submit(ClosureId closure, const py::list& payloads, std::size_t first_index) {
    std::vector<Bytes> arguments;
    arguments.reserve(payloads.size());
    for (py::handle payload : payloads) {
      Bytes& bytes = arguments.emplace_back();
      for_each_part(py::reinterpret_borrow<py::iterable>(payload),
                    [&](const char* data, std::size_t size) {
                      bytes.insert(bytes.end(), data, data + size);
                    });
    }
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    auto& scheduler = started().scheduler();
    for (std::size_t i = 0; i < arguments.size(); ++i) {
      scheduler.submit(id_, closure, std::move(arguments[i]), collector_, first_index + i);
    }
    scheduler.dispatch();
  }

  // Runs the scheduler until some outcome of this farm is known or `timeout` seconds
  // pass (negative: no limit; zero: one round), and returns the outcomes as
  // (index, kind, data) with data a Buffer, an error tuple or None.
  py::list wait(double timeout) {
    {
      py::gil_scoped_release release;
      progress_until(
          [this] {
            return !collector_->outcomes.empty() || started().scheduler().outstanding(id_) == 0;
          },
          timeout);
    }
    py::list result;
    std::vector<Collector::Outcome> outcomes;
    {
      py::gil_scoped_release release;
      std::lock_guard lock(scheduler_mutex);
      outcomes.swap(collector_->outcomes);
    }
    for (auto& outcome : outcomes) {
      py::object data = py::none();
      if (outcome.kind == Collector::result) {
        data = py::cast(Buffer(outcome.owner, outcome.data, outcome.size));
      } else if (outcome.kind == Collector::error) {
        data = error_tuple(*outcome.failure);
      }
      result.append(py::make_tuple(outcome.index, static_cast<int>(outcome.kind), data));
    }
    return result;
  }

  bool cancel(std::size_t index) {
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    return started().scheduler().cancel_queued(collector_.get(), index);
  }

  std::size_t outstanding() {
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    return started().scheduler().outstanding(id_);
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
    py::gil_scoped_acquire gil;
    py::object code = main();
    return code.is_none() ? 0 : code.cast<int>();
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
      },
      "Starts MPI (or the serial runtime) and checks the closure tables of every rank.");
  m.def("started", [] { return runtime != nullptr; });
  m.def("finalize", [] {
    py::gil_scoped_release release;
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
      "note_task_call", [](std::string_view call) { flight::note_task_call(call); },
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
      .def(py::init<const std::string&, int, py::object, double>())
      .def("submit", &Farm::submit)
      .def("wait", &Farm::wait)
      .def("cancel", &Farm::cancel)
      .def("outstanding", &Farm::outstanding)
      .def("close", [](Farm& farm) {
        py::gil_scoped_release release;
        farm.close();
      });
}
