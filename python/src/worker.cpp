// parc._core bindings of the worker's side of Python tasks: the closures Python declares,
// and the call into the package's task runner (parc._worker.execute, registered at import).

#include "core.hpp"
#include "parts.hpp"

#include <pybind11/pybind11.h>

#include <typeindex>

namespace parc::python {

namespace {

// The package's task runner, registered by parc/__init__.py: _core imports no parc module,
// so that the package imports one way. Leaked: outlives interpreter teardown.
py::object& execute_hook() {
  static auto* hook = new py::object();
  return *hook;
}

// What a Python closure entry points at; `function` is None for "parc.python_call", whose
// arguments carry the callable itself.
struct PythonClosure {
  py::object function;
};

void invoke_python(const void* target, ByteReader& in, ByteWriter& out) {
  py::gil_scoped_acquire gil;
  const py::object& execute = execute_hook();
  if (!execute) {
    throw UsageError(
        "parc._core: no Python task runner registered; import parc (its "
        "__init__ registers parc._worker.execute), not parc._core alone");
  }
  const auto* closure = static_cast<const PythonClosure*>(target);
  py::tuple outcome;
  try {
    outcome = execute(closure ? closure->function : py::none(), buffer_of(in));
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

void export_worker(py::module_& m) {
  declare_python_closure("parc.python_call", py::none());

  m.def(
      "register_worker", [](py::object execute) { execute_hook() = std::move(execute); },
      py::arg("execute"),
      "The package's task runner: execute(function or None, payload) -> (True, result "
      "parts) or (False, type name, message, record).");
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
}

}  // namespace parc::python
