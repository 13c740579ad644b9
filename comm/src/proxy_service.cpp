#include <parc/comm/log.hpp>
#include <parc/comm/proxy_service.hpp>
#include <parc/exceptions/errors.hpp>

#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

namespace parc {

namespace {

struct ObjectIdHash {
  std::size_t operator()(const ObjectId& id) const noexcept {
    return std::hash<std::uint64_t>()(id.serial * 1000003u + static_cast<std::uint64_t>(id.owner));
  }
};

}  // namespace

struct ProxyService::State {
  // One lock for handles, queues and owned objects: a handle change and the record it
  // queues must stay in the same order for every thread (see the header).
  mutable std::mutex mutex;

  struct Entry {
    std::shared_ptr<OwnedObject> object;
    int owner = 0;
    std::int64_t holders = 0;  // ranks with a handle, as their records say
    std::unordered_map<std::uint64_t, std::int64_t> tokens;  // loads still expected
  };
  std::unordered_map<std::uint64_t, Entry> kept;
  std::uint64_t next_serial = 1;

  std::unordered_map<ObjectId, std::int64_t, ObjectIdHash> handles;
  std::map<int, std::vector<Record>> outgoing;
  std::uint64_t tokens_made = 0;
};

namespace {

struct Factories {
  std::mutex mutex;
  std::map<FactoryKind, std::shared_ptr<const ObjectFactory>> by_kind;
};

Factories& factories() {
  static auto* registered = new Factories;  // never destroyed: used until the process ends
  return *registered;
}

thread_local int acting = -1;  // -1: this process's rank

}  // namespace

ActingAs::ActingAs(int rank) : previous_(acting) { acting = rank; }
ActingAs::~ActingAs() { acting = previous_; }

int ProxyService::acting_rank() const { return acting >= 0 ? acting : rank(); }

ProxyService::ProxyService() : state_(std::make_unique<State>()) {}
ProxyService::~ProxyService() = default;

void ProxyService::set_factory(FactoryKind kind, ObjectFactory factory) {
  std::lock_guard lock(factories().mutex);
  factories().by_kind[kind] = std::make_shared<const ObjectFactory>(std::move(factory));
}

std::shared_ptr<OwnedObject> ProxyService::build(FactoryKind kind, ByteReader& arguments,
                                                 Outcome& failure) {
  std::shared_ptr<const ObjectFactory> factory;
  {
    std::lock_guard lock(factories().mutex);
    auto it = factories().by_kind.find(kind);
    if (it != factories().by_kind.end()) factory = it->second;
  }
  if (!factory) {
    throw ProxyError(std::string("parc: rank ") + std::to_string(rank()) + " cannot build " +
                     (kind == FactoryKind::python ? "Python" : "C++") + " objects: " +
                     (kind == FactoryKind::python
                          ? "the parc Python module is not loaded there"
                          : "no C++ proxy types are linked into that program"));
  }
  return (*factory)(arguments, failure);
}

std::uint64_t ProxyService::keep(std::shared_ptr<OwnedObject> object, int owner) {
  std::lock_guard lock(state_->mutex);
  const std::uint64_t serial = state_->next_serial++;
  auto& entry = state_->kept[serial];
  entry.object = std::move(object);
  entry.owner = owner;
  entry.holders = 1;
  return serial;
}

ObjectId ProxyService::adopt(std::shared_ptr<OwnedObject> object) {
  const int owner = acting_rank();
  const ObjectId id{owner, keep(std::move(object), owner)};
  hold_new(id);
  return id;
}

void ProxyService::hold_new(ObjectId id) {
  std::lock_guard lock(state_->mutex);
  ++state_->handles[id];
}

std::shared_ptr<OwnedObject> ProxyService::local_object(ObjectId id) {
  if (!keeps(id.owner)) return nullptr;
  return find(id.serial);
}

std::string ProxyService::released_message(ObjectId id) {
  return "parc: the object of this proxy (rank " + std::to_string(id.owner) + ", #" +
         std::to_string(id.serial) +
         ") was released: its last proxy was dropped before this one was loaded from a "
         "pickle. Keep a proxy alive until every copy sent elsewhere has been loaded";
}

std::shared_ptr<OwnedObject> ProxyService::find(std::uint64_t serial) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->kept.find(serial);
  return it == state_->kept.end() ? nullptr : it->second.object;
}

std::uint64_t ProxyService::count_kept(int owner) const {
  std::lock_guard lock(state_->mutex);
  std::uint64_t count = 0;
  for (const auto& [serial, entry] : state_->kept) count += entry.owner == owner ? 1 : 0;
  return count;
}

void ProxyService::retain(ObjectId id) {
  std::lock_guard lock(state_->mutex);
  ++state_->handles[id];
}

void ProxyService::release(ObjectId id) {
  Released released;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->handles.find(id);
    if (it == state_->handles.end()) return;  // after stop(): nothing to tell anyone
    if (--it->second > 0) return;
    state_->handles.erase(it);
    released = note_change(id, Change::deregister, 0, 0);
  }
}

std::uint64_t ProxyService::export_token(ObjectId id, std::uint32_t uses) {
  std::lock_guard lock(state_->mutex);
  const std::uint64_t token = (static_cast<std::uint64_t>(rank()) << 40) | ++state_->tokens_made;
  note_change(id, Change::export_token, token, uses);  // an export releases nothing
  return token;
}

void ProxyService::import_token(ObjectId id, std::uint64_t token) {
  Released released;  // a load of a token already used up may end an object
  std::lock_guard lock(state_->mutex);
  const bool first = state_->handles[id]++ == 0;
  released = note_change(id, first ? Change::register_consume : Change::consume, token, 0);
}

// Called with the lock held; the caller destroys what it returns once unlocked.
ProxyService::Released ProxyService::note_change(ObjectId id, Change change, std::uint64_t token,
                                                 std::uint32_t uses) {
  const Record record{change, id.serial, token, uses};
  if (keeps(id.owner)) return apply_locked(record);
  state_->outgoing[id.owner].push_back(record);
  return {};
}

Bytes ProxyService::encode_records(const std::vector<Record>& records) {
  Bytes bytes;
  ByteWriter writer(bytes);
  for (const auto& record : records) {
    writer.write(static_cast<std::uint8_t>(record.change));
    writer.write(record.serial);
    writer.write(record.token);
    writer.write(record.uses);
  }
  return bytes;
}

std::vector<ProxyService::Record> ProxyService::decode_records(const Bytes& bytes, int source) {
  constexpr std::size_t record_size = 1 + 8 + 8 + 4;
  if (bytes.size() % record_size != 0) {
    throw DecodeError("parc: a batch of reference changes from rank " + std::to_string(source) +
                      " has " + std::to_string(bytes.size()) + " bytes, not a multiple of " +
                      std::to_string(record_size));
  }
  std::vector<Record> records;
  records.reserve(bytes.size() / record_size);  // checked just above: no more than received
  ByteReader reader(bytes.data(), bytes.size());
  while (reader.remaining() > 0) {
    Record record;
    const auto change = reader.read<std::uint8_t>();
    if (change > static_cast<std::uint8_t>(Change::register_consume)) {
      throw DecodeError("parc: a reference change from rank " + std::to_string(source) +
                        " has unknown kind " + std::to_string(change));
    }
    record.change = static_cast<Change>(change);
    record.serial = reader.read<std::uint64_t>();
    record.token = reader.read<std::uint64_t>();
    record.uses = reader.read<std::uint32_t>();
    records.push_back(record);
  }
  return records;
}

ProxyService::Released ProxyService::apply_locked(const Record& record) {
  Released released;
  auto it = state_->kept.find(record.serial);
  if (it == state_->kept.end()) {
    log().debug("reference change {} for object {}, which is gone", static_cast<int>(record.change),
                record.serial);
    return released;
  }
  auto& entry = it->second;
  switch (record.change) {
    case Change::deregister:
      --entry.holders;
      break;
    case Change::export_token:
      entry.tokens[record.token] += record.uses;
      break;
    case Change::register_consume:
      ++entry.holders;
      [[fallthrough]];
    case Change::consume:
      entry.tokens[record.token] -= 1;
      break;
  }
  if (auto token = entry.tokens.find(record.token);
      token != entry.tokens.end() && token->second == 0) {
    entry.tokens.erase(token);
  }
  if (entry.holders > 0) return released;
  // A negative count is a pickle loaded more often than exported for, or before its export
  // arrived; in the second case its exporter still holds a handle.
  for (const auto& [token, expected] : entry.tokens) {
    if (expected > 0) return released;
  }
  released.push_back(std::move(entry.object));
  state_->kept.erase(it);
  return released;
}

void ProxyService::apply_records(const std::vector<Record>& records) {
  Released released;
  {
    std::lock_guard lock(state_->mutex);
    for (const auto& record : records) {
      auto gone = apply_locked(record);
      for (auto& object : gone) released.push_back(std::move(object));
    }
  }
}

std::vector<std::pair<int, std::vector<ProxyService::Record>>> ProxyService::take_outgoing() {
  std::lock_guard lock(state_->mutex);
  std::vector<std::pair<int, std::vector<Record>>> batches;
  for (auto& [owner, records] : state_->outgoing) {
    if (!records.empty()) batches.emplace_back(owner, std::move(records));
  }
  state_->outgoing.clear();
  return batches;
}

bool ProxyService::has_outgoing() const {
  std::lock_guard lock(state_->mutex);
  return !state_->outgoing.empty();
}

ProxyService::Released ProxyService::take_all_objects() {
  std::lock_guard lock(state_->mutex);
  Released released;
  for (auto& [serial, entry] : state_->kept) released.push_back(std::move(entry.object));
  state_->kept.clear();
  state_->handles.clear();
  state_->outgoing.clear();
  return released;
}

}  // namespace parc
