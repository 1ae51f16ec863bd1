// Decode of integer-coded packed weights with x rounded to int8 (cuda_packed_q8.cu): what
// packed_matmul runs for 1 to kQ8MaxRows rows of x. FERRUM_DECODE_X8=0 keeps 16-bit x (the
// tensor-core stream kernel) instead, to compare them. On an H200 (Llama-3.1-8B shapes) it wins
// at 1 and 2 rows (gate_up 24 us against 31 at one row, engine decode +12%) and loses from 4
// (its per-row work grows with the rows, the tensor cores' does not): kQ8MaxRows = 2.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "core/dtype.h"

namespace ferrum::cuda {

constexpr int kQ8MaxRows = 2;
// Input features up to which x's int8 form fits in shared memory (1.5 bytes a feature and row).
constexpr int64_t kQ8MaxK = 32768;

bool packed_q8_enabled();
// Whether M rows of x times a weight of this mode and K input features take the int8 path.
bool packed_q8_applies(PackedMode mode, int64_t M, int64_t K);
// out[m, n] (rows of ldo) = x[m, :] . w[n, :] + bias[n], x [M, K] in act (F16/BF16) rounded to
// int8 per 16 columns (in the kernel, by each warp for its part of K).
void packed_matmul_q8(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias, void* out,
                      bool out_f32, int64_t ldo, bool accumulate, cudaStream_t s);
// out[m, n] = silu(g) * u (act, rows of ldo) for g, u = x[m, :] . w[n, :], x[m, :] . w[n + R/2, :]
// (each rounded to act first, as silu_mul_halves takes them): a gate/up weight of R rows
// without a separate SwiGLU kernel. False (nothing launched) where the int8 path does not
// apply or R is not a multiple of 32 (gate and up in whole tiles).
bool packed_matmul_q8_silu(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias,
                           void* out, int64_t ldo, cudaStream_t s);

// Two weights of one x in one launch: out0 = x . w0^T (+ bias0), out1 = x . w1^T (+ bias1),
// rows of ldo, as packed_matmul_q8 computes each but for the split of K (planned for both
// together, so the float sums may round apart from two launches'). For a layer whose parts come in two
// integer modes (llama.cpp's Q4_K_M/Q5_K_M: q/k in Q4_K or Q5_K, v in Q6_K in some layers),
// where two launches cost a kernel's latency more. False (nothing launched) for other pairs of
// modes, where the int8 path does not apply, or with FERRUM_Q8_TWO=0.
bool packed_matmul_q8_two(const void* x, DType act, int M, int64_t K, const PackedWeight& w0, const float* bias0,
                          void* out0, const PackedWeight& w1, const float* bias1, void* out1, bool out_f32,
                          int64_t ldo, bool accumulate, cudaStream_t s);

// Grouped experts at decode: the kernel's block row r takes route r (cuda_moe.h's routes of
// the first num_routes / top_k tokens), its expert's weight (the tiles and parameters moved on
// by e times the strides), x's row of the route's token (or, x_by_pos, x's row at the route's
// sorted position: the down projection of the gate/up rows) and writes out's row at the
// route's sorted position; paired, also the next sorted row's route.
// With sorted_route (the routing's route of each sorted row, -1 for padding), routes are
// paired: the route at an even sorted row also takes the next row's route of the same expert
// (x's two rows in one pass over the expert's weight) and the one at an odd row has nothing
// to do, so an expert of two routes is read once (4-bit codes with a zero point only:
// packed_moe_q8 says why). num_experts sizes the grid for the routes expected to lead a pair
// or stand alone.
struct Q8Routes {
  const int32_t* route_pos = nullptr;  // null: one weight, no routes
  const int32_t* route_expert = nullptr;
  int top_k = 1;
  bool x_by_pos = false;
  int64_t tile_stride = 0, param_stride = 0;  // bytes, 32-bit words
  const int32_t* sorted_route = nullptr;      // null: a route per block row, unpaired
  int num_experts = 0;
};

// Routes up to which packed_moe_q8 applies: 128 (16 tokens of Qwen3-MoE's 8), where on the
// H200 it beat the grouped tensor-core kernels (which read each expert once for all of its
// rows) at 4, 8 and 16 tokens by 23, 19 and 6%, though it read an expert once per route (GPTQ's
// now once per two).
// FERRUM_MOE_Q8_ROUTES sets another limit (to compare).
int q8_max_routes();
// Decode of quantized experts (no bias), a route per row of blocks: gate_up: w is each
// expert's gate rows then as many up rows and out gets silu(gate) * up (as
// packed_matmul_q8_silu); else out gets x . w^T, both in act (rows of ldo). False (nothing
// launched) where the int8 path does not apply (FP8, act order, over q8_max_routes() routes).
bool packed_moe_q8(const void* x, DType act, const PackedWeight& w, bool gate_up, int num_routes, const Q8Routes& routes,
                   void* out, int64_t ldo, cudaStream_t s);
// Once per process, before any graph is recorded (shared memory over 48 KB).
void packed_q8_prepare();

}  // namespace ferrum::cuda
