#pragma once
// Exception types registered here are rebuilt on the manager as themselves.

#include <parc/exceptions/error_info.hpp>

#include <exception>
#include <string>
#include <typeinfo>

namespace parc {

// Builds the exception `message` of a registered type, with `nested` (may be null)
// attached as its std::nested_exception.
using ExceptionFactory = std::exception_ptr (*)(const std::string& message,
                                                std::exception_ptr nested);

void register_exception_factory(const std::string& type_name, ExceptionFactory factory);

// Rebuilds the chain of `info` innermost first: registered types as themselves, the
// others as parc::RemoteError.
std::exception_ptr rebuild_exception(const ErrorInfo& info);

namespace detail {
// `error`, with `nested` (may be null) attached as its std::nested_exception.
template <class E>
std::exception_ptr with_nested(E error, std::exception_ptr nested) {
  try {
    if (nested) {
      try {
        std::rethrow_exception(nested);
      } catch (...) {
        std::throw_with_nested(std::move(error));
      }
    }
    throw std::move(error);
  } catch (...) {
    return std::current_exception();
  }
}

template <class E>
std::exception_ptr make_exception(const std::string& message, std::exception_ptr nested) {
  return with_nested(E(message), std::move(nested));
}
}  // namespace detail

template <class E>
bool register_exception() {
  static_assert(std::is_base_of_v<std::exception, E>,
                "PARC_REGISTER_EXCEPTION: the type must derive from std::exception");
  static_assert(std::is_constructible_v<E, std::string>,
                "PARC_REGISTER_EXCEPTION: the type must be constructible from its what() "
                "string; leave it unregistered to receive it as parc::RemoteError");
  register_exception_factory(demangle(typeid(E).name()), &detail::make_exception<E>);
  return true;
}

}  // namespace parc

#define PARC_DETAIL_CAT2(a, b) a##b
#define PARC_DETAIL_CAT(a, b) PARC_DETAIL_CAT2(a, b)

// At namespace scope, in the program (every rank registers the same types).
#define PARC_REGISTER_EXCEPTION(Type)                                                           \
  [[maybe_unused]] static const bool PARC_DETAIL_CAT(parc_exception_registered_, __COUNTER__) = \
      ::parc::register_exception<Type>()
