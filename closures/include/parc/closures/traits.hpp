#pragma once
// Signatures of closures: what they take and return.

#include <tuple>
#include <type_traits>

namespace parc {
class SpmdContext;
}

namespace parc::detail {

template <class F, class = void>
struct function_traits;

// `arguments` are what a call sends; an SPMD closure's leading parc::SpmdContext& is
// supplied by the region on the worker instead.
template <class R, class... A>
struct function_traits<R(A...)> {
  using result = std::decay_t<R>;
  using arguments = std::tuple<std::decay_t<A>...>;
  static constexpr std::size_t arity = sizeof...(A);
  static constexpr bool takes_context = false;
};
template <class R, class... A>
struct function_traits<R(SpmdContext&, A...)> : function_traits<R(A...)> {
  static constexpr bool takes_context = true;
};
template <class R, class... A>
struct function_traits<R(A...) noexcept> : function_traits<R(A...)> {};
template <class R, class... A>
struct function_traits<R (*)(A...)> : function_traits<R(A...)> {};
template <class R, class... A>
struct function_traits<R (*)(A...) noexcept> : function_traits<R(A...)> {};
template <class C, class R, class... A>
struct function_traits<R (C::*)(A...) const> : function_traits<R(A...)> {};
template <class C, class R, class... A>
struct function_traits<R (C::*)(A...) const noexcept> : function_traits<R(A...)> {};
template <class C, class R, class... A>
struct function_traits<R (C::*)(A...)> : function_traits<R(A...)> {};
template <class F>
struct function_traits<F, std::void_t<decltype(&F::operator())>>
    : function_traits<decltype(&F::operator())> {};

template <class F>
concept has_signature = requires {
  typename function_traits<std::remove_cvref_t<F>>::result;
};

// A closure is a function, or a stateless function object (a capture-less lambda).
template <class F>
inline constexpr bool is_function_closure_v =
    std::is_function_v<std::remove_pointer_t<std::remove_cvref_t<F>>>;

}  // namespace parc::detail
