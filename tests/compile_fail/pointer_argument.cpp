#include <parc/parc.hpp>

int first(const int* values) { return values[0]; }
PARC_CLOSURE(first);
