// The proxy service, written once over the request channel: the object table and the
// distributed reference counts (see proxy_service.hpp), the requests a caller sends and
// the owner's answers to them (proxy_wire.hpp).

#include "proxy_wire.hpp"

#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/monitor/flight_record.hpp>
#include <parc/proxies/proxy_service.hpp>

#include <map>
#include <mutex>
#include <unordered_map>

namespace parc {

namespace {

using proxy_wire::Change;
using proxy_wire::Op;
using proxy_wire::Record;
using proxy_wire::Status;
using Released = std::vector<std::shared_ptr<OwnedObject>>;

struct ObjectIdHash {
  std::size_t operator()(const ObjectId& id) const noexcept {
    return std::hash<std::uint64_t>()(id.serial * 1000003u + static_cast<std::uint64_t>(id.owner));
  }
};

struct Factories {
  std::mutex mutex;
  std::map<FactoryKind, std::shared_ptr<const ObjectFactory>> by_kind;
};

Factories& factories() {
  static auto* registered = new Factories;  // never destroyed: used until the process ends
  return *registered;
}

// A request's reply, as the caller reads it.
class ProxyReply final : public PendingReply {
 public:
  ProxyReply(std::unique_ptr<PendingRequest> request, ObjectId id)
      : request_(std::move(request)), id_(id) {}
  bool ready() override { return request_->ready(); }
  bool wait_until(std::chrono::steady_clock::time_point deadline) override {
    return request_->wait_until(deadline);
  }
  Outcome wait() override {
    request_->wait_until(std::chrono::steady_clock::time_point::max());
    Status status = Status::error;
    try {
      status = proxy_wire::reply_status(request_->code(), id_.owner);
    } catch (const DecodeError& e) {
      throw ProxyError(e.what());
    }
    switch (status) {
      case Status::ok:
      case Status::failed:
        return Outcome{status == Status::ok, std::move(request_->payload())};
      case Status::released:
        throw ProxyError(ProxyService::released_message(id_));
      case Status::error:
        break;
    }
    const Bytes& why = request_->payload();
    throw ProxyError(std::string(why.begin(), why.end()));
  }

 private:
  std::unique_ptr<PendingRequest> request_;
  ObjectId id_;
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

  std::uint64_t keep(std::shared_ptr<OwnedObject> object, int owner) {
    std::lock_guard lock(mutex);
    const std::uint64_t serial = next_serial++;
    auto& entry = kept[serial];
    entry.object = std::move(object);
    entry.owner = owner;
    entry.holders = 1;
    return serial;
  }

  void hold(ObjectId id) {
    std::lock_guard lock(mutex);
    ++handles[id];
  }

  std::pair<std::shared_ptr<OwnedObject>, int> find(std::uint64_t serial) const {
    std::lock_guard lock(mutex);
    auto it = kept.find(serial);
    if (it == kept.end()) return {nullptr, -1};
    return {it->second.object, it->second.owner};
  }

  std::uint64_t count_kept(int owner) const {
    std::lock_guard lock(mutex);
    std::uint64_t count = 0;
    for (const auto& [serial, entry] : kept) count += entry.owner == owner ? 1 : 0;
    return count;
  }

  // With the lock held; the caller destroys what it returns once unlocked. `here`: the
  // owner's objects are kept in this process.
  Released note_change(ObjectId id, bool here, Change change, std::uint64_t token,
                       std::uint32_t uses) {
    const Record record{change, id.serial, token, uses};
    if (here) return apply_locked(record);
    outgoing[id.owner].push_back(record);
    return {};
  }

  Released apply_locked(const Record& record) {
    Released released;
    auto it = kept.find(record.serial);
    if (it == kept.end()) {
      log().debug("reference change {} for object {}, which is gone",
                  static_cast<int>(record.change), record.serial);
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
    // A negative count is a pickle loaded more often than exported for, or before its
    // export arrived; in the second case its exporter still holds a handle.
    for (const auto& [token, expected] : entry.tokens) {
      if (expected > 0) return released;
    }
    released.push_back(std::move(entry.object));
    kept.erase(it);
    return released;
  }

  // Destroys what they release after unlocking: a language's destructor may need its own
  // lock.
  void apply(const std::vector<Record>& records) {
    Released released;
    std::lock_guard lock(mutex);
    for (const auto& record : records) {
      auto gone = apply_locked(record);
      for (auto& object : gone) released.push_back(std::move(object));
    }
  }

  // The queued reference changes for remote owners, in order, per owner.
  std::vector<std::pair<int, std::vector<Record>>> take_outgoing() {
    std::lock_guard lock(mutex);
    std::vector<std::pair<int, std::vector<Record>>> batches;
    for (auto& [owner, records] : outgoing) {
      if (!records.empty()) batches.emplace_back(owner, std::move(records));
    }
    outgoing.clear();
    return batches;
  }

  Released take_all_objects() {
    std::lock_guard lock(mutex);
    Released released;
    for (auto& [serial, entry] : kept) released.push_back(std::move(entry.object));
    kept.clear();
    handles.clear();
    outgoing.clear();
    return released;
  }
};

ProxyService::ProxyService(std::unique_ptr<RequestChannel> channel)
    : state_(std::make_unique<State>()), channel_(std::move(channel)) {
  channel_->start(*this);
}

ProxyService::~ProxyService() = default;

void ProxyService::set_factory(FactoryKind kind, ObjectFactory factory) {
  std::lock_guard lock(factories().mutex);
  factories().by_kind[kind] = std::make_shared<const ObjectFactory>(std::move(factory));
}

std::string ProxyService::released_message(ObjectId id) {
  return "parc: the object of this proxy (rank " + std::to_string(id.owner) + ", #" +
         std::to_string(id.serial) +
         ") was released: its last proxy was dropped before this one was loaded from a "
         "pickle. Keep a proxy alive until every copy sent elsewhere has been loaded";
}

void ProxyService::check_owner(int owner) const {
  if (!channel_->unavailable_reason().empty()) {
    throw UsageError("parc: proxies need " + channel_->unavailable_reason());
  }
  if (stopped_) throw UsageError(stopped_message);
  if (owner < 0 || owner >= owners()) {
    throw UsageError("parc: owner rank " + std::to_string(owner) +
                     " does not exist: " + channel_->describe_ranks());
  }
}

// --- requests ---

ObjectId ProxyService::create(int owner, FactoryKind kind, Bytes arguments, Outcome& reply) {
  check_owner(owner);
  if (channel_->hosts(owner)) {
    ByteReader reader(arguments.data(), arguments.size());
    auto object = build(kind, reader, reply);
    if (!object) return {};
    reply = Outcome{true, object->describe()};
    const ObjectId id{owner, state_->keep(std::move(object), owner)};
    state_->hold(id);
    return id;
  }
  Bytes request = proxy_wire::request_header(Op::create, 0);
  request.push_back(static_cast<char>(kind));
  append(request, arguments.data(), arguments.size());
  Outcome outcome =
      ProxyReply(channel_->request(owner, std::move(request)), ObjectId{owner, 0}).wait();
  if (!outcome.ok) {
    reply = std::move(outcome);
    return {};
  }
  ByteReader reader(outcome.bytes.data(), outcome.bytes.size());
  const ObjectId id{owner, proxy_wire::read_number(reader)};
  const auto described = reader.take(reader.remaining());
  reply = Outcome{true, Bytes(described.begin(), described.end())};
  state_->hold(id);
  return id;
}

std::unique_ptr<PendingReply> ProxyService::call(ObjectId id, Bytes request) {
  check_owner(id.owner);
  Bytes message = proxy_wire::request_header(Op::call, id.serial);
  append(message, request.data(), request.size());
  return std::make_unique<ProxyReply>(channel_->request(id.owner, std::move(message)), id);
}

std::unique_ptr<PendingReply> ProxyService::read_raw(ObjectId id, std::uint64_t begin,
                                                     std::uint64_t end, char* destination,
                                                     std::uint64_t bytes) {
  check_owner(id.owner);
  Bytes message = proxy_wire::raw_request(id.serial, {begin, end, bytes});
  return std::make_unique<ProxyReply>(
      channel_->read(id.owner, std::move(message), destination, bytes), id);
}

std::uint64_t ProxyService::live_objects(int owner) {
  check_owner(owner);
  // Every rank posts what it has queued and answers once its records have been received,
  // with how many it has posted in all. Applying them may release objects that held
  // proxies, which queues more: rounds repeat until none posts more.
  const int size = owners();
  std::vector<std::uint64_t> posted(static_cast<std::size_t>(size), ~std::uint64_t{0});
  for (bool changed = true; changed;) {
    std::vector<ProxyReply> flushes;
    flushes.reserve(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r) {
      flushes.emplace_back(channel_->request(r, proxy_wire::request_header(Op::flush, 0)),
                           ObjectId{r, 0});
    }
    changed = false;
    for (int r = 0; r < size; ++r) {
      Outcome outcome = flushes[static_cast<std::size_t>(r)].wait();
      ByteReader reader(outcome.bytes.data(), outcome.bytes.size());
      const auto total = proxy_wire::read_number(reader);
      changed = changed || total != posted[static_cast<std::size_t>(r)];
      posted[static_cast<std::size_t>(r)] = total;
    }
  }
  Outcome outcome = ProxyReply(channel_->request(owner, proxy_wire::request_header(Op::count, 0)),
                               ObjectId{owner, 0})
                        .wait();
  ByteReader reader(outcome.bytes.data(), outcome.bytes.size());
  return proxy_wire::read_number(reader);
}

void ProxyService::stop() {
  if (stopped_.exchange(true)) return;
  channel_->stop();
  state_->take_all_objects();
}

// --- objects owned here ---

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

ObjectId ProxyService::adopt(std::shared_ptr<OwnedObject> object) {
  const int owner = acting_rank();
  const ObjectId id{owner, state_->keep(std::move(object), owner)};
  state_->hold(id);
  return id;
}

std::shared_ptr<OwnedObject> ProxyService::local_object(ObjectId id) {
  if (!channel_->hosts(id.owner)) return nullptr;
  return state_->find(id.serial).first;
}

// --- handles on this rank ---

void ProxyService::retain(ObjectId id) { state_->hold(id); }

void ProxyService::release(ObjectId id) {
  Released released;
  std::lock_guard lock(state_->mutex);
  auto it = state_->handles.find(id);
  if (it == state_->handles.end()) return;  // after stop(): nothing to tell anyone
  if (--it->second > 0) return;
  state_->handles.erase(it);
  released = state_->note_change(id, channel_->hosts(id.owner), Change::deregister, 0, 0);
}

std::uint64_t ProxyService::export_token(ObjectId id, std::uint32_t uses) {
  std::lock_guard lock(state_->mutex);
  const std::uint64_t token = (static_cast<std::uint64_t>(rank()) << 40) | ++state_->tokens_made;
  // An export releases nothing.
  state_->note_change(id, channel_->hosts(id.owner), Change::export_token, token, uses);
  return token;
}

void ProxyService::import_token(ObjectId id, std::uint64_t token) {
  Released released;  // a load of a token already used up may end an object
  std::lock_guard lock(state_->mutex);
  const bool first = state_->handles[id]++ == 0;
  released = state_->note_change(id, channel_->hosts(id.owner),
                                 first ? Change::register_consume : Change::consume, token, 0);
}

// --- the owner's side ---

void ProxyService::serve_request(int owner, ReplyTo requester, ByteReader& reader) {
  const int source = requester.rank;
  struct Serving {  // in the flight record while this request is handled (they nest)
    explicit Serving(int requester) : outer(flight::note_serving(requester)) {}
    ~Serving() { flight::note_serving(outer); }
    int outer;
  } serving(source);
  const auto reply = [&](Status status, Bytes payload) {
    channel_->reply(requester, static_cast<std::uint8_t>(status), std::move(payload));
  };
  const auto reply_text = [&](Status status, const std::string& text) {
    reply(status, Bytes(text.begin(), text.end()));
  };
  try {
    const auto [op, serial] = proxy_wire::read_request(reader, source);
    switch (op) {
      case Op::create: {
        const auto kind = proxy_wire::read_factory_kind(reader, source);
        Outcome failure;
        auto object = build(kind, reader, failure);
        if (!object) {
          reply(Status::failed, std::move(failure.bytes));
          return;
        }
        const Bytes described = object->describe();
        Bytes payload = proxy_wire::number(state_->keep(std::move(object), owner));
        append(payload, described.data(), described.size());
        reply(Status::ok, std::move(payload));
        return;
      }
      case Op::call: {
        auto [object, object_owner] = state_->find(serial);
        if (!object) {
          reply(Status::released, {});
          return;
        }
        trace::Span span(trace::Category::proxy, object_owner, "proxy call");
        span.set_peer(source);
        Outcome outcome = object->handle(reader);
        reply(outcome.ok ? Status::ok : Status::failed, std::move(outcome.bytes));
        return;
      }
      case Op::raw: {
        const auto [begin, end, bytes] = proxy_wire::read_raw_request(reader);
        auto object = state_->find(serial).first;
        if (!object) {
          reply(Status::released, {});
          return;
        }
        const auto view = object->raw_view();
        if (!view || end > view->rows || begin > end || (end - begin) * view->row_bytes != bytes) {
          reply_text(Status::error, "parc: the raw read does not match the object's memory (rows " +
                                        std::to_string(begin) + "-" + std::to_string(end) + " of " +
                                        std::to_string(view ? view->rows : 0) + ")");
          return;
        }
        channel_->reply_with_data(requester, view->data + begin * view->row_bytes, bytes,
                                  std::move(object));
        return;
      }
      case Op::flush:
        post_queued_records();
        channel_->when_records_received([this, requester] {
          channel_->reply(requester, static_cast<std::uint8_t>(Status::ok),
                          proxy_wire::number(channel_->records_posted()));
        });
        return;
      case Op::count:
        reply(Status::ok, proxy_wire::number(state_->count_kept(owner)));
        return;
    }
    reply_text(Status::error,
               "parc: unknown proxy request " + std::to_string(static_cast<int>(op)));
  } catch (const std::exception& e) {
    reply_text(Status::error, e.what());
  }
}

void ProxyService::receive_records(int source, const Bytes& records) {
  state_->apply(proxy_wire::decode_records(records, source));
}

bool ProxyService::post_queued_records() {
  auto batches = state_->take_outgoing();
  for (auto& [owner, records] : batches) {
    channel_->post_records(owner, proxy_wire::encode_records(records));
  }
  return !batches.empty();
}

bool ProxyService::has_queued_records() const {
  std::lock_guard lock(state_->mutex);
  return !state_->outgoing.empty();
}

}  // namespace parc
