// Tasks that print long lines in pieces, through printf, std::cout and std::cerr, and end
// with a partial line; test_cpp_output.py checks that every line arrives whole (and,
// with PARC_OUTPUT=prefix, starts with the rank that ran the task).
//   task <t> <how> <n> <digits...>   stdout (printf, cout), stderr (cerr)
//   task <t> partial                 the task's last text, without a newline
#include <parc/parc.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

int shout(int task) {
  for (int n = 0; n < 4; ++n) {
    std::printf("task %d printf %d ", task, n);
    for (int piece = 0; piece < 60; ++piece) {
      std::printf("%s", "0123456789");
      std::fflush(stdout);  // a flush must not send half a line
      if (piece % 20 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::printf("\n");
    std::cout << "task " << task << " cout " << n << ' ';
    for (int piece = 0; piece < 60; ++piece) std::cout << "0123456789" << std::flush;
    std::cout << std::endl;
    std::cerr << "task " << task << " cerr " << n << ' ';
    for (int piece = 0; piece < 60; ++piece) std::cerr << "0123456789";
    std::cerr << '\n';
  }
  std::printf("task %d partial", task);
  return task;
}
PARC_CLOSURE(shout);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    parc::TaskFarm farm(rt);
    std::vector<int> tasks;
    for (int t = 0; t < 12; ++t) tasks.push_back(t);
    int sum = 0;
    for (int t : farm.map(shout, tasks)) sum += t;
    std::printf("sum %d\n", sum);
  });
}
