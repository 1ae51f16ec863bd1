// The CPU matmul (decode GEMV and every prefill GEMM kernel) against a float64 reference, over
// awkward shapes (tails in M, N and K) and every weight dtype; outputs poisoned before the run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/cpu_kernels.h"

namespace ferrum {
namespace {

Tensor host_tensor(std::vector<uint8_t>& store, std::initializer_list<int64_t> shape, DType dt) {
  Tensor t;
  t.dtype = dt;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) t.shape[i++] = d;
  store.assign(t.nbytes() + 64, 0);
  t.data = store.data();
  return t;
}

void check(ThreadPool& pool, int64_t M, int64_t N, int64_t K, DType wt, bool with_bias, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint8_t> xs, ws, bs, os;
  Tensor x = host_tensor(xs, {M, K}, DType::F32), w = host_tensor(ws, {N, K}, wt);
  Tensor b = host_tensor(bs, {N}, wt), out = host_tensor(os, {M, N}, DType::F32);
  std::vector<double> wref(N * K), bref(N);
  for (int64_t i = 0; i < M * K; ++i) x.ptr<float>()[i] = dist(rng);
  for (int64_t i = 0; i < N * K; ++i) {
    const float v = dist(rng);
    if (wt == DType::F32) w.ptr<float>()[i] = v, wref[i] = v;
    else if (wt == DType::BF16) w.ptr<uint16_t>()[i] = f32_to_bf16(v), wref[i] = bf16_to_f32(w.ptr<uint16_t>()[i]);
    else w.ptr<uint16_t>()[i] = f32_to_f16(v), wref[i] = f16_to_f32(w.ptr<uint16_t>()[i]);
  }
  for (int64_t i = 0; i < N; ++i) {
    const float v = dist(rng);
    if (wt == DType::F32) b.ptr<float>()[i] = v, bref[i] = v;
    else if (wt == DType::BF16) b.ptr<uint16_t>()[i] = f32_to_bf16(v), bref[i] = bf16_to_f32(b.ptr<uint16_t>()[i]);
    else b.ptr<uint16_t>()[i] = f32_to_f16(v), bref[i] = f16_to_f32(b.ptr<uint16_t>()[i]);
  }
  for (int64_t i = 0; i < M * N; ++i) out.ptr<float>()[i] = NAN;  // poison
  cpu::matmul(pool, x, w, with_bias ? &b : nullptr, out);
  double num = 0, den = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double ref = with_bias ? bref[n] : 0.0, mag = std::abs(ref);
      for (int64_t k = 0; k < K; ++k) {
        ref += double(x.ptr<float>()[m * K + k]) * wref[n * K + k];
        mag += std::abs(double(x.ptr<float>()[m * K + k]) * wref[n * K + k]);
      }
      const double got = out.ptr<float>()[m * N + n];
      ASSERT_FALSE(std::isnan(got)) << "unwritten output at " << m << "," << n;
      num += (got - ref) * (got - ref);
      den += mag * mag;  // float32 rounding scales with the sum of |terms|, not with |sum|
    }
  EXPECT_LT(std::sqrt(num / den), 1e-6) << "M=" << M << " N=" << N << " K=" << K << " dtype " << dtype_name(wt);
}

TEST(CpuMatmul, MatchesFloat64ReferenceForEveryKernelShapeAndDtype) {
  ThreadPool pool(2);
  std::mt19937 rng(42);
  for (const char* kernel : {"portable", "avx2", "avx512"}) {
    if (!cpu::set_gemm_kernel(kernel)) continue;
    SCOPED_TRACE(kernel);
    for (int64_t M : {1, 3, 4, 8, 9, 13, 40})
      for (int64_t N : {1, 17, 48, 100})
        for (int64_t K : {7, 64, 300, 530})
          for (DType wt : {DType::F32, DType::F16, DType::BF16}) check(pool, M, N, K, wt, (M + N) % 2 == 0, rng);
  }
  cpu::set_gemm_kernel("best");
}

}  // namespace
}  // namespace ferrum
