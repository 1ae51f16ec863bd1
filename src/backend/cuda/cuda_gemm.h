// 16-bit GEMMs on cuBLASLt with the algorithm picked by timing: cuBLAS's default heuristic
// chooses poorly for some skinny decode shapes (16 rows into a 4096-wide output ran at 43% of
// the read bandwidth). The first time a shape runs outside graph capture, the heuristic's top
// candidates are each timed and the fastest is kept for that shape; inside a capture, a shape
// not seen yet takes the heuristic's first choice.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace ferrum::cuda {

class TunedGemm {
 public:
  TunedGemm(cudaStream_t stream, void* workspace, size_t workspace_bytes);
  ~TunedGemm();
  TunedGemm(const TunedGemm&) = delete;
  TunedGemm& operator=(const TunedGemm&) = delete;

  // out[M, N] = x[M, K] w[N, K]^T + beta * out (row-major), x and w of `type`, out of
  // `out_type`, F32 accumulation. `capturing`: a graph is being recorded (no timing).
  void run(const void* w, const void* x, void* out, int64_t M, int64_t N, int64_t K, cudaDataType_t type,
           cudaDataType_t out_type, float beta, bool capturing);

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, bool>;  // M, N, K, types, beta != 0
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool tuned = false;
  };
  Plan& plan(const Key& key, cudaDataType_t type, cudaDataType_t out_type, bool capturing, const void* w,
             const void* x);
  void launch(const Plan& p, const void* w, const void* x, void* out, float beta);

  cublasLtHandle_t lt_ = nullptr;
  cudaStream_t stream_;
  void* workspace_;
  size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
};

}  // namespace ferrum::cuda
