#pragma once
// Byte-level encoding of values: raw bytes for trivially copyable data and contiguous
// ranges of it, cereal's binary archive for everything else (read back through
// GuardedInputArchive, which checks every length against the bytes received).

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <memory>
#include <ostream>
#include <span>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace parc {

namespace detail {
// Large message buffers are kept for reuse: a fresh 16 MiB block costs ~4000 page faults
// (the kernel zeroes every page), which halved the bandwidth of large tasks.
void* allocate_message_buffer(std::size_t bytes);
void free_message_buffer(void* block, std::size_t bytes) noexcept;
}  // namespace detail

// The allocator of message buffers: value-initialization leaves chars as they are (a
// buffer resized to receive a message is written over at once, and zeroing 16 MiB costs
// ~2 ms), and large blocks are recycled.
template <class T>
struct MessageAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = MessageAllocator<U>;
  };
  MessageAllocator() = default;
  template <class U>
  MessageAllocator(const MessageAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(detail::allocate_message_buffer(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { detail::free_message_buffer(p, n * sizeof(T)); }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
      ::new (static_cast<void*>(p)) U;
    } else {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  }
  template <class U>
  bool operator==(const MessageAllocator<U>&) const noexcept {
    return true;
  }
};

using Bytes = std::vector<char, MessageAllocator<char>>;

// Appends `size` bytes at the end of `out`: it grows without zeroing, then one memcpy.
// (vector::insert would copy byte by byte through MessageAllocator::construct.)
inline void append(Bytes& out, const void* data, std::size_t size) {
  if (size == 0) return;
  const std::size_t at = out.size();
  out.resize(at + size);
  std::memcpy(out.data() + at, data, size);
}

// Bytes that go into a message without being copied into its buffer: the endpoint sends
// them from where they lie, as a tail of their frame (see Endpoint::send), and `owner`
// keeps them alive until that send completes.
struct Tail {
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  std::size_t size = 0;
  // Memory that its owner (a Python object) may still change: nothing of the host
  // language may run on this rank until the send completes (see Worker::run_batch).
  bool borrowed = false;
};
// A tail and where it goes: after the first `at` bytes of its frame's buffer.
struct Splice {
  std::size_t at = 0;
  Tail tail;
};
using Splices = std::vector<Splice>;

// From this size on, a block a ByteWriter is given by reference (write_tail, write_moved)
// goes as a tail; smaller ones are copied, since each tail costs a message of its own.
inline constexpr std::size_t tail_bytes = 64 * 1024;

// The bytes a frame carries in all: its buffer and its tails.
inline std::size_t spliced_size(const Splices& splices) {
  std::size_t total = 0;
  for (const Splice& splice : splices) total += splice.tail.size;
  return total;
}

// A received message did not decode: truncated, corrupt, or from a different build.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// cereal's binary input format, read from memory with every length checked against the
// bytes left: cereal resizes a string or container to its size tag before reading the
// elements, so a corrupt tag would allocate gigabytes. A tag may claim at most one element
// per byte left (every element but an elided empty class takes a byte or more), which
// bounds what a message can make this process allocate. A bool must be 0 or 1. Name this
// type (not cereal::BinaryInputArchive) in a load written for one archive.
class GuardedInputArchive
    : public cereal::InputArchive<GuardedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  GuardedInputArchive(const char* begin, const char* end)
      : cereal::InputArchive<GuardedInputArchive, cereal::AllowEmptyClassElision>(this),
        begin_(begin),
        pos_(begin),
        end_(end) {}

  void loadBinary(void* data, std::size_t size) {
    if (size > remaining()) {
      throw DecodeError("parc: a message is truncated: a value needs " + std::to_string(size) +
                        " bytes, " + std::to_string(remaining()) + " left");
    }
    if (size == 0) return;  // an empty container's data() may be null
    std::memcpy(data, pos_, size);
    pos_ += size;
  }

  void check_size_tag(std::uint64_t size) const {
    if (size > remaining()) {
      throw DecodeError("parc: a message claims a string or container of " + std::to_string(size) +
                        " elements but holds only " + std::to_string(remaining()) + " more bytes");
    }
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - pos_); }
  std::size_t consumed() const { return static_cast<std::size_t>(pos_ - begin_); }

 private:
  const char* begin_;
  const char* pos_;
  const char* end_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(GuardedInputArchive& ar,
                                                                    T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    // Any other byte in a bool is undefined behaviour once read.
    unsigned char byte = 0;
    ar.loadBinary(&byte, 1);
    if (byte > 1)
      throw DecodeError("parc: a message holds a bool of value " + std::to_string(byte));
    value = byte != 0;
  } else {
    ar.loadBinary(std::addressof(value), sizeof(T));
  }
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(GuardedInputArchive& ar, cereal::NameValuePair<T>& pair) {
  ar(pair.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(GuardedInputArchive& ar, cereal::SizeTag<T>& tag) {
  ar(tag.size);
  ar.check_size_tag(static_cast<std::uint64_t>(tag.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(GuardedInputArchive& ar, cereal::BinaryData<T>& data) {
  ar.loadBinary(data.data, static_cast<std::size_t>(data.size));
}

namespace detail {

template <class T>
struct is_view : std::false_type {};
template <class C, class Tr>
struct is_view<std::basic_string_view<C, Tr>> : std::true_type {};
template <class T, std::size_t N>
struct is_view<std::span<T, N>> : std::true_type {};

template <class T>
inline constexpr bool is_raw_v = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                                 !std::is_member_pointer_v<T> && !is_view<T>::value;

template <class T>
struct is_raw_contiguous : std::false_type {};
template <class T, class A>
struct is_raw_contiguous<std::vector<T, A>> : std::bool_constant<is_raw_v<T>> {};
template <class C, class Tr, class A>
struct is_raw_contiguous<std::basic_string<C, Tr, A>> : std::true_type {};

// Appends to a Bytes buffer, so cereal writes straight into the message.
class AppendBuf : public std::streambuf {
 public:
  explicit AppendBuf(Bytes& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    append(out_, s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) out_.push_back(static_cast<char>(c));
    return c;
  }

 private:
  Bytes& out_;
};

}  // namespace detail

class ByteWriter {
 public:
  // With `tails`, large blocks given by reference are not copied into `out` but recorded
  // there, each at its place (the endpoint sends them from where they lie); without,
  // everything is copied into `out`.
  explicit ByteWriter(Bytes& out, Splices* tails = nullptr) : out_(out), tails_(tails) {}

  void write_bytes(const void* data, std::size_t size) { append(out_, data, size); }

  // `tail`'s bytes, at this point of the message: as a tail when this writer collects
  // them and it is large, else copied.
  void write_tail(Tail tail) {
    if (tails_ == nullptr || tail.size < tail_bytes) {
      write_bytes(tail.data, tail.size);
      return;
    }
    tails_->push_back(Splice{out_.size(), std::move(tail)});
  }

  // A value the caller gives up (a closure's result): as write(value), except that a
  // large contiguous one is moved into the message's keeping and goes as a tail.
  template <class T>
  void write_moved(T&& value) {
    using Value = std::remove_cvref_t<T>;
    if constexpr (!std::is_const_v<std::remove_reference_t<T>> && std::is_rvalue_reference_v<T&&> &&
                  detail::is_raw_contiguous<Value>::value) {
      const std::size_t size = value.size() * sizeof(typename Value::value_type);
      if (tails_ != nullptr && size >= tail_bytes) {
        write(static_cast<std::uint64_t>(value.size()));
        auto kept = std::make_shared<const Value>(std::move(value));
        const char* data = reinterpret_cast<const char*>(kept->data());
        write_tail(Tail{std::move(kept), data, size});
        return;
      }
    }
    write(value);
  }

  // Where the message stands, to measure or drop what is written after.
  struct Mark {
    std::size_t bytes = 0;
    std::size_t tails = 0;
  };
  Mark mark() const { return Mark{out_.size(), tails_ != nullptr ? tails_->size() : 0}; }
  // The bytes written since `mark`, tails included.
  std::size_t written_since(const Mark& mark) const {
    std::size_t total = out_.size() - mark.bytes;
    if (tails_ != nullptr) {
      for (std::size_t i = mark.tails; i < tails_->size(); ++i) total += (*tails_)[i].tail.size;
    }
    return total;
  }
  // Drops what was written since `mark` (a task that failed half-way through its result).
  void rewind(const Mark& mark) {
    out_.resize(mark.bytes);
    if (tails_ != nullptr) tails_->resize(mark.tails);
  }

  template <class T>
  void write(const T& value) {
    static_assert(!detail::is_view<T>::value,
                  "parc: a view (string_view, span) cannot be sent to another rank; pass "
                  "std::string or std::vector instead");
    static_assert(!std::is_pointer_v<T>,
                  "parc: a pointer cannot be sent to another rank; pass the value");
    if constexpr (detail::is_raw_v<T>) {
      write_bytes(&value, sizeof(T));
    } else if constexpr (detail::is_raw_contiguous<T>::value) {
      write(static_cast<std::uint64_t>(value.size()));
      write_bytes(value.data(), value.size() * sizeof(typename T::value_type));
    } else {
      detail::AppendBuf buf(out_);
      std::ostream stream(&buf);
      cereal::BinaryOutputArchive archive(stream);
      archive(value);
    }
  }

  Bytes& buffer() { return out_; }

 private:
  Bytes& out_;
  Splices* tails_;
};

class ByteReader {
 public:
  // `owner`, when given, keeps the bytes alive: a host language may hold views into them
  // after the reader is gone (numpy arrays unpickled out-of-band).
  ByteReader(const char* data, std::size_t size, std::shared_ptr<const void> owner = {})
      : pos_(data), end_(data + size), owner_(std::move(owner)) {}

  const std::shared_ptr<const void>& owner() const { return owner_; }
  // A reader of the next `size` bytes that shares this one's owner.
  ByteReader sub_reader(std::size_t size) {
    std::span<const char> view = take(size);
    return ByteReader(view.data(), view.size(), owner_);
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - pos_); }

  void read_bytes(void* out, std::size_t size) {
    require(size);
    if (size == 0) return;  // an empty vector's data() may be null: memcpy must not see it
    std::memcpy(out, pos_, size);
    pos_ += size;
  }

  // A view of the next `size` bytes, valid while the underlying buffer lives.
  std::span<const char> take(std::size_t size) {
    require(size);
    std::span<const char> view(pos_, size);
    pos_ += size;
    return view;
  }

  template <class T>
  T read() {
    T value;
    read_into(value);
    return value;
  }

  template <class T>
  void read_into(T& value) {
    static_assert(!detail::is_view<T>::value,
                  "parc: a view (string_view, span) cannot be received from another rank; "
                  "take std::string or std::vector instead");
    static_assert(!std::is_pointer_v<T>,
                  "parc: a pointer cannot be sent to another rank; take the value");
    if constexpr (std::is_same_v<T, bool>) {
      value = read_bool();
    } else if constexpr (detail::is_raw_v<T>) {
      read_bytes(&value, sizeof(T));
    } else if constexpr (detail::is_raw_contiguous<T>::value) {
      using Element = typename T::value_type;
      auto count = read<std::uint64_t>();
      if (count > remaining() / sizeof(Element)) {
        throw DecodeError("parc: a message claims " + std::to_string(count) +
                          " elements but holds only " + std::to_string(remaining()) + " bytes");
      }
      value.resize(count);
      read_bytes(value.data(), count * sizeof(Element));
    } else {
      GuardedInputArchive archive(pos_, end_);
      try {
        archive(value);
      } catch (const cereal::Exception& e) {
        throw DecodeError(std::string("parc: a message did not decode: ") + e.what());
      }
      pos_ += archive.consumed();
    }
  }

 private:
  bool read_bool() {
    unsigned char byte = 0;
    read_bytes(&byte, 1);
    if (byte > 1)
      throw DecodeError("parc: a message holds a bool of value " + std::to_string(byte));
    return byte != 0;
  }

  void require(std::size_t size) const {
    if (size > remaining()) {
      throw DecodeError("parc: a message is truncated: needed " + std::to_string(size) +
                        " bytes, " + std::to_string(remaining()) + " left");
    }
  }

  const char* pos_;
  const char* end_;
  std::shared_ptr<const void> owner_;
};

}  // namespace parc

// Polymorphic types and load_minimal work with the guarded archive as with cereal's own.
CEREAL_REGISTER_ARCHIVE(parc::GuardedInputArchive)
namespace cereal::traits::detail {
template <>
struct get_output_from_input<parc::GuardedInputArchive> {
  using type = cereal::BinaryOutputArchive;
};
}  // namespace cereal::traits::detail
