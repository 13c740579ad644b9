#pragma once
// The exception types parc itself raises on the manager.

#include <parc/exceptions/error_info.hpp>

#include <stdexcept>
#include <string>

namespace parc {

// A remote exception whose type was not registered with PARC_REGISTER_EXCEPTION,
// or a throw of something that is not a std::exception.
class RemoteError : public std::runtime_error {
 public:
  explicit RemoteError(ErrorInfo info);
  const ErrorInfo& info() const noexcept { return info_; }
  const std::string& type_name() const noexcept { return info_.type_name(); }
  const std::string& message() const noexcept { return info_.message(); }
  bool is_std_exception() const noexcept { return info_.chain.front().is_std_exception; }

 private:
  ErrorInfo info_;
};

// The API was used wrongly (undeclared closure, submit after shutdown, ...).
class UsageError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// The job cannot start: foreign launcher, closure tables differing between ranks, ...
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A task ran longer than its farm's timeout.
class TaskTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The task was cancelled before it started (fail_fast after another task failed).
class CancelledError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An exception of a host language (Python) raised inside a closure: its type name and
// message for C++ readers, and the host's own encoding for the host on the manager.
class ForeignException : public std::runtime_error {
 public:
  ForeignException(std::string type_name, const std::string& message, std::string encoded)
      : std::runtime_error(message),
        type_name_(std::move(type_name)),
        encoded_(std::move(encoded)) {}
  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& encoded() const noexcept { return encoded_; }

 private:
  std::string type_name_;
  std::string encoded_;
};

}  // namespace parc
