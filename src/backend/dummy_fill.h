// The pattern of dummy (random) weights, shared by the CPU and the CUDA backends so that both
// fill the same values: splitmix64 of (seed, index) mapped to [-1, 1).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FERRUM_HOST_DEVICE __host__ __device__
#else
#define FERRUM_HOST_DEVICE
#endif

namespace ferrum {

FERRUM_HOST_DEVICE inline float dummy_unit(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) / 16777216.0f * 2.0f - 1.0f;
}

}  // namespace ferrum
