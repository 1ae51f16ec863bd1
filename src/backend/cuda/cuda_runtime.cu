// The CUDA side of the backend starts here: device discovery. The CUDA ops (the same
// interface as backend/cpu, each with a parity test against it) follow in the CUDA issue.
#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/cuda_runtime.h"

namespace ferrum::cuda {

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return out;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, static_cast<size_t>(p.totalGlobalMem), p.major * 10 + p.minor, p.multiProcessorCount});
  }
  return out;
}

}  // namespace ferrum::cuda
