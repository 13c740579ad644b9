// A program whose start-up the tests break on purpose (closure tables that differ
// between ranks, bad PARC_SERIAL, a foreign launcher). It prints "probe ran" only
// when the runtime started anyway.

#include <parc/parc.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int twice(int x) { return 2 * x; }
PARC_CLOSURE(twice);

int extra_closure_on_one_rank(int x) { return x; }

int main(int argc, char** argv) {
  // MPICH's launcher tells each process its rank before MPI starts.
  const char* extra_rank = std::getenv("PARC_PROBE_EXTRA_CLOSURE_ON_RANK");
  const char* pmi_rank = std::getenv("PMI_RANK");
  if (extra_rank && pmi_rank && std::string(extra_rank) == pmi_rank) {
    parc::detail::declare_closure("extra_closure_on_one_rank", extra_closure_on_one_rank);
  }
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    parc::TaskFarm farm(rt);
    const int result = farm.submit(twice, 21).get();
    std::printf("probe ran: %d\n", result);
    if (const char* code = std::getenv("PARC_PROBE_EXIT_CODE")) return std::atoi(code);
    return result == 42 ? 0 : 1;
  });
}
