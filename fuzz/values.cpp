// Values through ByteReader: raw values, raw vectors and strings, and cereal types through
// the guarded archive (strings, nested containers, maps, sets, optionals, variants, smart
// pointers, tuples, bools, a user type with serialize()). The first byte picks the type.

#include "fuzz.hpp"

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace parc::fuzz {

namespace {

struct Particle {
  std::string name;
  std::array<double, 3> position{};
  std::vector<std::pair<int, std::string>> tags;
  bool active = false;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, position, tags, active);
  }
};

using Types =
    std::tuple<bool, double, std::vector<double>, std::string, std::vector<std::string>,
               std::vector<std::vector<int>>, std::map<std::string, std::vector<double>>,
               std::unordered_map<int, std::string>, std::set<std::string>,
               std::optional<std::string>, std::variant<int, std::string, std::vector<char>>,
               std::shared_ptr<std::string>, std::unique_ptr<std::vector<int>>,
               std::tuple<int, std::string, bool>, std::vector<std::optional<int>>, Particle,
               std::vector<Particle>, std::map<int, std::uint64_t>>;

template <std::size_t I = 0>
void read_type(std::size_t which, ByteReader& in) {
  if constexpr (I < std::tuple_size_v<Types>) {
    if (which == I) {
      (void)in.read<std::tuple_element_t<I, Types>>();
    } else {
      read_type<I + 1>(which, in);
    }
  }
}

template <class T>
Bytes seed(std::size_t which, const T& value) {
  Bytes bytes{static_cast<char>(which)};
  ByteWriter(bytes).write(value);
  return bytes;
}

}  // namespace

std::vector<Bytes> seeds() {
  return {seed(0, true),
          seed(2, std::vector<double>{1, 2}),
          seed(4, std::vector<std::string>{"a", "bc"}),
          seed(5, std::vector<std::vector<int>>{{1}, {}, {2, 3}}),
          seed(6, std::map<std::string, std::vector<double>>{{"x", {1.0}}}),
          seed(7, std::unordered_map<int, std::string>{{1, "one"}}),
          seed(8, std::set<std::string>{"s", "t"}),
          seed(10, std::variant<int, std::string, std::vector<char>>(std::string("v"))),
          seed(11, std::make_shared<std::string>("shared")),
          seed(14, std::vector<std::optional<int>>{1, std::nullopt}),
          seed(16, std::vector<Particle>{{"p", {1, 2, 3}, {{1, "t"}}, true}}),
          seed(17, std::map<int, std::uint64_t>{{0, 3}})};
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  parc::ByteReader in = parc::fuzz::reader_of(data + 1, size - 1);
  try {
    parc::fuzz::read_type(data[0] % std::tuple_size_v<parc::fuzz::Types>, in);
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
