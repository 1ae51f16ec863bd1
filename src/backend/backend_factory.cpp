// Picks a backend from a --device string.
#include <cstdlib>

#include "backend/backend.h"
#include "core/error.h"

namespace ferrum {

#if !FERRUM_CUDA
std::unique_ptr<Backend> make_cuda_backend(int) {
  fail("this ferrum was built without CUDA (configure with -DFERRUM_CUDA=ON, nvcc needed)");
}
double cuda_read_bandwidth_gbs(int) { fail("this ferrum was built without CUDA"); }
bool cuda_available() { return false; }
size_t cuda_free_memory(int) { return 0; }
#endif

void Backend::begin_capture() { fail("backend {} has no graphs", name()); }
std::shared_ptr<void> Backend::end_capture() { fail("backend {} has no graphs", name()); }
void Backend::replay(const std::shared_ptr<void>&) { fail("backend {} has no graphs", name()); }
void Backend::abort_capture() {}

int cuda_device_index(const std::string& device) {
  if (device.empty() || device == "cpu") return -1;
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) == 0) {
    const std::string n = device.substr(5);
    char* end = nullptr;
    long index = std::strtol(n.c_str(), &end, 10);
    if (!n.empty() && *end == '\0' && index >= 0 && index < 1024) return static_cast<int>(index);
  }
  fail("unknown device '{}': use cpu, cuda or cuda:N", device);
}

std::unique_ptr<Backend> make_backend(const std::string& device, int num_threads) {
  const int gpu = cuda_device_index(device);
  return gpu < 0 ? make_cpu_backend(num_threads) : make_cuda_backend(gpu);
}

}  // namespace ferrum
