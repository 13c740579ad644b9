#pragma once
// Decoding the manager's and the workers' messages (docs/architecture.md, "Wire format").
// Each function checks counts, lengths and enum values against the bytes received before
// it allocates or loops, and throws DecodeError naming the sending rank. None needs MPI:
// the fuzz targets (fuzz/) call them on arbitrary bytes.

#include <parc/closures/closure.hpp>
#include <parc/comm/archive.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/exceptions/error_info.hpp>
#include <parc/managers/worker.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace parc::detail {

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
std::uint32_t read_task_count(ByteReader& body, int source);
TaskRecord read_task(ByteReader& body, int source);

// --- result_batch (worker -> manager) ---
struct TaskOutcome {
  std::uint64_t task_id = 0;
  TaskStatus status = TaskStatus::ok;
  std::uint64_t duration_ns = 0;
  ByteReader payload{nullptr, 0};
};
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
RegionStart read_region_start(ByteReader& body, int source);

struct RegionOutcome {
  std::uint64_t id = 0;
  TaskStatus status = TaskStatus::ok;
  ByteReader payload{nullptr, 0};
  bool reusable = false;
  std::vector<std::uint64_t> sent;
  std::vector<std::uint64_t> received;
};
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
