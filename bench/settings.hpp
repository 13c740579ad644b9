#pragma once
// The C++ benchmarks' command lines: words of the form name=value.

#include <stdexcept>
#include <string>

// Calls apply(name, value_text) for each argument; a word without '=' is an error.
template <class Apply>
void for_each_setting(int argc, char** argv, Apply&& apply) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("expected name=value, got " + arg);
    apply(arg.substr(0, eq), arg.substr(eq + 1));
  }
}
