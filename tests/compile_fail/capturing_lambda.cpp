#include <parc/parc.hpp>

inline int offset = 3;
inline auto add_offset = [n = offset](int x) { return x + n; };
PARC_CLOSURE(add_offset);
