#pragma once
// Parallel closures: functions declared on every rank, called by id.

#include <parc/closures/traits.hpp>
#include <parc/closures/wire_signature.hpp>
#include <parc/comm/archive.hpp>
#include <parc/comm/spmd_context.hpp>
#include <parc/exceptions/registry.hpp>

#include <cstdint>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

namespace parc {

using ClosureId = std::uint32_t;

namespace detail {

using Invoker = void (*)(const void* target, ByteReader& arguments, ByteWriter& result);

struct ClosureEntry {
  std::string name;       // as written in PARC_CLOSURE
  std::string signature;  // demangled function type
  const void* target;     // the function, or the function object
  std::type_index type;   // the function object's type (or the function's pointer type)
  bool is_function;
  Invoker invoke;
  ClosureId id = 0;
  std::string wire;  // see wire_signature.hpp; "" for closures not written in C++
};

class ClosureRegistry {
 public:
  static ClosureRegistry& instance();

  void add(ClosureEntry entry);
  // Sorts by name and assigns ids; after this the table is fixed.
  void seal();
  bool sealed() const { return sealed_; }

  const ClosureEntry& entry(ClosureId id) const;
  const ClosureEntry* find_function(const void* function) const;
  const ClosureEntry* find_type(std::type_index type) const;

  std::uint64_t table_hash() const;
  // One "name : signature" line per closure, sorted.
  std::string table_text() const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<ClosureEntry> entries_;
  bool sealed_ = false;
};

template <class F>
const F& closure_target(const void* target) {
  return *static_cast<const F*>(target);
}

template <class Fn, class Signature>
void invoke_closure(const void* target, ByteReader& in, ByteWriter& out) {
  using Traits = function_traits<Signature>;
  typename Traits::arguments arguments;
  std::apply([&](auto&... argument) { (in.read_into(argument), ...); }, arguments);
  if (in.remaining() != 0) {
    throw DecodeError("parc: the arguments of a task carry " + std::to_string(in.remaining()) +
                      " bytes more than the closure takes");
  }
  decltype(auto) fn = [&]() -> decltype(auto) {
    if constexpr (std::is_function_v<Fn>) {
      return reinterpret_cast<Fn*>(const_cast<void*>(target));
    } else {
      return closure_target<Fn>(target);
    }
  }();
  auto call = [&]() -> decltype(auto) {
    if constexpr (Traits::takes_context) {
      SpmdContext* context = current_spmd_context();
      if (context == nullptr) {
        throw UsageError(
            "parc: this closure takes a parc::SpmdContext&, so it runs in an SPMD region: "
            "call it with parc::Spmd::run, not through a task farm");
      }
      return std::apply(
          [&](auto&&... a) -> decltype(auto) { return fn(*context, std::move(a)...); },
          std::move(arguments));
    } else {
      return std::apply(fn, std::move(arguments));
    }
  };
  if constexpr (std::is_void_v<typename Traits::result>) {
    call();
  } else {
    out.write_moved(call());  // a large contiguous result goes as a tail, not copied
  }
}

// Called by PARC_CLOSURE; `fn` is a function or a stateless function object.
template <class F>
bool declare_closure(const char* name, F& fn) {
  using Fn = std::remove_cv_t<F>;
  if constexpr (std::is_function_v<Fn>) {
    using Traits = function_traits<Fn>;
    static_assert(std::is_default_constructible_v<typename Traits::arguments>,
                  "PARC_CLOSURE: every argument type must be default-constructible so it "
                  "can be decoded on the worker");
    ClosureRegistry::instance().add(ClosureEntry{
        name, demangle(typeid(Fn).name()), reinterpret_cast<const void*>(&fn),
        std::type_index(typeid(Fn*)), true, &invoke_closure<Fn, Fn>, 0, wire_signature<Fn>()});
  } else {
    static_assert(has_signature<Fn>,
                  "PARC_CLOSURE: declare a function, or a lambda / function object with one "
                  "non-template call operator (generic lambdas have no fixed signature)");
    static_assert(std::is_empty_v<Fn>,
                  "PARC_CLOSURE: a lambda that captures state cannot be a closure: the "
                  "workers would not have the captured values; pass them as arguments");
    using Signature = decltype(&Fn::operator());
    ClosureRegistry::instance().add(
        ClosureEntry{name, demangle(typeid(Signature).name()), static_cast<const void*>(&fn),
                     std::type_index(typeid(Fn)), false, &invoke_closure<Fn, Signature>, 0,
                     wire_signature<Signature>()});
  }
  return true;
}

template <class T>
struct ClosureTag {};

template <class T, class Unique>
using closure_tag_type =
    std::conditional_t<std::is_class_v<std::remove_cvref_t<T>>, std::remove_cvref_t<T>, Unique>;

// True when PARC_CLOSURE(x) for an object of type F is visible (found by ADL).
template <class F>
concept declared_function_object = requires {
  parc_declared_closure(ClosureTag<std::remove_cvref_t<F>>{});
};

// Where a closure is resolved: its id for a call from the manager.
template <class F>
ClosureId closure_id_of(const F& fn, const char* where);

std::string describe_function_address(const void* function);

}  // namespace detail

// The id of a declared closure; a runtime UsageError for an undeclared function.
template <class F>
ClosureId closure_id(const F& fn) {
  return detail::closure_id_of(fn, "parc");
}

}  // namespace parc

// Declares `fn` (a function, or a capture-less lambda / function object variable) as
// a parallel closure. Write it at namespace scope, in fn's namespace, in the program
// that every rank runs. Declared lambdas are checked at compile time where they are
// submitted; functions at run time.
#define PARC_CLOSURE(fn)                                                                    \
  [[maybe_unused]] static constexpr bool parc_declared_closure(                             \
      ::parc::detail::ClosureTag<                                                           \
          ::parc::detail::closure_tag_type<decltype(fn), decltype([] {})>>) {               \
    return true;                                                                            \
  }                                                                                         \
  [[maybe_unused]] static const bool PARC_DETAIL_CAT(parc_closure_declared_, __COUNTER__) = \
      ::parc::detail::declare_closure(#fn, fn)

#include <parc/closures/closure_id.ipp>
