// Launchers of the CUDA kernels behind CudaBackend. Plain pointers and sizes, so the backend
// (host C++) needs no CUDA headers beyond the stream type. Every kernel mirrors a CPU op in
// backend/cpu and is tested against it (tests/backend/cuda_parity_test.cpp).
#pragma once
#include <cstdint>

#include "core/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace ferrum::cuda {

// out[t, :] = float(table[ids[t], :]); ids outside [0, vocab) give a zero row.
void embedding(const void* table, DType dtype, int64_t vocab, int64_t dim, const int32_t* ids, int64_t tokens,
               float* out, cudaStream_t s);
// out = x / sqrt(mean(x^2) + eps) * w, per row of `cols`; out may alias x.
void rms_norm(const float* x, const void* w, DType w_dtype, int64_t rows, int64_t cols, float eps, float* out,
              cudaStream_t s);
// Rotate-half RoPE in place on q [T, hq, d] and k [T, hk, d]; cos/sin [positions, d/2].
void rope(float* q, float* k, const int32_t* positions, const float* cos, const float* sin, int64_t tokens,
          int64_t hq, int64_t hk, int64_t d, int64_t max_positions, cudaStream_t s);
// Copies rows of `row` floats of k and v to their slots of the paged caches (F32, F16 or
// BF16: cache_dtype).
void write_kv(const float* k, const float* v, const int32_t* slots, int64_t tokens, int64_t row, int64_t num_slots,
              void* k_cache, void* v_cache, DType cache_dtype, cudaStream_t s);
// Causal attention over the paged cache (see Backend::paged_attention). Keys are split in
// `splits` ranges of keys_per_split (attention_partial_floats chooses them and says how many
// floats of scratch `partial` needs).
int64_t attention_partial_floats(int64_t tokens, int64_t hq, int64_t hk, int64_t d, int64_t max_context,
                                 int64_t* splits, int64_t* keys_per_split);
// False (nothing launched) for a head_dim over 256.
bool paged_attention(const float* q, const void* k_cache, const void* v_cache, DType cache_dtype,
                     const int32_t* query_start,
                     const int32_t* seq_lens, const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                     int32_t block_size, int64_t tokens, int64_t hq, int64_t hk, int64_t d, float scale, float* out,
                     int64_t splits, int64_t keys_per_split, float* partial, int32_t tiled_min_q, cudaStream_t s);
// tiled_min_q > 0: tokens of sequences with at least that many queries are skipped, left to
// prefill_attention.

// Causal attention for the query tiles of long prompts with a 16-bit cache, on tensor cores:
// tiles[i] = (sequence, first token of 16 consecutive queries of it, in the flat batch).
// q and the softmax weights are rounded to bf16 for the matrix products (F32 accumulation),
// as a bf16 model's attention does. False when head_dim is not a multiple of 16 up to 256.
constexpr int32_t kPrefillTile = 16;
bool prefill_attention(const float* q, const void* k_cache, const void* v_cache, DType cache_dtype,
                       const int32_t* tiles, int32_t num_tiles, const int32_t* query_start, const int32_t* seq_lens,
                       const int32_t* block_tables, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                       int64_t d, float scale, float* out, cudaStream_t s);
// Skinny matmuls (m <= 2 rows of x) against 16-bit weights, several targets of the same x in
// one launch: out_i[m, n] = x[m, :] . w_i[n, :] (+ bias_i[n]), x rounded to the weights' type.
// Accumulate adds to out; SiluMul computes silu(x . w_0) * (x . w_1) into out_0. False (nothing
// launched) when the shape or alignment does not suit it.
enum class GemvMode { Store, Accumulate, SiluMul };
struct GemvTargets {
  const void* w[3];
  const float* bias[3];
  float* out[3];
  int64_t n[3];
  int count;
};
bool gemv_16bit(const float* x, int64_t m, DType w_dtype, const GemvTargets& targets, int64_t k, GemvMode mode,
                cudaStream_t s);
void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t s);
// dst[r, :] = src[r, offset : offset + width] for rows of src_cols floats.
void copy_columns(const float* src, int64_t rows, int64_t src_cols, int64_t offset, int64_t width, float* dst,
                  cudaStream_t s);
// out[r, i] = silu(src[r, i]) * src[r, half + i], rows of 2 * half floats.
void silu_mul_halves(const float* src, int64_t rows, int64_t half, float* out, cudaStream_t s);
void add(const float* a, const float* b, int64_t n, float* out, cudaStream_t s);
// out[r, :] += bias[:]
void add_bias(float* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t s);
void gather_rows(const float* x, const int32_t* rows, int64_t count, int64_t cols, int64_t num_rows, float* out,
                 cudaStream_t s);
// dst = (dtype) src, round to nearest even; dtype F16 or BF16.
void convert_from_f32(const float* src, int64_t n, DType dtype, void* dst, cudaStream_t s);
// Fills n elements of dtype with the dummy-weight pattern (see models' random weights).
void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float center, float scale, cudaStream_t s);
// Sums n floats into *out (a bandwidth probe).
void sum_f32(const float* x, int64_t n, float* out, cudaStream_t s);

}  // namespace ferrum::cuda

