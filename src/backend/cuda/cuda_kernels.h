// Launchers of the CUDA kernels behind CudaBackend. Plain pointers and sizes, so the backend
// (host C++) needs no CUDA headers beyond the stream type. Every kernel mirrors a CPU op in
// backend/cpu and is tested against the op harness's references (tests/backend/op_harness.cpp).
#pragma once
#include <cstdint>

#include "backend/sampling.h"
#include "core/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace ferrum::cuda {

// out[t, :] = float(table[ids[t], :]); ids outside [0, vocab) give a zero row.
void embedding(const void* table, DType dtype, int64_t vocab, int64_t dim, const int32_t* ids, int64_t tokens,
               float* out, cudaStream_t s);
// out = x / sqrt(mean(x^2) + eps) * w, per row of `cols` (x F32, out of out_dtype: F32, BF16
// or F16).
void rms_norm(const float* x, const void* w, DType w_dtype, int64_t rows, int64_t cols, float eps, void* out,
              DType out_dtype, cudaStream_t s);
// Backend::qkv_rope_write_kv: q heads of qkv [T, (hq + 2 hk) * d] (act_dtype) normed (q_norm
// may be null), rotated by cos/sin [positions, d/2] into q_out (act_dtype); k heads likewise
// and v as they are into the caches (cache_dtype: F32, F16, BF16, or F8E4M3 holding x / scale,
// saturated) at slots.
void qkv_rope_write_kv(const void* qkv, DType act_dtype, const void* q_norm, const void* k_norm, DType norm_dtype,
                       float eps, const int32_t* positions, const float* cos, const float* sin, int64_t max_positions,
                       const int32_t* slots, int64_t tokens, int64_t hq, int64_t hk, int64_t d, int64_t num_slots,
                       void* q_out, void* k_cache, void* v_cache, DType cache_dtype, float k_scale, float v_scale,
                       cudaStream_t s);
// Causal attention over the paged cache (see Backend::paged_attention); q and out are of
// act_dtype, the cache of act_dtype or F8E4M3 (read as stored * k_scale / v_scale). Keys are
// split in `splits` ranges of keys_per_split (attention_partial_floats chooses them and says
// how many floats of scratch `partial` needs).
int64_t attention_partial_floats(int64_t tokens, int64_t hq, int64_t hk, int64_t d, int64_t max_context,
                                 int64_t* splits, int64_t* keys_per_split);
// rope (decode steps: one query token per sequence; tensor-core kernels only, else false): q is
// null and the kernel forms q from rope->qkv and writes each token's k and v to the caches, as
// qkv_rope_write_kv would have (cuda_rope.cuh): the projection [T, (hq + 2 hk) * d] and the
// other inputs of qkv_rope_write_kv.
struct QkvRope {
  const void* qkv = nullptr;
  const void* q_norm = nullptr;
  const void* k_norm = nullptr;
  DType norm_dtype = DType::F32;
  float eps = 0.0f;
  const int32_t* positions = nullptr;
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t max_positions = 0;
  const int32_t* slots = nullptr;
  int64_t num_slots = 0;
};
// False (nothing launched) for a head_dim over 256, or a rope the kernels cannot take.

bool paged_attention(const void* q, DType act_dtype, const void* k_cache, const void* v_cache, DType cache_dtype,
                     float k_scale, float v_scale, const int32_t* query_start,
                     const int32_t* seq_lens, const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                     int32_t block_size, int64_t tokens, int64_t hq, int64_t hk, int64_t d, float scale, void* out,
                     int64_t splits, int64_t keys_per_split, float* partial, int32_t tiled_min_q, cudaStream_t s,
                     const QkvRope* rope = nullptr);
// tiled_min_q > 0: tokens of sequences with at least that many queries are skipped, left to
// prefill_attention.

// Causal attention for the query tiles of long prompts with a 16-bit or E4M3 cache, on tensor
// cores (FlashAttention-2 style): tiles[i] = (sequence, first token of prefill_tile_rows(d)
// consecutive queries of it, in the flat batch); sequences with at least kPrefillTile queries
// in a step take it. q and out are of the 16-bit act_dtype, the cache of act_dtype or F8E4M3
// (converted, times k_scale / v_scale, as tiles are staged); F32 accumulation. False when
// head_dim is not 64, 128 or 256, or the types do not fit.
constexpr int32_t kPrefillTile = 64;
constexpr int32_t prefill_tile_rows(int64_t d) { return d == 256 ? 64 : 128; }
// Whether the tensor-core kernels (decode and prefill) take this activation / cache pair.
constexpr bool tensor_core_attention(DType act, DType cache, int64_t d) {
  return (act == DType::BF16 || act == DType::F16) && (cache == act || cache == DType::F8E4M3) &&
         (d == 64 || d == 128 || d == 256);
}
bool prefill_attention(const void* q, DType act_dtype, const void* k_cache, const void* v_cache, DType cache_dtype,
                       float k_scale, float v_scale,
                       const int32_t* tiles, int32_t num_tiles, const int32_t* query_start, const int32_t* seq_lens,
                       const int32_t* block_tables, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                       int64_t d, float scale, void* out, cudaStream_t s);
// Skinny matmuls (m <= 2 rows of x) against 16-bit weights w [n, k], x of the same type:
// Store: out[m, n] = x[m, :] . w[n, :] (+ bias[n]) into out_dtype (F32 or the weights' type);
// Accumulate: adds that into an F32 out; SiluMul: w holds gate rows then up rows (n = 2 *
// half), out[m, i] = silu(gate_i) * up_i in the weights' type. False (nothing launched) when
// the shape or alignment does not suit it.
enum class GemvMode { Store, Accumulate, SiluMul };

// One part of a layer of GGUF blocks (or a dense part beside them) as cuda_quant_matmul.cu
// reads it: rows of the weight are the output features, of which `units` of 64 values are
// decoded at a time (two runs of 32; K % 64 == 0).
enum class QuantKind : int32_t { Dense, Q8_0, Q4_0, Q4K, Q5K, Q6K };
struct QuantWeight {
  QuantKind kind = QuantKind::Dense;
  const uint8_t* data = nullptr;  // rows of row_bytes: GGUF blocks, or 16-bit values in x's type
  int64_t rows = 0, row_bytes = 0;
};
// How cuda_packed_matmul.cu decodes a weight in the tiles of cuda_packed_layout.h: 4- or 8-bit
// unsigned codes u with w = (u - zero) * scale (the high half of a group's parameter word is
// zero + 128 for 4-bit codes on BF16, zero + 1024 otherwise), or w = u * scale + offset (the
// high half is the offset); or E4M3 values times the scale.
enum class PackedMode : int32_t { Int4Zero, Int4Affine, Int8Zero, Int8Affine, Fp8 };
struct PackedWeight {
  PackedMode mode = PackedMode::Int4Zero;
  const uint8_t* tiles = nullptr;
  const uint32_t* params = nullptr;  // [padded_rows / 16, cols / group, 16]
  const int32_t* perm = nullptr;     // act order: x's columns are permuted first (permute_columns)
  int64_t rows = 0, padded_rows = 0, cols = 0, group = 0;
};
// out[m, n] (rows of ldo elements) = x[m, :] . w[n, :] + bias[n], x [M, K] F16 or BF16; out
// F32 (stored, or added to when accumulate) or x's type. Tensor cores at every M; split-K
// partials of batches over 16 rows go to scratch (up to scratch_floats).
void packed_matmul(const void* x, DType act, int64_t M, int64_t K, const PackedWeight& w, const float* bias, void* out,
                   DType out_dtype, int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats,
                   cudaStream_t s);
// Once per process, before any graph is recorded: lets the decode kernel use its shared memory.
void packed_matmul_prepare();
// Rows [row0, row0 + rows) of w (row0 % 16 == 0) as dense [rows, w.cols] in act (F16/BF16),
// the values the kernels multiply by: long prefills run them through cuBLAS.
void packed_dequantize(const PackedWeight& w, DType act, int64_t row0, int64_t rows, void* out, cudaStream_t s);
// out[m, n] (rows of ldo elements) = x[m, :] . w[n, :] + bias[n] for M rows of x (dtype act,
// F16 or BF16, [M, K]). out is F32 (stored, or added to when accumulate) or act. One kernel
// reads the weight as stored for up to 8 rows of x; more rows go through a tensor-core GEMM
// that decodes tiles of the weight into shared memory, split over K when the tiles are few
// (partials in `scratch`, quant_matmul_scratch_floats() floats).
void quant_matmul(const void* x, DType act, int64_t M, int64_t K, const QuantWeight& w, const float* bias, void* out,
                  DType out_dtype, int64_t ldo, bool accumulate, float* scratch, cudaStream_t s);
int64_t quant_matmul_scratch_floats();
// out[m, i] = x[m, perm[i]] ([M, K] of dtype act).
void permute_columns(const void* x, DType act, int64_t M, int64_t K, const int32_t* perm, void* out, cudaStream_t s);
// out[t, :] = row ids[t] of a quantized table (K values per row), as F32.
void quant_embedding(const QuantWeight& table, int64_t K, const int32_t* ids, int64_t n, float* out, cudaStream_t s);
bool gemv_16bit(const void* x, int64_t m, DType dtype, const void* w, const float* bias, int64_t n, int64_t k,
                void* out, DType out_dtype, GemvMode mode, cudaStream_t s);
// The same for E4M3 weights kept by rows (w [n, k] codes, row_scales [n]: w's values are
// code * scale), x [m, k] F16/BF16 (act), out's rows ldo elements apart: W8A16 decode, for m up
// to fp8_gemv_max_rows().
bool gemv_fp8(const void* x, int64_t m, DType act, const uint8_t* w, const float* row_scales, const float* bias,
              int64_t n, int64_t k, void* out, int64_t ldo, DType out_dtype, GemvMode mode, cudaStream_t s);
// 1 (FERRUM_FP8_GEMV_ROWS sets 0 to 4: 0 leaves FP8 decode to the tile kernels, to compare).
int fp8_gemv_max_rows();
// out[r, i] = silu(src[r, i]) * src[r, half + i], rows of 2 * half values of dtype.
void silu_mul_halves(const void* src, int64_t rows, int64_t half, void* out, DType dtype, cudaStream_t s);
// out[r, :cols] += bias[:] (out of dtype, rows of ld elements; ld 0: cols)
void add_bias(void* out, DType dtype, const float* bias, int64_t rows, int64_t cols, cudaStream_t s, int64_t ld = 0);
// ids[pairs[2i]] = picks[pairs[2i + 1]] for i < n (the next step's inputs from this step's
// sampled tokens); pairs outside [0, num_ids) x [0, num_picks) are skipped.
void take_picks(int32_t* ids, int64_t num_ids, const int32_t* pairs, int64_t n, const int32_t* picks,
                int64_t num_picks, cudaStream_t s);
// A kernel that faults (__trap): the sticky error that FERRUM_FAULT_GPU_REPLAY provokes in tests.
void fault(cudaStream_t s);
void gather_rows(const float* x, const int32_t* rows, int64_t count, int64_t cols, int64_t num_rows, float* out,
                 cudaStream_t s);
// Fills n elements of dtype with the dummy-weight pattern (see models' random weights).
void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float center, float scale, cudaStream_t s);
// Plain rows (no logprobs, edits or mask; greedy, or temperature without top_k, top_p and
// min_p) of up to kSampleSplitMaxRows, each split over blocks of 4096 logits: the tokens
// sample() would pick, into tokens (logits untouched). scratch: sample_split_scratch_bytes,
// its first kSampleSplitMaxRows words zero before the first call (each call leaves them so).
// False (nothing launched) for more rows or a vocabulary over 4M.
constexpr int64_t kSampleSplitMaxRows = 64;
size_t sample_split_scratch_bytes(int64_t vocab);
bool sample_split(const float* logits, int64_t rows, int64_t vocab, const SampleRow* row_params, void* scratch,
                  int32_t* tokens, cudaStream_t s);
// Backend::sample (cuda_sampling.cu): one block per row of logits [rows, vocab], edited in
// place; edit_orig (one float per edit) keeps the raw values of edited tokens; top_ids and
// top_logprobs have kMaxTopLogprobs entries per row. masks: SampleBatch::masks, mask_words each.
void sample(float* logits, int64_t rows, int64_t vocab, const SampleRow* row_params, const LogitEdit* edits,
            const uint32_t* masks, int32_t mask_words, float* edit_orig, int32_t* tokens, float* logprobs, int32_t* top_ids, float* top_logprobs,
            cudaStream_t s);
// Sums n floats into *out (a bandwidth probe).
void sum_f32(const float* x, int64_t n, float* out, cudaStream_t s);

}  // namespace ferrum::cuda

