#include "core/mapped_files.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace ferrum {
namespace {

// A fixed table: the signal handler may not allocate or lock. A slot is live while `start`
// is non-zero; it is written under the mutex and published by the store to `start`.
struct Slot {
  std::atomic<uintptr_t> start{0};
  size_t size = 0;
  char path[512] = {};
};
constexpr int kSlots = 256;  // more mapped files than this go unnamed in crash reports
Slot slots[kSlots];
std::mutex mu;

void write_str(int fd, const char* s) { (void)!::write(fd, s, std::strlen(s)); }

void write_uint(int fd, uint64_t v) {
  char buf[24];
  int i = sizeof buf;
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v && i > 0);
  (void)!::write(fd, buf + i, sizeof buf - i);
}

}  // namespace

void register_mapped_file(const void* start, size_t size, const char* path) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto& s : slots) {
    if (s.start.load(std::memory_order_relaxed) != 0) continue;
    s.size = size;
    std::strncpy(s.path, path, sizeof s.path - 1);
    s.path[sizeof s.path - 1] = '\0';
    s.start.store(reinterpret_cast<uintptr_t>(start), std::memory_order_release);
    return;
  }
}

void unregister_mapped_file(const void* start) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto& s : slots)
    if (s.start.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(start)) s.start.store(0, std::memory_order_release);
}

bool report_mapped_file_fault(const void* addr, int fd) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  for (auto& s : slots) {
    const uintptr_t start = s.start.load(std::memory_order_acquire);
    if (start == 0 || a < start || a >= start + s.size) continue;
    write_str(fd, "\nferrum: the file ");
    write_str(fd, s.path);
    write_str(fd, " was truncated or replaced while ferrum was reading it (no data at byte ");
    write_uint(fd, a - start);
    write_str(fd, " of ");
    write_uint(fd, s.size);
    write_str(fd, "). Do not change model files while a model is loaded or served; if it is damaged, download or copy it again.\n");
    return true;
  }
  return false;
}

}  // namespace ferrum
