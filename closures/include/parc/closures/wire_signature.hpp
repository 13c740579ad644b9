#pragma once
// A closure's signature as its wire layout, so that a host language (Python) can encode
// the arguments and decode the result of a C++ closure without C++ type information.
//
// One code per value, in the archive's own layout: Python struct codes for scalars
// (? b B h H i I q Q f d), "s" for std::string (u64 length + bytes), "[" + scalar code for
// std::vector of scalars (u64 count + elements), "v" for void, "!" for anything else
// (cereal-encoded: not callable from Python). E.g. double(int, std::vector<double>) is
// "i[d->d". An SPMD closure's signature starts with "@".

#include <parc/closures/traits.hpp>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace parc::detail {

template <class T>
struct is_std_vector : std::false_type {};
template <class T>
struct is_std_vector<std::vector<T>> : std::true_type {};

template <class T>
std::string wire_code() {
  if constexpr (std::is_void_v<T>) {
    return "v";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "?";
  } else if constexpr (std::is_integral_v<T>) {
    constexpr const char* codes = std::is_signed_v<T> ? "bhiq" : "BHIQ";
    constexpr int at = sizeof(T) == 1 ? 0 : sizeof(T) == 2 ? 1 : sizeof(T) == 4 ? 2 : 3;
    return std::string(1, codes[at]);
  } else if constexpr (std::is_same_v<T, float>) {
    return "f";
  } else if constexpr (std::is_same_v<T, double>) {
    return "d";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "s";
  } else if constexpr (is_std_vector<T>::value) {
    using Element = typename T::value_type;
    if constexpr (std::is_arithmetic_v<Element> && !std::is_same_v<Element, bool>) {
      return "[" + wire_code<Element>();
    } else {
      return "!";
    }
  } else {
    return "!";
  }
}

template <class Signature>
std::string wire_signature() {
  using Traits = function_traits<Signature>;
  std::string codes;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((codes += wire_code<std::tuple_element_t<I, typename Traits::arguments>>()), ...);
  }
  (std::make_index_sequence<Traits::arity>{});
  // "@": an SPMD closure (its parc::SpmdContext& comes from the region).
  return (Traits::takes_context ? "@" : "") + codes + "->" + wire_code<typename Traits::result>();
}

}  // namespace parc::detail
