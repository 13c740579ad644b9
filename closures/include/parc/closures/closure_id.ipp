#pragma once
// Resolution of a callable to its closure id (included by closure.hpp).

#include <parc/exceptions/errors.hpp>

namespace parc::detail {

template <class F>
ClosureId closure_id_of(const F& fn, const char* where) {
  using Fn = std::remove_cvref_t<F>;
  const ClosureRegistry& registry = ClosureRegistry::instance();
  if constexpr (is_function_closure_v<Fn>) {
    const void* address = reinterpret_cast<const void*>(fn);
    if (const ClosureEntry* entry = registry.find_function(address)) return entry->id;
    throw UsageError(std::string(where) + ": " + describe_function_address(address) +
                     " is not a declared closure; add PARC_CLOSURE(<function>) at namespace "
                     "scope in the program so every rank knows it");
  } else {
    static_assert(declared_function_object<Fn>,
                  "parc: this lambda or function object is not a declared closure: declare "
                  "it as a namespace-scope variable with PARC_CLOSURE(name) in its namespace, "
                  "visible here (capturing lambdas cannot be closures)");
    if (const ClosureEntry* entry = registry.find_type(std::type_index(typeid(Fn)))) {
      return entry->id;
    }
    throw UsageError(std::string(where) + ": closure of type " + demangle(typeid(Fn).name()) +
                     " is declared but not registered in this program");
  }
}

}  // namespace parc::detail
