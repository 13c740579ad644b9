// parc._core bindings of SPMD regions: the manager's handle on a region, and the
// collectives of the region this thread runs (parc._worker_spmd.Context calls them).

#include "core.hpp"

#include <pybind11/stl.h>

#include <chrono>

namespace parc::python {
namespace {

// The scheduler's Sink for one region: its ranks' results, errors and cancellations,
// until Region::outcomes takes them.
class RegionSink : public detail::Sink {
 public:
  void on_result(std::size_t index, ByteReader& reader) override {
    const std::size_t size = reader.remaining();
    const char* data = reader.take(size).data();
    results.push_back({index, Buffer(reader.owner(), data, size)});
  }
  void on_error(std::size_t index, TaskError error) override {
    errors.emplace_back(index, std::move(error));
  }
  void on_cancel(std::size_t index) override { cancelled.push_back(index); }

  std::vector<std::pair<std::size_t, Buffer>> results;
  std::vector<std::pair<std::size_t, TaskError>> errors;
  std::vector<std::size_t> cancelled;
};

class Region {
 public:
  Region(ClosureId closure, std::vector<int> ranks, const py::iterable& payload, double timeout)
      : sink_(std::make_shared<RegionSink>()) {
    Bytes arguments = join_parts(payload);
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    auto& scheduler = started().scheduler();
    if (ranks.empty()) ranks = scheduler.worker_ranks();
    ranks_ = ranks;
    id_ = scheduler.open_region(closure, std::move(ranks), std::move(arguments), sink_,
                                std::chrono::duration<double>(timeout));
    engine::wake();
  }

  const std::vector<int>& ranks() const { return ranks_; }

  // Runs the scheduler until the region is finished or `timeout` passes; true if finished.
  bool wait(double timeout) {
    py::gil_scoped_release release;
    progress_until([this] { return started().scheduler().region_finished(id_); }, timeout);
    std::lock_guard lock(scheduler_mutex);
    return started().scheduler().region_finished(id_);
  }

  // ([(rank, Buffer)], [(rank, error tuple)], [rank]) of the ranks that answered so far.
  py::tuple outcomes() {
    RegionSink taken;
    {
      py::gil_scoped_release release;
      std::lock_guard lock(scheduler_mutex);
      std::swap(taken.results, sink_->results);
      std::swap(taken.errors, sink_->errors);
      std::swap(taken.cancelled, sink_->cancelled);
    }
    py::list results, errors;
    for (auto& [index, buffer] : taken.results) results.append(py::make_tuple(index, buffer));
    for (auto& [index, error] : taken.errors)
      errors.append(py::make_tuple(index, error_tuple(error)));
    return py::make_tuple(results, errors, py::cast(taken.cancelled));
  }

  void cancel(const std::string& reason) {
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    started().scheduler().cancel_region(id_, reason);
  }

 private:
  std::shared_ptr<RegionSink> sink_;
  std::vector<int> ranks_;
  std::uint64_t id_ = 0;
};

// A token of the region this thread runs now; a Python ctx keeps the one it was made in.
std::uint64_t current_token() {
  const SpmdContext* context = detail::current_spmd_context();
  return context == nullptr ? 0 : context->region();
}

RegionComm& current_comm(std::uint64_t token) {
  SpmdContext* context = detail::current_spmd_context();
  if (context == nullptr || current_token() != token) {
    throw UsageError(
        "parc: this SPMD context is used outside its region: a ctx is valid only while its "
        "closure runs (in the thread that runs it); don't keep it for later");
  }
  return context->comm();
}

ScalarType scalar_type(const std::string& code) {
  static const std::pair<const char*, ScalarType> types[] = {
      {"i1", ScalarType::i8},  {"u1", ScalarType::u8},  {"i2", ScalarType::i16},
      {"u2", ScalarType::u16}, {"i4", ScalarType::i32}, {"u4", ScalarType::u32},
      {"i8", ScalarType::i64}, {"u8", ScalarType::u64}, {"f4", ScalarType::f32},
      {"f8", ScalarType::f64}};
  for (const auto& [name, type] : types) {
    if (code == name) return type;
  }
  throw UsageError("parc: cannot reduce elements of type code " + code);
}

ReduceOp reduce_op(const std::string& name) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::prod, ReduceOp::min, ReduceOp::max}) {
    if (name == reduce_op_name(op)) return op;
  }
  throw UsageError("parc: unknown reduction \"" + name + "\"; use sum, prod, min or max");
}

// A writable C-contiguous buffer reduced in place.
template <class Reduce>
void reduce_buffer(const py::buffer& array, const std::string& code, Reduce reduce) {
  Py_buffer view;
  if (PyObject_GetBuffer(array.ptr(), &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0)
    throw py::error_already_set();
  const ScalarType type = scalar_type(code);
  const std::size_t count = static_cast<std::size_t>(view.len) / scalar_size(type);
  try {
    py::gil_scoped_release release;
    reduce(view.buf, count, type);
  } catch (...) {
    PyBuffer_Release(&view);
    throw;
  }
  PyBuffer_Release(&view);
}

}  // namespace

void export_spmd(py::module_& m) {
  py::register_exception<CancelledError>(
      m, "CancelledError", py::module_::import("concurrent.futures").attr("CancelledError").ptr());

  py::class_<Region>(m, "Region")
      .def(py::init<ClosureId, std::vector<int>, const py::iterable&, double>())
      .def_property_readonly("ranks", &Region::ranks)
      .def("wait", &Region::wait)
      .def("outcomes", &Region::outcomes)
      .def("cancel", &Region::cancel);

  m.def("worker_ranks", [] {
    py::gil_scoped_release release;
    std::lock_guard lock(scheduler_mutex);
    return started().scheduler().worker_ranks();
  });

  // The region of the calling thread. Every wait releases the GIL.
  m.def("ctx_token", [] {
    current_comm(current_token());
    return current_token();
  });
  m.def("ctx_rank", [](std::uint64_t token) { return current_comm(token).rank(); });
  m.def("ctx_size", [](std::uint64_t token) { return current_comm(token).size(); });
  m.def("ctx_barrier", [](std::uint64_t token) {
    RegionComm& comm = current_comm(token);
    py::gil_scoped_release release;
    comm.barrier();
  });
  m.def("ctx_bcast", [](std::uint64_t token, const py::object& parts, int root) {
    RegionComm& comm = current_comm(token);
    Bytes data = parts.is_none() ? Bytes{} : join_parts(parts);
    Bytes received;
    {
      py::gil_scoped_release release;
      received = comm.bcast(std::move(data), root);
    }
    return buffer_of(std::move(received));
  });
  auto to_list = [](std::vector<Bytes>&& all) {
    py::list list;
    for (Bytes& bytes : all) list.append(buffer_of(std::move(bytes)));
    return list;
  };
  m.def("ctx_gather", [to_list](std::uint64_t token, const py::iterable& parts, int root) {
    RegionComm& comm = current_comm(token);
    Bytes data = join_parts(parts);
    std::vector<Bytes> all;
    {
      py::gil_scoped_release release;
      all = comm.gather(std::move(data), root);
    }
    return to_list(std::move(all));
  });
  m.def("ctx_allgather", [to_list](std::uint64_t token, const py::iterable& parts) {
    RegionComm& comm = current_comm(token);
    Bytes data = join_parts(parts);
    std::vector<Bytes> all;
    {
      py::gil_scoped_release release;
      all = comm.allgather(std::move(data));
    }
    return to_list(std::move(all));
  });
  m.def("ctx_scatter", [](std::uint64_t token, const py::object& per_rank_parts, int root) {
    RegionComm& comm = current_comm(token);
    std::vector<Bytes> parts;
    if (!per_rank_parts.is_none()) {
      for (py::handle one : per_rank_parts) {
        parts.push_back(join_parts(py::reinterpret_borrow<py::iterable>(one)));
      }
    }
    Bytes received;
    {
      py::gil_scoped_release release;
      received = comm.scatter(std::move(parts), root);
    }
    return buffer_of(std::move(received));
  });
  m.def("ctx_send", [](std::uint64_t token, const py::iterable& parts, int dest, int tag) {
    RegionComm& comm = current_comm(token);
    Bytes data = join_parts(parts);
    py::gil_scoped_release release;
    comm.send(std::move(data), dest, tag);
  });
  m.def("ctx_recv", [](std::uint64_t token, int source, int tag) {
    RegionComm& comm = current_comm(token);
    Bytes received;
    {
      py::gil_scoped_release release;
      received = comm.recv(source, tag);
    }
    return buffer_of(std::move(received));
  });
  m.def("ctx_allreduce", [](std::uint64_t token, const py::buffer& array, const std::string& code,
                            const std::string& op) {
    RegionComm& comm = current_comm(token);
    const ReduceOp reduction = reduce_op(op);
    reduce_buffer(array, code, [&](void* data, std::size_t count, ScalarType type) {
      comm.allreduce(data, count, type, reduction);
    });
  });
  // A Python float: no array to make, and the result is a float again.
  m.def("ctx_allreduce_float", [](std::uint64_t token, double value, const std::string& op) {
    RegionComm& comm = current_comm(token);
    const ReduceOp reduction = reduce_op(op);
    py::gil_scoped_release release;
    comm.allreduce(&value, 1, ScalarType::f64, reduction);
    return value;
  });
  m.def("ctx_reduce", [](std::uint64_t token, const py::buffer& array, const std::string& code,
                         const std::string& op, int root) {
    RegionComm& comm = current_comm(token);
    const ReduceOp reduction = reduce_op(op);
    reduce_buffer(array, code, [&](void* data, std::size_t count, ScalarType type) {
      comm.reduce(data, count, type, reduction, root);
    });
  });
}

}  // namespace parc::python
