#include <parc/closures/closure.hpp>
#include <parc/exceptions/errors.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <sstream>

namespace parc::detail {

ClosureRegistry& ClosureRegistry::instance() {
  static auto* registry = new ClosureRegistry;  // leaked: filled by static initializers
  return *registry;
}

void ClosureRegistry::add(ClosureEntry entry) {
  for (const ClosureEntry& existing : entries_) {
    if (existing.target == entry.target && existing.name == entry.name) return;  // same TU twice
  }
  if (sealed_) {
    throw UsageError("PARC_CLOSURE(" + entry.name +
                     ") ran after the runtime started; declare closures at namespace scope "
                     "so every rank has them before parc::Runtime is constructed");
  }
  entries_.push_back(std::move(entry));
}

void ClosureRegistry::seal() {
  if (sealed_) return;
  std::sort(entries_.begin(), entries_.end(), [](const ClosureEntry& a, const ClosureEntry& b) {
    return std::tie(a.name, a.signature) < std::tie(b.name, b.signature);
  });
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0 && entries_[i].name == entries_[i - 1].name) {
      throw StartupError("parc: two different closures are declared as '" + entries_[i].name +
                         "'. If they are in different namespaces, qualify one: "
                         "PARC_CLOSURE(ns::" +
                         entries_[i].name +
                         "). If it is a lambda variable in a header, declare it inline "
                         "(inline constexpr auto " +
                         entries_[i].name +
                         " = ...) so every "
                         "file shares one.");
    }
    entries_[i].id = static_cast<ClosureId>(i);
  }
  sealed_ = true;
}

const ClosureEntry& ClosureRegistry::entry(ClosureId id) const {
  if (id >= entries_.size()) {
    throw UsageError("parc: closure id " + std::to_string(id) + " is unknown on this rank (" +
                     std::to_string(entries_.size()) + " closures declared)");
  }
  return entries_[id];
}

const ClosureEntry* ClosureRegistry::find_function(const void* function) const {
  for (const ClosureEntry& entry : entries_) {
    if (entry.is_function && entry.target == function) return &entry;
  }
  return nullptr;
}

const ClosureEntry* ClosureRegistry::find_type(std::type_index type) const {
  for (const ClosureEntry& entry : entries_) {
    if (!entry.is_function && entry.type == type) return &entry;
  }
  return nullptr;
}

std::string ClosureRegistry::table_text() const {
  std::ostringstream out;
  for (const ClosureEntry& entry : entries_) out << entry.name << " : " << entry.signature << "\n";
  return out.str();
}

std::uint64_t ClosureRegistry::table_hash() const {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (char c : table_text()) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string describe_function_address(const void* function) {
  Dl_info info{};
  if (dladdr(function, &info) != 0 && info.dli_sname != nullptr) {
    return "function '" + demangle(info.dli_sname) + "'";
  }
  std::ostringstream out;
  out << "the function at " << function;
  return out.str();
}

}  // namespace parc::detail
