// Elementwise and row-wise kernels: embedding, RMSNorm, RoPE, KV writes, SwiGLU, adds,
// conversions. Memory-bound; one thread per element or one block per row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/dummy_fill.h"

namespace ferrum::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::BF16: return to_float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16: return to_float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

unsigned blocks_for(int64_t n, int per_block = kThreads) {
  int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 32 ? 65535 * 32 : b));
}

__global__ void embedding_kernel(const void* table, DType t, int64_t vocab, int64_t dim, const int32_t* ids,
                                 float* out) {
  const int64_t tok = blockIdx.x;
  const int32_t id = ids[tok];
  float* o = out + tok * dim;
  const bool ok = id >= 0 && id < vocab;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = ok ? load(table, t, id * dim + i) : 0.0f;
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

__global__ void rms_norm_kernel(const float* x, const void* w, DType wt, int64_t cols, float eps, float* out) {
  __shared__ float shared[32];
  const float* xr = x + blockIdx.x * cols;
  float* o = out + blockIdx.x * cols;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) o[i] = load(w, wt, i) * (xr[i] * inv);
}

__global__ void rope_kernel(float* q, float* k, const int32_t* positions, const float* cos, const float* sin,
                            int64_t hq, int64_t hk, int64_t d, int64_t max_positions) {
  const int64_t t = blockIdx.x, half = d / 2;
  const int32_t pos = positions[t];
  if (pos < 0 || pos >= max_positions) return;
  const float* c = cos + static_cast<int64_t>(pos) * half;
  const float* s = sin + static_cast<int64_t>(pos) * half;
  for (int64_t u = threadIdx.x; u < (hq + hk) * half; u += blockDim.x) {
    const int64_t h = u / half, i = u % half;
    float* v = h < hq ? q + (t * hq + h) * d : k + (t * hk + (h - hq)) * d;
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c[i] - x2 * s[i];
    v[i + half] = x2 * c[i] + x1 * s[i];
  }
}


template <typename C>
__global__ void write_kv_kernel(const float* k, const float* v, const int32_t* slots, int64_t row, int64_t num_slots,
                                C* kc, C* vc) {
  const int64_t t = blockIdx.x;
  const int32_t slot = slots[t];
  if (slot < 0 || slot >= num_slots) return;
  for (int64_t i = threadIdx.x; i < row; i += blockDim.x) {
    kc[slot * row + i] = from_float<C>(k[t * row + i]);
    vc[slot * row + i] = from_float<C>(v[t * row + i]);
  }
}

__global__ void silu_mul_kernel(const float* g, const float* u, int64_t n, float* o) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

__global__ void copy_columns_kernel(const float* src, int64_t rows, int64_t src_cols, int64_t offset, int64_t width,
                                    float* dst) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = src[(i / width) * src_cols + offset + i % width];
}

__global__ void silu_mul_halves_kernel(const float* src, int64_t rows, int64_t half, float* out) {
  const int64_t n = rows * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float* row = src + (i / half) * 2 * half;
    const float g = row[i % half];
    out[i] = g / (1.0f + expf(-g)) * row[half + i % half];
  }
}

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* o) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    o[i] = a[i] + b[i];
}

__global__ void add_bias_kernel(float* o, const float* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    o[i] += bias[i % cols];
}

__global__ void gather_rows_kernel(const float* x, const int32_t* rows, int64_t cols, int64_t num_rows, float* out) {
  const int64_t r = blockIdx.x;
  const int32_t src = rows[r];
  const bool ok = src >= 0 && src < num_rows;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[r * cols + i] = ok ? x[src * cols + i] : 0.0f;
}

template <typename T>
__global__ void convert_kernel(const float* s, int64_t n, T* d) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    d[i] = from_float<T>(s[i]);
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

unsigned row_threads(int64_t cols) { return cols >= 1024 ? 1024 : (cols >= 256 ? 256 : 128); }

}  // namespace

void embedding(const void* table, DType dtype, int64_t vocab, int64_t dim, const int32_t* ids, int64_t tokens,
               float* out, cudaStream_t s) {
  if (tokens == 0) return;
  embedding_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, s>>>(table, dtype, vocab, dim, ids, out);
}

void rms_norm(const float* x, const void* w, DType w_dtype, int64_t rows, int64_t cols, float eps, float* out,
              cudaStream_t s) {
  if (rows == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(rows), row_threads(cols), 0, s>>>(x, w, w_dtype, cols, eps, out);
}

void rope(float* q, float* k, const int32_t* positions, const float* cos, const float* sin, int64_t tokens,
          int64_t hq, int64_t hk, int64_t d, int64_t max_positions, cudaStream_t s) {
  if (tokens == 0) return;
  rope_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, s>>>(q, k, positions, cos, sin, hq, hk, d, max_positions);
}

void write_kv(const float* k, const float* v, const int32_t* slots, int64_t tokens, int64_t row, int64_t num_slots,
              void* k_cache, void* v_cache, DType cache_dtype, cudaStream_t s) {
  if (tokens == 0) return;
  const unsigned grid = static_cast<unsigned>(tokens);
  if (cache_dtype == DType::BF16)
    write_kv_kernel<<<grid, kThreads, 0, s>>>(k, v, slots, row, num_slots, static_cast<__nv_bfloat16*>(k_cache),
                                              static_cast<__nv_bfloat16*>(v_cache));
  else if (cache_dtype == DType::F16)
    write_kv_kernel<<<grid, kThreads, 0, s>>>(k, v, slots, row, num_slots, static_cast<__half*>(k_cache),
                                              static_cast<__half*>(v_cache));
  else
    write_kv_kernel<<<grid, kThreads, 0, s>>>(k, v, slots, row, num_slots, static_cast<float*>(k_cache),
                                              static_cast<float*>(v_cache));
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t s) {
  if (n == 0) return;
  silu_mul_kernel<<<blocks_for(n), kThreads, 0, s>>>(gate, up, n, out);
}

void copy_columns(const float* src, int64_t rows, int64_t src_cols, int64_t offset, int64_t width, float* dst,
                  cudaStream_t s) {
  if (rows * width == 0) return;
  copy_columns_kernel<<<blocks_for(rows * width), kThreads, 0, s>>>(src, rows, src_cols, offset, width, dst);
}

void silu_mul_halves(const float* src, int64_t rows, int64_t half, float* out, cudaStream_t s) {
  if (rows * half == 0) return;
  silu_mul_halves_kernel<<<blocks_for(rows * half), kThreads, 0, s>>>(src, rows, half, out);
}

void add(const float* a, const float* b, int64_t n, float* out, cudaStream_t s) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, b, n, out);
}

void add_bias(float* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols == 0) return;
  add_bias_kernel<<<blocks_for(rows * cols), kThreads, 0, s>>>(out, bias, rows, cols);
}

void gather_rows(const float* x, const int32_t* rows, int64_t count, int64_t cols, int64_t num_rows, float* out,
                 cudaStream_t s) {
  if (count == 0) return;
  gather_rows_kernel<<<static_cast<unsigned>(count), kThreads, 0, s>>>(x, rows, cols, num_rows, out);
}

void convert_from_f32(const float* src, int64_t n, DType dtype, void* dst, cudaStream_t s) {
  if (n == 0) return;
  if (dtype == DType::BF16) convert_kernel<<<blocks_for(n), kThreads, 0, s>>>(src, n, static_cast<__nv_bfloat16*>(dst));
  else convert_kernel<<<blocks_for(n), kThreads, 0, s>>>(src, n, static_cast<__half*>(dst));
}

void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float center, float scale, cudaStream_t s) {
  if (n == 0) return;
  fill_random_kernel<<<blocks_for(n), kThreads, 0, s>>>(dst, dtype, n, seed, center, scale);
}

void sum_f32(const float* x, int64_t n, float* out, cudaStream_t s) {
  sum_kernel<<<1024, 512, 0, s>>>(reinterpret_cast<const float4*>(x), n / 4, out);
}

}  // namespace ferrum::cuda
