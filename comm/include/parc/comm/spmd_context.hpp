#pragma once
// parc::SpmdContext: what an SPMD region's closure gets as its first parameter: its
// rank in the region and typed collectives among the region's ranks.
//
// Values travel like task arguments (raw bytes for trivially copyable types and vectors
// of them, cereal otherwise). allreduce/reduce of arithmetic values (or vectors of them)
// with parc::sum/prod/min/max run as one MPI reduction; any other operation is applied
// on the gathered values in rank order. Every wait is cancellable: when another rank of
// the region fails, or the region times out, the call throws parc::CancelledError.

#include <parc/comm/region.hpp>
#include <parc/exceptions/errors.hpp>

#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace parc {

// Reduction operations that run inside MPI for arithmetic types; any binary function
// object works too (applied on the gathered values, in rank order).
struct Sum {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return a + b;
  }
};
struct Prod {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return a * b;
  }
};
struct Min {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return b < a ? b : a;
  }
};
struct Max {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return a < b ? b : a;
  }
};
inline constexpr Sum sum{};
inline constexpr Prod prod{};
inline constexpr Min min{};
inline constexpr Max max{};

namespace detail {

template <class T>
constexpr std::optional<ScalarType> scalar_type_of() {
  if constexpr (std::is_same_v<T, float>) return ScalarType::f32;
  if constexpr (std::is_same_v<T, double>) return ScalarType::f64;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    constexpr bool s = std::is_signed_v<T>;
    if constexpr (sizeof(T) == 1) return s ? ScalarType::i8 : ScalarType::u8;
    if constexpr (sizeof(T) == 2) return s ? ScalarType::i16 : ScalarType::u16;
    if constexpr (sizeof(T) == 4) return s ? ScalarType::i32 : ScalarType::u32;
    if constexpr (sizeof(T) == 8) return s ? ScalarType::i64 : ScalarType::u64;
  }
  return std::nullopt;
}

template <class Op>
constexpr std::optional<ReduceOp> reduce_op_of() {
  if constexpr (std::is_same_v<Op, Sum>) return ReduceOp::sum;
  if constexpr (std::is_same_v<Op, Prod>) return ReduceOp::prod;
  if constexpr (std::is_same_v<Op, Min>) return ReduceOp::min;
  if constexpr (std::is_same_v<Op, Max>) return ReduceOp::max;
  return std::nullopt;
}

// Scalars and vectors of scalars reduce elementwise inside MPI.
template <class T>
struct native_reduction {
  using element = T;
  static constexpr bool value = scalar_type_of<T>().has_value();
  static void* data(T& v) { return &v; }
  static std::size_t count(const T&) { return 1; }
};
template <class E, class A>
struct native_reduction<std::vector<E, A>> {
  using element = E;
  static constexpr bool value = scalar_type_of<E>().has_value();
  static void* data(std::vector<E, A>& v) { return v.data(); }
  static std::size_t count(const std::vector<E, A>& v) { return v.size(); }
};

template <class T>
Bytes encode_value(const T& value) {
  Bytes bytes;
  ByteWriter(bytes).write(value);
  return bytes;
}

template <class T>
T decode_value(const Bytes& bytes) {
  ByteReader in(bytes.data(), bytes.size());
  if constexpr (std::is_same_v<T, bool>) {
    return in.read<bool>();
  } else {
    return in.read<T>();
  }
}

}  // namespace detail

class SpmdContext {
 public:
  SpmdContext(RegionComm& comm, std::uint64_t region) : comm_(comm), region_(region) {}
  SpmdContext(const SpmdContext&) = delete;
  SpmdContext& operator=(const SpmdContext&) = delete;

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  RegionComm& comm() { return comm_; }
  // The region's id (unique in the job's run).
  std::uint64_t region() const { return region_; }

  void barrier() { comm_.barrier(); }

  // Root's value on every rank.
  template <class T>
  T bcast(const T& value, int root = 0) {
    return detail::decode_value<T>(
        comm_.bcast(rank() == root ? detail::encode_value(value) : Bytes{}, root));
  }

  // Every rank's value, in rank order, at root (empty elsewhere).
  template <class T>
  std::vector<T> gather(const T& value, int root = 0) {
    return decode_all<T>(comm_.gather(detail::encode_value(value), root));
  }
  template <class T>
  std::vector<T> allgather(const T& value) {
    return decode_all<T>(comm_.allgather(detail::encode_value(value)));
  }

  // Rank r gets values[r] of the root's `values` (size() of them; ignored off the root).
  template <class T>
  T scatter(const std::vector<T>& values, int root = 0) {
    std::vector<Bytes> parts;
    if (rank() == root) {
      if (static_cast<int>(values.size()) != size()) {
        throw UsageError("parc: scatter needs one value per rank of the region (" +
                         std::to_string(size()) + "), the root gave " +
                         std::to_string(values.size()));
      }
      for (const T& value : values) parts.push_back(detail::encode_value(value));
    }
    return detail::decode_value<T>(comm_.scatter(std::move(parts), root));
  }

  template <class T, class Op = Sum>
  T allreduce(const T& value, Op op = {}) {
    if constexpr (native<T, Op>()) {
      T result = value;
      using N = detail::native_reduction<T>;
      comm_.allreduce(N::data(result), N::count(result),
                      *detail::scalar_type_of<typename N::element>(), *detail::reduce_op_of<Op>());
      return result;
    } else {
      std::vector<T> all = allgather(value);
      return fold(all, op);
    }
  }

  // The reduction at root; std::nullopt on the other ranks.
  template <class T, class Op = Sum>
  std::optional<T> reduce(const T& value, Op op = {}, int root = 0) {
    if constexpr (native<T, Op>()) {
      T result = value;
      using N = detail::native_reduction<T>;
      comm_.reduce(N::data(result), N::count(result),
                   *detail::scalar_type_of<typename N::element>(), *detail::reduce_op_of<Op>(),
                   root);
      if (rank() != root) return std::nullopt;
      return result;
    } else {
      std::vector<T> all = gather(value, root);
      if (rank() != root) return std::nullopt;
      return fold(all, op);
    }
  }

  // Buffered: returns at once; recv takes messages from one source and tag in order.
  template <class T>
  void send(int dest, const T& value, int tag = 0) {
    comm_.send(detail::encode_value(value), dest, tag);
  }
  template <class T>
  T recv(int source, int tag = 0) {
    return detail::decode_value<T>(comm_.recv(source, tag));
  }

 private:
  template <class T, class Op>
  static constexpr bool native() {
    return detail::native_reduction<T>::value && detail::reduce_op_of<Op>().has_value();
  }

  template <class T>
  static std::vector<T> decode_all(const std::vector<Bytes>& parts) {
    std::vector<T> values;
    values.reserve(parts.size());
    for (const Bytes& part : parts) values.push_back(detail::decode_value<T>(part));
    return values;
  }

  template <class T, class Op>
  static T fold(std::vector<T>& values, Op& op) {
    T result = std::move(values.front());
    for (std::size_t i = 1; i < values.size(); ++i) result = op(result, values[i]);
    return result;
  }

  RegionComm& comm_;
  std::uint64_t region_;
};

namespace detail {
// The context of the region this thread runs (set by the worker around the closure).
// Defined in the library, not inline: a pybind11 module hides its inline statics.
SpmdContext*& current_spmd_context();
}  // namespace detail

}  // namespace parc
