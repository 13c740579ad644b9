// A task_batch body as the worker decodes it (read_task_count, read_task), and each
// task's arguments as run_closure decodes them for the sample closures.

#include "fuzz.hpp"
#include "sample_closures.hpp"

#include <parc/exceptions/errors.hpp>
#include <parc/managers/detail/wire.hpp>

namespace parc::fuzz {

std::vector<Bytes> seeds() {
  const auto calls = sample_calls();
  std::vector<Bytes> out;
  // One batch of every sample call, then one batch per call; written as the scheduler does.
  auto batch = [&](std::size_t first, std::size_t count) {
    Bytes body;
    ByteWriter writer(body);
    detail::write_task_count(writer, static_cast<std::uint32_t>(count));
    for (std::size_t i = first; i < first + count; ++i) {
      const Bytes& arguments = calls[i].second;
      detail::write_task(writer, {100 + i, calls[i].first, 1, 0, detail::task_flag_fail_fast,
                                  ByteReader(arguments.data(), arguments.size())});
    }
    out.push_back(std::move(body));
  };
  batch(0, calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) batch(i, 1);
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool sealed = (parc::fuzz::seal_closures(), true);
  (void)sealed;
  parc::ByteReader body = parc::fuzz::reader_of(data, size);
  try {
    const auto count = parc::detail::read_task_count(body, 0);
    for (std::uint32_t i = 0; i < count; ++i) {
      auto task = parc::detail::read_task(body, 0);
      parc::Bytes result;
      parc::ByteWriter out(result);
      try {
        parc::detail::run_closure(task.closure, task.arguments, out);
      } catch (const parc::UsageError&) {  // a closure id this build does not declare
      }
    }
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
