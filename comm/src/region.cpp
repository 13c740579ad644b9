#include <parc/comm/region.hpp>
#include <parc/exceptions/errors.hpp>

#include <cstring>
#include <string>
#include <type_traits>

namespace parc {

namespace {

[[noreturn]] void unknown_type(ScalarType type) {
  throw UsageError("parc: unknown scalar type " + std::to_string(static_cast<int>(type)));
}

[[noreturn]] void unknown_op(ReduceOp op) {
  throw UsageError("parc: unknown reduction " + std::to_string(static_cast<int>(op)));
}

// Integer sum and product wrap around (as MPI does in practice) instead of overflowing
// a signed type or an int promotion: computed in an unsigned type at least as wide as int.
template <class T>
using Wide = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

template <class T>
T add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<Wide<T>>(static_cast<Wide<T>>(a) + static_cast<Wide<T>>(b)));
  } else {
    return a + b;
  }
}

template <class T>
T multiply(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<Wide<T>>(static_cast<Wide<T>>(a) * static_cast<Wide<T>>(b)));
  } else {
    return a * b;
  }
}

// Elementwise through memcpy: the buffers (user arrays, byte vectors) need not be
// aligned for T.
template <class T, class Combine>
void fold_with(char* accumulator, const char* values, std::size_t count, Combine combine) {
  for (std::size_t i = 0; i < count; ++i) {
    T a;
    T b;
    std::memcpy(&a, accumulator + i * sizeof(T), sizeof(T));
    std::memcpy(&b, values + i * sizeof(T), sizeof(T));
    a = combine(a, b);
    std::memcpy(accumulator + i * sizeof(T), &a, sizeof(T));
  }
}

template <class T>
void fold(char* accumulator, const char* values, std::size_t count, ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return fold_with<T>(accumulator, values, count, add<T>);
    case ReduceOp::prod:
      return fold_with<T>(accumulator, values, count, multiply<T>);
    case ReduceOp::min:
      return fold_with<T>(accumulator, values, count, [](T a, T b) { return b < a ? b : a; });
    case ReduceOp::max:
      return fold_with<T>(accumulator, values, count, [](T a, T b) { return a < b ? b : a; });
  }
  unknown_op(op);
}

}  // namespace

std::size_t scalar_size(ScalarType type) {
  switch (type) {
    case ScalarType::i8:
    case ScalarType::u8:
      return 1;
    case ScalarType::i16:
    case ScalarType::u16:
      return 2;
    case ScalarType::i32:
    case ScalarType::u32:
    case ScalarType::f32:
      return 4;
    case ScalarType::i64:
    case ScalarType::u64:
    case ScalarType::f64:
      return 8;
  }
  unknown_type(type);
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::prod:
      return "prod";
    case ReduceOp::min:
      return "min";
    case ReduceOp::max:
      return "max";
  }
  unknown_op(op);
}

void reduce_scalars(void* accumulator, const void* values, std::size_t count, ScalarType type,
                    ReduceOp op) {
  char* acc = static_cast<char*>(accumulator);
  const char* in = static_cast<const char*>(values);
  switch (type) {
    case ScalarType::i8:
      return fold<std::int8_t>(acc, in, count, op);
    case ScalarType::u8:
      return fold<std::uint8_t>(acc, in, count, op);
    case ScalarType::i16:
      return fold<std::int16_t>(acc, in, count, op);
    case ScalarType::u16:
      return fold<std::uint16_t>(acc, in, count, op);
    case ScalarType::i32:
      return fold<std::int32_t>(acc, in, count, op);
    case ScalarType::u32:
      return fold<std::uint32_t>(acc, in, count, op);
    case ScalarType::i64:
      return fold<std::int64_t>(acc, in, count, op);
    case ScalarType::u64:
      return fold<std::uint64_t>(acc, in, count, op);
    case ScalarType::f32:
      return fold<float>(acc, in, count, op);
    case ScalarType::f64:
      return fold<double>(acc, in, count, op);
  }
  unknown_type(type);
}

void check_region_rank(int rank, int size, const char* operation, const char* what) {
  if (rank < 0 || rank >= size) {
    throw UsageError(std::string("parc: region ") + operation + ": " + what + " " +
                     std::to_string(rank) + " is not a rank of this region (0.." +
                     std::to_string(size - 1) + ")");
  }
}

void check_region_tag(int tag, const char* operation) {
  if (tag < 0 || tag > max_region_tag) {
    throw UsageError(std::string("parc: region ") + operation + ": tag " + std::to_string(tag) +
                     " is outside 0.." + std::to_string(max_region_tag));
  }
}

UsageError region_rank_returned_before_collective(int rank, std::uint64_t collectives_run,
                                                  std::uint64_t waiting_in) {
  return UsageError("parc: region rank " + std::to_string(rank) + " returned after " +
                    std::to_string(collectives_run) +
                    " collective operations, while this rank waits for it in operation " +
                    std::to_string(waiting_in) +
                    ": every rank of a region must call the same collectives, in the same order");
}

UsageError region_rank_returned_without_sending(int source, int tag) {
  return UsageError("parc: region rank " + std::to_string(source) +
                    " returned without sending the message this rank waits for (tag " +
                    std::to_string(tag) + "): match every recv with a send");
}

}  // namespace parc
