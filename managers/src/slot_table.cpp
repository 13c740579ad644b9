#include <parc/exceptions/registry.hpp>
#include <parc/managers/detail/slot_table.hpp>

#include <sstream>

namespace parc::detail {

SlotTable::SlotTable(int workers) {
  for (int rank = 1; rank <= workers; ++rank) slots_.push_back(Slot{rank, "", 0, {}});
}

Slot* SlotTable::slot_of(int rank) {
  for (Slot& slot : slots_) {
    if (slot.rank == rank) return &slot;
  }
  return nullptr;
}

std::vector<int> SlotTable::ranks() const {
  std::vector<int> ranks;
  for (const Slot& slot : slots_) ranks.push_back(slot.rank);
  return ranks;
}

void SlotTable::set_identity(int rank, std::string host, std::int64_t pid) {
  if (Slot* slot = slot_of(rank)) {
    slot->host = std::move(host);
    slot->pid = pid;
  }
}

ErrorInfo SlotTable::manager_error(std::uint64_t task_id, ClosureId closure, int rank,
                                   const std::string& type, const std::string& message) const {
  ErrorInfo info;
  info.chain = {{type, message, true}};
  info.rank = rank;
  info.task_id = task_id;
  info.closure = ClosureRegistry::instance().entry(closure).name;
  for (const Slot& slot : slots_) {
    if (slot.rank == rank) {
      info.host = slot.host;
      info.pid = slot.pid;
    }
  }
  return info;
}

std::string seconds_text(double seconds) {
  std::ostringstream text;
  text << seconds;
  return text.str();
}

}  // namespace parc::detail
