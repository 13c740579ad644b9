#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/parallel_exception.hpp>
#include <parc/exceptions/registry.hpp>

#include <map>
#include <mutex>
#include <sstream>

namespace parc {

namespace {

std::string remote_what(const ErrorInfo& info) {
  const ExceptionRecord& top = info.chain.front();
  if (!top.is_std_exception) {
    return "non-std::exception of type " + top.type_name +
           (top.message.empty() ? "" : ": " + top.message);
  }
  return top.type_name + ": " + top.message;
}

struct FactoryTable {
  std::mutex mutex;
  std::map<std::string, ExceptionFactory> factories;
};

FactoryTable& factory_table() {
  static FactoryTable* table = [] {
    auto* t = new FactoryTable;  // leaked: used from static initializers of other TUs
    t->factories = {
        {"std::exception", nullptr},  // not constructible from a string: RemoteError
        {"std::runtime_error", &detail::make_exception<std::runtime_error>},
        {"std::logic_error", &detail::make_exception<std::logic_error>},
        {"std::invalid_argument", &detail::make_exception<std::invalid_argument>},
        {"std::out_of_range", &detail::make_exception<std::out_of_range>},
        {"std::domain_error", &detail::make_exception<std::domain_error>},
        {"std::length_error", &detail::make_exception<std::length_error>},
        {"std::range_error", &detail::make_exception<std::range_error>},
        {"std::overflow_error", &detail::make_exception<std::overflow_error>},
        {"std::underflow_error", &detail::make_exception<std::underflow_error>},
        {"parc::UsageError", &detail::make_exception<UsageError>},
        {"parc::TaskTimeout", &detail::make_exception<TaskTimeout>},
    };
    return t;
  }();
  return *table;
}

}  // namespace

RemoteError::RemoteError(ErrorInfo info)
    : std::runtime_error(remote_what(info)), info_(std::move(info)) {}

void register_exception_factory(const std::string& type_name, ExceptionFactory factory) {
  FactoryTable& table = factory_table();
  std::lock_guard lock(table.mutex);
  table.factories[type_name] = factory;
}

std::exception_ptr rebuild_exception(const ErrorInfo& info) {
  FactoryTable& table = factory_table();
  std::exception_ptr rebuilt;
  for (std::size_t i = info.chain.size(); i-- > 0;) {
    const ExceptionRecord& record = info.chain[i];
    ExceptionFactory factory = nullptr;
    if (record.is_std_exception) {
      std::lock_guard lock(table.mutex);
      auto it = table.factories.find(record.type_name);
      if (it != table.factories.end()) factory = it->second;
    }
    if (factory) {
      rebuilt = factory(record.message, rebuilt);
      continue;
    }
    ErrorInfo slice = info;
    slice.chain.assign(info.chain.begin() + static_cast<std::ptrdiff_t>(i), info.chain.end());
    rebuilt = detail::with_nested(RemoteError(std::move(slice)), rebuilt);
  }
  return rebuilt;
}

TaskError::TaskError(ErrorInfo info, std::exception_ptr exception)
    : info_(std::move(info)), exception_(std::move(exception)) {}

ParallelException::ParallelException(std::vector<TaskError> errors) : errors_(std::move(errors)) {
  std::ostringstream out;
  out << errors_.size() << (errors_.size() == 1 ? " task" : " tasks") << " failed";
  for (const TaskError& error : errors_) out << "\n  " << error.describe();
  what_ = out.str();
}

}  // namespace parc
