// SPMD region messages between the manager and the workers: region_start as a worker
// decodes it (and the region's arguments, by run_closure), region_result as the manager
// does (the rank's result or ErrorInfo, its message counts). The first byte picks which.

#include "fuzz.hpp"
#include "sample_closures.hpp"
#include "sample_error.hpp"

#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/wire.hpp>

namespace parc::fuzz {

std::vector<Bytes> seeds() {
  const auto calls = sample_calls();
  std::vector<Bytes> out;
  for (const auto& [closure, arguments] : calls) {  // region_start, as the scheduler sends it
    const Bytes frame =
        detail::write_region_start({5,
                                    closure,
                                    {1, 2, 3},
                                    KeptCommunicator::release,
                                    ByteReader(arguments.data(), arguments.size())});
    Bytes body{0};
    body.insert(body.end(), frame.begin() + sizeof(FrameHeader), frame.end());
    out.push_back(std::move(body));
  }
  auto result = [&](detail::TaskStatus status, const Bytes& payload) {  // as run_region writes
    Bytes body{1};
    ByteWriter writer(body);
    const detail::OpenOutcome open = detail::open_region_outcome(writer, 5);
    writer.write_bytes(payload.data(), payload.size());
    detail::close_region_outcome(body, writer, open, status, status == detail::TaskStatus::ok,
                                 {0, 2, 1}, {1, 0, 3});
    out.push_back(std::move(body));
  };
  Bytes ok;
  ByteWriter(ok).write(std::string("partial sum"));
  Bytes error;
  ByteWriter(error).write(sample_error());
  result(detail::TaskStatus::ok, ok);
  result(detail::TaskStatus::error, error);
  result(detail::TaskStatus::cancelled, {});
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool sealed = (parc::fuzz::seal_closures(), true);
  (void)sealed;
  if (size == 0) return 0;
  parc::ByteReader body = parc::fuzz::reader_of(data + 1, size - 1);
  try {
    if (data[0] % 2 == 0) {
      auto start = parc::detail::read_region_start(body, 0);
      parc::Bytes result;
      parc::ByteWriter out(result);
      try {
        parc::detail::run_closure(start.closure, start.arguments, out);
      } catch (const parc::UsageError&) {  // a closure id this build does not declare
      }
    } else {
      parc::detail::RegionOutcome outcome;
      outcome.id = body.read<std::uint64_t>();
      parc::detail::read_region_outcome(body, 2, outcome);
      if (outcome.status == parc::detail::TaskStatus::ok) {
        (void)outcome.payload.read<std::string>();
      } else if (outcome.status == parc::detail::TaskStatus::error) {
        const parc::ErrorInfo info = parc::detail::read_error_info(outcome.payload, 2);
        (void)parc::rebuild_exception(info);
      }
    }
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
