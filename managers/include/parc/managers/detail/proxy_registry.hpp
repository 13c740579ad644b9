#pragma once
// Internal to parc::Proxy (proxy.hpp): what may cross between ranks, member traits and
// their compile-time checks, and the registry of proxy types (PARC_PROXY_TYPE) and of
// their constructors, with the owned C++ objects they build. Not public API.

#include <parc/closures/closure.hpp>
#include <parc/comm/archive.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/parallel_exception.hpp>
#include <parc/proxies/proxy_service.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

namespace parc::detail {

// ---------------------------------------------------------------------------------------
// What may cross between ranks: the archive's rules (raw bytes, or cereal), checked up front
// so that a wrong type fails to compile with a message rather than deep inside cereal.

template <class T>
inline constexpr bool is_sendable_v =
    !std::is_pointer_v<T> && !is_view<T>::value &&
    (is_raw_v<T> || is_raw_contiguous<T>::value ||
     (cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
      cereal::traits::is_input_serializable<T, GuardedInputArchive>::value));

// How a make_proxy argument travels: C strings and string views as std::string.
template <class A>
using wire_t = std::conditional_t<std::is_same_v<std::decay_t<A>, const char*> ||
                                      std::is_same_v<std::decay_t<A>, char*> ||
                                      std::is_same_v<std::decay_t<A>, std::string_view>,
                                  std::string, std::decay_t<A>>;

template <class T>
struct is_atomic : std::false_type {};
template <class T>
struct is_atomic<std::atomic<T>> : std::true_type {};

// The value a data member reads as: an atomic's value, else a copy.
template <class D>
struct read_type {
  using type = std::remove_cv_t<D>;
};
template <class D>
struct read_type<std::atomic<D>> {
  using type = D;
};
template <class D>
using read_type_t = typename read_type<std::remove_cv_t<D>>::type;

template <class M>
struct member_traits {
  static constexpr bool is_member = false;
};
template <class C, class R, class... A>
struct member_function_traits {
  static constexpr bool is_member = true;
  static constexpr bool is_data = false;
  using owner = C;
  using result = std::decay_t<R>;
  using parameters = std::tuple<A...>;
  using arguments = std::tuple<std::decay_t<A>...>;
  static constexpr std::size_t arity = sizeof...(A);
};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...)> : member_function_traits<C, R, A...> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) const> : member_function_traits<C, R, A...> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) noexcept> : member_function_traits<C, R, A...> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) const noexcept> : member_function_traits<C, R, A...> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...)&> : member_function_traits<C, R, A...> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) const&> : member_function_traits<C, R, A...> {};
template <class C, class D>
requires(!std::is_function_v<D>) struct member_traits<D C::*> {
  static constexpr bool is_member = true;
  static constexpr bool is_data = true;
  using owner = C;
  using result = read_type_t<D>;
  static constexpr std::size_t arity = 0;
};

template <class M>
using member_result_t = typename member_traits<M>::result;

// A parameter a proxied method can take: it arrives as a decoded copy, so a non-const
// reference would change only that copy.
template <class P>
inline constexpr bool is_proxy_parameter_v =
    !(std::is_lvalue_reference_v<P> &&
      !std::is_const_v<std::remove_reference_t<P>>)&&is_sendable_v<std::decay_t<P>> &&
    std::is_default_constructible_v<std::decay_t<P>>;

template <class Result>
inline constexpr bool is_proxy_result_v = std::is_void_v<Result> ||
                                          (is_sendable_v<Result> &&
                                           std::is_default_constructible_v<Result>);

// Checks a member's signature once, where it is registered and where it is called.
template <class M>
constexpr bool check_member() {
  using Traits = member_traits<M>;
  if constexpr (!Traits::is_data) {
    []<class... P>(std::tuple<P...>*) {
      static_assert(
          ((!std::is_lvalue_reference_v<P> || std::is_const_v<std::remove_reference_t<P>>)&&...),
          "parc::Proxy: a proxied method cannot take a non-const reference: it "
          "would change a copy at the owner that the caller never sees; take it "
          "by value or const reference and return what changed");
      static_assert((is_sendable_v<std::decay_t<P>> && ...),
                    "parc::Proxy: a parameter type of this method cannot be sent between "
                    "ranks; use trivially copyable types, std::string, std::vector, "
                    "parc::Proxy<U>, or a type with a cereal serialize function");
      static_assert((std::is_default_constructible_v<std::decay_t<P>> && ...),
                    "parc::Proxy: every parameter type must be default-constructible, so "
                    "that the owner can decode it");
    }(static_cast<typename Traits::parameters*>(nullptr));
  }
  static_assert(is_proxy_result_v<typename Traits::result>,
                "parc::Proxy: the result type of this member cannot be sent back (it must "
                "be void, or serializable and default-constructible)");
  return true;
}

// ---------------------------------------------------------------------------------------
// The registry of proxy types (PARC_PROXY_TYPE) and of their constructors (instantiated by
// make_proxy). Every rank runs the same binary, so both are the same everywhere; a type's
// members are also a line of the closure table, checked across ranks at start-up.

using MemberInvoker = void (*)(void* object, ByteReader& arguments, ByteWriter& result);

struct ProxyMember {
  std::string name;       // as written after the last "::"
  std::string signature;  // the member pointer's type
  std::type_index pointer_type;
  const void* pointer;  // a static copy of the member pointer
  MemberInvoker invoke;
  bool is_data = false;
};

struct ProxyType {
  std::string name;  // demangled
  std::uint64_t key = 0;
  std::vector<ProxyMember> members;
  MemberInvoker copy = nullptr;  // resolve(): writes the whole object
};

using ObjectBuilder = std::shared_ptr<OwnedObject> (*)(const ProxyType& type,
                                                       ByteReader& arguments);

// A request's member index that means "copy the whole object" (resolve).
inline constexpr std::uint32_t resolve_index = 0xFFFFFFFFu;

// FNV-1a of the demangled name: a type's key on every rank.
std::uint64_t proxy_type_key(const std::type_info& type);
std::uint64_t proxy_key(std::string_view text);

// `tag` and `tag_type` name the type's line in the closure table.
void add_proxy_type(std::type_index type, ProxyType entry, const void* tag,
                    std::type_index tag_type);
bool add_proxy_constructor(std::uint64_t type_key, std::uint64_t key, ObjectBuilder build);
// The registered type; UsageError naming it and how to register when it is not.
const ProxyType& proxy_type(std::type_index type);
// The member's index in `type`; UsageError naming the type when it is not registered.
std::uint32_t proxy_member_index(const ProxyType& type, std::type_index pointer_type,
                                 const std::function<bool(const void*)>& same,
                                 const std::string& signature);
std::vector<std::string> proxy_member_names(const char* text, std::size_t count);

// The owner side of a call: decodes the request, runs the member, encodes the result or
// the failure (ErrorInfo, with this process's host and pid).
Outcome serve_proxy_call(const ProxyType& type, void* object, ByteReader& request);

// This process's service, attached by the Runtime; UsageError when there is none.
ProxyService& proxy_service();
// Null when no runtime is up (a Proxy dropped after the runtime went).
ProxyService* proxy_service_if_any() noexcept;
// Called by the Runtime when its service is up, and with null before it goes.
void attach_proxy_service(ProxyService* service);

// Failures, as the future of a call holds them.
TaskError remote_failure(ByteReader& error, int owner, const std::string& what);
TaskError local_failure(std::exception_ptr error, int rank, const std::string& what);
[[noreturn]] void throw_creation_failure(const Outcome& failure, int owner);
std::string member_description(const ProxyType& type, std::uint32_t index);
void check_owner(const ProxyService& service, int owner, const ProxyType& type);

class OwnedCppObject : public OwnedObject {
 public:
  explicit OwnedCppObject(const ProxyType& type) : type_(type) {}
  const ProxyType& type() const { return type_; }
  virtual void* address() = 0;

  Outcome handle(ByteReader& request) override {
    return serve_proxy_call(type_, address(), request);
  }

 private:
  const ProxyType& type_;
};

template <class T>
class CppObject final : public OwnedCppObject {
 public:
  template <class... A>
  explicit CppObject(const ProxyType& type, A&&... arguments)
      : OwnedCppObject(type), value_(std::forward<A>(arguments)...) {}
  void* address() override { return &value_; }
  T& value() { return value_; }

 private:
  T value_;
};

template <auto Member>
inline constexpr auto member_constant = Member;

template <class T>
inline constexpr char proxy_tag = 0;

template <class T>
struct ProxyTag {};

template <class T, auto Member>
void invoke_member(void* object, ByteReader& in, ByteWriter& out) {
  using Traits = member_traits<decltype(Member)>;
  T& target = *static_cast<T*>(object);
  if constexpr (Traits::is_data) {
    if constexpr (is_atomic<
                      std::remove_cv_t<std::remove_reference_t<decltype(target.*Member)>>>::value) {
      out.write((target.*Member).load());
    } else {
      out.write(target.*Member);
    }
  } else {
    typename Traits::arguments arguments;
    std::apply([&](auto&... argument) { (in.read_into(argument), ...); }, arguments);
    if (in.remaining() != 0) {
      throw DecodeError("parc: a proxy call carries " + std::to_string(in.remaining()) +
                        " bytes more than the method takes");
    }
    auto call = [&](auto&... argument) -> decltype(auto) {
      return (target.*Member)(std::move(argument)...);
    };
    if constexpr (std::is_void_v<typename Traits::result>) {
      std::apply(call, arguments);
    } else {
      out.write(std::apply(call, arguments));
    }
  }
}

template <class T>
void copy_object(void* object, ByteReader&, ByteWriter& out) {
  if constexpr (is_sendable_v<T>) {
    out.write(*static_cast<const T*>(object));
  } else {
    throw UsageError("parc: Proxy::resolve() copies the object, but " + demangle(typeid(T).name()) +
                     " cannot be serialized");
  }
}

template <class T, auto Member>
ProxyMember make_member(std::string name) {
  using M = decltype(Member);
  static_assert(member_traits<M>::is_member,
                "PARC_PROXY_TYPE(Type, ...): list members as pointers, e.g. "
                "PARC_PROXY_TYPE(Counter, &Counter::add, &Counter::total)");
  static_assert(std::is_base_of_v<typename member_traits<M>::owner, T>,
                "PARC_PROXY_TYPE(Type, ...): a listed member does not belong to Type");
  static_assert(check_member<M>());
  return ProxyMember{
      std::move(name),          demangle(typeid(M).name()), std::type_index(typeid(M)),
      &member_constant<Member>, &invoke_member<T, Member>,  member_traits<M>::is_data};
}

// Called by PARC_PROXY_TYPE at static initialization.
template <class T, auto... Members>
bool declare_proxy_type(const char* members_text) {
  static_assert(std::is_class_v<T>, "PARC_PROXY_TYPE: the type must be a class");
  const auto names = proxy_member_names(members_text, sizeof...(Members));
  ProxyType type;
  type.name = demangle(typeid(T).name());
  type.key = proxy_type_key(typeid(T));
  std::size_t at = 0;
  (type.members.push_back(make_member<T, Members>(names[at++])), ...);
  type.copy = &copy_object<T>;
  add_proxy_type(std::type_index(typeid(T)), std::move(type), &proxy_tag<T>,
                 std::type_index(typeid(ProxyTag<T>)));
  return true;
}

// Builds a T at its owner from the arguments make_proxy encoded.
template <class T, class... A>
std::shared_ptr<OwnedObject> build_object(const ProxyType& type, ByteReader& in) {
  std::tuple<A...> arguments;
  std::apply([&](auto&... argument) { (in.read_into(argument), ...); }, arguments);
  if (in.remaining() != 0) {
    throw DecodeError("parc: a proxy's constructor arguments carry " +
                      std::to_string(in.remaining()) + " bytes too many");
  }
  return std::apply(
      [&](auto&... argument) {
        return std::make_shared<CppObject<T>>(type, std::move(argument)...);
      },
      arguments);
}

template <class... A>
std::uint64_t constructor_key() {
  return proxy_key(typeid(std::tuple<A...>).name());
}

// Every constructor make_proxy is instantiated with is registered at start-up on every
// rank (same binary), so any owner can build from it.
template <class T, class... A>
struct ConstructorRegistration {
  static const bool registered;
};
template <class T, class... A>
const bool ConstructorRegistration<T, A...>::registered = add_proxy_constructor(
    proxy_type_key(typeid(T)), constructor_key<A...>(), &build_object<T, A...>);

}  // namespace parc::detail
