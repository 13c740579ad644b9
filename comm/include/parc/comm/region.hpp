#pragma once
// The communicator of one SPMD region: byte-level collectives and point-to-point among
// the region's ranks, every wait of which can be cancelled.
//
// Over MPI a region is a communicator made for it (MPI_Comm_create_group), and every
// operation is non-blocking MPI polled with idle back-off, together with the worker's
// control channel (the `poll` hook). When the region is cancelled (a rank raised, or
// the manager ran out of time) every wait throws CancelledError and the communicator is
// abandoned: operations left pending on it are never completed or reused, and the next
// region gets a fresh one. In serial mode the ranks are threads of one process sharing
// an in-process region (LoopbackNetwork::open_region).

#include <parc/comm/archive.hpp>
#include <parc/exceptions/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace parc {

enum class ScalarType : std::uint8_t { i8, u8, i16, u16, i32, u32, i64, u64, f32, f64 };
enum class ReduceOp : std::uint8_t { sum, prod, min, max };

std::size_t scalar_size(ScalarType type);
// "sum", "prod", "min", "max": for error messages and Python.
const char* reduce_op_name(ReduceOp op);

// Elementwise `accumulator = accumulator op values` over `count` scalars.
void reduce_scalars(void* accumulator, const void* values, std::size_t count, ScalarType type,
                    ReduceOp op);

// Region ranks are 0..size()-1, in the order of the world ranks given at open.
// Point-to-point tags are 0..max_region_tag.
inline constexpr int max_region_tag = 32767;

// UsageErrors that name the operation and the valid range.
void check_region_rank(int rank, int size, const char* operation, const char* what);
void check_region_tag(int tag, const char* operation);

// What a rank waiting for a peer that returned is told (thrown as its own failure).
UsageError region_rank_returned_before_collective(int rank, std::uint64_t collectives_run,
                                                  std::uint64_t waiting_in);
UsageError region_rank_returned_without_sending(int source, int tag);

class RegionComm {
 public:
  virtual ~RegionComm() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  virtual void barrier() = 0;
  // Root's `data` on every rank (the others' `data` is ignored).
  virtual Bytes bcast(Bytes data, int root) = 0;
  // Every rank's `data` in rank order at `root`; empty on the other ranks.
  virtual std::vector<Bytes> gather(Bytes data, int root) = 0;
  virtual std::vector<Bytes> allgather(Bytes data) = 0;
  // Root gives size() parts; rank r receives part r. `parts` is ignored off the root.
  virtual Bytes scatter(std::vector<Bytes> parts, int root) = 0;
  // Elementwise over `count` scalars at `data`, in place: the result on every rank
  // (allreduce) or on `root` (reduce; the other ranks' `data` is left as it was).
  virtual void allreduce(void* data, std::size_t count, ScalarType type, ReduceOp op) = 0;
  virtual void reduce(void* data, std::size_t count, ScalarType type, ReduceOp op, int root) = 0;

  // Buffered: returns at once, never waits for the matching recv (so exchanges in any
  // order cannot deadlock). Messages between two ranks with one tag arrive in order.
  virtual void send(Bytes data, int dest, int tag) = 0;
  virtual Bytes recv(int source, int tag) = 0;

  // This rank's waits (now and later) throw CancelledError(reason). Thread-safe; later
  // calls keep the first reason. The worker calls it when the manager or a peer cancels.
  virtual void cancel(const std::string& reason) = 0;
  // This rank failed: cancels it and every other rank of the region (over MPI, a
  // region_cancel message to each on the control channel: u64 region id, then the
  // reason as a std::string, both written with ByteWriter).
  virtual void cancel_all(const std::string& reason) = 0;
  virtual bool cancelled() const = 0;

  // This rank's closure returned. From then on a rank waiting for it in a collective it
  // never entered, or in a recv of a message it never sent, fails with UsageError instead
  // of waiting forever. Over MPI, a region_done message to each other member: u64 region
  // id, i32 region rank, u64 collectives it ran, then its sends to that member as u64 n
  // and n pairs (i32 tag, u64 count).
  virtual void finish() = 0;
  // Messages this rank sent to / received from each region rank: the manager reuses a
  // region's communicator only if every message sent in it was received.
  virtual std::vector<std::uint64_t> messages_sent() const { return {}; }
  virtual std::vector<std::uint64_t> messages_received() const { return {}; }
  // A peer's region_done (MPI; in-process regions learn it through their shared state).
  virtual void peer_finished(int /*rank*/, std::uint64_t /*collectives*/,
                             const std::map<int, std::uint64_t>& /*sends*/) {}
};

}  // namespace parc
