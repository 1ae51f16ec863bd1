// GGUF Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from a super-block's 12
// scale bytes (ggml's get_scale_min_k4). One definition for the reader, the CPU and the GPU.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FERRUM_K_SCALES_FN __host__ __device__ __forceinline__
#else
#define FERRUM_K_SCALES_FN inline
#endif

namespace ferrum {

FERRUM_K_SCALES_FN void gguf_scale_min_k4(int j, const uint8_t* q, int& scale, int& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace ferrum
