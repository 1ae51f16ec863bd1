// Elementwise and row-wise kernels: embedding, RMSNorm, q/k/v with RoPE and the KV write,
// SwiGLU, biases, dummy fills. Memory-bound; one thread per element or one block per row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_pdl.cuh"
#include "backend/cuda/cuda_rope.cuh"
#include "backend/dummy_fill.h"

#include <type_traits>

namespace ferrum::cuda {
namespace {

constexpr int kThreads = 256;


unsigned blocks_for(int64_t n, int per_block = kThreads) {
  int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 32 ? 65535 * 32 : b));
}

__global__ void embedding_kernel(const void* table, DType t, int64_t vocab, int64_t dim, const int32_t* ids,
                                 float* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t tok = blockIdx.x;
  const int32_t id = ids[tok];
  float* o = out + tok * dim;
  const bool ok = id >= 0 && id < vocab;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = ok ? load_param(table, t, id * dim + i) : 0.0f;
}

__device__ __forceinline__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = lane < warps ? shared[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename O>
__global__ void rms_norm_kernel(const float* x, const void* w, DType wt, int64_t cols, float eps, O* out) {
  __shared__ float shared[32];
  pdl_wait();
  pdl_trigger();
  const float* xr = x + blockIdx.x * cols;
  O* o = out + blockIdx.x * cols;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = load_activation(xr + i);  // (it may overlap x's writer: norm_overlaps)
    ss += v * v;
  }
  ss = block_sum(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    o[i] = from_float<O>(load_param(w, wt, i) * (load_activation(xr + i) * inv));
}

// The same for rows of at most kPer * blockDim.x columns, held in registers: the weight's loads
// are issued before waiting for x (it is no predecessor's output), and all of a thread's loads
// at once, so that a decode step's one-row norm waits for memory twice instead of 2 * kPer
// times. Same sums in the same order as rms_norm_kernel.
template <typename O, int kPer>
__global__ void rms_norm_regs_kernel(const float* x, const void* w, DType wt, int64_t cols, float eps, O* out) {
  __shared__ float shared[32];
  float wv[kPer], xv[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    wv[j] = i < cols ? load_param(w, wt, i) : 0.0f;
  }
  pdl_wait();
  pdl_trigger();
  const float* xr = x + blockIdx.x * cols;
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    xv[j] = i < cols ? load_activation(xr + i) : 0.0f;
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) ss += xv[j] * xv[j];
  ss = block_sum(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
  O* o = out + blockIdx.x * cols;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (i < cols) o[i] = from_float<O>(wv[j] * (xv[j] * inv));
  }
}

// One block per token, one warp per head: q heads, then k heads, then v heads of the fused
// projection row. q and k get the optional per-head RMSNorm and the rotation in F32, then are
// rounded once (to the activations' / the cache's type; an E4M3 cache divides by its scale
// first, to_cache). A lane holds the pairs (i, i + d/2).
template <typename A, typename C>
__global__ void qkv_rope_write_kv_kernel(const A* __restrict__ qkv, const void* q_norm, const void* k_norm,
                                         DType norm_dtype, float eps, const int32_t* positions, const float* cos,
                                         const float* sin, int64_t max_positions, const int32_t* slots, int64_t hq,
                                         int64_t hk, int64_t d, int64_t num_slots, A* __restrict__ q_out,
                                         C* __restrict__ k_cache, C* __restrict__ v_cache, float k_scale,
                                         float v_scale) {
  pdl_wait();
  pdl_trigger();
  const int64_t t = blockIdx.x, half = d / 2, heads = hq + 2 * hk;  // block (t, g): heads g * warps...
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int32_t pos = positions[t];
  const int32_t slot = slots[t];
  const A* row = qkv + t * heads * d;
  for (int64_t h = blockIdx.y * static_cast<int64_t>(warps) + threadIdx.x / 32; h < heads;
       h += static_cast<int64_t>(gridDim.y) * warps) {
    const A* src = row + h * d;
    const bool is_q = h < hq;
    if (!is_q && (slot < 0 || slot >= num_slots)) continue;
    if (h >= hq + hk) {  // v: straight to the cache
      C* dst = v_cache + (static_cast<int64_t>(slot) * hk + (h - hq - hk)) * d;
      for (int64_t i = lane; i < d; i += 32) dst[i] = to_cache<C>(to_float(load_activation(src + i)), v_scale);
      continue;
    }
    if (is_q) {
      A* dst = q_out + (t * hq + h) * d;
      rope_head(src, q_norm, norm_dtype, eps, d, pos, cos, sin, max_positions, lane, [&](int64_t i, float o1, float o2) {
        dst[i] = from_float<A>(o1), dst[i + half] = from_float<A>(o2);
      });
    } else {
      C* dst = k_cache + (static_cast<int64_t>(slot) * hk + (h - hq)) * d;
      rope_head(src, k_norm, norm_dtype, eps, d, pos, cos, sin, max_positions, lane, [&](int64_t i, float o1, float o2) {
        dst[i] = to_cache<C>(o1, k_scale), dst[i + half] = to_cache<C>(o2, k_scale);
      });
    }
  }
}

template <typename T>
__global__ void silu_mul_halves_kernel(const T* src, int64_t rows, int64_t half, T* out) {
  const int64_t n = rows * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T* row = src + (i / half) * 2 * half;
    const float g = to_float(row[i % half]);
    out[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(row[half + i % half]));
  }
}

template <typename T>
__global__ void add_bias_kernel(T* o, const float* bias, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T& v = o[i / cols * ld + i % cols];
    v = from_float<T>(to_float(v) + bias[i % cols]);
  }
}

__global__ void gather_rows_kernel(const float* x, const int32_t* rows, int64_t cols, int64_t num_rows, float* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t r = blockIdx.x;
  const int32_t src = rows[r];
  const bool ok = src >= 0 && src < num_rows;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[r * cols + i] = ok ? x[src * cols + i] : 0.0f;
}

__global__ void fault_kernel() { __trap(); }

__global__ void take_picks_kernel(int32_t* ids, int64_t num_ids, const int32_t* pairs, int64_t n, const int32_t* picks,
                                  int64_t num_picks) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int32_t dst = pairs[2 * i], src = pairs[2 * i + 1];
  if (dst >= 0 && dst < num_ids && src >= 0 && src < num_picks) ids[dst] = picks[src];
}

__global__ void fill_random_kernel(void* dst, DType t, int64_t n, uint64_t seed, float center, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = center + scale * dummy_unit(seed, static_cast<uint64_t>(i));
    if (t == DType::BF16) static_cast<__nv_bfloat16*>(dst)[i] = from_float<__nv_bfloat16>(v);
    else if (t == DType::F16) static_cast<__half*>(dst)[i] = from_float<__half>(v);
    else static_cast<float*>(dst)[i] = v;
  }
}

__global__ void sum_kernel(const float4* x, int64_t n4, float* out) {
  __shared__ float shared[32];
  float acc = 0.0f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 v = x[i];
    acc += v.x + v.y + v.z + v.w;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

// rms_norm overlaps the kernel before it (FERRUM_NORM_PDL=0: not): its weights are read before
// the wait and x through L2, so a decode step's norm between two GEMVs costs less than a whole
// launch (H200, Llama-3.1-8B shapes, c=1: GPTQ +3%, FP8 +3%, Q4_K_M +1-3%).
bool norm_overlaps() {
  static const bool on = overlap_unless_off("FERRUM_NORM_PDL");
  return on;
}

unsigned row_threads(int64_t cols) { return cols >= 1024 ? 1024 : (cols >= 256 ? 256 : 128); }

}  // namespace

void embedding(const void* table, DType dtype, int64_t vocab, int64_t dim, const int32_t* ids, int64_t tokens,
               float* out, cudaStream_t s) {
  if (tokens == 0) return;
  launch_pdl(embedding_kernel, static_cast<unsigned>(tokens), kThreads, 0, s, table, dtype, vocab, dim, ids, out);
}

void rms_norm(const float* x, const void* w, DType w_dtype, int64_t rows, int64_t cols, float eps, void* out,
              DType out_dtype, cudaStream_t s) {
  if (rows == 0) return;
  with_type(out_dtype, [&](auto* o) {
    using O = std::remove_pointer_t<decltype(o)>;
    const unsigned threads = row_threads(cols);
    auto kernel = cols <= 4 * threads   ? rms_norm_regs_kernel<O, 4>
                  : cols <= 8 * threads ? rms_norm_regs_kernel<O, 8>
                                        : rms_norm_kernel<O>;
    launch_overlapping(norm_overlaps(), kernel, static_cast<unsigned>(rows), threads, 0, s, x, w, w_dtype, cols, eps,
                       static_cast<O*>(out));
  });
}

void qkv_rope_write_kv(const void* qkv, DType act_dtype, const void* q_norm, const void* k_norm, DType norm_dtype,
                       float eps, const int32_t* positions, const float* cos, const float* sin, int64_t max_positions,
                       const int32_t* slots, int64_t tokens, int64_t hq, int64_t hk, int64_t d, int64_t num_slots,
                       void* q_out, void* k_cache, void* v_cache, DType cache_dtype, float k_scale, float v_scale,
                       cudaStream_t s) {
  if (tokens == 0) return;
  const int64_t heads = hq + 2 * hk;
  const unsigned threads = static_cast<unsigned>(32 * (heads < 8 ? heads : 8));
  with_type(act_dtype, [&](auto* a) {
    using A = std::remove_pointer_t<decltype(a)>;
    with_cache_type(cache_dtype, [&](auto* c) {
      using C = std::remove_pointer_t<decltype(c)>;
      // A warp per head: a decode step's few tokens still spread over many SMs.
      const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>((heads + threads / 32 - 1) / (threads / 32)));
      launch_pdl(qkv_rope_write_kv_kernel<A, C>, grid, threads, 0, s,
          static_cast<const A*>(qkv), q_norm, k_norm, norm_dtype, eps, positions, cos, sin, max_positions, slots, hq,
          hk, d, num_slots, static_cast<A*>(q_out), static_cast<C*>(k_cache), static_cast<C*>(v_cache), k_scale,
          v_scale);
    });
  });
}

void silu_mul_halves(const void* src, int64_t rows, int64_t half, void* out, DType dtype, cudaStream_t s) {
  if (rows * half == 0) return;
  with_type(dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    silu_mul_halves_kernel<<<blocks_for(rows * half), kThreads, 0, s>>>(static_cast<const T*>(src), rows, half,
                                                                        static_cast<T*>(out));
  });
}

void add_bias(void* out, DType dtype, const float* bias, int64_t rows, int64_t cols, cudaStream_t s, int64_t ld) {
  if (rows * cols == 0) return;
  if (ld == 0) ld = cols;
  with_type(dtype, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    add_bias_kernel<<<blocks_for(rows * cols), kThreads, 0, s>>>(static_cast<T*>(out), bias, rows, cols, ld);
  });
}

void fault(cudaStream_t s) { fault_kernel<<<1, 1, 0, s>>>(); }

void gather_rows(const float* x, const int32_t* rows, int64_t count, int64_t cols, int64_t num_rows, float* out,
                 cudaStream_t s) {
  if (count == 0) return;
  launch_pdl(gather_rows_kernel, static_cast<unsigned>(count), kThreads, 0, s, x, rows, cols, num_rows, out);
}

void take_picks(int32_t* ids, int64_t num_ids, const int32_t* pairs, int64_t n, const int32_t* picks,
                int64_t num_picks, cudaStream_t s) {
  if (n == 0) return;
  take_picks_kernel<<<blocks_for(n), kThreads, 0, s>>>(ids, num_ids, pairs, n, picks, num_picks);
}

void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float center, float scale, cudaStream_t s) {
  if (n == 0) return;
  fill_random_kernel<<<blocks_for(n), kThreads, 0, s>>>(dst, dtype, n, seed, center, scale);
}

void sum_f32(const float* x, int64_t n, float* out, cudaStream_t s) {
  sum_kernel<<<1024, 512, 0, s>>>(reinterpret_cast<const float4*>(x), n / 4, out);
}

}  // namespace ferrum::cuda
