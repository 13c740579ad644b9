#pragma once
// Byte-level encoding of values: raw bytes for trivially copyable data and contiguous
// ranges of it, cereal's binary archive for everything else.

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
#include <vector>

namespace parc {

using Bytes = std::vector<char>;

// A received message did not decode: truncated, corrupt, or from a different build.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
    out_.insert(out_.end(), s, s + n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) out_.push_back(static_cast<char>(c));
    return c;
  }

 private:
  Bytes& out_;
};

class ReadBuf : public std::streambuf {
 public:
  ReadBuf(const char* begin, const char* end) {
    char* b = const_cast<char*>(begin);
    setg(b, b, const_cast<char*>(end));
  }
  std::size_t consumed() const { return static_cast<std::size_t>(gptr() - eback()); }
};

}  // namespace detail

class ByteWriter {
 public:
  explicit ByteWriter(Bytes& out) : out_(out) {}

  void write_bytes(const void* data, std::size_t size) {
    const char* bytes = static_cast<const char*>(data);
    out_.insert(out_.end(), bytes, bytes + size);  // no zero-fill first, unlike resize
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
    if constexpr (detail::is_raw_v<T>) {
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
      detail::ReadBuf buf(pos_, end_);
      std::istream stream(&buf);
      try {
        cereal::BinaryInputArchive archive(stream);
        archive(value);
      } catch (const cereal::Exception& e) {
        throw DecodeError(std::string("parc: a message did not decode: ") + e.what());
      }
      pos_ += buf.consumed();
    }
  }

 private:
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
