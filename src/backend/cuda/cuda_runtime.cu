// Device discovery and a bandwidth probe.
#include <cuda_runtime.h>

#include <chrono>
#include <string>

#include "backend/cuda/cuda_kernels.h"
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

int sm_count() {
  static const int n = [] {
    int dev = 0, count = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev);
    return count > 0 ? count : 1;
  }();
  return n;
}

}  // namespace ferrum::cuda

namespace ferrum {

bool cuda_available() { return !cuda::list_devices().empty(); }

size_t cuda_free_memory(int device) {
  size_t free = 0, total = 0;
  if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(&free, &total) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return free;
}

double cuda_read_bandwidth_gbs(int device) {
  if (cudaSetDevice(device) != cudaSuccess) return 0.0;
  const int64_t n = int64_t{1} << 30;  // 4 GiB of floats
  float *buf = nullptr, *out = nullptr;
  if (cudaMalloc(&buf, n * 4) != cudaSuccess || cudaMalloc(&out, 4) != cudaSuccess) {
    cudaGetLastError();
    cudaFree(buf);
    return 0.0;
  }
  cudaMemset(buf, 0, n * 4);
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a);
    cuda::sum_f32(buf, n, out, nullptr);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, a, b);
    if (ms > 0.0f) best = std::max(best, n * 4.0 / (ms * 1e-3) / 1e9);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  cudaFree(buf);
  cudaFree(out);
  return best;
}

}  // namespace ferrum
