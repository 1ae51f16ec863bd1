// The pattern of dummy (random) weights, shared by the CPU and the CUDA backends so that both
// fill the same values: splitmix64 of (seed, index) mapped to [-1, 1).
#pragma once
#include <cstdint>

#include "backend/splitmix.h"

namespace ferrum {

FERRUM_HOST_DEVICE inline float dummy_unit(uint64_t seed, uint64_t i) {
  const uint64_t z = splitmix64_mix(seed + (i + 1) * kGoldenGamma);
  return static_cast<float>(z >> 40) / 16777216.0f * 2.0f - 1.0f;
}

// The seed of a named dummy weight (FNV-1a of the name), and its center and scale: uniform in
// [-0.05, 0.05], norms near 1.
inline uint64_t dummy_seed(const char* name) {
  uint64_t seed = 1469598103934665603ull;
  for (const char* c = name; *c; ++c) seed = (seed ^ static_cast<unsigned char>(*c)) * 1099511628211ull;
  return seed;
}
struct DummyRange {
  float center, scale;
};
inline DummyRange dummy_range(bool is_norm) { return is_norm ? DummyRange{1.0f, 0.1f} : DummyRange{0.0f, 0.05f}; }

}  // namespace ferrum
