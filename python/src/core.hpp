#pragma once
// Internals of parc._core shared by its binding files: core.cpp assembles the module from
// the export_* functions of runtime.cpp, worker.cpp, farm.cpp, spmd.cpp, pipeline.cpp and
// proxy.cpp; engine.cpp and parts.cpp serve them.
//
// Threading: no thread blocks on `scheduler_mutex` (the progress engine's lock) while it
// holds the GIL: the thread holding the lock may be running Python tasks inline (serial
// mode) or need the GIL for a retry filter. Calls release the GIL, then lock; a submit
// may try_lock with the GIL held, and releases it only when the lock is taken.

#include <parc/parc.hpp>

#include <pybind11/pybind11.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace parc::python {

namespace py = pybind11;

extern std::unique_ptr<Runtime> runtime;
extern std::recursive_mutex& scheduler_mutex;
// A KeyboardInterrupt inside a task run in this process (serial mode): re-raised by the
// wait that was running it, not reported as the task's failure.
extern std::atomic<bool> interrupted;

Runtime& started();

// Bytes that Python reads in place through the buffer protocol. `owner` keeps a received
// message alive for as long as any view (a numpy array unpickled out-of-band) uses it.
// Writable, as arrays from concurrent.futures are: each task's arguments and each result
// are disjoint parts of a message nothing else reads once it is decoded.
class Buffer {
 public:
  Buffer(std::shared_ptr<const void> owner, const char* data, std::size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {
    if (!owner_) {  // nothing keeps the bytes alive: keep a copy
      auto copy = std::make_shared<Bytes>(data, data + size);
      data_ = copy->data();
      owner_ = std::move(copy);
    }
  }
  const char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::shared_ptr<const void> owner_;
  const char* data_;
  std::size_t size_;
};

py::object buffer_of(ByteReader& reader);
// A Buffer that owns `bytes` (moved, not copied).
py::object buffer_of(Bytes&& bytes);

// Calls write(data, size) on the bytes of every buffer-protocol object in `parts`.
template <class Write>
void for_each_part(const py::iterable& parts, Write write) {
  for (py::handle part : parts) {
    if (PyBytes_Check(part.ptr())) {
      write(PyBytes_AS_STRING(part.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(part.ptr())));
      continue;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(part.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0)
      throw py::error_already_set();
    write(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
    PyBuffer_Release(&view);
  }
}

// The concatenated bytes of `parts`.
Bytes join_parts(const py::iterable& parts);

// (foreign, chain, rank, host, pid, task, closure, attempts): what parc._errors rebuilds.
py::tuple error_tuple(const TaskError& error);

// A farm's options from Python's policy name, retries, retry filter (called with an error
// tuple, with the GIL) and timeout in seconds (0: none).
FarmOptions farm_options(const std::string& policy, int retries, py::object retry_filter,
                         double timeout);

// The scheduler's Sink for one parc.TaskFarm operation: the outcomes of its tasks,
// gathered by whichever thread drives the scheduler, and handed to its Python side
// (`deliver`, a weakref.WeakMethod called with the GIL, which passes each on to the sink
// of its index there) after the round that gathered them.
class FarmSink : public detail::Sink,
                 public detail::Handoff,
                 public std::enable_shared_from_this<FarmSink> {
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

  void on_result(std::size_t index, ByteReader& reader) override;
  void on_error(std::size_t index, TaskError failure) override;
  void on_cancel(std::size_t index) override;
  std::function<void()> take() override;

  py::object deliver;  // under the GIL; None once the farm is closed

 private:
  void add(Outcome outcome);
  std::vector<Outcome> outcomes;  // under scheduler_mutex
};

// Rank 0's progress engine (parc::detail::ProgressEngine, docs/threading.md), run with
// Python's hooks: its thread holds a Python thread state, and each round's outcomes are
// handed to their operations with the GIL taken once. No-ops on other ranks.
namespace engine {
// Starts the engine thread. Called with the GIL.
void start();
// Stops and joins it. Called without the GIL.
void stop();
// Work was queued: the engine looks at it soon.
void wake();
}  // namespace engine

// Drives the scheduler (or, while another thread drives it, waits for that thread's
// rounds) until `done()` (checked under scheduler_mutex) or `python_done()` (checked with
// the GIL after a round that handed outcomes over) or `timeout` seconds pass (negative:
// no limit; zero: one round). Called without the GIL. Checks for Ctrl-C every 50 ms and
// re-raises an interrupt caught in a task run inline.
void progress_until(const std::function<bool()>& done, double timeout,
                    const py::object* python_done = nullptr);

// What each binding file adds to the module. The package registers its hooks through
// export_worker's register_worker and export_proxies' register_proxy_owner: _core imports
// no parc module.
void export_runtime(py::module_& m);
void export_worker(py::module_& m);
void export_farm(py::module_& m);
void export_spmd(py::module_& m);
void export_pipeline(py::module_& m);
void export_proxies(py::module_& m);

}  // namespace parc::python
