// An ErrorInfo (a failed task's, a region rank's or a proxy call's) as the manager reads
// it, describes it and rebuilds its exception; and as a proxy caller turns it into a
// TaskError.

#include "fuzz.hpp"
#include "sample_error.hpp"

#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/managers/proxy.hpp>

namespace parc::fuzz {

std::vector<Bytes> seeds() {
  std::vector<Bytes> out;
  Bytes bytes;
  ByteWriter(bytes).write(sample_error());
  out.push_back(std::move(bytes));
  ErrorInfo foreign = sample_error();
  foreign.chain = {{"ValueError", "unlucky seed 13", true}, {"KeyError", "'x'", false}};
  foreign.foreign = std::string("\x80\x05pickled", 9);
  foreign.attempts = 3;
  Bytes other;
  ByteWriter(other).write(foreign);
  out.push_back(std::move(other));
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    parc::ByteReader in = parc::fuzz::reader_of(data, size);
    const parc::ErrorInfo info = parc::detail::read_error_info(in, 2);
    (void)info.describe();
    (void)parc::rebuild_exception(info);
  } catch (const parc::DecodeError&) {
  }
  try {
    parc::ByteReader in = parc::fuzz::reader_of(data, size);
    (void)parc::detail::remote_failure(in, 2, "Counter::add").describe();
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
