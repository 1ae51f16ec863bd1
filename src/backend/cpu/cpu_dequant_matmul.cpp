// Matmuls against weights whose rows are dequantized to F32 one at a time (GPTQ/AWQ int4 and
// FP8): the CPU reference of those formats, exact F32 products of the dequantized values.
#include <vector>

#include "backend/cpu/cpu_kernels.h"

namespace ferrum::cpu {
namespace {

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
  const int64_t M = x.rows(), K = x.cols();
  FERRUM_CHECK(x.dtype == DType::F32, "matmul_decoded: x is {}, not F32", dtype_name(x.dtype));
  const float* xp = x.ptr<float>();
  pool.parallel_for(N, 4, [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; ++n) {
      decode(n, row.data());
      const float b = bias ? to_f32(bias->data, bias->dtype, n) : 0.0f;
      for (int64_t m = 0; m < M; ++m) out[m * ldo + n] = dot(xp + m * K, row.data(), K) + b;
    }
  });
}

}  // namespace ferrum::cpu
