#pragma once
// Closures whose arguments exercise every kind of encoding: raw values, raw vectors and
// strings, and cereal (nested containers, maps, optionals, variants, bools).

#include <parc/closures/call.hpp>
#include <parc/closures/closure.hpp>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace parc::fuzz {

inline int fuzz_add(int a, int b) {
  return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b));
}
inline std::size_t fuzz_strings(std::vector<std::string> words, std::map<std::string, int> counts) {
  return words.size() + counts.size();
}
inline double fuzz_doubles(std::vector<double> xs, std::optional<std::string> label) {
  return static_cast<double>(xs.size() + (label ? label->size() : 0));
}
inline std::string fuzz_nested(std::vector<std::vector<std::string>> rows,
                               std::tuple<int, std::string, bool> cell,
                               std::variant<int, std::string> either,
                               std::unordered_map<int, std::vector<int>> index) {
  return std::to_string(rows.size() + std::get<1>(cell).size() + either.index() + index.size());
}
inline void fuzz_void() {}

PARC_CLOSURE(fuzz_add);
PARC_CLOSURE(fuzz_strings);
PARC_CLOSURE(fuzz_doubles);
PARC_CLOSURE(fuzz_nested);
PARC_CLOSURE(fuzz_void);

inline void seal_closures() { detail::ClosureRegistry::instance().seal(); }

// Genuine arguments of each closure, as write_arguments encodes them: {closure id, bytes}.
inline std::vector<std::pair<ClosureId, Bytes>> sample_calls() {
  seal_closures();
  std::vector<std::pair<ClosureId, Bytes>> calls;
  auto call = [&](auto& fn, auto&&... arguments) {
    Bytes bytes;
    ByteWriter out(bytes);
    detail::write_arguments<std::remove_reference_t<decltype(fn)>>(out, arguments...);
    calls.emplace_back(closure_id(fn), std::move(bytes));
  };
  call(fuzz_add, 2, 3);
  call(fuzz_strings, std::vector<std::string>{"a", "bc"}, std::map<std::string, int>{{"x", 1}});
  call(fuzz_doubles, std::vector<double>{1.5, 2.5}, std::optional<std::string>("pi"));
  call(fuzz_nested, std::vector<std::vector<std::string>>{{"r"}, {}},
       std::tuple<int, std::string, bool>{1, "c", true}, std::variant<int, std::string>("v"),
       std::unordered_map<int, std::vector<int>>{{7, {1, 2}}});
  call(fuzz_void);
  return calls;
}

}  // namespace parc::fuzz
