#pragma once

#include <parc/exceptions/error_info.hpp>

#include <exception>
#include <string>
#include <vector>

namespace parc {

// One failed task: where it failed, and the exception rebuilt on the manager.
class TaskError {
 public:
  TaskError(ErrorInfo info, std::exception_ptr exception);

  const ErrorInfo& info() const noexcept { return info_; }
  const std::string& type_name() const noexcept { return info_.type_name(); }
  const std::string& message() const noexcept { return info_.message(); }
  int rank() const noexcept { return info_.rank; }
  std::uint64_t task_id() const noexcept { return info_.task_id; }
  const std::string& closure() const noexcept { return info_.closure; }
  const std::string& host() const noexcept { return info_.host; }
  std::int64_t pid() const noexcept { return info_.pid; }
  std::string describe() const { return info_.describe(); }
  // Position of the failed input in a map; -1 for a submitted task.
  std::int64_t input_index() const noexcept { return info_.input_index; }
  TaskError with_input_index(std::size_t index) const {
    TaskError copy = *this;
    copy.info_.input_index = static_cast<std::int64_t>(index);
    return copy;
  }

  // The rebuilt exception: its registered type, or parc::RemoteError.
  const std::exception_ptr& exception() const noexcept { return exception_; }
  [[noreturn]] void rethrow() const { std::rethrow_exception(exception_); }

 private:
  ErrorInfo info_;
  std::exception_ptr exception_;
};

// Every failure of one manager operation.
class ParallelException : public std::exception {
 public:
  explicit ParallelException(std::vector<TaskError> errors);
  const std::vector<TaskError>& errors() const noexcept { return errors_; }
  std::size_t size() const noexcept { return errors_.size(); }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::vector<TaskError> errors_;
  std::string what_;
};

}  // namespace parc
