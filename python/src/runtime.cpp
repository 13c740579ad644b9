// parc._core bindings of the runtime: start-up, parc.run, rank and size, driving
// progress, the exception types, and Buffer views of received messages.

#include "core.hpp"
#include "parts.hpp"

#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/monitor/flight_record.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
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

void export_runtime(py::module_& m) {
  py::register_exception<UsageError>(m, "UsageError", PyExc_RuntimeError);
  py::register_exception<StartupError>(m, "StartupError", PyExc_RuntimeError);

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
}

}  // namespace parc::python
