#include <parc/managers/detail/wire.hpp>

#include <parc/comm/frame.hpp>

#include <cstring>
#include <set>
#include <sstream>

namespace parc::detail {

namespace {

std::string from(int source) { return "from rank " + std::to_string(source); }

TaskStatus checked_status(std::uint8_t status, int source, const char* what) {
  if (status > static_cast<std::uint8_t>(TaskStatus::cancelled)) {
    throw DecodeError("parc: " + std::string(what) + " " + from(source) + " has unknown status " +
                      std::to_string(status));
  }
  return static_cast<TaskStatus>(status);
}

void check_count(std::uint64_t count, std::size_t record_size, const ByteReader& body, int source,
                 const char* what) {
  if (count > body.remaining() / record_size) {
    throw DecodeError("parc: a " + std::string(what) + " " + from(source) + " claims " +
                      std::to_string(count) + " records but holds only " +
                      std::to_string(body.remaining()) + " more bytes");
  }
}

std::set<std::string> lines_of(const std::string& text) {
  std::set<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.insert(line);
  return lines;
}

// Status, then the u64s that follow it in the header, in place.
template <class... U64>
void patch_header(Bytes& frame, std::size_t at, TaskStatus status, U64... values) {
  char* header = frame.data() + at;
  std::memcpy(header, &status, sizeof status);
  header += sizeof status;
  ((std::memcpy(header, &values, sizeof(std::uint64_t)), header += sizeof(std::uint64_t)), ...);
}

}  // namespace

void write_task_count(ByteWriter& out, std::uint32_t count) { out.write(count); }

void write_task(ByteWriter& out, const TaskRecord& task, std::uint64_t tail_size) {
  out.write(task.task_id);
  out.write(task.closure);
  out.write(task.farm);
  out.write(task.generation);
  out.write(task.flags);
  const std::size_t inline_size = task.arguments.remaining();
  out.write(static_cast<std::uint64_t>(inline_size + tail_size));
  ByteReader arguments = task.arguments;
  out.write_bytes(arguments.take(inline_size).data(), inline_size);
}

std::uint32_t read_task_count(ByteReader& body, int source) {
  const auto count = body.read<std::uint32_t>();
  check_count(count, task_record_header_size, body, source, "task batch");
  return count;
}

TaskRecord read_task(ByteReader& body, int source) {
  TaskRecord task;
  task.task_id = body.read<std::uint64_t>();
  task.closure = body.read<ClosureId>();
  task.farm = body.read<std::uint32_t>();
  task.generation = body.read<std::uint32_t>();
  task.flags = body.read<std::uint8_t>();
  if ((task.flags & ~task_flag_fail_fast) != 0) {
    throw DecodeError("parc: task " + std::to_string(task.task_id) + " " + from(source) +
                      " has unknown flags " + std::to_string(task.flags));
  }
  task.arguments = body.sub_reader(body.read<std::uint64_t>());
  return task;
}

std::uint32_t read_outcome_count(ByteReader& body, int source) {
  const auto count = body.read<std::uint32_t>();
  if (count == batch_rejected) throw DecodeError(body.read<std::string>());
  check_count(count, outcome_record_header_size, body, source, "result batch");
  return count;
}

void write_outcome_count(ByteWriter& out, std::uint32_t count) { out.write(count); }

OpenOutcome open_outcome(ByteWriter& out, std::uint64_t task_id) {
  out.write(task_id);
  OpenOutcome open;
  open.header_at = out.mark().bytes;
  out.write(TaskStatus::ok);
  out.write(std::uint64_t{0});  // duration
  out.write(std::uint64_t{0});  // payload size
  open.payload_at = out.mark();
  return open;
}

void close_outcome(Bytes& frame, const ByteWriter& out, const OpenOutcome& open, TaskStatus status,
                   std::uint64_t duration_ns) {
  patch_header(frame, open.header_at, status, duration_ns,
               static_cast<std::uint64_t>(out.written_since(open.payload_at)));
}

void write_empty_outcome(ByteWriter& out, std::uint64_t task_id, TaskStatus status) {
  out.write(task_id);
  out.write(status);
  out.write(std::uint64_t{0});
  out.write(std::uint64_t{0});
}

Bytes write_batch_rejected(const std::string& reason) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(batch_rejected);
  out.write(reason);
  return frame;
}

TaskOutcome read_outcome(ByteReader& body, int source) {
  TaskOutcome outcome;
  outcome.task_id = body.read<std::uint64_t>();
  outcome.status = checked_status(body.read<std::uint8_t>(), source, "a task outcome");
  outcome.duration_ns = body.read<std::uint64_t>();
  outcome.payload = body.sub_reader(body.read<std::uint64_t>());
  return outcome;
}

ErrorInfo read_error_info(ByteReader& payload, int source) {
  ErrorInfo info;
  try {
    info = payload.read<ErrorInfo>();
  } catch (const DecodeError& e) {
    throw DecodeError("parc: an error record " + from(source) + " did not decode: " + e.what());
  }
  // Everything that reports the error reads its first exception.
  if (info.chain.empty()) {
    throw DecodeError("parc: an error record " + from(source) + " holds no exception");
  }
  return info;
}

Bytes write_region_start(const RegionStart& start) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(start.id);
  out.write(start.closure);
  out.write(start.members);
  out.write(static_cast<std::uint8_t>(start.kept));
  ByteReader arguments = start.arguments;
  const std::size_t size = arguments.remaining();
  out.write(static_cast<std::uint64_t>(size));
  out.write_bytes(arguments.take(size).data(), size);
  return frame;
}

RegionStart read_region_start(ByteReader& body, int source) {
  RegionStart start;
  start.id = body.read<std::uint64_t>();
  start.closure = body.read<ClosureId>();
  start.members = body.read<std::vector<int>>();
  const auto kept = body.read<std::uint8_t>();
  if (kept > static_cast<std::uint8_t>(KeptCommunicator::abandon)) {
    throw DecodeError("parc: the start of region " + std::to_string(start.id) + " " + from(source) +
                      " says " + std::to_string(kept) +
                      " for the kept communicator, which this build does not know");
  }
  start.kept = static_cast<KeptCommunicator>(kept);
  start.arguments = body.sub_reader(body.read<std::uint64_t>());
  return start;
}

OpenOutcome open_region_outcome(ByteWriter& out, std::uint64_t region) {
  out.write(region);
  OpenOutcome open;
  open.header_at = out.mark().bytes;
  out.write(TaskStatus::ok);
  out.write(std::uint64_t{0});  // payload size
  open.payload_at = out.mark();
  return open;
}

void close_region_outcome(Bytes& frame, ByteWriter& out, const OpenOutcome& open, TaskStatus status,
                          bool reusable, const std::vector<std::uint64_t>& sent,
                          const std::vector<std::uint64_t>& received) {
  patch_header(frame, open.header_at, status,
               static_cast<std::uint64_t>(out.written_since(open.payload_at)));
  out.write(static_cast<std::uint8_t>(reusable));
  out.write(sent);
  out.write(received);
}

void read_region_outcome(ByteReader& body, int source, RegionOutcome& outcome) {
  outcome.status = checked_status(body.read<std::uint8_t>(), source, "a region outcome");
  outcome.payload = body.sub_reader(body.read<std::uint64_t>());
  outcome.reusable = body.read<bool>();
  outcome.sent = body.read<std::vector<std::uint64_t>>();
  outcome.received = body.read<std::vector<std::uint64_t>>();
}

Bytes write_cancel(std::uint32_t farm, std::uint32_t generation, std::uint64_t after_task) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(farm);
  out.write(generation);
  out.write(after_task);
  return frame;
}

Bytes write_shutdown(std::int32_t exit_code) {
  Bytes frame = begin_frame();
  ByteWriter(frame).write(exit_code);
  return frame;
}

Bytes write_revoke(const Revoke& revoke) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(revoke.batch);
  out.write(revoke.sequence);
  return frame;
}

Revoke read_revoke(const Message& message) {
  if (message.kind != MessageKind::revoke) {
    throw DecodeError("parc: a message " + from(message.source) +
                      " on the steal channel has kind " +
                      std::to_string(static_cast<int>(message.kind)) + ", not revoke");
  }
  ByteReader body = message.body();
  Revoke revoke;
  revoke.batch = body.read<std::uint64_t>();
  revoke.sequence = body.read<std::uint64_t>();
  return revoke;
}

Bytes write_revoke_answer(const RevokeAnswer& answer) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(answer.batch);
  out.write(answer.given_back);
  return frame;
}

RevokeAnswer read_revoke_answer(const Message& message) {
  if (message.kind != MessageKind::revoke_answer) {
    throw DecodeError("parc: a message " + from(message.source) +
                      " on the steal channel has kind " +
                      std::to_string(static_cast<int>(message.kind)) + ", not revoke_answer");
  }
  ByteReader body = message.body();
  RevokeAnswer answer;
  answer.batch = body.read<std::uint64_t>();
  answer.given_back = body.read<bool>();
  return answer;
}

ControlMessage read_control(const Message& message) {
  ByteReader body = message.body();
  ControlMessage control;
  control.kind = message.kind;
  switch (message.kind) {
    case MessageKind::cancel:
      control.farm = body.read<std::uint32_t>();
      control.generation = body.read<std::uint32_t>();
      control.after_task = body.read<std::uint64_t>();
      return control;
    case MessageKind::shutdown:
      control.exit_code = body.read<std::int32_t>();
      return control;
    case MessageKind::region_cancel: {
      auto cancel = read_region_cancel(body);
      control.region = cancel.region;
      control.reason = std::move(cancel.reason);
      return control;
    }
    case MessageKind::region_done: {
      auto done = read_region_done(body);
      control.region = done.region;
      control.region_rank = done.region_rank;
      control.collectives = done.collectives;
      control.sends = std::move(done.sends);
      return control;
    }
    default:
      break;
  }
  throw DecodeError("parc: a message of kind " + std::to_string(static_cast<int>(message.kind)) +
                    " " + from(message.source) + " on the control channel");
}

std::string closure_table_differences(const std::vector<std::string>& tables) {
  if (tables.empty()) return {};
  const auto reference = lines_of(tables.front());
  std::ostringstream message;
  for (std::size_t r = 1; r < tables.size(); ++r) {
    const auto lines = lines_of(tables[r]);
    for (const auto& line : reference) {
      if (!lines.count(line))
        message << "\n  rank " << r << " lacks  " << line << "  (rank 0 has it)";
    }
    for (const auto& line : lines) {
      if (!reference.count(line))
        message << "\n  rank " << r << " has    " << line << "  (rank 0 lacks it)";
    }
  }
  return message.str();
}

}  // namespace parc::detail
