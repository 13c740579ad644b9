#pragma once
// parc::Proxy<T>: a handle, on any rank, to an object of type T that one rank owns.
//
//   struct Counter { ... int add(int n); int total() const; };
//   PARC_PROXY_TYPE(Counter, &Counter::add, &Counter::total);   // namespace scope
//
//   parc::Proxy<Counter> c = parc::make_proxy<Counter>(rt, owner, 10);  // built at `owner`
//   parc::Future<int> f = c.invoke(&Counter::add, 5);                  // runs at `owner`
//
// The owner answers on its progress thread, whatever its own code is doing (one-sided),
// one request at a time; a call from the owner itself runs directly on the calling thread.
// So a method may run concurrently with the owner's own code and with the owner's local
// calls: guard what they share (std::mutex, std::atomic). A method may call other
// proxies; while it waits, its rank keeps serving (calls may then nest on that thread).
//
// Lifetime: copies of a Proxy count as references on every rank (a Proxy may travel as a
// task argument or result, and as a method argument or result); the object is destroyed,
// at its owner, when the last Proxy to it on any rank is gone, or when the runtime stops.
// A Proxy serialized but never loaded (a task that never ran) keeps its object until the
// runtime stops. Proxies must not outlive the Runtime.

#include <parc/closures/closure.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/parallel_exception.hpp>
#include <parc/managers/detail/proxy_registry.hpp>
#include <parc/managers/future.hpp>
#include <parc/managers/runtime.hpp>
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

namespace parc {

template <class T>
class Proxy;

namespace detail {

template <class T, class... Args>
Proxy<T> make_proxy_at(ProxyService& service, int owner, Args&&... args);

// Completes a call's future from its reply.
template <class R>
class ReplyDriver final : public FutureDriver {
 public:
  ReplyDriver(FutureState<R>& state, std::unique_ptr<PendingReply> reply, int owner,
              std::string what)
      : state_(state), reply_(std::move(reply)), owner_(owner), what_(std::move(what)) {}

  bool poll() override {
    if (!reply_ || !reply_->ready()) return false;
    complete();
    return true;
  }

  void wait_until(std::chrono::steady_clock::time_point deadline) override {
    if (reply_ && reply_->wait_until(deadline)) complete();
  }

 private:
  void complete() {
    const auto reply = std::move(reply_);
    try {
      Outcome outcome = reply->wait();
      ByteReader in(outcome.bytes.data(), outcome.bytes.size());
      if (outcome.ok) {
        state_.on_result(0, in);
      } else {
        state_.on_error(0, remote_failure(in, owner_, what_));
      }
    } catch (...) {  // the object is gone, the owner failed, or the reply did not decode
      state_.on_error(0, local_failure(std::current_exception(), owner_, what_));
    }
  }

  FutureState<R>& state_;
  std::unique_ptr<PendingReply> reply_;
  int owner_;
  std::string what_;
};

template <class R>
Future<R> failed_future(TaskError error) {
  auto state = std::make_shared<FutureState<R>>();
  state->on_error(0, std::move(error));
  return Future<R>(std::move(state));
}

}  // namespace detail

template <class T>
class Proxy {
 public:
  using element_type = T;

  // An empty handle (no object).
  Proxy() noexcept = default;
  Proxy(const Proxy& other) : id_(other.id_) {
    if (valid()) {
      if (auto* service = detail::proxy_service_if_any()) service->retain(id_);
    }
  }
  Proxy(Proxy&& other) noexcept : id_(std::exchange(other.id_, ObjectId{})) {}
  Proxy& operator=(const Proxy& other) {
    if (this != &other) *this = Proxy(other);
    return *this;
  }
  Proxy& operator=(Proxy&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, ObjectId{});
    }
    return *this;
  }
  ~Proxy() { reset(); }

  // Drops this handle (never blocks); the object goes with its last handle anywhere.
  void reset() noexcept {
    if (!valid()) return;
    if (auto* service = detail::proxy_service_if_any()) service->release(id_);
    id_ = ObjectId{};
  }

  bool valid() const noexcept { return id_.owner >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // The rank that owns the object (serially: the simulated rank).
  int owner() const noexcept { return id_.owner; }
  const ObjectId& id() const noexcept { return id_; }
  // The calling rank owns the object, and calls reach it without the network (serially:
  // the simulated rank running the calling code, 0 outside tasks and regions).
  bool is_local() const { return valid() && id_.owner == detail::proxy_service().acting_rank(); }
  // The object itself when it is local, else null. The owner's code reaches its objects
  // this way; it runs concurrently with calls from other ranks.
  T* local() const {
    auto object = local_object();
    return object ? &object->value() : nullptr;
  }

  // Calls `method` (registered with PARC_PROXY_TYPE) on the object at its owner. A local
  // object is called directly, arguments unserialized, and the future is ready at once.
  // get() rethrows the method's exception as its registered type (or parc::RemoteError);
  // error() says where. Calls from one thread to one owner run in the order made.
  template <class M, class... Args>
  Future<detail::member_result_t<M>> invoke(M method, Args&&... args) const {
    using Traits = detail::member_traits<M>;
    static_assert(Traits::is_member && !Traits::is_data,
                  "parc::Proxy::invoke takes a member function pointer, e.g. "
                  "p.invoke(&Counter::add, 5); read a data member with p.read(&T::member)");
    static_assert(std::is_base_of_v<typename Traits::owner, T>,
                  "parc::Proxy<T>::invoke: the method is not a member of T");
    static_assert(sizeof...(Args) == Traits::arity,
                  "parc::Proxy::invoke: wrong number of arguments for this method");
    static_assert(detail::check_member<M>());
    check_arguments<typename Traits::parameters, Args...>(std::index_sequence_for<Args...>{});
    return call<detail::member_result_t<M>>(method, std::forward<Args>(args)...);
  }

  // Reads a data member (registered with PARC_PROXY_TYPE) at the owner: a copy of its
  // value, or of an atomic's value. Anything else the owner's code writes to it concurrently
  // needs a method under a lock instead.
  template <class D, class C>
  Future<detail::read_type_t<D>> read(D C::*member) const requires(!std::is_function_v<D>) {
    static_assert(std::is_base_of_v<C, T>, "parc::Proxy<T>::read: not a member of T");
    static_assert(detail::check_member<D C::*>());
    return call<detail::read_type_t<D>>(member);
  }

  // A copy of the whole object, at the caller (T serializable). Blocks until it arrives.
  // It is copied as it is, without a lock: if the owner's code may be changing it, copy it
  // in a method, under the object's own lock, instead.
  T resolve() const {
    static_assert(detail::is_sendable_v<T> && std::is_default_constructible_v<T> &&
                      std::is_move_constructible_v<T>,
                  "parc::Proxy::resolve copies the object to the caller: T must be "
                  "default-constructible, movable and serializable (trivially copyable, or "
                  "with a cereal serialize function)");
    check_valid("resolve");
    const detail::ProxyType& type = detail::proxy_type(typeid(T));
    ProxyService& service = detail::proxy_service();
    if (id_.owner == service.acting_rank()) {
      auto object = local_object();
      if (!object) throw ProxyError(gone_message());
      if constexpr (std::is_copy_constructible_v<T>) {
        return object->value();
      } else {  // a copy through its bytes, as a remote caller gets
        Bytes bytes;
        ByteWriter(bytes).write(object->value());
        ByteReader in(bytes.data(), bytes.size());
        return in.read<T>();
      }
    }
    Bytes request;
    ByteWriter out(request);
    out.write(type.key);
    out.write(detail::resolve_index);
    Outcome outcome = service.call(id_, std::move(request))->wait();
    ByteReader in(outcome.bytes.data(), outcome.bytes.size());
    if (!outcome.ok) {
      detail::remote_failure(in, id_.owner, type.name + " (resolve)").rethrow();
    }
    return in.read<T>();
  }

  // The same object.
  friend bool operator==(const Proxy& a, const Proxy& b) noexcept { return a.id_ == b.id_; }

  // cereal: a Proxy travels as its id and a reference token, which keeps the object alive
  // until the receiving rank has loaded it.
  template <class Archive>
  void save(Archive& archive) const {
    if (!valid()) {
      archive(std::int32_t{-1});
      return;
    }
    const std::uint64_t token = detail::proxy_service().export_token(id_, 1);
    archive(std::int32_t{id_.owner}, id_.serial, token);
  }
  template <class Archive>
  void load(Archive& archive) {
    reset();
    std::int32_t owner = -1;
    archive(owner);
    if (owner < 0) return;
    std::uint64_t serial = 0;
    std::uint64_t token = 0;
    archive(serial, token);
    detail::proxy_service().import_token(ObjectId{owner, serial}, token);
    id_ = ObjectId{owner, serial};
  }

 private:
  template <class U, class... Args>
  friend Proxy<U> detail::make_proxy_at(ProxyService& service, int owner, Args&&... args);

  // Takes over a handle the service already counts.
  explicit Proxy(ObjectId id) noexcept : id_(id) {}

  template <class Parameters, class... Args, std::size_t... I>
  static constexpr void check_arguments(std::index_sequence<I...>) {
    static_assert(
        (std::is_convertible_v<Args&&, std::decay_t<std::tuple_element_t<I, Parameters>>> && ...),
        "parc::Proxy::invoke: an argument is not convertible to the method's parameter type");
  }

  void check_valid(const char* what) const {
    if (!valid()) {
      throw UsageError(std::string("parc: Proxy::") + what +
                       " on an empty Proxy (default-constructed, moved from or reset)");
    }
  }

  std::string gone_message() const {
    return "parc: the object of this proxy (rank " + std::to_string(id_.owner) + ", #" +
           std::to_string(id_.serial) + ") was released";
  }

  std::shared_ptr<detail::CppObject<T>> local_object() const {
    if (!is_local()) return nullptr;
    auto object = detail::proxy_service().local_object(id_);
    if (!object) return nullptr;
    auto typed = std::dynamic_pointer_cast<detail::CppObject<T>>(object);
    if (!typed) {
      throw UsageError("parc: this Proxy<" + demangle(typeid(T).name()) +
                       "> refers to an object of another type");
    }
    return typed;
  }

  template <class R, class M, class... Args>
  Future<R> call(M member, Args&&... args) const {
    check_valid("invoke");
    const detail::ProxyType& type = detail::proxy_type(typeid(T));
    const std::uint32_t index = detail::proxy_member_index(
        type, typeid(M),
        [&](const void* pointer) { return *static_cast<const M*>(pointer) == member; },
        demangle(typeid(M).name()));
    std::string what = detail::member_description(type, index);
    ProxyService& service = detail::proxy_service();
    if (id_.owner == service.acting_rank())
      return call_here<R>(service, what, member, std::forward<Args>(args)...);
    Bytes request;
    ByteWriter out(request);
    out.write(type.key);
    out.write(index);
    if constexpr (!detail::member_traits<M>::is_data) {
      using Parameters = typename detail::member_traits<M>::arguments;
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (write_argument<std::tuple_element_t<I, Parameters>>(out, std::forward<Args>(args)), ...);
      }
      (std::index_sequence_for<Args...>{});
    }
    std::unique_ptr<PendingReply> reply;
    try {
      reply = service.call(id_, std::move(request));
    } catch (const ProxyError&) {  // serially, a released object is known at once
      return detail::failed_future<R>(
          detail::local_failure(std::current_exception(), id_.owner, what));
    }
    auto state = std::make_shared<detail::FutureState<R>>();
    state->driver = std::make_unique<detail::ReplyDriver<R>>(*state, std::move(reply), id_.owner,
                                                             std::move(what));
    return Future<R>(std::move(state));
  }

  template <class Parameter, class Given>
  static void write_argument(ByteWriter& out, Given&& given) {
    if constexpr (std::is_same_v<std::remove_cvref_t<Given>, Parameter>) {
      out.write(given);
    } else {
      out.write(static_cast<Parameter>(std::forward<Given>(given)));
    }
  }

  // The owner calling its own object: directly, on this thread.
  template <class R, class M, class... Args>
  Future<R> call_here(ProxyService& service, const std::string& what, M member,
                      Args&&... args) const {
    auto state = std::make_shared<detail::FutureState<R>>();
    try {
      auto object = local_object();
      if (!object) throw ProxyError(gone_message());
      T& target = object->value();
      if constexpr (detail::member_traits<M>::is_data) {
        if constexpr (detail::is_atomic<std::remove_cv_t<
                          std::remove_reference_t<decltype(target.*member)>>>::value) {
          state->slot.value.emplace((target.*member).load());
        } else {
          state->slot.value.emplace(target.*member);
        }
      } else if constexpr (std::is_void_v<R>) {
        std::invoke(member, target, std::forward<Args>(args)...);
      } else {
        state->slot.value.emplace(std::invoke(member, target, std::forward<Args>(args)...));
      }
      state->state = detail::FutureState<R>::State::ready;
    } catch (...) {
      state->on_error(0,
                      detail::local_failure(std::current_exception(), service.acting_rank(), what));
    }
    return Future<R>(std::move(state));
  }

  ObjectId id_;
};

namespace detail {

template <class Wire, class Given>
void write_wire(ByteWriter& out, Given&& given) {
  if constexpr (std::is_same_v<std::remove_cvref_t<Given>, Wire>) {
    out.write(given);
  } else {
    out.write(Wire(std::forward<Given>(given)));
  }
}

template <class T, class... Args>
Proxy<T> make_proxy_at(ProxyService& service, int owner, Args&&... args) {
  static_assert(std::is_class_v<T>, "parc::make_proxy<T>: T must be a class");
  static_assert((is_sendable_v<wire_t<Args>> && ...),
                "parc::make_proxy: an argument cannot be sent to the owner; use trivially "
                "copyable types, std::string, std::vector, parc::Proxy<U>, or a type with a "
                "cereal serialize function");
  static_assert((std::is_default_constructible_v<wire_t<Args>> && ...),
                "parc::make_proxy: every argument type must be default-constructible, so "
                "that the owner can decode it");
  static_assert(std::is_constructible_v<T, wire_t<Args>&&...>,
                "parc::make_proxy<T>(rt, owner, args...): T has no constructor taking these "
                "arguments");
  (void)ConstructorRegistration<T, wire_t<Args>...>::registered;
  const ProxyType& type = proxy_type(typeid(T));
  check_owner(service, owner, type);
  if (owner == service.acting_rank()) {  // built here, from the arguments themselves
    auto object = std::make_shared<CppObject<T>>(type, wire_t<Args>(std::forward<Args>(args))...);
    return Proxy<T>(service.adopt(std::move(object)));
  }
  Bytes arguments;
  ByteWriter out(arguments);
  out.write(type.key);
  out.write(constructor_key<wire_t<Args>...>());
  (write_wire<wire_t<Args>>(out, std::forward<Args>(args)), ...);
  Outcome failure;
  const ObjectId id = service.create(owner, FactoryKind::cpp, std::move(arguments), failure);
  if (id.owner < 0) throw_creation_failure(failure, owner);
  return Proxy<T>(id);
}

}  // namespace detail

// Builds a T at rank `owner` from `args` (sent there; C strings as std::string) and returns
// the first proxy to it. T must be declared with PARC_PROXY_TYPE. A constructor's
// exception is rethrown here as its registered type (or parc::RemoteError).
template <class T, class... Args>
Proxy<T> make_proxy(Runtime& runtime, int owner, Args&&... args) {
  return detail::make_proxy_at<T>(runtime.proxies(), owner, std::forward<Args>(args)...);
}

// The same from code that has no Runtime at hand (a closure on a worker): this process's.
template <class T, class... Args>
Proxy<T> make_proxy(int owner, Args&&... args) {
  return detail::make_proxy_at<T>(detail::proxy_service(), owner, std::forward<Args>(args)...);
}

// The rank the calling code runs as, for proxies (serially: the simulated worker running a
// task or region, else 0), e.g. make_proxy<T>(parc::proxy_rank(), ...) in a closure.
int proxy_rank();

}  // namespace parc

// Declares T as a proxy type and the members proxies may use, as member pointers:
//   PARC_PROXY_TYPE(Counter, &Counter::add, &Counter::total, &Counter::hits);
// At namespace scope, in the program every rank runs. An overloaded method is named with
// a cast: static_cast<int (Counter::*)(int)>(&Counter::add).
#define PARC_PROXY_TYPE(Type, ...)                                                    \
  [[maybe_unused]] static const bool PARC_DETAIL_CAT(parc_proxy_type_, __COUNTER__) = \
      ::parc::detail::declare_proxy_type<Type __VA_OPT__(, ) __VA_ARGS__>(#__VA_ARGS__)
