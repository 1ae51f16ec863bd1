// Matmuls against weights whose rows are dequantized to F32 (GPTQ/AWQ int4 and FP8): the CPU
// reference of those formats, exact F32 products of the dequantized values. A few rows of x
// (decode) take each weight row while it is in L1; more rows dequantize a panel of weight rows
// into a scratch buffer that the F32 matmul (cpu_matmul.cpp) runs as a dense weight.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_kernels.h"

namespace ferrum::cpu {
namespace {

constexpr int64_t kRowAtATime = 4;  // rows of x up to which a weight row is used as it is decoded

// Eight independent sums, so that the compiler can keep them in one vector register.
float dot(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) t += a[i] * b[i];
  return t;
}

}  // namespace

void matmul_decoded(ThreadPool& pool, const Tensor& x, int64_t N, const RowDecode& decode, const Tensor* bias,
                    float* out, int64_t ldo) {
  const int64_t K = x.cols();
  FERRUM_CHECK(x.dtype == DType::F32, "matmul_decoded: x is {}, not F32", dtype_name(x.dtype));
  if (x.rows() <= kRowAtATime) {
    const int64_t M = x.rows();
    const float* xp = x.ptr<float>();
    pool.parallel_for(N, 4, [&](int64_t n0, int64_t n1) {
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t n = n0; n < n1; ++n) {
        decode(n, row.data());
        const float b = bias ? to_f32(bias->data, bias->dtype, n) : 0.0f;
        for (int64_t m = 0; m < M; ++m) out[m * ldo + n] = dot(xp + m * K, row.data(), K) + b;
      }
    });
    return;
  }
  // A panel of about 4 MiB of F32 rows: small enough for the caches, large enough for the
  // matmul's own blocking.
  const int64_t panel = std::clamp<int64_t>((int64_t{1} << 20) / K, 16, N);
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(panel * K));
  std::vector<float>& rows = buffer;  // the pool's workers reach the caller's buffer
  for (int64_t n0 = 0; n0 < N; n0 += panel) {
    const int64_t count = std::min(panel, N - n0);
    pool.parallel_for(count, 4, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) decode(n0 + r, rows.data() + r * K);
    });
    Tensor w;
    w.dtype = DType::F32;
    w.ndim = 2;
    w.shape = {count, K, 0, 0};
    w.data = rows.data();
    const Tensor b = bias ? bias->slice_rows(n0, count) : Tensor();
    matmul(pool, x, w, bias ? &b : nullptr, out + n0, ldo);
  }
}

}  // namespace ferrum::cpu
