// Python objects owned for proxies: requests run with the GIL on the owner's progress
// thread, through the hooks parc._proxy_owner registers; raw reads of numpy arrays are
// answered from the array's memory without it. The proxy_* functions are the caller's
// side (parc._proxy_caller).

#include "core.hpp"

#include <pybind11/stl.h>

#include <chrono>

namespace parc::python {

namespace {

ProxyService& service() { return started().proxies(); }

// The owner's side in Python, registered by parc/__init__.py: _core imports no parc
// module, so that the package imports one way.
struct OwnerHooks {
  py::object build;       // (arguments) -> (True, object) or (False, failure parts)
  py::object serve;       // (object, request) -> (ok, reply or failure parts)
  py::object describe;    // (object) -> pickled (type name, methods, raw layout)
  py::object raw_layout;  // (object) -> (rows, row bytes) or None
};

OwnerHooks& owner_hooks() {
  static auto* hooks = new OwnerHooks();  // leaked: outlives interpreter teardown
  return *hooks;
}

// With the GIL.
const py::object& owner_hook(py::object OwnerHooks::*which) {
  const py::object& hook = owner_hooks().*which;
  if (!hook) {
    throw UsageError(
        "parc._core: no proxy owner hooks registered; import parc (its "
        "__init__ registers parc._proxy_owner's), not parc._core alone");
  }
  return hook;
}

// The progress thread keeps its Python thread state: making one per request would cost
// more than the request.
void keep_thread_state(py::gil_scoped_acquire& gil) {
  thread_local bool kept = false;
  if (!kept) {
    gil.inc_ref();
    kept = true;
  }
}

class PythonObject final : public OwnedObject {
 public:
  // With the GIL. `raw` (rows, row bytes) when the object is a C-contiguous numpy array.
  PythonObject(py::object object, std::optional<std::pair<std::uint64_t, std::uint64_t>> raw)
      : object_(std::move(object)) {
    if (!raw) return;
    if (PyObject_GetBuffer(object_.ptr(), &buffer_, PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();  // not readable in place after all: served with the GIL instead
      return;
    }
    view_ = RawView{static_cast<const char*>(buffer_.buf), raw->first, raw->second};
  }

  ~PythonObject() override {
    if (!Py_IsInitialized()) {  // the interpreter went first: leave the object be
      object_.release();
      return;
    }
    py::gil_scoped_acquire gil;
    if (view_) PyBuffer_Release(&buffer_);
    object_ = py::object();
  }

  Outcome handle(ByteReader& request) override {
    py::gil_scoped_acquire gil;
    keep_thread_state(gil);
    py::tuple outcome = owner_hook(&OwnerHooks::serve)(object_, buffer_of(request));
    Outcome result;
    result.ok = outcome[0].cast<bool>();
    result.bytes = join_parts(outcome[1]);
    return result;
  }

  std::optional<RawView> raw_view() const override { return view_; }

  Bytes describe() const override {
    py::gil_scoped_acquire gil;
    py::bytes described = owner_hook(&OwnerHooks::describe)(object_);
    const std::string_view text = described;
    return Bytes(text.begin(), text.end());
  }

  const py::object& object() const { return object_; }

 private:
  py::object object_;
  Py_buffer buffer_{};
  std::optional<RawView> view_;
};

std::optional<std::pair<std::uint64_t, std::uint64_t>> raw_layout(const py::object& object) {
  py::object layout = owner_hook(&OwnerHooks::raw_layout)(object);
  if (layout.is_none()) return std::nullopt;
  return layout.cast<std::pair<std::uint64_t, std::uint64_t>>();
}

std::shared_ptr<OwnedObject> own(py::object object) {
  auto raw = raw_layout(object);
  return std::make_shared<PythonObject>(std::move(object), raw);
}

// Builds an object from a create request (at the owner, with the GIL).
std::shared_ptr<OwnedObject> build_python(ByteReader& arguments, Outcome& failure) {
  py::gil_scoped_acquire gil;
  py::tuple outcome = owner_hook(&OwnerHooks::build)(buffer_of(arguments));
  if (!outcome[0].cast<bool>()) {
    failure.ok = false;
    failure.bytes = join_parts(outcome[1]);
    return nullptr;
  }
  return own(outcome[1]);
}

// A handle on this rank to an object owned anywhere: one count of the service's, given
// back when the Python proxy goes.
class Handle {
 public:
  Handle(int owner, std::uint64_t serial) : id_{owner, serial} {}
  ~Handle() {
    if (runtime) runtime->proxies().release(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  int owner() const { return id_.owner; }
  std::uint64_t serial() const { return id_.serial; }
  const ObjectId& id() const { return id_; }

 private:
  ObjectId id_;
};

// A request on its way; `keep` holds what the reply lands in (a raw read's array).
class Pending {
 public:
  Pending(std::unique_ptr<PendingReply> reply, py::object keep)
      : reply_(std::move(reply)), keep_(std::move(keep)) {}
  ~Pending() {
    py::gil_scoped_release release;  // a raw read still landing is waited for
    reply_.reset();
  }

  bool ready() {
    py::gil_scoped_release release;
    return reply_->ready();
  }

  // Waits up to `timeout` seconds (negative: no limit); Ctrl-C interrupts. True when ready.
  bool wait(double timeout) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = timeout < 0 ? Clock::time_point::max()
                                      : Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                           std::chrono::duration<double>(timeout));
    for (;;) {
      bool ready;
      {
        py::gil_scoped_release release;
        ready =
            reply_->wait_until(std::min(deadline, Clock::now() + std::chrono::milliseconds(50)));
      }
      if (ready) return true;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (Clock::now() >= deadline) return false;
    }
  }

  // (ok, bytes): the reply, once ready; raises for a released object or a failed owner.
  py::tuple outcome() {
    Outcome outcome;
    {
      py::gil_scoped_release release;
      outcome = reply_->wait();
    }
    return py::make_tuple(outcome.ok, buffer_of(std::move(outcome.bytes)));
  }

 private:
  std::unique_ptr<PendingReply> reply_;
  py::object keep_;
};

}  // namespace

void export_proxies(py::module_& m) {
  py::register_exception<ProxyError>(m, "ProxyError", PyExc_ReferenceError);

  py::class_<Handle>(m, "ProxyHandle")
      .def_property_readonly("owner", &Handle::owner)
      .def_property_readonly("serial", &Handle::serial);

  py::class_<Pending>(m, "ProxyPending")
      .def("ready", &Pending::ready)
      .def("wait", &Pending::wait, py::arg("timeout") = -1.0)
      .def("outcome", &Pending::outcome);

  ProxyService::set_factory(FactoryKind::python, &build_python);
  m.def(
      "register_proxy_owner",
      [](py::object build, py::object serve, py::object describe, py::object raw_layout) {
        owner_hooks() = OwnerHooks{std::move(build), std::move(serve), std::move(describe),
                                   std::move(raw_layout)};
      },
      py::arg("build"), py::arg("serve"), py::arg("describe"), py::arg("raw_layout"),
      "The owner's side of proxies in Python, called on the owner's progress thread.");
  m.def("proxy_setup", [] { return py::make_tuple(service().rank(), service().owners()); });

  // (ok, handle or failure bytes)
  m.def("proxy_create", [](int owner, const py::iterable& parts) -> py::tuple {
    Bytes arguments = join_parts(parts);
    Outcome reply;
    ObjectId id;
    {
      py::gil_scoped_release release;
      id = service().create(owner, FactoryKind::python, std::move(arguments), reply);
    }
    if (id.owner < 0) return py::make_tuple(false, buffer_of(std::move(reply.bytes)));
    return py::make_tuple(true, py::make_tuple(std::make_unique<Handle>(id.owner, id.serial),
                                               buffer_of(std::move(reply.bytes))));
  });

  m.def("proxy_adopt", [](py::object object) {
    const ObjectId id = service().adopt(own(std::move(object)));
    return std::make_unique<Handle>(id.owner, id.serial);
  });

  // The object itself when this process keeps it (MPI: this rank owns it), else None.
  m.def("proxy_local", [](const Handle& handle) -> py::object {
    auto object = service().local_object(handle.id());
    if (!object) return py::none();
    return static_cast<PythonObject&>(*object).object();
  });

  m.def("proxy_call", [](const Handle& handle, const py::iterable& parts) {
    Bytes request = join_parts(parts);
    std::unique_ptr<PendingReply> reply;
    {
      py::gil_scoped_release release;
      reply = service().call(handle.id(), std::move(request));
    }
    return std::make_unique<Pending>(std::move(reply), py::none());
  });

  // Reads rows [begin, end) of the owner's array into `destination` (a writable,
  // C-contiguous buffer of exactly that size).
  m.def("proxy_read", [](const Handle& handle, std::uint64_t begin, std::uint64_t end,
                         py::object destination) {
    Py_buffer view;
    if (PyObject_GetBuffer(destination.ptr(), &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) != 0)
      throw py::error_already_set();
    char* data = static_cast<char*>(view.buf);
    const auto bytes = static_cast<std::uint64_t>(view.len);
    PyBuffer_Release(&view);  // `destination` (kept by Pending) keeps the memory
    std::unique_ptr<PendingReply> reply;
    {
      py::gil_scoped_release release;
      reply = service().read_raw(handle.id(), begin, end, data, bytes);
    }
    return std::make_unique<Pending>(std::move(reply), std::move(destination));
  });

  m.def("proxy_retain", [](const Handle& handle) {
    service().retain(handle.id());
    return std::make_unique<Handle>(handle.owner(), handle.serial());
  });
  m.def("proxy_export", [](const Handle& handle, std::uint32_t uses) {
    return service().export_token(handle.id(), uses);
  });
  m.def("proxy_import", [](int owner, std::uint64_t serial, std::uint64_t token) {
    service().import_token(ObjectId{owner, serial}, token);
    return std::make_unique<Handle>(owner, serial);
  });
  m.def("proxy_live_objects", [](int owner) {
    py::gil_scoped_release release;
    return service().live_objects(owner);
  });
  m.def("proxy_here", [] { return service().acting_rank(); });
}

}  // namespace parc::python
