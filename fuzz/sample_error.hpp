#pragma once
// A genuine ErrorInfo, as a worker records a failed task: a nested exception chain.

#include <parc/exceptions/error_info.hpp>

#include <exception>
#include <stdexcept>

namespace parc::fuzz {

inline ErrorInfo sample_error() {
  ErrorInfo info;
  try {
    try {
      throw std::invalid_argument("bad seed 13");
    } catch (...) {
      std::throw_with_nested(std::runtime_error("task failed"));
    }
  } catch (...) {
    info.chain = record_chain(std::current_exception());
  }
  info.rank = 2;
  info.host = "node7";
  info.pid = 4242;
  info.task_id = 17;
  info.closure = "simulate";
  info.input_index = 3;
  return info;
}

}  // namespace parc::fuzz
