#include "backend/cuda/cuda_gemm.h"

#include <vector>

#include "core/error.h"

namespace ferrum::cuda {
namespace {

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLASLt {}: status {}", what, static_cast<int>(s));
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
}
size_t type_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

constexpr int kCandidates = 8;  // heuristic results timed per shape
constexpr int kTimedRuns = 3;

}  // namespace

TunedGemm::TunedGemm(cudaStream_t stream, void* workspace, size_t workspace_bytes)
    : stream_(stream), workspace_(workspace), workspace_bytes_(workspace_bytes) {
  check(cublasLtCreate(&lt_), "create");
}

TunedGemm::~TunedGemm() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
  }
  cublasLtDestroy(lt_);
}

// Row-major out[M, N] is column-major out^T[N, M] = w^T[N, K] x^T[K, M]: A is w (K x N, lda K,
// transposed), B is x (K x M, ldb K), C is out (N x M, ldc N).
TunedGemm::Plan& TunedGemm::plan(const Key& key, cudaDataType_t type, cudaDataType_t out_type, bool capturing,
                                 const void* w, const void* x) {
  auto it = plans_.find(key);
  if (it != plans_.end() && (it->second.tuned || capturing)) return it->second;
  const auto [M, N, K, t, ot, accumulate] = key;
  if (it == plans_.end()) {
    Plan p;
    check(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa");
    check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb");
    check(cublasLtMatrixLayoutCreate(&p.a, type, K, N, K), "layout a");
    check(cublasLtMatrixLayoutCreate(&p.b, type, K, M, K), "layout b");
    check(cublasLtMatrixLayoutCreate(&p.c, out_type, N, M, N), "layout c");
    it = plans_.emplace(key, p).first;
  }
  Plan& p = it->second;
  cublasLtMatmulPreference_t pref = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref), "preference");
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                             sizeof(workspace_bytes_)),
        "workspace preference");
  cublasLtMatmulHeuristicResult_t results[kCandidates];
  int found = 0;
  const cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(lt_, p.op, p.a, p.b, p.c, p.c, pref, kCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check(s, "heuristic");
  if (found == 0) fail("cuBLASLt has no algorithm for a {} x {} x {} GEMM", M, N, K);
  p.algo = results[0].algo;
  if (capturing || found == 1) return p;  // timing would record into the graph
  // Time each candidate into scratch (an accumulating GEMM must not add into `out` repeatedly).
  void* scratch = nullptr;
  check(cudaMalloc(&scratch, static_cast<size_t>(M * N) * type_bytes(out_type)), "tuning scratch");
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  float best = 0.0f;
  cublasLtMatmulAlgo_t best_algo = results[0].algo;
  for (int i = 0; i < found; ++i) {
    p.algo = results[i].algo;
    launch(p, w, x, scratch, accumulate ? 1.0f : 0.0f);  // warm-up
    cudaEventRecord(start, stream_);
    for (int r = 0; r < kTimedRuns; ++r) launch(p, w, x, scratch, accumulate ? 1.0f : 0.0f);
    cudaEventRecord(stop, stream_);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    if (i == 0 || ms < best) best = ms, best_algo = results[i].algo;
  }
  p.algo = best_algo;
  p.tuned = true;
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(scratch);
  return p;
}

void TunedGemm::launch(const Plan& p, const void* w, const void* x, void* out, float beta) {
  const float alpha = 1.0f;
  check(cublasLtMatmul(lt_, p.op, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &p.algo, workspace_,
                       workspace_bytes_, stream_),
        "matmul");
}

void TunedGemm::run(const void* w, const void* x, void* out, int64_t M, int64_t N, int64_t K, cudaDataType_t type,
                    cudaDataType_t out_type, float beta, bool capturing) {
  const Key key{M, N, K, static_cast<int>(type), static_cast<int>(out_type), beta != 0.0f};
  launch(plan(key, type, out_type, capturing, w, x), w, x, out, beta);
}

}  // namespace ferrum::cuda
