#include <parc/parc.hpp>

int add(int a, int b) { return a + b; }
PARC_CLOSURE(add);

void use(parc::TaskFarm& farm) { farm.submit(add, 1); }
