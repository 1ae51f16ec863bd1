// cuBLASLt's FP8 GEMM with per-row (x) and per-output-row (weights) scale vectors
// (cuda_fp8_gemm.h). cuBLAS is column-major: the product is computed as out^T [N, M] =
// W [N, K] . x^T, A = the weights (K x N, op T), B = x (K x M, op N): the "TN" layout FP8 needs.
#include "backend/cuda/cuda_fp8_gemm.h"

#include <cublasLt.h>

#include "core/error.h"
#include "core/log.h"

namespace ferrum::cuda {
namespace {

constexpr size_t kWorkspaceBytes = 32 << 20;

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLASLt {}: status {}", what, static_cast<int>(s));
}

cudaDataType_t out_type(DType t) {
  switch (t) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    case DType::F32: return CUDA_R_32F;
    default: fail("FP8 GEMM: output must be F32, BF16 or F16, not {}", dtype_name(t));
  }
}

}  // namespace

struct Fp8Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool usable = false;
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
  }
};

Fp8Gemm::Fp8Gemm() {
  cublasLtHandle_t h = nullptr;
  check(cublasLtCreate(&h), "create");
  lt_ = h;
  if (cudaMalloc(&workspace_, kWorkspaceBytes) != cudaSuccess) {
    cudaGetLastError();
    cublasLtDestroy(h);
    fail("FP8 GEMM: cannot allocate its {} MiB workspace on the GPU", kWorkspaceBytes >> 20);
  }
}

Fp8Gemm::~Fp8Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (lt_) cublasLtDestroy(static_cast<cublasLtHandle_t>(lt_));
}

bool Fp8Gemm::usable(int64_t N, int64_t K, int64_t M, int64_t ldo, DType out_dtype, bool accumulate) const {
  auto it = plans_.find(std::make_tuple(N, K, M, ldo, static_cast<int>(out_dtype), accumulate));
  return it == plans_.end() || it->second->usable;  // unknown until asked: run() asks
}

bool Fp8Gemm::run(const uint8_t* wq, const float* w_scale, int64_t N, int64_t K, const uint8_t* xq,
                  const float* x_scale, int64_t M, void* out, DType out_dtype, int64_t ldo, bool accumulate,
                  cudaStream_t s) {
  auto key = std::make_tuple(N, K, M, ldo, static_cast<int>(out_dtype), accumulate);
  std::shared_ptr<Plan>& plan = plans_[key];
  if (!plan) {  // a plan per shape: the heuristic's pick, asked once (also while recording a graph)
    plan = std::make_shared<Plan>();
    check(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
    const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t), "transa");
    check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n), "transb");
    const int32_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &vec, sizeof vec), "a scale mode");
    check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &vec, sizeof vec), "b scale mode");
    // The heuristic checks the scale vectors too (a vector mode without one is not valid).
    check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof w_scale),
          "a scale");
    check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof x_scale),
          "b scale");
    const cudaDataType_t ot = out_type(out_dtype);
    check(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_8F_E4M3, K, N, K), "layout a");
    check(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_8F_E4M3, K, M, K), "layout b");
    check(cublasLtMatrixLayoutCreate(&plan->c, ot, N, M, ldo), "layout c");
    cublasLtMatmulPreference_t pref = nullptr;
    check(cublasLtMatmulPreferenceCreate(&pref), "preference");
    const size_t ws = kWorkspaceBytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(lt_), plan->desc, plan->a,
                                                            plan->b, plan->c, plan->c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    plan->usable = st == CUBLAS_STATUS_SUCCESS && found > 0;
    if (plan->usable) plan->algo = result.algo;
    else log::warn("FP8 GEMM: cuBLASLt has no algorithm for [{} x {}] x [{} x {}] (status {}): 16-bit GEMM instead", M,
                   K, K, N, static_cast<int>(st));
  }
  if (!plan->usable) return false;
  check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof w_scale),
        "a scale");
  check(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof x_scale),
        "b scale");
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  check(cublasLtMatmul(static_cast<cublasLtHandle_t>(lt_), plan->desc, &alpha, wq, plan->a, xq, plan->b, &beta, out,
                       plan->c, out, plan->c, &plan->algo, workspace_, kWorkspaceBytes, s),
        "matmul");
  return true;
}

}  // namespace ferrum::cuda
