// Elementwise and row-wise CPU kernels: embedding, RMSNorm, RoPE, SwiGLU, add, KV writes.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace ferrum::cpu {

void convert_row(const void* src, DType t, int64_t n, float* dst) {
  int64_t i = 0;
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
#if FERRUM_AVX2
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(s + i, t));
#endif
  for (; i < n; ++i) dst[i] = to_f32(src, t, i);
}

void embedding(ThreadPool& pool, const Tensor& table, const Tensor& ids, Tensor& out) {
  const int64_t T = ids.numel(), D = table.dim(1), V = table.dim(0);
  const int32_t* id = ids.ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t)
    FERRUM_CHECK(id[t] >= 0 && id[t] < V, "token id {} is outside the vocabulary (size {})", id[t], V);
  const size_t row_bytes = static_cast<size_t>(D) * dtype_size(table.dtype);
  for (int64_t t = 0; t < T; ++t)
    convert_row(static_cast<const char*>(table.data) + id[t] * row_bytes, table.dtype, D, out.ptr<float>() + t * D);
}

void rms_norm(ThreadPool& pool, const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const int64_t R = x.rows(), D = x.cols();
  FERRUM_CHECK(weight.numel() == D, "rms_norm: weight has {} elements, rows have {}", weight.numel(), D);
  pool.parallel_for(R, 16, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> w;
    w.resize(D);
    convert_row(weight.data, weight.dtype, D, w.data());
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.ptr<float>() + r * D;
      float* o = out.ptr<float>() + r * D;
      const float ms = dot_f32(xr, xr, D) / static_cast<float>(D);
      const float inv = 1.0f / std::sqrt(ms + eps);
      for (int64_t i = 0; i < D; ++i) o[i] = w[i] * (xr[i] * inv);
    }
  });
}

void rope(ThreadPool& pool, Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) {
  const int64_t T = q.dim(0), D = q.dim(2), half = D / 2;
  const int32_t* pos = positions.ptr<int32_t>();
  auto rotate = [&](Tensor& x, int64_t t) {
    const int64_t H = x.dim(1);
    const float* c = table.cos.ptr<float>() + static_cast<int64_t>(pos[t]) * half;
    const float* s = table.sin.ptr<float>() + static_cast<int64_t>(pos[t]) * half;
    for (int64_t h = 0; h < H; ++h) {
      float* v = x.ptr<float>() + (t * H + h) * D;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];
        v[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  };
  for (int64_t t = 0; t < T; ++t)
    FERRUM_CHECK(pos[t] >= 0 && pos[t] < table.max_positions, "position {} is beyond the model's {} positions",
                 pos[t], table.max_positions);
  pool.parallel_for(T, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      rotate(q, t);
      rotate(k, t);
    }
  });
}

void write_kv(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache) {
  FERRUM_CHECK(k_cache.dtype == DType::F32 && v_cache.dtype == DType::F32, "the CPU KV cache is F32, not {}",
               dtype_name(k_cache.dtype));
  const int64_t T = k.dim(0), row = k.numel() / T;
  const int64_t slots = k_cache.dim(0) * k_cache.dim(1);
  const int32_t* slot = slot_mapping.ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    if (slot[t] < 0) continue;  // a padding row: nothing to keep
    FERRUM_CHECK(slot[t] < slots, "KV slot {} out of range ({} slots)", slot[t], slots);
    std::memcpy(k_cache.ptr<float>() + slot[t] * row, k.ptr<float>() + t * row, row * 4);
    std::memcpy(v_cache.ptr<float>() + slot[t] * row, v.ptr<float>() + t * row, row * 4);
  }
}

void silu_mul(ThreadPool& pool, const Tensor& gate, const Tensor& up, Tensor& out) {
  const int64_t n = gate.numel();
  pool.parallel_for(n, 1024, [&](int64_t b, int64_t e) {
    const float* g = gate.ptr<float>();
    const float* u = up.ptr<float>();
    float* o = out.ptr<float>();
    for (int64_t i = b; i < e; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

void add(ThreadPool& pool, const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.numel();
  const float* x = a.ptr<float>();
  const float* y = b.ptr<float>();
  float* o = out.ptr<float>();
  for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) {
  const int64_t D = x.cols(), R = x.rows();
  const int32_t* r = rows.ptr<int32_t>();
  for (int64_t i = 0; i < rows.numel(); ++i) {
    FERRUM_CHECK(r[i] >= 0 && r[i] < R, "gather_rows: row {} of {}", r[i], R);
    std::memcpy(out.ptr<float>() + i * D, x.ptr<float>() + r[i] * D, D * 4);
  }
}

}  // namespace ferrum::cpu
