#include <parc/closures/call.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/output.hpp>
#include <parc/comm/request_channel.hpp>
#include <parc/comm/spmd_context.hpp>
#include <parc/comm/trace.hpp>
#include <parc/managers/detail/region_member.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/monitor/flight_record.hpp>

namespace parc::detail {

namespace {

// A rank released from a region (not a failure of its own): parc::CancelledError, or its
// host-language form (Python's parc._core.CancelledError).
bool is_cancellation(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
    return true;
  } catch (const ForeignException& e) {
    return e.type_name().ends_with("CancelledError");
  } catch (...) {
  }
  return false;
}

// A region's outcome, closed with this rank's communicator hygiene (none when it failed to
// start).
void close_region(Bytes& reply, ByteWriter& out, const OpenOutcome& open, const RegionComm* comm,
                  TaskStatus status) {
  const bool reusable = comm != nullptr && status == TaskStatus::ok && !comm->cancelled();
  close_region_outcome(reply, out, open, status, reusable,
                       comm != nullptr ? comm->messages_sent() : std::vector<std::uint64_t>{},
                       comm != nullptr ? comm->messages_received() : std::vector<std::uint64_t>{});
}

}  // namespace

RegionMember::RegionMember(Endpoint& endpoint, bool simulated, Hooks hooks)
    : endpoint_(endpoint), simulated_(simulated), hooks_(std::move(hooks)) {}

RegionMember::~RegionMember() {
  if (region_ && region_->thread.joinable()) {
    region_->comm->cancel("the runtime is shutting down");
    region_->thread.join();
  }
}

void RegionMember::on_control(const Message& message, const ControlMessage& control) {
  const auto id = control.region;
  if (region_ && region_->id == id) {
    if (control.kind == MessageKind::region_cancel) {
      region_->comm->cancel(control.reason);
    } else {
      region_->comm->peer_finished(control.region_rank, control.collectives, control.sends);
    }
  } else if (id > last_region_) {  // overtook its region_start (another channel)
    early_control_[id].push_back(message);
  }
}

void RegionMember::shut_down(const std::string& reason) {
  if (region_) region_->comm->cancel(reason);
}

void RegionMember::start(Message& message) {
  auto region = std::make_unique<ActiveRegion>();
  region->manager = message.source;
  // The region fails on this rank, which keeps serving: the manager learns it now instead
  // of at the region's timeout (or never, without one).
  const auto fail_region = [&](ClosureId closure) {
    Bytes reply = begin_frame();
    ByteWriter out(reply);
    const OpenOutcome open = open_region_outcome(out, region->id);
    out.write(hooks_.error_info(closure, region->id));
    close_region(reply, out, open, nullptr, TaskStatus::error);
    endpoint_.send(Traffic::tasks, message.source, MessageKind::region_result, std::move(reply));
  };
  RegionStart start;
  ByteReader body = message.take_body();
  ByteReader named = body;  // its first field names the region, even when the rest is bad
  try {
    start = read_region_start(body, message.source);
  } catch (const DecodeError& e) {
    if (named.remaining() < sizeof(std::uint64_t)) throw;  // nameless: rejected as a batch
    region->id = named.read<std::uint64_t>();
    const ClosureId closure =
        named.remaining() >= sizeof(ClosureId) ? named.read<ClosureId>() : ClosureId{};
    log().error("rejected the start of region {}: {}", region->id, e.what());
    fail_region(closure);
    return;
  }
  region->id = start.id;
  const auto closure = start.closure;
  const auto& members = start.members;
  const auto kept = start.kept;
  ByteReader arguments = start.arguments;
  last_region_ = region->id;
  try {
    region->comm = endpoint_.open_region(region->id, members, hooks_.poll_control, kept);
  } catch (...) {
    fail_region(closure);
    return;
  }
  region_ = std::move(region);
  for (auto it = early_control_.begin(); it != early_control_.end();) {
    if (it->first == region_->id) {
      for (const Message& early : it->second) on_control(early, read_control(early));
    }
    it = it->first <= region_->id ? early_control_.erase(it) : std::next(it);
  }
  ActiveRegion* active = region_.get();
  hooks_.return_lent();
  if (simulated_) {
    active->thread = std::thread([this, active, closure, arguments] {
      active->reply = run(*active, closure, arguments);
      active->done = true;
    });
  } else {
    active->reply = run(*active, closure, arguments);
    active->done = true;
    finish();
  }
}

Bytes RegionMember::run(ActiveRegion& region, ClosureId closure, ByteReader arguments) {
  const ActingAs acting(endpoint_.rank());  // serially: the proxies' simulated rank
  Bytes reply = begin_frame();
  ByteWriter out(reply);
  const OpenOutcome open = open_region_outcome(out, region.id);
  TaskStatus status = TaskStatus::ok;
  SpmdContext context(*region.comm, region.id);
  current_spmd_context() = &context;
  trace::Span span(trace::Category::region, endpoint_.rank(), {}, region.id);
  if (!simulated_) {  // serially, regions run on threads of their own: no single writer
    flight::note_activity("running SPMD region " + std::to_string(region.id) + " (" +
                          ClosureRegistry::instance().entry(closure).name + ")");
  }
  try {
    span.set_name(ClosureRegistry::instance().entry(closure).name);
    run_closure(closure, arguments, out);
    region.comm->finish();
  } catch (...) {
    out.rewind(open.payload_at);
    if (region.comm->cancelled() && is_cancellation(std::current_exception())) {
      status = TaskStatus::cancelled;
    } else {
      status = TaskStatus::error;
      const ErrorInfo info = hooks_.error_info(closure, region.id);
      out.write(info);
      region.comm->cancel_all("region rank " + std::to_string(region.comm->rank()) +
                              " (world rank " + std::to_string(endpoint_.rank()) + ") raised " +
                              info.type_name() + ": " + info.message());
    }
  }
  current_spmd_context() = nullptr;
  output::end_task();
  close_region(reply, out, open, region.comm.get(), status);
  if (!simulated_) flight::note_activity("waiting for work");
  return reply;
}

bool RegionMember::finish() {
  if (!region_ || !region_->done) return false;
  if (region_->thread.joinable()) region_->thread.join();
  endpoint_.send(Traffic::tasks, region_->manager, MessageKind::region_result,
                 std::move(region_->reply));
  region_.reset();
  return true;
}

}  // namespace parc::detail
