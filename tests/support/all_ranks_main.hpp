#pragma once

#include <parc/comm/endpoint.hpp>
#include <parc/comm/environment.hpp>

namespace parc::test {
extern Environment* environment;  // set by the test main before any test runs
}
