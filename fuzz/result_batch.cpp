// A result_batch body as the scheduler decodes it (read_outcome_count, read_outcome), with
// each failure's ErrorInfo read and rebuilt, and each result decoded as a string.

#include "fuzz.hpp"
#include "sample_error.hpp"

#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/wire.hpp>

namespace parc::fuzz {

std::vector<Bytes> seeds() {
  std::vector<Bytes> out;
  Bytes body;  // as the worker writes them
  ByteWriter writer(body);
  detail::write_outcome_count(writer, 3);
  auto outcome = [&](std::uint64_t id, detail::TaskStatus status, const Bytes& payload) {
    const detail::OpenOutcome open = detail::open_outcome(writer, id);
    writer.write_bytes(payload.data(), payload.size());
    detail::close_outcome(body, writer, open, status, 1500);
  };
  Bytes ok;
  ByteWriter(ok).write(std::string("result"));
  Bytes error;
  ByteWriter(error).write(sample_error());
  outcome(1, detail::TaskStatus::ok, ok);
  outcome(2, detail::TaskStatus::error, error);
  detail::write_empty_outcome(writer, 3, detail::TaskStatus::cancelled);
  out.push_back(std::move(body));
  const Bytes rejected = detail::write_batch_rejected("rank 1 could not decode a task batch");
  out.emplace_back(rejected.begin() + sizeof(FrameHeader), rejected.end());
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  parc::ByteReader body = parc::fuzz::reader_of(data, size);
  try {
    const auto count = parc::detail::read_outcome_count(body, 1);
    for (std::uint32_t i = 0; i < count; ++i) {
      auto outcome = parc::detail::read_outcome(body, 1);
      if (outcome.status == parc::detail::TaskStatus::ok) {
        (void)outcome.payload.read<std::string>();
      } else if (outcome.status == parc::detail::TaskStatus::error) {
        const parc::ErrorInfo info = parc::detail::read_error_info(outcome.payload, 1);
        (void)info.describe();
        (void)parc::rebuild_exception(info);
      }
    }
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
