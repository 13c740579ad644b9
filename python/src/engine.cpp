// How rank 0's progress engine (parc::detail::ProgressEngine) reaches Python: its thread
// holds a Python thread state, and each round's outcomes reach their operations' Python
// side with the GIL taken once per round. See core.hpp and docs/threading.md.

#include "core.hpp"

#include <pybind11/pybind11.h>

#include <chrono>

namespace parc::python {

namespace {

detail::ProgressEngine* manager_engine() {
  return runtime && runtime->rank() == 0 ? &runtime->engine() : nullptr;
}

py::list outcome_list(std::vector<FarmSink::Outcome>& outcomes) {
  py::list list;
  for (auto& outcome : outcomes) {
    py::object data = py::none();
    if (outcome.kind == FarmSink::result) {
      data = py::cast(Buffer(outcome.owner, outcome.data, outcome.size));
    } else if (outcome.kind == FarmSink::error) {
      data = error_tuple(*outcome.failure);
    }
    list.append(py::make_tuple(outcome.index, static_cast<int>(outcome.kind), data));
  }
  return list;
}

// Runs a round's hand-offs (deliveries to Python) with the GIL, taken once.
void run_with_gil(std::vector<std::function<void()>>& handoffs) {
  py::gil_scoped_acquire gil;
  for (auto& handoff : handoffs) {
    try {
      handoff();
    } catch (py::error_already_set& e) {
      if (e.matches(PyExc_KeyboardInterrupt)) {
        interrupted = true;
      } else {
        e.discard_as_unraisable("parc: handing task outcomes to their futures");
      }
    }
  }
  handoffs.clear();  // with the GIL: a sink may die here
}

// The engine thread's Python thread state, made on that thread and given back at its end.
thread_local PyGILState_STATE engine_gil_state;
thread_local PyThreadState* engine_thread_state = nullptr;

}  // namespace

void FarmSink::add(Outcome outcome) {
  outcomes.push_back(std::move(outcome));
  if (outcomes.size() == 1) {
    if (auto* engine = manager_engine()) engine->hand_off(shared_from_this());
  }
}

void FarmSink::on_result(std::size_t index, ByteReader& reader) {
  const std::size_t size = reader.remaining();
  add({index, result, reader.owner(), reader.take(size).data(), size, {}});
}

void FarmSink::on_error(std::size_t index, TaskError failure) {
  add({index, error, {}, nullptr, 0, std::move(failure)});
}

void FarmSink::on_cancel(std::size_t index) { add({index, cancelled, {}, nullptr, 0, {}}); }

std::function<void()> FarmSink::take() {
  std::vector<Outcome> taken;
  taken.swap(outcomes);
  return [self = shared_from_this(), taken = std::move(taken)]() mutable {
    if (!self->deliver) return;                 // the operation is gone: nobody wants them
    py::object to_operation = self->deliver();  // None once the operation is gone
    if (to_operation.is_none()) return;
    to_operation(outcome_list(taken));
  };
}

namespace engine {

void start() {
  detail::ProgressEngine::Hooks hooks;
  hooks.thread_started = [] {
    engine_gil_state = PyGILState_Ensure();
    engine_thread_state = PyEval_SaveThread();
  };
  hooks.thread_ending = [] {
    PyEval_RestoreThread(engine_thread_state);
    PyGILState_Release(engine_gil_state);
  };
  hooks.run_handoffs = run_with_gil;
  if (auto* engine = manager_engine()) engine->start(std::move(hooks));
}

void stop() {
  if (auto* engine = manager_engine()) engine->stop();
}

void wake() {
  if (auto* engine = manager_engine()) engine->wake();
}

}  // namespace engine

void progress_until(const std::function<bool()>& done, double timeout,
                    const py::object* python_done) {
  auto* engine = manager_engine();
  if (engine == nullptr) return;
  using Clock = detail::ProgressEngine::Clock;
  const auto deadline = timeout < 0 ? Clock::time_point::max()
                                    : Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                         std::chrono::duration<double>(timeout));
  detail::ProgressEngine::WaitHooks hooks;
  if (python_done != nullptr) {
    hooks.after_handoffs = [&] {
      py::gil_scoped_acquire gil;
      return (*python_done)().cast<bool>();
    };
  }
  hooks.periodic = [&] {  // Ctrl-C reaches Python only through the GIL
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    // A condition another thread made true without outcomes (a cancel, a close).
    return python_done != nullptr && (*python_done)().cast<bool>();
  };
  engine->wait_until([&] { return interrupted || done(); }, deadline, &hooks);
  if (interrupted.exchange(false)) {
    py::gil_scoped_acquire gil;
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}

}  // namespace parc::python
