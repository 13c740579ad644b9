#pragma once
// Packing a call on the manager and running it on a worker.

#include <parc/closures/closure.hpp>

namespace parc::detail {

template <class F>
using closure_signature_t =
    std::conditional_t<is_function_closure_v<F>, std::remove_pointer_t<std::remove_cvref_t<F>>,
                       std::remove_cvref_t<F>>;

template <class F>
using closure_result_t = typename function_traits<closure_signature_t<F>>::result;

template <class F>
using closure_arguments_t = typename function_traits<closure_signature_t<F>>::arguments;

template <class Parameter, class Given>
void write_argument(ByteWriter& out, Given&& given) {
  static_assert(std::is_convertible_v<Given&&, Parameter>,
                "parc: an argument is not convertible to the closure's parameter type");
  if constexpr (std::is_same_v<std::remove_cvref_t<Given>, Parameter>) {
    out.write(given);
  } else {
    out.write(static_cast<Parameter>(std::forward<Given>(given)));
  }
}

template <class F, class... Given>
void write_arguments(ByteWriter& out, Given&&... given) {
  using Parameters = closure_arguments_t<F>;
  static_assert(sizeof...(Given) == std::tuple_size_v<Parameters>,
                "parc: wrong number of arguments for this closure");
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (write_argument<std::tuple_element_t<I, Parameters>>(out, std::forward<Given>(given)), ...);
  }
  (std::index_sequence_for<Given...>{});
}

// Runs closure `id` on arguments encoded by write_arguments, encoding its result.
inline void run_closure(ClosureId id, ByteReader& arguments, ByteWriter& result) {
  const ClosureEntry& entry = ClosureRegistry::instance().entry(id);
  entry.invoke(entry.target, arguments, result);
}

}  // namespace parc::detail
