#pragma once
// The manager's and the workers' messages (docs/architecture.md, "Wire format"): each
// family's encoder and decoder, side by side. The decoders check counts, lengths and enum
// values against the bytes received before they allocate or loop, and throw DecodeError
// naming the sending rank. None needs MPI: the fuzz targets (fuzz/) call them on arbitrary
// bytes. The Bytes the writers return (or append to) come from begin_frame().

#include <parc/closures/closure.hpp>
#include <parc/comm/archive.hpp>
#include <parc/comm/detail/region_wire.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/exceptions/error_info.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace parc::detail {

enum class TaskStatus : std::uint8_t { ok = 0, error = 1, cancelled = 2 };
// A failure of this task cancels the rest of its farm generation on the worker too.
inline constexpr std::uint8_t task_flag_fail_fast = 1;
// A result batch with this count carries only a message: the worker could not decode
// the task batch, and every task of it failed.
inline constexpr std::uint32_t batch_rejected = 0xFFFFFFFF;

// The fixed part of a task record and of an outcome record: a count claiming more
// records than these sizes allow for is rejected before anything runs.
inline constexpr std::size_t task_record_header_size = 8 + 4 + 4 + 4 + 1 + 8;
inline constexpr std::size_t outcome_record_header_size = 8 + 1 + 8 + 8;

// --- task_batch (manager -> worker) ---
struct TaskRecord {
  std::uint64_t task_id = 0;
  ClosureId closure = 0;
  std::uint32_t farm = 0;
  std::uint32_t generation = 0;
  std::uint8_t flags = 0;
  ByteReader arguments{nullptr, 0};
};
void write_task_count(ByteWriter& out, std::uint32_t count);
// The record, its arguments (`task.arguments`' bytes) followed by `tail_size` more that the
// endpoint sends as the frame's tail (see Endpoint::send).
void write_task(ByteWriter& out, const TaskRecord& task, std::uint64_t tail_size = 0);
std::uint32_t read_task_count(ByteReader& body, int source);
TaskRecord read_task(ByteReader& body, int source);

// --- result_batch (worker -> manager) ---
struct TaskOutcome {
  std::uint64_t task_id = 0;
  TaskStatus status = TaskStatus::ok;
  std::uint64_t duration_ns = 0;
  ByteReader payload{nullptr, 0};
};
// An outcome is written before its task runs and closed after: the payload (a result or
// an ErrorInfo) goes in place after a header whose status, duration and size
// close_outcome() fills in. Task outcomes and region outcomes both.
struct OpenOutcome {
  std::size_t header_at = 0;
  ByteWriter::Mark payload_at;
};
void write_outcome_count(ByteWriter& out, std::uint32_t count);
OpenOutcome open_outcome(ByteWriter& out, std::uint64_t task_id);
// The payload is what was written since open_outcome(), tails included.
void close_outcome(Bytes& frame, const ByteWriter& out, const OpenOutcome& open, TaskStatus status,
                   std::uint64_t duration_ns);
// A task that did not run (cancelled): no payload.
void write_empty_outcome(ByteWriter& out, std::uint64_t task_id, TaskStatus status);
// The whole reply to a batch the worker could not decode.
Bytes write_batch_rejected(const std::string& reason);
// The number of outcomes; a worker's rejection of the batch throws DecodeError with its
// reason.
std::uint32_t read_outcome_count(ByteReader& body, int source);
TaskOutcome read_outcome(ByteReader& body, int source);

// An ErrorInfo sent by `source` (a failed task or region rank, a proxy call's failure).
ErrorInfo read_error_info(ByteReader& payload, int source);

// --- SPMD regions ---
struct RegionStart {
  std::uint64_t id = 0;
  ClosureId closure = 0;
  std::vector<int> members;
  KeptCommunicator kept = KeptCommunicator::release;
  ByteReader arguments{nullptr, 0};
};
Bytes write_region_start(const RegionStart& start);
RegionStart read_region_start(ByteReader& body, int source);

struct RegionOutcome {
  std::uint64_t id = 0;
  TaskStatus status = TaskStatus::ok;
  ByteReader payload{nullptr, 0};
  bool reusable = false;
  std::vector<std::uint64_t> sent;
  std::vector<std::uint64_t> received;
};
// A region rank's reply: opened like a task's outcome (without a duration), then closed,
// then this rank's communicator hygiene: whether it may be reused, and the messages sent
// to and received from each region rank (the manager checks that none is left).
OpenOutcome open_region_outcome(ByteWriter& out, std::uint64_t region);
void close_region_outcome(Bytes& frame, ByteWriter& out, const OpenOutcome& open, TaskStatus status,
                          bool reusable, const std::vector<std::uint64_t>& sent,
                          const std::vector<std::uint64_t>& received);
// After the id (read first: the manager looks the region up by it).
void read_region_outcome(ByteReader& body, int source, RegionOutcome& outcome);

// --- the control channel: cancel, shutdown, region_cancel, region_done ---
struct ControlMessage {
  MessageKind kind{};
  std::uint32_t farm = 0;        // cancel
  std::uint32_t generation = 0;  // cancel
  std::uint64_t after_task = 0;  // cancel: only tasks with a larger id (0: all)
  std::int32_t exit_code = 0;    // shutdown
  std::uint64_t region = 0;      // region_cancel, region_done
  std::string reason;            // region_cancel
  std::int32_t region_rank = 0;  // region_done
  std::uint64_t collectives = 0;
  std::map<int, std::uint64_t> sends;
};
ControlMessage read_control(const Message& message);
// The body of a cancel: skip the tasks of `farm` of a generation up to `generation` whose
// id is larger than `after_task` (0: all of them).
Bytes write_cancel(std::uint32_t farm, std::uint32_t generation, std::uint64_t after_task);
// The body of a shutdown: leave the serve loop; the job exits with `exit_code`.
Bytes write_shutdown(std::int32_t exit_code);
// region_cancel and region_done: comm's region_wire.hpp (a region's ranks send them too).

// --- the steal channel: a manager takes back a batch sent ahead (docs/threading.md) ---
// A batch is named by its first task's id, and counted: the sequence-th batch the manager
// sent that worker (so the worker knows whether it has taken it in, however long ago).
struct Revoke {
  std::uint64_t batch = 0;
  std::uint64_t sequence = 0;
};
Bytes write_revoke(const Revoke& revoke);
Revoke read_revoke(const Message& message);
struct RevokeAnswer {
  std::uint64_t batch = 0;
  bool given_back = false;  // false: the worker had started it, and runs it
};
Bytes write_revoke_answer(const RevokeAnswer& answer);
RevokeAnswer read_revoke_answer(const Message& message);

// --- start-up: the closure tables of every rank (their "name : signature" lines) ---
// What differs from rank 0's table, one line per difference; empty when all agree.
std::string closure_table_differences(const std::vector<std::string>& tables);

}  // namespace parc::detail
