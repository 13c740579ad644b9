// Settling, at shutdown, what SPMD regions left pending (see settle_regions).

#include "mpi_region.hpp"

#include <parc/comm/backoff.hpp>
#include <parc/comm/log.hpp>

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <map>
#include <set>

namespace parc::mpi {

namespace {

// --- settling abandoned regions at shutdown -------------------------------------------
//
// MPI requires every rank to complete its part of every operation before MPI_Finalize
// (UCX prints "was not returned to mpool" / "unexpected tag-receive descriptor" for the
// leftovers). A cancelled region leaves some ranks inside a collective the others never
// posted, receives under way, and messages nobody received. At shutdown every rank is
// idle, so each posts, with throwaway buffers, the collectives its peers posted after it
// stopped (the log of each rank gives their arguments), and receives the messages sent
// to it that it never took; then everything completes.

// What a rank tells the others about one region.
struct RegionRecord {
  std::uint64_t posted = 0;
  std::vector<std::uint64_t> sent;
  std::vector<std::uint64_t> received;
  std::vector<PostedCollective> log;
};

void encode_record(ByteWriter& out, const RegionState& state) {
  out.write(state.id);
  out.write(state.posted);
  out.write(state.sent);
  out.write(state.received);
  out.write(static_cast<std::uint64_t>(state.log.size()));
  for (const auto& c : state.log) {
    out.write(c.number);
    out.write(static_cast<std::uint8_t>(c.kind));
    out.write(c.root);
    out.write(c.count);
    out.write(c.type);
    out.write(c.op);
    out.write(c.counts);
  }
}

// (world rank, region id) -> record, from every rank's encoded records.
std::map<std::pair<int, std::uint64_t>, RegionRecord> decode_records(
    const Bytes& all, const std::vector<int>& sizes) {
  std::map<std::pair<int, std::uint64_t>, RegionRecord> records;
  std::size_t offset = 0;
  for (std::size_t world = 0; world < sizes.size(); ++world) {
    ByteReader in(all.data() + offset, static_cast<std::size_t>(sizes[world]));
    offset += static_cast<std::size_t>(sizes[world]);
    for (auto n = in.read<std::uint64_t>(); n > 0; --n) {
      const auto id = in.read<std::uint64_t>();
      RegionRecord& record = records[{static_cast<int>(world), id}];
      record.posted = in.read<std::uint64_t>();
      record.sent = in.read<std::vector<std::uint64_t>>();
      record.received = in.read<std::vector<std::uint64_t>>();
      for (auto entries = in.read<std::uint64_t>(); entries > 0; --entries) {
        PostedCollective& c = record.log.emplace_back();
        c.number = in.read<std::uint64_t>();
        c.kind = static_cast<CollectiveKind>(in.read<std::uint8_t>());
        c.root = in.read<std::int32_t>();
        c.count = in.read<std::int32_t>();
        c.type = in.read<std::uint8_t>();
        c.op = in.read<std::uint8_t>();
        c.counts = in.read<std::vector<int>>();
      }
    }
  }
  return records;
}

// A collective posted only to complete it, and its throwaway buffers.
struct Replay {
  Bytes send;
  Bytes recv;
  std::vector<std::uint64_t> words;
  std::vector<int> counts;
  std::vector<int> displacements;
  MPI_Request request = MPI_REQUEST_NULL;
};

// Posts `c` as region rank `rank` of `size`. `counts`: each rank's part of a v-variant.
void post_replay(Replay& x, const PostedCollective& c, std::vector<int> counts, int rank, int size,
                 MPI_Comm comm) {
  const auto n = static_cast<std::size_t>(size);
  const bool root = rank == c.root;
  x.words.assign(n + 1, 0);  // words[n]: this rank's own
  x.counts = std::move(counts);
  x.displacements.assign(n, 0);
  int total = 0;
  for (std::size_t r = 0; r < x.counts.size(); ++r) {
    x.displacements[r] = total;
    total += x.counts[r];
  }
  const int mine = x.counts.empty() ? 0 : x.counts[static_cast<std::size_t>(rank)];
  std::uint64_t* own = &x.words[n];
  MPI_Request* request = &x.request;
  switch (c.kind) {
    case CollectiveKind::barrier:
      MPI_Ibarrier(comm, request);
      return;
    case CollectiveKind::bcast_size:
      MPI_Ibcast(own, 1, MPI_UINT64_T, c.root, comm, request);
      return;
    case CollectiveKind::bcast:
      x.recv.resize(static_cast<std::size_t>(c.count));
      MPI_Ibcast(x.recv.data(), c.count, MPI_BYTE, c.root, comm, request);
      return;
    case CollectiveKind::gather_size:
      MPI_Igather(own, 1, MPI_UINT64_T, x.words.data(), 1, MPI_UINT64_T, c.root, comm, request);
      return;
    case CollectiveKind::gatherv:
      x.send.resize(static_cast<std::size_t>(mine));
      x.recv.resize(root ? static_cast<std::size_t>(total) : 0);
      MPI_Igatherv(x.send.data(), mine, MPI_BYTE, x.recv.data(), x.counts.data(),
                   x.displacements.data(), MPI_BYTE, c.root, comm, request);
      return;
    case CollectiveKind::allgather_size:
      MPI_Iallgather(own, 1, MPI_UINT64_T, x.words.data(), 1, MPI_UINT64_T, comm, request);
      return;
    case CollectiveKind::allgatherv:
      x.send.resize(static_cast<std::size_t>(mine));
      x.recv.resize(static_cast<std::size_t>(total));
      MPI_Iallgatherv(x.send.data(), mine, MPI_BYTE, x.recv.data(), x.counts.data(),
                      x.displacements.data(), MPI_BYTE, comm, request);
      return;
    case CollectiveKind::scatter_size:
      MPI_Iscatter(x.words.data(), 1, MPI_UINT64_T, own, 1, MPI_UINT64_T, c.root, comm, request);
      return;
    case CollectiveKind::scatterv:
      x.send.resize(root ? static_cast<std::size_t>(total) : 0);
      x.recv.resize(static_cast<std::size_t>(mine));
      MPI_Iscatterv(x.send.data(), x.counts.data(), x.displacements.data(), MPI_BYTE, x.recv.data(),
                    mine, MPI_BYTE, c.root, comm, request);
      return;
    case CollectiveKind::allreduce:
    case CollectiveKind::reduce: {
      const auto type = static_cast<ScalarType>(c.type);
      x.recv.resize(static_cast<std::size_t>(c.count) * scalar_size(type));
      const MPI_Op op = mpi_op(static_cast<ReduceOp>(c.op));
      if (c.kind == CollectiveKind::allreduce) {
        MPI_Iallreduce(MPI_IN_PLACE, x.recv.data(), c.count, mpi_type(type), op, comm, request);
      } else {
        MPI_Ireduce(root ? MPI_IN_PLACE : x.recv.data(), root ? x.recv.data() : nullptr, c.count,
                    mpi_type(type), op, c.root, comm, request);
      }
      return;
    }
  }
}

// True once `request` is done; an operation that failed is done too (its error no longer
// matters at shutdown).
bool finished(MPI_Request& request) {
  if (request == MPI_REQUEST_NULL) return true;
  int done = 0;
  if (MPI_Test(&request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) request = MPI_REQUEST_NULL;
  return done != 0 || request == MPI_REQUEST_NULL;
}

// One region being settled on this rank.
struct Settling {
  RegionState* state;
  std::list<Replay> replays;           // stable addresses: MPI holds the buffers
  std::vector<std::uint64_t> missing;  // messages still to receive, per region rank
};

}  // namespace

std::vector<RegionState*> settle_regions(const std::vector<RegionState*>& regions, MPI_Comm parent,
                                         int size, std::chrono::milliseconds patience,
                                         const std::function<void()>& all_here) {
  Bytes encoded;
  ByteWriter out(encoded);
  out.write(static_cast<std::uint64_t>(regions.size()));
  for (const RegionState* state : regions) encode_record(out, *state);
  // Blocking, over every rank: each is here, idle, at shutdown.
  std::vector<int> sizes(static_cast<std::size_t>(size));
  const int length = static_cast<int>(encoded.size());
  // Non-blocking, with the same patience: a rank that never comes (a program whose rank 0
  // skipped rt.run's shutdown) must not hang the others at exit.
  const auto deadline = std::chrono::steady_clock::now() + patience;
  Backoff backoff;
  MPI_Request exchange = MPI_REQUEST_NULL;
  check_mpi(MPI_Iallgather(&length, 1, MPI_INT, sizes.data(), 1, MPI_INT, parent, &exchange),
            "MPI_Iallgather");
  while (!finished(exchange)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      log().debug("shutdown: not every rank came to settle SPMD regions; leaving them");
      return {};
    }
    backoff.pause();
  }
  all_here();
  if (std::all_of(sizes.begin(), sizes.end(), [](int n) { return n == 8; })) return {};
  std::vector<int> displacements(sizes.size());
  int total = 0;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    displacements[r] = total;
    total += sizes[r];
  }
  Bytes all(static_cast<std::size_t>(total));
  check_mpi(MPI_Allgatherv(encoded.data(), length, MPI_BYTE, all.data(), sizes.data(),
                           displacements.data(), MPI_BYTE, parent),
            "MPI_Allgatherv");
  const auto records = decode_records(all, sizes);

  std::list<Settling> work;
  for (RegionState* state : regions) {
    const auto n = state->members.size();
    std::vector<const RegionRecord*> peers;
    for (const int member : state->members) {
      auto it = records.find({member, state->id});
      if (it == records.end()) break;  // a member kept nothing of it: nothing to match
      peers.push_back(&it->second);
    }
    if (peers.size() != n) continue;
    Settling& s = work.emplace_back(Settling{state, {}, std::vector<std::uint64_t>(n, 0)});
    std::uint64_t last = state->posted;
    for (const auto* peer : peers) last = std::max(last, peer->posted);
    for (std::uint64_t number = state->posted + 1; number <= last; ++number) {
      const PostedCollective* found = nullptr;
      std::vector<int> counts(n, 0);
      bool all_counts = false;
      for (std::size_t q = 0; q < n; ++q) {
        for (const auto& c : peers[q]->log) {
          if (c.number != number) continue;
          if (!found) found = &c;
          if (!c.counts.empty() && !all_counts) {
            counts = c.counts;
            all_counts = true;
          } else if (!all_counts) {
            counts[q] = c.count;  // a non-root's own part of a gatherv or scatterv
          }
        }
      }
      if (!found) break;  // no rank logged it: cannot happen for a rank that posted it
      post_replay(s.replays.emplace_back(), *found, std::move(counts), state->rank,
                  static_cast<int>(n), state->comm);
    }
    for (std::size_t q = 0; q < n; ++q) {
      const std::uint64_t sent =
          peers[q]->sent.size() == n ? peers[q]->sent[static_cast<std::size_t>(state->rank)] : 0;
      const std::uint64_t got = state->received.size() == n ? state->received[q] : 0;
      s.missing[q] = sent > got ? sent - got : 0;
    }
  }

  while (!work.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = work.begin(); it != work.end();) {
      RegionState& state = *it->state;
      bool done = finished(state.pending);
      for (auto& replay : it->replays) done = finished(replay.request) && done;
      for (std::size_t q = 0; q < it->missing.size(); ++q) {
        MPI_Status status;
        while (it->missing[q] > 0 && drop_message(static_cast<int>(q), state.comm, status)) {
          --it->missing[q];
        }
        done = done && it->missing[q] == 0;
      }
      reap(state.sends);
      done = done && state.sends.empty();
      it = done ? work.erase(it) : std::next(it);
    }
    backoff.pause();
  }
  std::set<RegionState*> unsettled;
  for (const auto& s : work) unsettled.insert(s.state);
  if (!work.empty()) {
    log().debug(
        "{} SPMD region(s) could not be completed before shutdown; MPI may warn of "
        "unfinished operations at exit",
        work.size());
  }
  std::vector<RegionState*> settled;
  for (RegionState* state : regions) {
    if (!unsettled.contains(state)) settled.push_back(state);
  }
  return settled;
}

}  // namespace parc::mpi
