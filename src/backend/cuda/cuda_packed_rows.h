// Batches of rows times quantized weights in the tiles of cuda_packed_layout.h, on tensor cores
// (cuda_packed_rows.cu): the dense layers' batches of 17 to 255 rows, and the grouped GEMMs of
// quantized experts (cuda_moe.h's sorted rows).
#pragma once
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_moe.h"
#include "core/dtype.h"

namespace ferrum::cuda {

// Whether batches over 16 rows take these kernels (FERRUM_PACKED_ROWS=0: the older
// packed_kernel of cuda_packed_matmul.cu, to compare them).
bool packed_rows_enabled();
// out[m, n] (rows of ldo) = x[m, :] . w[n, :] + bias[n] for M <= 128 rows of x (F16/BF16), as
// packed_matmul; split-K partials go to scratch (up to scratch_floats).
void packed_rows_matmul(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias,
                        void* out, bool out_f32, int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats,
                        cudaStream_t s);
// out[m, n] = silu(x[m] . w[n]) * (x[m] . w[half + n]) for n < half = w.rows / 2 (a gate/up
// weight, gate rows first; half % 16 == 0), M <= 128, out in x's type (rows of ldo).
void packed_rows_silu(const void* x, DType act, int M, int64_t K, const PackedWeight& w, void* out, int64_t ldo,
                      float* scratch, int64_t scratch_floats, cudaStream_t s);

// Grouped experts: expert e's weight is w with its tiles and parameters moved on by e times
// the strides below (every expert has the same shape and mode).
struct PackedExperts {
  PackedWeight w;
  int64_t tile_stride = 0;   // bytes
  int64_t param_stride = 0;  // 32-bit words
};
// The experts' gate/up of the sorted rows (as moe_gate_up): act[row, :I] = silu(x_t . gate_e) *
// (x_t . up_e), w's rows the expert's I gate rows then I up rows (I % 16 == 0).
// Split over K (partials in scratch, up to scratch_floats) when the blocks are few (decode).
void packed_moe_gate_up(const void* x, DType act, const PackedExperts& w, int64_t inter, int32_t top_k,
                        const MoeRoutesDev& r, int64_t capacity, int32_t block_m, void* out, float* scratch,
                        int64_t scratch_floats, cudaStream_t s);
// The experts' down (as moe_down): y[row, :N] = act[row, :] . down_e.
void packed_moe_down(const void* act_rows, DType act, const PackedExperts& w, const MoeRoutesDev& r,
                     int64_t capacity, int32_t block_m, void* y, float* scratch, int64_t scratch_floats,
                     cudaStream_t s);
// Once per process, before graphs are recorded: shared memory above 48 KB.
void packed_rows_prepare();

}  // namespace ferrum::cuda
