// Recycled large message buffers (see MessageAllocator in archive.hpp).

#include <parc/comm/archive.hpp>

#include <bit>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace parc::detail {

namespace {
constexpr std::size_t pooled_from = std::size_t{1} << 20;  // smaller blocks: malloc's own bins
constexpr std::size_t kept_at_most = std::size_t{256} << 20;

struct Pool {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free;  // by block size (a power of two)
  std::size_t kept = 0;
};

// Leaked: buffers may be freed during static destruction.
Pool& pool() {
  static Pool* instance = new Pool;
  return *instance;
}
}  // namespace

void* allocate_message_buffer(std::size_t bytes) {
  if (bytes < pooled_from) return ::operator new(bytes);
  const std::size_t size = std::bit_ceil(bytes);
  Pool& p = pool();
  {
    std::lock_guard lock(p.mutex);
    auto it = p.free.find(size);
    if (it != p.free.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      p.kept -= size;
      return block;
    }
  }
  return ::operator new(size);
}

void free_message_buffer(void* block, std::size_t bytes) noexcept {
  if (bytes < pooled_from) {
    ::operator delete(block);
    return;
  }
  const std::size_t size = std::bit_ceil(bytes);
  Pool& p = pool();
  try {
    std::lock_guard lock(p.mutex);
    if (p.kept + size <= kept_at_most) {
      p.free[size].push_back(block);
      p.kept += size;
      return;
    }
  } catch (...) {  // no room to remember it: give it back
  }
  ::operator delete(block);
}

}  // namespace parc::detail
