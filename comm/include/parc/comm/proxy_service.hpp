#pragma once
// One-sided service of proxied objects: every rank owns objects on behalf of proxies held
// anywhere, answers requests to them from a progress thread (over MPI) and counts the
// references held on every rank, so that an object goes when its last proxy does.
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

class ProxyService {
 public:
  ProxyService();
  virtual ~ProxyService();
  ProxyService(const ProxyService&) = delete;
  ProxyService& operator=(const ProxyService&) = delete;
  virtual int rank() const = 0;
  // Owners are ranks 0..owners()-1 (serially, simulated ranks).
  virtual int owners() const = 0;

  // Process-wide, so that a language registers its factory before any runtime serves
  // (a peer may ask this rank to build an object as soon as the runtime is up).
  static void set_factory(FactoryKind kind, ObjectFactory factory);

  // --- requests (any thread; they wait with back-off and never hold a language's lock) ---
  // Builds an object at `owner`; the caller holds one handle to it, and `reply` has the
  // object's describe(). When the factory failed: an id with owner -1, and its failure in
  // `reply`. Throws ProxyError when the owner could not serve the request.
  virtual ObjectId create(int owner, FactoryKind kind, Bytes arguments, Outcome& reply) = 0;
  virtual std::unique_ptr<PendingReply> call(ObjectId id, Bytes request) = 0;
  // Reads rows [begin, end) of the object's raw view into `destination` (exactly
  // `bytes` long), with no copy at either end over MPI. The read completes in wait().
  virtual std::unique_ptr<PendingReply> read_raw(ObjectId id, std::uint64_t begin,
                                                 std::uint64_t end, char* destination,
                                                 std::uint64_t bytes) = 0;
  // How many objects `owner` keeps, once every reference message sent before this call
  // by any rank has arrived.
  virtual std::uint64_t live_objects(int owner) = 0;

  // The rank the calling thread acts as: serially, the simulated rank running a task or a
  // region there (see ActingAs); otherwise this process's rank.
  int acting_rank() const;

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

  // For a rank's main thread with nothing to do for long: blocks until `ready()` holds,
  // which the progress thread checks on each of its rounds, so that an idle rank wakes
  // one thread, not two, to poll. False at once where no progress thread runs (the caller
  // polls on) or once stopping.
  virtual bool park_until(const std::function<bool()>& /*ready*/) { return false; }
  // Runs `poll` on the progress thread at each of its rounds (empty: nothing), so that a
  // rank answers some messages while its main thread computes (a worker's revokes).
  // False where no progress thread runs.
  virtual bool set_background_poll(std::function<void()> /*poll*/) { return false; }
  // Whether this rank (and so every rank: they share the MPI thread level) runs one.
  virtual bool runs_progress_thread() const { return false; }

  // Stops serving: collective over every rank at the end of the run. Waits for every
  // outstanding request and reference message, then releases every object owned here.
  virtual void stop() = 0;

 protected:
  enum class Change : std::uint8_t {
    deregister = 0,
    export_token = 1,
    consume = 2,
    register_consume = 3,
  };
  struct Record {
    Change change = Change::deregister;
    std::uint64_t serial = 0;
    std::uint64_t token = 0;
    std::uint32_t uses = 0;
  };
  using Released = std::vector<std::shared_ptr<OwnedObject>>;

  // True when this process keeps the objects of `owner` (serially: every owner).
  virtual bool keeps(int owner) const = 0;
  // Applies reference changes that arrived for objects owned here. Destroys what they
  // release after unlocking: a language's destructor may need its own lock.
  void apply_records(const std::vector<Record>& records);
  // A batch of them on the wire: u8 change, u64 serial, u64 token, u32 uses per record.
  // Decoding rejects an unknown change or a cut record (DecodeError naming `source`).
  static Bytes encode_records(const std::vector<Record>& records);
  static std::vector<Record> decode_records(const Bytes& bytes, int source);
  // The queued reference changes for remote owners, in order, per owner.
  std::vector<std::pair<int, std::vector<Record>>> take_outgoing();
  bool has_outgoing() const;

  // The owner's side of create: builds the object with the registered factory, held by
  // one handle of the requester. nullptr and `failure` when the factory failed.
  std::shared_ptr<OwnedObject> build(FactoryKind kind, ByteReader& arguments, Outcome& failure);
  std::uint64_t keep(std::shared_ptr<OwnedObject> object, int owner);
  void hold_new(ObjectId id);  // the caller of a remote create holds its first handle
  std::shared_ptr<OwnedObject> find(std::uint64_t serial);
  std::uint64_t count_kept(int owner) const;
  Released take_all_objects();

 private:
  Released note_change(ObjectId id, Change change, std::uint64_t token, std::uint32_t uses);
  Released apply_locked(const Record& record);

  struct State;
  std::unique_ptr<State> state_;
};

// While it lives, the calling thread acts as `rank` for proxies (a simulated worker).
class ActingAs {
 public:
  explicit ActingAs(int rank);
  ~ActingAs();
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;

 private:
  int previous_;
};

// Serial mode: every owner is simulated in this process; requests run inline on the
// caller's thread, still through their bytes.
std::unique_ptr<ProxyService> make_loopback_proxy_service(int owners);

}  // namespace parc
