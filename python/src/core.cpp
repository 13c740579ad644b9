// parc._core: the C++ runtime under the Python package. This file only assembles the
// module; each export_* is defined in the file named after it (core.hpp).

#include "core.hpp"

#include <pybind11/pybind11.h>

PYBIND11_MODULE(_core, m) {
  m.doc() = "parc's C++ runtime; use the parc package, not this module";
  m.attr("__version__") = PARC_VERSION;
  // The runtime first: pybind11 tries the exception translators registered later first,
  // so its UsageError and StartupError come before the others' types.
  parc::python::export_runtime(m);
  parc::python::export_worker(m);
  parc::python::export_spmd(m);
  parc::python::export_pipeline(m);
  parc::python::export_proxies(m);
  parc::python::export_farm(m);
}
