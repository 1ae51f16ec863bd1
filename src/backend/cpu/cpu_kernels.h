// CPU kernels behind CpuBackend. They are also the reference the device backends' parity
// tests compare against.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace ferrum::cpu {

// Chooses the prefill GEMM's register tile: "best" (default), "portable", "avx2", "avx512".
// Returns false when this processor lacks it. For tests and benchmarks.
bool set_gemm_kernel(const std::string& name);
void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out);
// The same into rows of `ldo` floats (a column slice of a wider output).
void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo);
// The same, with the BF16 prefill GEMM allowed or not (false: the exact F32 kernels whatever
// bf16_gemm_enabled says; MoE routers, where rounding x would change which experts a token takes).
void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo,
            bool bf16_gemm);
// Chooses the GGUF block matmuls' row-dot kernel: "best" (default), "avx2", "vnni" (AVX-VNNI),
// "avx512" (Q4_K and Q6_K; the other formats take AVX-VNNI), or "portable" where there is no
// AVX2. Returns false when this processor lacks it. For tests and benchmarks.
bool set_block_dot_kernel(const std::string& name);
// The same with GGUF Q8_0 weights: w is U8 [N, K / 32 * 34] (raw blocks), x F32 (quantized
// to int8 blocks per row, as llama.cpp does), integer dot products.
void matmul_q8_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo);
// The same with GGUF Q4_0 weights: U8 [N, K / 32 * 18].
void matmul_q4_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo);
// The same for GGUF K-quant super-blocks (Q4_K, Q5_K, Q6_K): x quantized to int8 per 256
// values (one scale, sums per 16 for the mins), integer dot products per sub-block scaled in
// integers, one float multiply-add per super-block.
void matmul_q4_k(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo);
void matmul_q5_k(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo);
void matmul_q6_k(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo);
// Several GGUF block matmuls as one job on the pool: the many small matmuls of a decode step
// (a layer's parts, every active expert of an MoE layer) each cost a round trip through the
// pool and a quantization of x otherwise. Each distinct x is quantized once; the parts' weight
// rows are then cut over the threads together. A part whose x has more rows than the BF16
// GEMM's threshold (prefill) runs as its own matmul.
struct BlockPart {
  WeightFormat format = WeightFormat::Dense;
  const Tensor* x = nullptr;     // F32 [M, K]
  const Tensor* w = nullptr;     // U8 [N, K / values * bytes]: the raw blocks
  const Tensor* bias = nullptr;  // [N] or null
  float* out = nullptr;          // rows of ldo floats
  int64_t ldo = 0;
};
bool is_block_format(WeightFormat f);
void matmul_block_parts(ThreadPool& pool, const std::vector<BlockPart>& parts);
// out = x @ W^T (+ bias) for N rows of W that `decode` writes as F32 (K values), one at a
// time: GPTQ/AWQ int4 and FP8 weights (backend/quant_pack.h).
using RowDecode = std::function<void(int64_t n, float* row)>;
void matmul_decoded(ThreadPool& pool, const Tensor& x, int64_t N, const RowDecode& decode, const Tensor* bias,
                    float* out, int64_t ldo);
// Prefill GEMM with BF16 products (cpu_gemm_bf16.cpp; AVX512-BF16 where present): on by
// default where the processor has it, off (the exact F32 GEMM) with FERRUM_CPU_GEMM=f32, which
// the golden tests set. matmul takes it above 16 rows of x, the GGUF block matmuls above 24.
bool bf16_gemm_enabled();
void set_bf16_gemm(bool on);
// Rows of w as F32: dst[0, kc) = w[n][k0, k0 + kc).
using RowFetch = std::function<void(int64_t n, int64_t k0, int64_t kc, float* dst)>;
// x [M, K] rounded to bf16 and packed for the GEMM's tiles, once per call (the threads share it).
struct Bf16Rows {
  int64_t M = 0, K = 0, tiles = 0;
  std::vector<uint32_t> a;
};
void pack_bf16_rows(const float* x, int64_t M, int64_t K, Bf16Rows& out);
// Columns [n0, n1) of out (rows of ldo floats) = x @ w^T. w_bf16: w itself when it is BF16
// [N, K] (its pairs are packed as stored, without fetch).
void gemm_bf16_columns(const Bf16Rows& x, const RowFetch& fetch, float* out, int64_t ldo, int64_t n0, int64_t n1,
                       const uint16_t* w_bf16 = nullptr);
// The whole product on the pool: x packed once, columns split over the threads, then + bias.
void gemm_bf16(ThreadPool& pool, const float* x, int64_t M, int64_t K, int64_t N, const RowFetch& fetch,
               const Tensor* bias, float* out, int64_t ldo, const uint16_t* w_bf16 = nullptr);
// out[m, n] += bias[n] for M rows of ldo floats (a null bias adds nothing).
void add_bias(const Tensor* bias, int64_t M, int64_t N, float* out, int64_t ldo);
void paged_attention(ThreadPool& pool, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out);
void embedding(ThreadPool& pool, const Tensor& table, const Tensor& ids, Tensor& out);
// The same from a GGUF block table (U8 [V, row bytes]): only the looked-up rows are dequantized.
void embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out);
void rms_norm(ThreadPool& pool, const Tensor& x, const Tensor& weight, float eps, Tensor& out);
void rope(ThreadPool& pool, Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table);
void write_kv(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache);
void silu_mul(ThreadPool& pool, const Tensor& gate, const Tensor& up, Tensor& out);
void add(ThreadPool& pool, const Tensor& a, const Tensor& b, Tensor& out);
void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out);
// MoE routing (cpu_moe.cpp): per token its top_k experts, best first, and their weights.
struct MoeRoutes {
  int32_t top_k = 0;
  std::vector<int32_t> expert;  // [T, top_k]
  std::vector<float> weight;    // [T, top_k]
};
// Softmax over each row of logits [T, E] in F32, the top k (ties: the lower expert), their
// probabilities renormalized to sum 1 when `renormalize`: transformers' router.
void moe_route(const Tensor& logits, int32_t top_k, bool renormalize, MoeRoutes& out);
// The routes by expert: expert e's (token, weight) pairs are [start[e], start[e + 1]), in
// token order.
struct ExpertGroups {
  std::vector<int32_t> start, token;
  std::vector<float> weight;
};
void group_by_expert(const MoeRoutes& routes, int64_t num_experts, ExpertGroups& out);
// out[rows[i], :] += scales[i] * y[i, :] (rows null: row i). F32.
void add_scaled_rows(const Tensor& y, const int32_t* rows, const float* scales, Tensor& out);
// Backend::sample's reference implementation (cpu_sampling.cpp).
void sample(Tensor& logits, const SampleBatch& batch, SampleResult& out);

}  // namespace ferrum::cpu
