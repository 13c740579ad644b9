// The C++ contract example, built against an installed parc (tests/install/run.sh).
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <parc/parc.hpp>

int square(int x) { return x * x; }
PARC_CLOSURE(square);

int may_throw(int x) {
  if (x % 3 == 0) throw std::invalid_argument("multiple of three: " + std::to_string(x));
  return x;
}
PARC_CLOSURE(may_throw);

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // keep the output of a run killed by timeout
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    parc::TaskFarm farm(rt);
    std::vector<int> ys = farm.map(square, std::vector<int>{1, 2, 3});
    parc::Future<int> f = farm.submit(square, 7);
    int f_value = f.get();

    std::printf("map(square, {1, 2, 3}) = {");
    for (std::size_t i = 0; i < ys.size(); ++i) std::printf(i ? ", %d" : "%d", ys[i]);
    std::printf("}\nsubmit(square, 7).get() = %d\n", f_value);
    if (ys != std::vector<int>{1, 4, 9}) {
      std::fprintf(stderr, "FAIL: unexpected map result\n");
      return 1;
    }
    if (f_value != 49) {
      std::fprintf(stderr, "FAIL: unexpected future result\n");
      return 2;
    }

    parc::TaskFarm all(rt, parc::Policy::collect_all);
    try {
      all.map(may_throw, std::vector<int>{1, 2, 3, 4, 5, 6});
      std::fprintf(stderr, "FAIL: map(may_throw, ...) did not throw\n");
      return 3;
    } catch (const parc::ParallelException& e) {
      std::printf("ParallelException with %zu errors:\n", e.errors().size());
      for (const auto& err : e.errors()) {
        std::printf("  %s\n", err.describe().c_str());
        if (err.message().find("multiple of three") == std::string::npos) {
          std::fprintf(stderr, "FAIL: unexpected error message: %s\n", err.message().c_str());
          return 5;
        }
      }
      if (e.errors().size() != 2) {
        std::fprintf(stderr, "FAIL: expected 2 errors\n");
        return 4;
      }
    }
    std::printf("consumer OK\n");
    return 0;
  });
}
