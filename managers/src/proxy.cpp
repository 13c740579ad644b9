#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/managers/proxy.hpp>

#include <unistd.h>

#include <cctype>
#include <map>
#include <mutex>
#include <sstream>

namespace parc {

namespace detail {

namespace {

struct Registry {
  // Filled at static initialization, and when a library is loaded at run time (Python's
  // load_library) while progress threads may be reading: hence the lock.
  std::mutex mutex;
  std::map<std::type_index, std::unique_ptr<ProxyType>> by_type;  // stable addresses
  std::map<std::uint64_t, const ProxyType*> by_key;
  std::map<std::pair<std::uint64_t, std::uint64_t>, ObjectBuilder> constructors;
};

Registry& registry() {
  static auto* instance = new Registry;  // leaked: filled by static initializers
  return *instance;
}

std::atomic<ProxyService*> current_service{nullptr};

const std::string& host_name() {
  static const std::string name = [] {
    char buffer[256] = {};
    if (gethostname(buffer, sizeof buffer - 1) != 0) return std::string("unknown");
    return std::string(buffer);
  }();
  return name;
}

ErrorInfo error_here(std::exception_ptr error, int rank, const std::string& what) {
  ErrorInfo info;
  info.chain = record_chain(error);
  info.foreign = foreign_encoding(error);
  info.rank = rank;
  info.host = host_name();
  info.pid = static_cast<std::int64_t>(getpid());
  info.closure = what;
  return info;
}

Bytes encode(const ErrorInfo& info) {
  Bytes bytes;
  ByteWriter(bytes).write(info);
  return bytes;
}

// A proxy type's line in the closure table is there for the start-up check only.
void not_a_closure(const void*, ByteReader&, ByteWriter&) {
  throw UsageError("parc: a proxy type's entry of the closure table cannot run as a task");
}

std::string table_signature(const ProxyType& type) {
  std::ostringstream out;
  out << "proxy {";
  for (std::size_t i = 0; i < type.members.size(); ++i) {
    out << (i == 0 ? " " : ", ") << type.members[i].name << ": " << type.members[i].signature;
  }
  out << " }";
  return out.str();
}

// The owner's side of create (FactoryKind::cpp): the type and constructor are looked up by
// their keys, and a constructor's exception goes back to the caller as an ErrorInfo.
std::shared_ptr<OwnedObject> build_cpp_object(ByteReader& arguments, Outcome& failure) {
  std::string what = "a proxied C++ object";
  try {
    const auto type_key = arguments.read<std::uint64_t>();
    const auto key = arguments.read<std::uint64_t>();
    const ProxyType* type = nullptr;
    ObjectBuilder build = nullptr;
    {
      Registry& table = registry();
      std::lock_guard lock(table.mutex);
      if (auto it = table.by_key.find(type_key); it != table.by_key.end()) type = it->second;
      if (auto it = table.constructors.find({type_key, key}); it != table.constructors.end()) {
        build = it->second;
      }
    }
    if (type == nullptr || build == nullptr) {
      throw UsageError(
          "parc: this rank cannot build the proxied object: its type or constructor is not "
          "registered here. Run the same executable on every rank");
    }
    what = type->name + " (constructor)";
    return build(*type, arguments);
  } catch (...) {
    failure.ok = false;
    failure.bytes = encode(error_here(std::current_exception(), -1, what));
    return nullptr;
  }
}

}  // namespace

std::uint64_t proxy_key(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

std::uint64_t proxy_type_key(const std::type_info& type) {
  return proxy_key(demangle(type.name()));
}

void add_proxy_type(std::type_index type, ProxyType entry, const void* tag,
                    std::type_index tag_type) {
  const std::string name = entry.name;
  const std::string signature = table_signature(entry);
  {
    Registry& table = registry();
    std::lock_guard lock(table.mutex);
    if (table.by_type.count(type) != 0) return;  // declared in a header: one is enough
    auto owned = std::make_unique<ProxyType>(std::move(entry));
    table.by_key[owned->key] = owned.get();
    table.by_type.emplace(type, std::move(owned));
  }
  ClosureRegistry::instance().add(ClosureEntry{"parc::Proxy<" + name + ">", signature, tag,
                                               tag_type, false, &not_a_closure, 0, ""});
  // Process-wide and before any runtime serves: a peer may ask for an object at once.
  static const bool factory_set = [] {
    ProxyService::set_factory(FactoryKind::cpp, &build_cpp_object);
    return true;
  }();
  (void)factory_set;
}

bool add_proxy_constructor(std::uint64_t type_key, std::uint64_t key, ObjectBuilder build) {
  Registry& table = registry();
  std::lock_guard lock(table.mutex);
  table.constructors.emplace(std::make_pair(type_key, key), build);
  return true;
}

const ProxyType& proxy_type(std::type_index type) {
  {
    Registry& table = registry();
    std::lock_guard lock(table.mutex);
    if (auto it = table.by_type.find(type); it != table.by_type.end()) return *it->second;
  }
  const std::string name = demangle(type.name());
  throw UsageError("parc: " + name + " is not a proxy type; declare it and the members proxies " +
                   "may use at namespace scope, in the program every rank runs: " +
                   "PARC_PROXY_TYPE(" + name + ", &" + name + "::method, ...)");
}

std::uint32_t proxy_member_index(const ProxyType& type, std::type_index pointer_type,
                                 const std::function<bool(const void*)>& same,
                                 const std::string& signature) {
  for (std::size_t i = 0; i < type.members.size(); ++i) {
    const ProxyMember& member = type.members[i];
    if (member.pointer_type == pointer_type && same(member.pointer)) {
      return static_cast<std::uint32_t>(i);
    }
  }
  std::string listed;
  for (const auto& member : type.members) listed += (listed.empty() ? "" : ", ") + member.name;
  throw UsageError("parc: a member of " + type.name + " (" + signature +
                   ") is not registered for proxies; add it to the type's declaration, "
                   "PARC_PROXY_TYPE(" +
                   type.name + ", &" + type.name + "::member, ...)" +
                   (listed.empty() ? " (it lists no members)" : " (it lists " + listed + ")"));
}

std::vector<std::string> proxy_member_names(const char* text, std::size_t count) {
  // Split at top-level commas (a cast's template arguments may hold some).
  std::vector<std::string> pieces(1);
  int depth = 0;
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c == '(' || *c == '<' || *c == '[' || *c == '{') ++depth;
    if (*c == ')' || *c == '>' || *c == ']' || *c == '}') --depth;
    if (*c == ',' && depth == 0) {
      pieces.emplace_back();
    } else {
      pieces.back() += *c;
    }
  }
  std::vector<std::string> names;
  for (const std::string& piece : pieces) {
    // "&Counter::add" or "static_cast<...>(&Counter::add)": the identifier after the last ::
    std::string name = piece;
    if (const auto at = piece.rfind("::"); at != std::string::npos) name = piece.substr(at + 2);
    std::string identifier;
    for (char c : name) {
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
        identifier += c;
      } else if (!identifier.empty()) {
        break;
      }
    }
    names.push_back(identifier.empty() ? piece : identifier);
  }
  names.resize(count);  // the text of an empty list is one empty piece
  return names;
}

std::string member_description(const ProxyType& type, std::uint32_t index) {
  if (index == resolve_index) return type.name + " (resolve)";
  if (index >= type.members.size()) return type.name + "::<member " + std::to_string(index) + ">";
  return type.name + "::" + type.members[index].name;
}

Outcome serve_proxy_call(const ProxyType& type, void* object, ByteReader& request) {
  Outcome outcome;
  std::string what = type.name;
  try {
    const auto key = request.read<std::uint64_t>();
    if (key != type.key) {
      throw UsageError("parc: a proxy call for another type reached an object of type " +
                       type.name);
    }
    const auto index = request.read<std::uint32_t>();
    what = member_description(type, index);
    ByteWriter out(outcome.bytes);
    if (index == resolve_index) {
      type.copy(object, request, out);
    } else if (index < type.members.size()) {
      type.members[index].invoke(object, request, out);
    } else {
      throw DecodeError("parc: a proxy call names member " + std::to_string(index) + " of " +
                        type.name + ", which has " + std::to_string(type.members.size()));
    }
  } catch (...) {
    outcome.ok = false;
    outcome.bytes = encode(error_here(std::current_exception(), -1, what));
  }
  return outcome;
}

ProxyService& proxy_service() {
  ProxyService* service = current_service.load(std::memory_order_acquire);
  if (service == nullptr) {
    throw UsageError(
        "parc: proxies need a running parc::Runtime (construct it first, on every rank; "
        "proxies must not outlive it)");
  }
  return *service;
}

ProxyService* proxy_service_if_any() noexcept {
  return current_service.load(std::memory_order_acquire);
}

void attach_proxy_service(ProxyService* service) {
  current_service.store(service, std::memory_order_release);
}

TaskError remote_failure(ByteReader& error, int owner, const std::string& what) {
  ErrorInfo info = read_error_info(error, owner);
  info.rank = owner;  // the owner may be simulated: the caller knows which it is
  if (info.closure.empty()) info.closure = what;
  auto rebuilt = rebuild_exception(info);
  return TaskError(std::move(info), std::move(rebuilt));
}

TaskError local_failure(std::exception_ptr error, int rank, const std::string& what) {
  return TaskError(error_here(error, rank, what), error);
}

void throw_creation_failure(const Outcome& failure, int owner) {
  ByteReader in(failure.bytes.data(), failure.bytes.size());
  remote_failure(in, owner, "").rethrow();
}

void check_owner(const ProxyService& service, int owner, const ProxyType& type) {
  if (owner >= 0 && owner < service.owners()) return;
  throw UsageError("parc: cannot build a " + type.name + " at rank " + std::to_string(owner) +
                   ": the owners are ranks 0-" + std::to_string(service.owners() - 1) +
                   " (rank 0 and the workers)");
}

}  // namespace detail

int proxy_rank() { return detail::proxy_service().acting_rank(); }

}  // namespace parc
