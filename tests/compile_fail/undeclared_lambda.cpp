#include <parc/parc.hpp>

inline constexpr auto triple = [](int x) { return 3 * x; };  // no PARC_CLOSURE

void use(parc::TaskFarm& farm) { farm.submit(triple, 1); }
