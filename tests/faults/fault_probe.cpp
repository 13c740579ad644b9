// A farm whose task #5 injects the fault named by PARC_FAULT (see CMakeLists.txt).
#include <parc/parc.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int probe_task(int x) { return x; }
PARC_CLOSURE(probe_task);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    parc::TaskFarm farm(rt);
    int sum = 0;
    for (int value : farm.map(probe_task, std::vector<int>{1, 2, 3})) sum += value;
    std::printf("probe sum %d\n", sum);
    return 0;
  });
}
