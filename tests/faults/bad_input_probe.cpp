// Bad input from C++ (PARC_BAD_INPUT picks the mistake): each must be a parc::UsageError
// that says what is wrong, printed as "caught: <what()>", and the job then ends normally.
#include <parc/parc.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int declared(int x) { return x + 1; }
PARC_CLOSURE(declared);

int undeclared(int x) { return x; }  // no PARC_CLOSURE: the mistake

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  const char* chosen = std::getenv("PARC_BAD_INPUT");
  const std::string mistake = chosen ? chosen : "";
  return rt.run([&] {
    parc::TaskFarm farm(rt);
    try {
      if (mistake == "undeclared") {
        farm.submit(undeclared, 1);
      } else if (mistake == "submit_after_shutdown") {
        farm.shutdown();
        farm.submit(declared, 1);
      } else if (mistake == "map_after_shutdown") {
        farm.shutdown();
        farm.map(declared, std::vector<int>{1, 2});
      }
      std::printf("no error\n");
    } catch (const parc::UsageError& e) {
      std::printf("caught: %s\n", e.what());
    }
    // The runtime stays usable after the mistake.
    parc::TaskFarm after(rt);
    std::printf("after: %d\n", after.submit(declared, 41).get());
    std::fflush(stdout);
    return 0;
  });
}
