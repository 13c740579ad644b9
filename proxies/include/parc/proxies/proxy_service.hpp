#pragma once
// One-sided service of proxied objects: every rank owns objects on behalf of proxies held
// anywhere, answers requests to them from its request channel's progress thread (over
// MPI; see parc/comm/request_channel.hpp) and counts the references held on every rank,
// so that an object goes when its last proxy does. Written once over the channel: the
// same code serves over MPI and serially (loopback).
//
// The object's language (Python, C++) is not this layer's business: an OwnedObject turns
// request bytes into reply bytes, and a factory of each language builds one from bytes.
//
// Lifetime (distributed reference listing with export tokens):
// - the owner counts registrations (ranks holding at least one handle) and tokens
//   (references in flight inside pickles: one per export, good for `uses` loads);
// - a rank registers when it gets its first handle to an object and deregisters when its
//   last handle goes; a pickle exports a token (sent by the exporter, before its own
//   deregistration), a load consumes it (in the same message as its registration);
// - each rank's reference messages to an owner leave in order, batched, from one thread,
//   so the count only reaches zero once no handle or pickle can still name the object.
// A pickle loaded more often than its `uses` still works while the object lives; one never
// loaded keeps the object until the runtime stops.

#include <parc/comm/archive.hpp>
#include <parc/comm/request_channel.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace parc {

struct ObjectId {
  std::int32_t owner = -1;
  std::uint64_t serial = 0;  // never reused by its owner
  friend bool operator==(const ObjectId&, const ObjectId&) = default;
};

// What a request produced: the language's reply bytes, or its encoded failure.
struct Outcome {
  bool ok = true;
  Bytes bytes;
};

// Memory of an owned object that the progress thread may send without running the
// object's language (a C-contiguous numpy array): a raw read of rows [begin, end) of it.
struct RawView {
  const char* data = nullptr;
  std::uint64_t rows = 0;
  std::uint64_t row_bytes = 0;
};

class OwnedObject {
 public:
  virtual ~OwnedObject() = default;
  // Runs one request on the object. Runs on the owner's progress thread (or on the
  // caller's thread when the caller is the owner): it takes whatever lock its language
  // needs. Exceptions become an error for the caller; language failures belong in Outcome.
  virtual Outcome handle(ByteReader& request) = 0;
  virtual std::optional<RawView> raw_view() const { return std::nullopt; }
  // What proxies to it carry (the language's type description); sent back by create.
  virtual Bytes describe() const { return {}; }
};

// Builds an object from the create request's bytes; nullptr plus `failure` when it failed.
using ObjectFactory =
    std::function<std::shared_ptr<OwnedObject>(ByteReader& arguments, Outcome& failure)>;

// The factory kinds the languages register (one of each per process at most).
enum class FactoryKind : std::uint8_t { cpp = 0, python = 1 };

// The reply did not come: the object was released (a proxy loaded after its last holder
// let go), or the owner could not serve the request.
class ProxyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An outstanding request; wait() or ready() until it has its Outcome.
class PendingReply {
 public:
  virtual ~PendingReply() = default;
  virtual bool ready() = 0;  // polls once
  // Waits with back-off until ready or `deadline`; true when ready. On the progress thread
  // (a proxied object calling another proxy) it serves requests meanwhile.
  virtual bool wait_until(std::chrono::steady_clock::time_point deadline) = 0;
  // The outcome (once); throws ProxyError when the object is gone or the owner failed.
  virtual Outcome wait() = 0;
};

class ProxyService final : private RequestHandler {
 public:
  // Serves over `channel` (its progress thread starts now) until stop().
  explicit ProxyService(std::unique_ptr<RequestChannel> channel);
  ~ProxyService() override;
  ProxyService(const ProxyService&) = delete;
  ProxyService& operator=(const ProxyService&) = delete;

  int rank() const { return channel_->rank(); }
  // Owners are ranks 0..owners()-1 (serially, simulated ranks).
  int owners() const { return channel_->size(); }
  // The channel it serves over (its progress thread serves the rank's other traffic too).
  RequestChannel& channel() { return *channel_; }

  // Process-wide, so that a language registers its factory before any runtime serves
  // (a peer may ask this rank to build an object as soon as the runtime is up).
  static void set_factory(FactoryKind kind, ObjectFactory factory);

  // --- requests (any thread; they wait with back-off and never hold a language's lock) ---
  // Builds an object at `owner`; the caller holds one handle to it, and `reply` has the
  // object's describe(). When the factory failed: an id with owner -1, and its failure in
  // `reply`. Throws ProxyError when the owner could not serve the request.
  ObjectId create(int owner, FactoryKind kind, Bytes arguments, Outcome& reply);
  std::unique_ptr<PendingReply> call(ObjectId id, Bytes request);
  // Reads rows [begin, end) of the object's raw view into `destination` (exactly
  // `bytes` long), with no copy at either end over MPI. The read completes in wait().
  std::unique_ptr<PendingReply> read_raw(ObjectId id, std::uint64_t begin, std::uint64_t end,
                                         char* destination, std::uint64_t bytes);
  // How many objects `owner` keeps, once every reference message sent before this call
  // by any rank has arrived.
  std::uint64_t live_objects(int owner);

  // The rank the calling thread acts as: serially, the simulated rank running a task or a
  // region there (see ActingAs); otherwise this process's rank.
  int acting_rank() const { return channel_->acting_rank(); }

  // --- objects owned here ---
  // Registers an object owned by the acting rank, held by one handle here.
  ObjectId adopt(std::shared_ptr<OwnedObject> object);
  // The object, when this rank owns it and it lives.
  std::shared_ptr<OwnedObject> local_object(ObjectId id);

  // --- handles on this rank (thread-safe; never block) ---
  void retain(ObjectId id);   // one more handle to an object this rank already holds
  void release(ObjectId id);  // a handle went
  // A reference that travels in a pickle, good for `uses` loads.
  std::uint64_t export_token(ObjectId id, std::uint32_t uses);
  // A handle loaded from a pickle carrying `token`.
  void import_token(ObjectId id, std::uint64_t token);

  // Why a request to `id` failed when its object is gone.
  static std::string released_message(ObjectId id);
  static constexpr const char* stopped_message =
      "parc: proxies are unavailable once the runtime has stopped";

  // Stops serving: collective over every rank at the end of the run. Waits for every
  // outstanding request and reference message, then releases every object owned here.
  void stop();

 private:
  // The owner's side, on the channel's progress thread (serially, the caller's thread).
  void serve_request(int owner, ReplyTo requester, ByteReader& request) override;
  void receive_records(int source, const Bytes& records) override;
  bool post_queued_records() override;
  bool has_queued_records() const override;

  void check_owner(int owner) const;
  std::shared_ptr<OwnedObject> build(FactoryKind kind, ByteReader& arguments, Outcome& failure);

  struct State;  // the object table, the handles and the queued reference changes
  std::unique_ptr<State> state_;
  std::atomic<bool> stopped_{false};
  std::unique_ptr<RequestChannel> channel_;  // last: its progress thread goes first
};

}  // namespace parc
