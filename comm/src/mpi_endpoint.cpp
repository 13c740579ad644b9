#include "mpi_region.hpp"

#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <memory>
#include <string>

namespace parc {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("parc: ") + what + " failed: " + std::string(text, length));
}

namespace {

using mpi::bury;
using mpi::drop_message;
using mpi::make_mpi_region;
using mpi::PendingSend;
using mpi::reap;
using mpi::RegionHost;
using mpi::RegionState;
using mpi::SendList;
using mpi::settle_regions;

// The tag of every message of a frame after its first (its tails, and the parts of its
// buffer between and after them): they follow the first from the same sender on the same
// communicator, so MPI's ordering matches them to the frame just received (kinds are
// 1..10).
constexpr int tail_tag = 64;

class MpiEndpoint final : public Endpoint, private RegionHost {
 public:
  MpiEndpoint(int rank, int size) : rank_(rank), size_(size) {
    for (auto& comm : comms_) check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &region_parent_), "MPI_Comm_dup");
    // A failed region operation (or creation) must become that region's error, not end
    // the job; regions' communicators inherit this.
    MPI_Comm_set_errhandler(region_parent_, MPI_ERRORS_RETURN);
  }

  ~MpiEndpoint() override {
    // Sends still in flight at shutdown go to ranks that no longer read them.
    for (auto& pending : pending_) MPI_Request_free(&pending.request);
    for (auto& comm : comms_) MPI_Comm_free(&comm);
    if (kept_.comm != MPI_COMM_NULL) MPI_Comm_free(&kept_.comm);
    for (auto& state : abandoned_) bury(std::move(state));  // settle() did not complete them
    MPI_Comm_free(&region_parent_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  using Endpoint::send;
  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) override {
    finish_frame(frame, kind);
    if (traffic == Traffic::steal) {  // see Traffic: no pending list shared between threads
      check_mpi(MPI_Send(frame.data(), static_cast<int>(frame.size()), MPI_BYTE, dest,
                         static_cast<int>(kind), comm(traffic)),
                "MPI_Send");
      return;
    }
    pending_.push_back(PendingSend{std::move(frame), MPI_REQUEST_NULL, nullptr});
    PendingSend& pending = pending_.back();
    pending.bytes = pending.frame.size();
    if (trace::enabled && pending.frame.size() >= trace::message_event_bytes) {
      pending.traced_since = trace::now_ns();
      pending.from = rank_;
      pending.dest = dest;
    }
    check_mpi(MPI_Isend(pending.frame.data(), static_cast<int>(pending.frame.size()), MPI_BYTE,
                        dest, static_cast<int>(kind), comm(traffic), &pending.request),
              "MPI_Isend");
  }

  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame, Splices tails) override {
    std::erase_if(tails, [](const Splice& splice) { return splice.tail.size == 0; });
    if (tails.empty()) {
      send(traffic, dest, kind, std::move(frame));
      return;
    }
    std::size_t at = sizeof(FrameHeader);
    for (const Splice& splice : tails) {
      if (splice.at < at || splice.at > frame.size()) {
        throw std::logic_error("parc: a frame's tails are out of order or outside its buffer");
      }
      at = splice.at;
      if (splice.tail.size > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw UsageError("parc: a message of " + std::to_string(splice.tail.size) +
                         " bytes is larger than MPI's count limit (2 GiB): split the data");
      }
    }
    finish_frame(frame, kind, spliced_size(tails));
    // The frame's first part goes on the kind's tag; every part after it (each tail, and
    // the buffer's bytes between and after them) as a message of its own on tail_tag,
    // each straight from where it lies: contiguous, so MPI moves it without packing (a
    // single copy within a node).
    auto buffer = std::make_shared<const Bytes>(std::move(frame));
    int tag = static_cast<int>(kind);
    const auto post = [&](const char* data, std::size_t size, std::shared_ptr<const void> part) {
      pending_.push_back(PendingSend{Bytes{}, MPI_REQUEST_NULL, std::move(part)});
      PendingSend& pending = pending_.back();
      pending.bytes = size;
      if (trace::enabled && size >= trace::message_event_bytes) {
        pending.traced_since = trace::now_ns();
        pending.from = rank_;
        pending.dest = dest;
      }
      check_mpi(MPI_Isend(data, static_cast<int>(size), MPI_BYTE, dest, tag, comm(traffic),
                          &pending.request),
                "MPI_Isend");
      tag = tail_tag;
    };
    std::size_t from = 0;
    for (Splice& splice : tails) {
      if (splice.at > from) post(buffer->data() + from, splice.at - from, buffer);
      post(splice.tail.data, splice.tail.size, std::move(splice.tail.owner));
      from = splice.at;
    }
    if (buffer->size() > from) post(buffer->data() + from, buffer->size() - from, buffer);
  }

  std::optional<Message> try_receive(Traffic traffic) override {
    int flag = 0;
    MPI_Message handle;
    MPI_Status status;
    check_mpi(MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm(traffic), &flag, &handle, &status),
              "MPI_Improbe");
    if (!flag) return std::nullopt;
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    Message message;
    message.source = status.MPI_SOURCE;
    message.frame.resize(static_cast<std::size_t>(count));
    trace::Span span(trace::Category::message, rank_, "receive");
    check_mpi(MPI_Mrecv(message.frame.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE),
              "MPI_Mrecv");
    if (status.MPI_TAG != tail_tag) receive_tail(traffic, message);
    span.set_peer(message.source);
    span.set_bytes(message.frame.size());  // with its tail
    if (message.frame.size() < trace::message_event_bytes) span.drop();
    message.kind = check_frame(message.frame, message.source);
    return message;
  }

  // A frame whose header announces more body than it carries is followed by the rest of
  // it, in one or more messages (see send); check_frame then rejects a frame that still
  // falls short.
  void receive_tail(Traffic traffic, Message& message) {
    std::size_t received = message.frame.size();
    if (received < sizeof(FrameHeader) ||
        announced_body_size(message.frame) <= received - sizeof(FrameHeader)) {
      return;
    }
    const std::uint64_t announced = announced_body_size(message.frame);
    const auto lacking = [&] {
      return "parc: a message from rank " + std::to_string(message.source) + " announces " +
             std::to_string(announced) + " body bytes but carries " +
             std::to_string(received - sizeof(FrameHeader));
    };
    // Room for all of it at once, so that no part is copied again as the frame grows.
    try {
      message.frame.reserve(sizeof(FrameHeader) + announced);
    } catch (const std::exception&) {  // bad_alloc, length_error: a size no frame has
      throw DecodeError(lacking());
    }
    // The sender posts every part right after the first, so each is announced at once; a
    // frame that lies about its size must not hang this rank.
    while (received - sizeof(FrameHeader) < announced) {
      MPI_Message handle;
      MPI_Status status;
      int found = 0;
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!found) {
        check_mpi(MPI_Improbe(message.source, tail_tag, comm(traffic), &found, &handle, &status),
                  "MPI_Improbe");
        if (!found && std::chrono::steady_clock::now() > give_up) {
          throw DecodeError(lacking() + " and no continuation followed");
        }
      }
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      const auto part = static_cast<std::size_t>(count);
      if (part > announced - (received - sizeof(FrameHeader))) {
        // Receive it anyway (it must not match a later frame), then reject the frame.
        Bytes discarded(part);
        MPI_Mrecv(discarded.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
        throw DecodeError(lacking() + " and continues with " + std::to_string(part) +
                          " bytes more than that");
      }
      message.frame.resize(received + part);
      check_mpi(
          MPI_Mrecv(message.frame.data() + received, count, MPI_BYTE, &handle, MPI_STATUS_IGNORE),
          "MPI_Mrecv");
      received += part;
    }
  }

  bool has_incoming() override {
    for (Traffic traffic : {Traffic::tasks, Traffic::control}) {  // steal: the progress thread's
      const MPI_Comm c = comm(traffic);
      int flag = 0;
      // An error is for the owner's next receive to report.
      if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
          flag) {
        return true;
      }
    }
    return false;
  }

  bool progress() override {
    reap(pending_);
    return !pending_.empty();
  }

  std::unique_ptr<RegionComm> open_region(std::uint64_t id, const std::vector<int>& members,
                                          std::function<void()> poll,
                                          KeptCommunicator kept_mode) override {
    int region_rank = -1;
    for (std::size_t i = 0; i < members.size(); ++i) {
      const int member = members[i];
      if (member < 0 || member >= size_) {
        throw UsageError("parc: open_region: member " + std::to_string(member) +
                         " is not a rank of this job (0.." + std::to_string(size_ - 1) + ")");
      }
      if (std::find(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(i), member) !=
          members.begin() + static_cast<std::ptrdiff_t>(i)) {
        throw UsageError("parc: open_region: rank " + std::to_string(member) +
                         " is listed twice among the members");
      }
      if (member == rank_) region_rank = static_cast<int>(i);
    }
    if (region_rank < 0) {
      throw UsageError("parc: open_region: this rank (" + std::to_string(rank_) +
                       ") is not among the region's members");
    }
    if (kept_mode == KeptCommunicator::reuse) {
      if (kept_.comm == MPI_COMM_NULL || kept_.members != members) {
        throw std::logic_error(
            "parc: open_region: the manager asked to reuse a communicator "
            "this rank did not keep");
      }
      const MPI_Comm comm = std::exchange(kept_, RegionState{}).comm;
      return make_mpi_region(*this, id, members, region_rank, comm, std::move(poll));
    }
    if (kept_.comm != MPI_COMM_NULL) {
      // Abandoned ones are settled at shutdown, never freed before: see ~MpiRegion.
      if (kept_mode == KeptCommunicator::release) {
        MPI_Comm_free(&kept_.comm);
      } else {
        abandoned_.push_back(std::move(kept_));
      }
      kept_ = RegionState{};
    }
    MPI_Group world_group;
    MPI_Group group;
    check_mpi(MPI_Comm_group(region_parent_, &world_group), "MPI_Comm_group");
    check_mpi(MPI_Group_incl(world_group, static_cast<int>(members.size()), members.data(), &group),
              "MPI_Group_incl");
    // Collective over the members only. The tag keeps creations of different regions
    // apart on the shared parent.
    MPI_Comm comm = MPI_COMM_NULL;
    const int code = MPI_Comm_create_group(region_parent_, group,
                                           static_cast<int>(id % (max_region_tag + 1)), &comm);
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    if (code != MPI_SUCCESS) {
      try {
        check_mpi(code, "MPI_Comm_create_group");
      } catch (const std::exception& e) {
        throw std::runtime_error(
            std::string(e.what()) +
            " (every SPMD region cancelled by a failure or a timeout keeps its MPI "
            "communicator for the rest of the job, and MPICH has about 2000)");
      }
    }
    return make_mpi_region(*this, id, members, region_rank, comm, std::move(poll));
  }

  void settle(std::chrono::milliseconds patience) override {
    std::vector<RegionState*> regions;
    for (auto& state : abandoned_) regions.push_back(&state);
    if (kept_.comm != MPI_COMM_NULL) regions.push_back(&kept_);  // clean here, maybe not elsewhere
    const auto settled =
        settle_regions(regions, region_parent_, size_, patience, [this] { drain_unread(); });
    // Settled ones go; the others stay buried for the rest of the process (~MpiEndpoint).
    std::erase_if(abandoned_, [&](RegionState& state) {
      if (std::find(settled.begin(), settled.end(), &state) == settled.end()) return false;
      MPI_Comm_free(&state.comm);
      return true;
    });
  }

  // Messages nobody reads any more (a revoke that crossed the end of its batch): taken
  // and dropped at shutdown, since MPI wants every message matched before it finalizes.
  void drain_unread() {
    for (const MPI_Comm comm : comms_) {
      MPI_Status status;
      while (drop_message(MPI_ANY_SOURCE, comm, status)) {
        log().debug("shutdown: dropped a message of kind {} from rank {} that nobody read",
                    status.MPI_TAG, status.MPI_SOURCE);
      }
    }
  }

 private:
  // --- RegionHost: what a closing region hands back ---
  void send_control(int dest, MessageKind kind, Bytes&& frame) override {
    send(Traffic::control, dest, kind, std::move(frame));
  }
  // Completed by progress().
  void adopt(SendList& sends) override { pending_.splice(pending_.end(), sends); }
  void keep(RegionState state) override {
    // Usually open_region took the previous one; not when two regions were open at once.
    if (kept_.comm != MPI_COMM_NULL) MPI_Comm_free(&kept_.comm);
    kept_ = std::move(state);
  }
  void abandon(RegionState state) override { abandoned_.push_back(std::move(state)); }

  MPI_Comm comm(Traffic traffic) const { return comms_[static_cast<std::size_t>(traffic)]; }

  int rank_;
  int size_;
  std::array<MPI_Comm, traffic_class_count> comms_{};
  MPI_Comm region_parent_ = MPI_COMM_NULL;  // regions' communicators are made from it
  SendList pending_;
  RegionState kept_;  // of the last region, for the next (see keep)
  std::vector<RegionState> abandoned_;
};

}  // namespace

std::unique_ptr<Endpoint> make_mpi_endpoint(int rank, int size) {
  return std::make_unique<MpiEndpoint>(rank, size);
}

}  // namespace parc
