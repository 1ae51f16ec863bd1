// Launchers of the mixture-of-experts kernels (cuda_moe.cu) behind CudaBackend::moe_ffn. The
// whole block runs on the device with sizes fixed by the token count alone, so a decode step's
// graph records it: the router's logits -> top-k routes -> the routes grouped by expert in
// blocks of block_m rows -> one grouped GEMM for every expert's gate/up (SwiGLU in its
// epilogue) and one for down -> each token's weighted sum.
#pragma once
#include <cstdint>

#include "core/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace ferrum::cuda {

// Rows of a block of the grouped GEMM: 16 when experts see a few rows each (decode), 64 for
// long prefills; `packed`: the experts are quantized tiles (cuda_packed_rows.h).
int32_t moe_block_m(int64_t tokens, int32_t top_k, int32_t num_experts, bool packed = false);
// Row capacity of the expert-sorted buffers: every route, plus padding that rounds each
// expert's rows up to whole blocks.
int64_t moe_sorted_capacity(int64_t tokens, int32_t top_k, int32_t num_experts, int32_t block_m);

struct MoeRoutesDev {
  int32_t* route_pos = nullptr;     // [T * k]: the sorted row of route (t, j)
  float* route_weight = nullptr;    // [T * k]: its probability (renormalized or not)
  int32_t* sorted_route = nullptr;  // [capacity]: route index of each sorted row; -1 = padding
  int32_t* block_expert = nullptr;  // [capacity / block_m]: each block's expert; -1 = unused
  int32_t* counts = nullptr;        // [E]: routes per expert (scratch)
  int32_t* route_expert = nullptr;  // [T * k]: the expert of route (t, j)
};
// Routes tokens by their router logits [T, E] (F32): softmax, the top k (ties: the lower
// expert), renormalized when asked (a warp per token); then groups the routes by expert (one
// block; one warp for one token). E <= 1024, k <= 32.
void moe_route(const float* logits, int64_t tokens, int32_t num_experts, int32_t top_k, bool renormalize,
               int32_t block_m, const MoeRoutesDev& r, cudaStream_t s);

// The experts' gate/up: act[row, :I] = silu(x_t . gate_e) * (x_t . up_e) for every sorted row
// (token t of route sorted_route[row], expert e of its block); w [E, 2I, K] (gate rows, then
// up rows); x [T, K] and act in dtype (BF16 or F16).
void moe_gate_up(const void* x, DType dtype, const void* w, int64_t inter, int64_t k, int32_t top_k,
                 const MoeRoutesDev& r, int64_t capacity, int32_t block_m, void* act, cudaStream_t s);
// The experts' down: y[row, :N] = act[row, :] . down_e, w [E, N, K]; act [capacity, K], y
// [capacity, N] in dtype.
void moe_down(const void* act, DType dtype, const void* w, int64_t n, int64_t k, const MoeRoutesDev& r,
              int64_t capacity, int32_t block_m, void* y, cudaStream_t s);
// out[t, :] += sum_j weight(t, j) * y[pos(t, j), :] (+ sigmoid(shared_gate[t]) *
// shared[t, :] when shared is given): the residual stream (F32); y in dtype.
void moe_combine(const void* y, DType dtype, int64_t tokens, int64_t h, int32_t top_k, const MoeRoutesDev& r,
                 const float* shared, const float* shared_gate, float* out, cudaStream_t s);
// Once per process, before graphs are recorded: the GEMMs' shared memory above 48 KB.
void moe_prepare();

}  // namespace ferrum::cuda
