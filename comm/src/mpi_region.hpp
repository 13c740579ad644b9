#pragma once
// Internal to parc_comm: what the MPI endpoint (mpi_endpoint.cpp), the regions it opens
// (mpi_region.cpp) and their settling at shutdown (mpi_settle.cpp) share.

#include "mpi_endpoint.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <vector>

// Names of their own, apart from serial mode's (loopback.cpp) of the same ideas.
namespace parc::mpi {

struct PendingSend {
  Bytes frame;  // a whole frame (without tails)
  MPI_Request request = MPI_REQUEST_NULL;
  // A part of a frame with tails, sent as a message of its own: the tail's owner, or the
  // frame's buffer for a part of it.
  std::shared_ptr<const void> part;
  std::int64_t traced_since = -1;  // a large message's post time, for its trace event
  std::size_t bytes = 0;
  int from = -1;
  int dest = -1;
};
using SendList = std::list<PendingSend>;  // stable addresses: MPI holds the buffers

// Drops the sends that have completed. Never throws (it runs in destructors; MPI errors
// abort under the default error handler anyway).
void reap(SendList& sends);

// Every buffer a region's MPI operations read or write. A cancelled region leaves
// operations pending that MPI may still progress (in any later MPI call), so they must
// outlive the region: callers' data is copied in and out rather than handed to MPI.
struct RegionBuffers {
  Bytes send;
  Bytes recv;
  std::uint64_t size_word = 0;
  std::vector<std::uint64_t> sizes;
  std::vector<int> counts;
  std::vector<int> displacements;
};

// One MPI collective as this rank posted it: what a rank that never reached it must post
// at shutdown for it to complete (see settle_regions).
enum class CollectiveKind : std::uint8_t {
  barrier,
  bcast_size,
  bcast,
  gather_size,
  gatherv,
  allgather_size,
  allgatherv,
  scatter_size,
  scatterv,
  allreduce,
  reduce,
};

struct PostedCollective {
  std::uint64_t number = 0;  // 1, 2, ... in the region's order
  CollectiveKind kind = CollectiveKind::barrier;
  std::int32_t root = 0;
  std::int32_t count = 0;  // bytes or elements; a gatherv's or scatterv's: this rank's part
  std::uint8_t type = 0;   // ScalarType and ReduceOp of a reduction
  std::uint8_t op = 0;
  std::vector<int> counts;  // every rank's part, where this rank knows them (v-variants)
};

// What a region left on this rank that may still need peers: its communicator, counts and
// log for settling (settle_regions), and what its pending operations use.
struct RegionState {
  std::uint64_t id = 0;
  std::vector<int> members;
  int rank = -1;
  MPI_Comm comm = MPI_COMM_NULL;
  std::uint64_t posted = 0;  // collectives
  std::vector<PostedCollective> log;
  std::vector<std::uint64_t> sent;         // messages, per region rank
  std::vector<std::uint64_t> received;     // the same, with a receive under way
  MPI_Request pending = MPI_REQUEST_NULL;  // the operation it was waiting in
  std::unique_ptr<RegionBuffers> buffers;
  SendList sends;
};

// Receives and drops one message from `source` (or MPI_ANY_SOURCE) on `comm` if one is
// there (what nobody will read any more, at shutdown); false when none is, or the probe
// failed. `status` gets its envelope.
bool drop_message(int source, MPI_Comm comm, MPI_Status& status);

// Keeps what unsettled regions left behind for the rest of the process: their pending
// operations may never complete, so there is no moment at which freeing would be safe.
void bury(RegionState state);

MPI_Datatype mpi_type(ScalarType type);
MPI_Op mpi_op(ReduceOp op);

// What a region hands back to the endpoint that opened it.
class RegionHost {
 public:
  // A region's control message to world rank `dest` (region_done, region_cancel).
  virtual void send_control(int dest, MessageKind kind, Bytes&& frame) = 0;
  // Its sends still in flight when it closes: the endpoint completes them.
  virtual void adopt(SendList& sends) = 0;
  // A region that finished here with every operation complete: its communicator serves
  // the next region over the same members (creating one is a blocking collective).
  virtual void keep(RegionState state) = 0;
  // A cancelled region, for settle_regions at shutdown.
  virtual void abandon(RegionState state) = 0;

 protected:
  ~RegionHost() = default;
};

// Region rank `rank` of `members` (world ranks) over `comm`; `poll` runs while it waits.
// It hands itself back to `host` when destroyed.
std::unique_ptr<RegionComm> make_mpi_region(RegionHost& host, std::uint64_t id,
                                            std::vector<int> members, int rank, MPI_Comm comm,
                                            std::function<void()> poll);

// At shutdown, on every rank (each idle, none sending on the endpoint any more once all
// have come): completes what `regions` (this rank's cancelled ones and its kept one) left
// pending here and on their peers. `all_here` runs once every rank has come; `patience`
// bounds the whole. Returns the regions it settled (or that needed nothing), whose
// communicators may be freed; none when not every rank came.
std::vector<RegionState*> settle_regions(const std::vector<RegionState*>& regions, MPI_Comm parent,
                                         int size, std::chrono::milliseconds patience,
                                         const std::function<void()>& all_here);

}  // namespace parc::mpi
