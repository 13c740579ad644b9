#pragma once

#include <parc/parc.hpp>

namespace parc::test {
extern Runtime* runtime;  // set by the test main before any test runs
}
