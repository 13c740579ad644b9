#include "parts.hpp"

#include <memory>

namespace parc::python {

namespace py = pybind11;

namespace {

// A buffer export held for a message's tail. The message may let go of it on a thread
// without the GIL (the worker's, once the send completed): the release takes it then.
struct HeldBuffer {
  Py_buffer view{};
  HeldBuffer() = default;
  HeldBuffer(const HeldBuffer&) = delete;
  HeldBuffer& operator=(const HeldBuffer&) = delete;
  ~HeldBuffer() {
    if (view.obj == nullptr || !Py_IsInitialized()) return;  // at exit: nothing to give back
    py::gil_scoped_acquire gil;
    PyBuffer_Release(&view);
  }
};

}  // namespace

void write_parts(const py::iterable& parts, ByteWriter& out) {
  for (py::handle part : parts) {
    if (PyBytes_Check(part.ptr())) {
      const char* data = PyBytes_AS_STRING(part.ptr());
      const auto size = static_cast<std::size_t>(PyBytes_GET_SIZE(part.ptr()));
      if (size < tail_bytes) {
        out.write_bytes(data, size);
        continue;
      }
      // Immutable: nothing can change it while it is sent.
      std::shared_ptr<const void> owner(new py::object(py::reinterpret_borrow<py::object>(part)),
                                        [](const py::object* object) {
                                          if (!Py_IsInitialized()) return;
                                          py::gil_scoped_acquire gil;
                                          delete object;
                                        });
      out.write_tail(Tail{std::move(owner), data, size, false});
      continue;
    }
    auto held = std::make_shared<HeldBuffer>();
    if (PyObject_GetBuffer(part.ptr(), &held->view, PyBUF_C_CONTIGUOUS) != 0) {
      held->view.obj = nullptr;  // nothing to release
      throw py::error_already_set();
    }
    const char* data = static_cast<const char*>(held->view.buf);
    const auto size = static_cast<std::size_t>(held->view.len);
    if (size < tail_bytes) {
      out.write_bytes(data, size);
      PyBuffer_Release(&held->view);  // with the GIL already
      held->view.obj = nullptr;
      continue;
    }
    out.write_tail(Tail{std::move(held), data, size, true});
  }
}

}  // namespace parc::python
