// The start-up closure-table check: every rank's table text (gathered over MPI) compared
// line by line with rank 0's. The input is the tables, separated by NUL bytes.

#include "fuzz.hpp"
#include "sample_closures.hpp"

#include <parc/managers/detail/wire.hpp>

#include <string>

namespace parc::fuzz {

std::vector<Bytes> seeds() {
  seal_closures();
  const std::string table = detail::ClosureRegistry::instance().table_text();
  const std::string other = "fuzz_add : int(int, int)\nfuzz_extra : void()\n";
  std::vector<Bytes> out;
  for (const std::string& all : {table + '\0' + table, table + '\0' + other + '\0' + table}) {
    out.emplace_back(all.begin(), all.end());
  }
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> tables(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      tables.emplace_back();
    } else {
      tables.back().push_back(static_cast<char>(data[i]));
    }
  }
  (void)parc::detail::closure_table_differences(tables);
  return 0;
}
