// Skinny matmuls of 3-16 rows on tensor cores: out[m, n] = x[m, :] . w[n, :] for a decode
// batch of up to 16 sequences. Memory-bound on the weights like the GEMV (cuda_gemv.cu), but
// where the GEMV would re-read every x row per weight load, here an m16n8k16 MMA takes 16
// weight rows (the "A" operand) against 8 rows of x (the "B" operand) at once.
//
// Fragments come straight from global memory with 16-byte loads. A dot product does not care
// in which order it visits k, so each lane maps the MMA's logical k slots {2t, 2t+1, 2t+8,
// 2t+9} of two consecutive MMAs onto the 8 consecutive elements of one 16-byte load; x uses
// the same map, so both operands agree. A block owns 16 output columns (32 for SwiGLU: the
// gate rows and the matching up rows) and its 8 warps split k, then reduce in shared memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kChunk = 32;   // k elements per lane group and step: 4 lanes x 8

// A weight load that bypasses L1, which x's rows (read by every block) keep.
__device__ __forceinline__ uint4 load_stream(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// kParts: 1 (one weight of n_cols rows) or 2 (SwiGLU: gate rows [0, n_cols), up rows
// [n_cols, 2 n_cols)). kTiles: 8-row tiles of x (1 for m <= 8, else 2).
template <typename W, typename O, int kParts, int kTiles, GemvMode kMode, int kUnroll, bool kPipelined>
__global__ void __launch_bounds__(kWarps * 32) skinny_mma_kernel(const W* __restrict__ x, int m,
                                                                 const W* __restrict__ w,
                                                                 const float* __restrict__ bias, int64_t n_cols,
                                                                 int64_t k, O* __restrict__ out) {
  __shared__ float partial[kWarps][kParts][kTiles][32][4];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * 16;

  // This lane's two weight rows (g, g + 8) of each part and its x rows (g, g + 8): null when
  // past the end, read as zeros.
  const W* wrow[kParts][2];
#pragma unroll
  for (int p = 0; p < kParts; ++p)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t n = n0 + g + 8 * h;
      wrow[p][h] = n < n_cols ? w + (p * n_cols + n) * k : nullptr;
    }
  const W* xrow[kTiles];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) xrow[i] = g + 8 * i < m ? x + (g + 8 * i) * k : nullptr;

  float acc[kParts][kTiles][4] = {};
  const int64_t chunks = (k + kChunk - 1) / kChunk;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  // Chunk c's weights (this lane's 16 bytes of each of its rows) and x.
  auto load_w = [&](uint4 (&a)[kParts][2], int64_t c) {
    const int64_t kk = c * kChunk + t * 8;
    const bool in = kk < k;  // k % 8 == 0: a lane's 8 elements are all in or all out
#pragma unroll
    for (int p = 0; p < kParts; ++p)
#pragma unroll
      for (int h = 0; h < 2; ++h) a[p][h] = in && wrow[p][h] ? load_stream(wrow[p][h] + kk) : zero;
  };
  auto load_x = [&](uint4 (&b)[kTiles], int64_t c) {
    const int64_t kk = c * kChunk + t * 8;
#pragma unroll
    for (int i = 0; i < kTiles; ++i)
      b[i] = kk < k && xrow[i] ? __ldg(reinterpret_cast<const uint4*>(xrow[i] + kk)) : zero;
  };
  auto math = [&](const uint4 (&a)[kParts][2], const uint4 (&b)[kTiles]) {
#pragma unroll
    for (int p = 0; p < kParts; ++p)
#pragma unroll
      for (int i = 0; i < kTiles; ++i) {
        const uint4& lo = a[p][0];
        const uint4& hi = a[p][1];
        const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};
        const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};
        mma16816<W>(acc[p][i], a0, b[i].x, b[i].y);
        mma16816<W>(acc[p][i], a1, b[i].z, b[i].w);
      }
  };
  if constexpr (kPipelined) {
    // Two groups of kUnroll chunks: the next group's weights load while this one's math runs.
    constexpr int64_t kGroup = static_cast<int64_t>(kWarps) * kUnroll;
    uint4 a[kUnroll][kParts][2], a2[kUnroll][kParts][2];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) load_w(a[u], warp + u * kWarps);
    for (int64_t c0 = warp; c0 < chunks; c0 += 2 * kGroup) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) load_w(a2[u], c0 + kGroup + u * kWarps);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        uint4 b[kTiles];
        load_x(b, c0 + u * kWarps);
        math(a[u], b);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) load_w(a[u], c0 + 2 * kGroup + u * kWarps);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        uint4 b[kTiles];
        load_x(b, c0 + kGroup + u * kWarps);
        math(a2[u], b);
      }
    }
  } else {
    for (int64_t c0 = warp; c0 < chunks; c0 += kWarps * kUnroll) {
      uint4 a[kUnroll][kParts][2], b[kUnroll][kTiles];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {  // every load first, then the math
        load_w(a[u], c0 + u * kWarps);
        load_x(b[u], c0 + u * kWarps);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) math(a[u], b[u]);
    }
  }

#pragma unroll
  for (int p = 0; p < kParts; ++p)
#pragma unroll
    for (int i = 0; i < kTiles; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) partial[warp][p][i][lane][j] = acc[p][i][j];
  __syncthreads();

  // One thread per accumulator slot: C's (lane, j) is row g + 8 (j / 2), column 2 t + j % 2.
  for (int s = threadIdx.x; s < kTiles * 128; s += kWarps * 32) {
    const int i = s / 128, l = (s / 4) % 32, j = s % 4;
    const int64_t n = n0 + l / 4 + 8 * (j / 2);
    const int row = 8 * i + 2 * (l % 4) + j % 2;
    if (n >= n_cols || row >= m) continue;
    float v[kParts];
#pragma unroll
    for (int p = 0; p < kParts; ++p) {
      float sum = bias ? bias[p * n_cols + n] : 0.0f;
#pragma unroll
      for (int wi = 0; wi < kWarps; ++wi) sum += partial[wi][p][i][l][j];
      v[p] = sum;
    }
    O* o = out + row * n_cols + n;
    if constexpr (kMode == GemvMode::SiluMul) *o = from_float<O>(v[0] / (1.0f + expf(-v[0])) * v[1]);
    else if constexpr (kMode == GemvMode::Accumulate) *o = to_float(*o) + v[0];
    else *o = from_float<O>(v[0]);
  }
}

template <typename W, int kTiles, int U, bool P>
void launch_variant(const void* xv, int m, const void* wv, const float* bias, int64_t n, int64_t k, void* out,
            DType out_dtype, GemvMode mode, cudaStream_t s) {
  const W* x = static_cast<const W*>(xv);
  const W* w = static_cast<const W*>(wv);
  const int64_t cols = mode == GemvMode::SiluMul ? n / 2 : n;
  const dim3 grid(static_cast<unsigned>((cols + 15) / 16)), block(kWarps * 32);
  if (mode == GemvMode::SiluMul)
    skinny_mma_kernel<W, W, 2, kTiles, GemvMode::SiluMul, (U > 2 ? U / 2 : U), P><<<grid, block, 0, s>>>(x, m, w, bias, cols, k,
                                                                               static_cast<W*>(out));
  else if (mode == GemvMode::Accumulate)
    skinny_mma_kernel<W, float, 1, kTiles, GemvMode::Accumulate, U, P><<<grid, block, 0, s>>>(x, m, w, bias, cols, k,
                                                                                      static_cast<float*>(out));
  else if (out_dtype == DType::F32)
    skinny_mma_kernel<W, float, 1, kTiles, GemvMode::Store, U, P><<<grid, block, 0, s>>>(x, m, w, bias, cols, k,
                                                                                 static_cast<float*>(out));
  else
    skinny_mma_kernel<W, W, 1, kTiles, GemvMode::Store, U, P><<<grid, block, 0, s>>>(x, m, w, bias, cols, k,
                                                                             static_cast<W*>(out));
}

// FERRUM_SKINNY_VARIANT (experiments): 0 eight chunks in flight, 1 four pipelined, 2 four.
int skinny_variant() {
  static const int v = [] {
    const char* e = std::getenv("FERRUM_SKINNY_VARIANT");
    return e ? std::atoi(e) : 0;
  }();
  return v;
}

template <typename W, int kTiles>
void launch(const void* x, int m, const void* w, const float* bias, int64_t n, int64_t k, void* out, DType out_dtype,
            GemvMode mode, cudaStream_t s) {
  switch (skinny_variant()) {
    case 1: return launch_variant<W, kTiles, 4, true>(x, m, w, bias, n, k, out, out_dtype, mode, s);
    case 2: return launch_variant<W, kTiles, 4, false>(x, m, w, bias, n, k, out, out_dtype, mode, s);
    default: return launch_variant<W, kTiles, 8, false>(x, m, w, bias, n, k, out, out_dtype, mode, s);
  }
}

template <typename W>
void dispatch(const void* x, int m, const void* w, const float* bias, int64_t n, int64_t k, void* out,
              DType out_dtype, GemvMode mode, cudaStream_t s) {
  if (m <= 8) launch<W, 1>(x, m, w, bias, n, k, out, out_dtype, mode, s);
  else launch<W, 2>(x, m, w, bias, n, k, out, out_dtype, mode, s);
}

}  // namespace

void skinny_mma_16bit(const void* x, int64_t m, DType dtype, const void* w, const float* bias, int64_t n, int64_t k,
                      void* out, DType out_dtype, GemvMode mode, cudaStream_t s) {
  if (dtype == DType::BF16) dispatch<__nv_bfloat16>(x, static_cast<int>(m), w, bias, n, k, out, out_dtype, mode, s);
  else dispatch<__half>(x, static_cast<int>(m), w, bias, n, k, out, out_dtype, mode, s);
}

}  // namespace ferrum::cuda
