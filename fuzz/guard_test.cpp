// Targeted checks of the decoders' guards (no GoogleTest: built with the fuzz targets).
// A corrupt size tag must be a DecodeError before anything is allocated; counts and enum
// values are checked, naming the peer.

#include <parc/managers/detail/wire.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>

namespace {

std::atomic<std::size_t> largest_allocation{0};

#define CHECK(condition)                                                                 \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (false)

// The message of the DecodeError that decoding `bytes` with `decode` throws ("" if none).
template <class Decode>
std::string decode_error(const parc::Bytes& bytes, Decode decode) {
  parc::ByteReader reader(bytes.data(), bytes.size());
  try {
    decode(reader);
  } catch (const parc::DecodeError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

// Records the largest single allocation, to show that a guard fired before any. (GCC
// pairs this malloc with the frees below no better than with the default delete.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  std::size_t seen = largest_allocation.load();
  while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

int main() {
  using namespace parc;
  using namespace parc::detail;

  {  // a cereal size tag claiming 2^40 strings in a 16-byte message
    Bytes bytes;
    ByteWriter(bytes).write(std::uint64_t{1} << 40);
    ByteWriter(bytes).write(std::uint64_t{0});
    largest_allocation = 0;
    const auto error =
        decode_error(bytes, [](ByteReader& r) { r.read<std::vector<std::string>>(); });
    CHECK(contains(error, "claims a string or container of 1099511627776 elements"));
    CHECK(largest_allocation < 4096);
  }
  {  // the same inside a map, and inside a user type's vector of vectors
    Bytes bytes;
    ByteWriter(bytes).write(~std::uint64_t{0});
    largest_allocation = 0;
    CHECK(
        contains(decode_error(bytes, [](ByteReader& r) { r.read<std::map<int, std::uint64_t>>(); }),
                 "claims"));
    Bytes nested;
    ByteWriter(nested).write(std::uint64_t{1});
    ByteWriter(nested).write(std::uint64_t{1} << 50);
    CHECK(contains(
        decode_error(nested,
                     [](ByteReader& r) { r.read<std::vector<std::vector<std::string>>>(); }),
        "claims"));
    CHECK(largest_allocation < 4096);
  }
  {  // a bool must be 0 or 1, raw or in cereal
    const Bytes two{2};
    CHECK(contains(decode_error(two, [](ByteReader& r) { r.read<bool>(); }), "bool of value 2"));
    Bytes tuple;
    ByteWriter(tuple).write(std::int32_t{1});
    tuple.push_back(7);
    CHECK(contains(decode_error(tuple, [](ByteReader& r) { r.read<std::tuple<int, bool>>(); }),
                   "bool of value 7"));
  }
  {  // a task batch claiming 2^32-2 tasks in 4 bytes: rejected before any task runs
    Bytes bytes;
    ByteWriter(bytes).write(std::uint32_t{0xFFFFFFFE});
    const auto error = decode_error(bytes, [](ByteReader& r) { read_task_count(r, 0); });
    CHECK(contains(error, "task batch from rank 0 claims 4294967294 records"));
  }
  {  // an unknown outcome status, naming the worker
    Bytes bytes;
    ByteWriter writer(bytes);
    writer.write(std::uint64_t{1});
    writer.write(std::uint8_t{9});
    writer.write(std::uint64_t{0});
    writer.write(std::uint64_t{0});
    const auto error = decode_error(bytes, [](ByteReader& r) { read_outcome(r, 3); });
    CHECK(contains(error, "from rank 3 has unknown status 9"));
  }
  {  // an ErrorInfo with no exception in its chain
    Bytes bytes;
    ByteWriter(bytes).write(ErrorInfo{});
    const auto error = decode_error(bytes, [](ByteReader& r) { read_error_info(r, 4); });
    CHECK(contains(error, "from rank 4 holds no exception"));
  }
  {  // an unknown kept-communicator mode in region_start
    Bytes bytes;
    ByteWriter writer(bytes);
    writer.write(std::uint64_t{1});
    writer.write(ClosureId{0});
    writer.write(std::vector<int>{1});
    writer.write(std::uint8_t{3});
    const auto error = decode_error(bytes, [](ByteReader& r) { read_region_start(r, 0); });
    CHECK(contains(error, "from rank 0 says 3 for the kept communicator"));
  }
  {  // a task-farm kind on the control channel
    Message message;
    message.source = 5;
    message.kind = MessageKind::task_batch;
    message.frame = begin_frame();
    bool rejected = false;
    try {
      read_control(message);
    } catch (const DecodeError& e) {
      rejected = contains(e.what(), "from rank 5 on the control channel");
    }
    CHECK(rejected);
  }
  std::printf("decoder guards: all checks passed\n");
  return 0;
}
