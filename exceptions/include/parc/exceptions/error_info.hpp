#pragma once
// What a worker knows about a failed task, in a form that crosses the wire.

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

namespace parc {

// One exception of a chain: the thrown object's dynamic type and its message.
struct ExceptionRecord {
  std::string type_name;  // demangled C++ type, e.g. "std::invalid_argument"
  std::string message;    // what(), or a rendering of a non-std::exception value
  bool is_std_exception = true;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(type_name, message, is_std_exception);
  }
};

struct ErrorInfo {
  std::vector<ExceptionRecord> chain;  // [0] is the outermost, [i+1] was nested in [i]
  int rank = -1;
  std::string host;
  std::int64_t pid = 0;
  std::uint64_t task_id = 0;
  std::string closure;
  int attempts = 1;
  std::int64_t input_index = -1;  // position in the map's input, when from a map
  // A host language's own encoding of the failure (Python: the pickled exception and its
  // traceback), from a ForeignException; empty for C++ exceptions.
  std::string foreign;

  const std::string& type_name() const { return chain.front().type_name; }
  const std::string& message() const { return chain.front().message; }

  // "rank 2 (host h, pid 41), task 17, closure square: std::invalid_argument: bad x"
  std::string describe() const;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(chain, rank, host, pid, task_id, closure, attempts, input_index, foreign);
  }
};

// Records the exception chain of `error` (following std::nested_exception).
std::vector<ExceptionRecord> record_chain(std::exception_ptr error);

// The ForeignException::encoded() of `error`, or "" when it is not one.
std::string foreign_encoding(std::exception_ptr error);

std::string demangle(const char* mangled_name);

}  // namespace parc
