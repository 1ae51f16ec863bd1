// FP8 W8A8 (issue 12): x rounded to E4M3 per row with its own scale (dynamic, per token), times
// E4M3 weights with a scale per output row, on Hopper's FP8 tensor cores through cuBLASLt, the
// two scale vectors applied in its epilogue (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F):
//   out[m, n] (+)= x_scale[m] * w_scale[n] * sum_k xq[m, k] * wq[n, k].
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "core/dtype.h"

namespace ferrum::cuda {

// x [M, K] (BF16 or F16) -> q [M, K] E4M3 and scale[M] = max |x[m, :]| / 448 (1 for a zero
// row): q = round-to-nearest-even(x / scale), saturated. The CPU twin is fp8_row_quantize.
void quantize_rows_fp8(const void* x, DType dtype, int64_t M, int64_t K, uint8_t* q, float* scale, cudaStream_t s);

class Fp8Gemm {
 public:
  Fp8Gemm();
  ~Fp8Gemm();
  Fp8Gemm(const Fp8Gemm&) = delete;
  Fp8Gemm& operator=(const Fp8Gemm&) = delete;

  // False when cuBLASLt has no FP8 algorithm for this shape (then nothing was queued). out is
  // F32, BF16 or F16, rows ldo elements apart; accumulate adds to it.
  // False once run() found no algorithm for this shape (x need not be rounded then).
  bool usable(int64_t N, int64_t K, int64_t M, int64_t ldo, DType out_dtype, bool accumulate) const;
  bool run(const uint8_t* wq, const float* w_scale, int64_t N, int64_t K, const uint8_t* xq, const float* x_scale,
           int64_t M, void* out, DType out_dtype, int64_t ldo, bool accumulate, cudaStream_t s);

 private:
  struct Plan;
  void* lt_ = nullptr;         // cublasLtHandle_t
  void* workspace_ = nullptr;  // device memory for the algorithms
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int, bool>, std::shared_ptr<Plan>> plans_;
};

}  // namespace ferrum::cuda
