#include <parc/comm/spmd_context.hpp>

namespace parc::detail {

SpmdContext*& current_spmd_context() {
  static thread_local SpmdContext* context = nullptr;
  return context;
}

}  // namespace parc::detail
