// splitmix64's output function: a cheap, well-mixed 64-bit hash of a counter. The dummy-weight
// pattern, the device sampler's draws and the sequences' sampling keys are all built on it,
// on the host and in CUDA kernels alike.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FERRUM_HOST_DEVICE __host__ __device__
#else
#define FERRUM_HOST_DEVICE
#endif

namespace ferrum {

constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;  // splitmix64's increment

FERRUM_HOST_DEVICE inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace ferrum
