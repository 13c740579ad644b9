#include <parc/exceptions/error_info.hpp>
#include <parc/exceptions/errors.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <typeinfo>

namespace parc {

std::string demangle(const char* mangled_name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled_name, nullptr, nullptr, &status), std::free);
  std::string result = status == 0 && name ? name.get() : mangled_name;
  // std::throw_with_nested throws an implementation type wrapping the user's type.
  constexpr std::string_view wrapper = "std::_Nested_exception<";
  if (result.starts_with(wrapper) && result.ends_with('>')) {
    result = result.substr(wrapper.size(), result.size() - wrapper.size() - 1);
  }
  return result;
}

std::string ErrorInfo::describe() const {
  std::ostringstream out;
  out << "rank " << rank << " (host " << host << ", pid " << pid << "), task " << task_id;
  if (!closure.empty()) out << ", closure " << closure;
  if (input_index >= 0) out << ", input #" << input_index;
  if (attempts > 1) out << ", after " << attempts << " attempts";
  for (std::size_t i = 0; i < chain.size(); ++i) {
    out << (i == 0 ? ": " : "\n  nested: ") << chain[i].type_name;
    if (!chain[i].is_std_exception) out << " (not a std::exception)";
    if (!chain[i].message.empty()) out << ": " << chain[i].message;
  }
  return out.str();
}

namespace {

ExceptionRecord record_non_std_exception() {
  std::type_info* type = abi::__cxa_current_exception_type();
  ExceptionRecord record{type ? demangle(type->name()) : "unknown", "", false};
  try {
    throw;
  } catch (const char* text) {
    record.message = text;
  } catch (const std::string& text) {
    record.message = text;
  } catch (int value) {
    record.message = std::to_string(value);
  } catch (long value) {
    record.message = std::to_string(value);
  } catch (...) {
  }
  return record;
}

}  // namespace

std::vector<ExceptionRecord> record_chain(std::exception_ptr error) {
  std::vector<ExceptionRecord> chain;
  while (error) {
    std::exception_ptr inner;
    try {
      std::rethrow_exception(error);
    } catch (const ForeignException& e) {
      chain.push_back({e.type_name(), e.what(), true});
    } catch (const std::exception& e) {
      chain.push_back({demangle(typeid(e).name()), e.what(), true});
      if (auto* nested = dynamic_cast<const std::nested_exception*>(&e)) {
        inner = nested->nested_ptr();
      }
    } catch (...) {
      chain.push_back(record_non_std_exception());
    }
    error = inner;
  }
  return chain;
}

std::string foreign_encoding(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const ForeignException& e) {
    return e.encoded();
  } catch (...) {
  }
  return {};
}

}  // namespace parc
