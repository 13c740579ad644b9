#include <parc/parc.hpp>

#include <string>

int length(std::string text) { return static_cast<int>(text.size()); }
PARC_CLOSURE(length);

void use(parc::TaskFarm& farm) { farm.submit(length, 42); }
