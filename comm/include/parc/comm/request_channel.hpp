#pragma once
// A one-sided request/reply channel between ranks: the transport under services that
// answer for a rank whatever its main thread does (the proxy service, in parc/proxies).
//
// Owner's side: a progress thread (over MPI) receives the requests of every rank, each
// rank's in the order it sent them, hands each to the RequestHandler, which answers it
// then or later with a reply (a one-byte code of its own and bytes) or with a reply and
// data sent straight from the owner's memory into the reader's buffer.
// Caller's side: request() posts a request and returns a PendingRequest to wait on; a
// read() also lands the data in the caller's buffer. Records are one-way messages, kept
// in order per destination, that the handler posts on the progress thread; the channel
// counts which of them have arrived.
//
// The channel knows nothing of what the bytes mean. Over MPI it runs at
// MPI_THREAD_MULTIPLE only (any thread may post and wait); serially (loopback) every rank
// is simulated in this process and a request is handled on the caller's thread.

#include <parc/comm/archive.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace parc {

// Where the owner's answer to one request goes.
struct ReplyTo {
  int rank = -1;
  int tag = 0;
};

// The service above the channel, called on the owner's side (the progress thread over MPI,
// the caller's thread serially). Exceptions it lets out drop the message with a log line.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // A request to `owner` (this rank; serially, the simulated one it was sent to) from
  // `requester.rank`: answer it, now or later, with reply() or reply_with_data().
  virtual void serve_request(int owner, ReplyTo requester, ByteReader& request) = 0;
  // A records message from `source`, after every earlier one it sent here.
  virtual void receive_records(int source, const Bytes& records) = 0;
  // Posts the records the service queued for other ranks (post_records); true when it
  // posted any. Called on each round of the progress thread.
  virtual bool post_queued_records() = 0;
  // Whether the service still has records to post (stop() waits for them).
  virtual bool has_queued_records() const = 0;
};

// A request in flight, on the caller's side.
class PendingRequest {
 public:
  virtual ~PendingRequest() = default;
  virtual bool ready() = 0;  // polls once
  // Waits with back-off until ready or `deadline`; true when ready. On the progress
  // thread (a handler waiting on a request of its own) it serves requests meanwhile.
  virtual bool wait_until(std::chrono::steady_clock::time_point deadline) = 0;
  // Once ready: the reply's code and bytes (a read's data is in the caller's buffer).
  virtual std::uint8_t code() const = 0;
  virtual Bytes& payload() = 0;
};

class RequestChannel {
 public:
  RequestChannel() = default;
  virtual ~RequestChannel() = default;
  RequestChannel(const RequestChannel&) = delete;
  RequestChannel& operator=(const RequestChannel&) = delete;

  virtual int rank() const = 0;
  // Requests go to ranks 0..size()-1 (serially, simulated ranks).
  virtual int size() const = 0;
  // True when requests to `rank` are handled in this process (serially: every rank).
  virtual bool hosts(int rank) const = 0;
  // The ranks there are, for a message about a wrong one.
  virtual std::string describe_ranks() const = 0;
  // Empty when the channel carries requests; otherwise why not (what it needs).
  virtual const std::string& unavailable_reason() const = 0;

  // The rank the calling thread acts as: serially, the simulated rank running a task or a
  // region there (see ActingAs); otherwise this process's rank.
  int acting_rank() const;

  // Starts serving requests for `handler` (the progress thread over MPI), once.
  virtual void start(RequestHandler& handler) = 0;

  // --- caller's side (any thread) ---
  virtual std::unique_ptr<PendingRequest> request(int owner, Bytes message) = 0;
  // A request whose code-0 reply is followed by exactly `bytes` of data into `destination`
  // (no copy at either end over MPI); any other code means no data follows.
  virtual std::unique_ptr<PendingRequest> read(int owner, Bytes message, char* destination,
                                               std::uint64_t bytes) = 0;

  // --- owner's side (the handler) ---
  virtual void reply(ReplyTo to, std::uint8_t code, Bytes payload) = 0;
  // A code-0 empty reply, then `bytes` from `data`, which `keep_alive` holds until sent.
  virtual void reply_with_data(ReplyTo to, const char* data, std::uint64_t bytes,
                               std::shared_ptr<const void> keep_alive) = 0;
  // A records message to `owner` (progress thread).
  virtual void post_records(int owner, Bytes records) = 0;
  // Records messages this rank has posted in all (progress thread).
  virtual std::uint64_t records_posted() const = 0;
  // Runs `answer` (on the progress thread) once every records message this rank posted so
  // far has been received.
  virtual void when_records_received(std::function<void()> answer) = 0;

  // --- the progress thread, for the rank's other traffic ---
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
  // outstanding request and records message (and the handler's queued records), then for
  // every rank, then ends the progress thread.
  virtual void stop() = 0;
};

// While it lives, the calling thread acts as `rank` on the channel (a simulated worker).
class ActingAs {
 public:
  explicit ActingAs(int rank);
  ~ActingAs();
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;

 private:
  int previous_;
};

// Serial mode: `ranks` simulated ranks in this process; a request is handled on the
// caller's thread, still through its bytes.
std::unique_ptr<RequestChannel> make_loopback_request_channel(int ranks);

}  // namespace parc
