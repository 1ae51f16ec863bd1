// The CUDA backend (make_cuda_backend): tensors in device memory, one stream, kernels from
// cuda_kernels.h, and matmuls on our GEMV (1-2 rows) or cuBLAS. A 16-bit model's activations
// are kept in its own type between ops (F32 math inside kernels, as PyTorch runs bf16 models);
// the residual stream and the logits are F32. Its members are defined by concern:
// cuda_backend.cpp (memory, graphs, dense layers, attention), cuda_backend_quant.cpp
// (quantized layers), cuda_backend_moe.cpp (mixtures of experts), cuda_backend_sampling.cpp
// (sampling and its staging). Internal to backend/cuda.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_fp8_gemm.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_packed_rows.h"
#include "core/error.h"

namespace ferrum {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  Device device() const override { return Device::CUDA; }
  const char* name() const override { return name_.c_str(); }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override;

  Tensor alloc_host(std::initializer_list<int64_t> shape, DType dtype) override;

  Tensor upload(const Tensor& host) override;

  void fill_random(Tensor& t, uint64_t seed, float center, float scale) override;

  void copy_from_host(Tensor& dst, const void* src, size_t bytes) override;
  void copy_to_host(const Tensor& src, void* dst, size_t bytes) override;
  void synchronize() override;
  std::string device_failure() override;
  bool rounds_x_to_fp8(const LinearWeight& w, int64_t rows) const override;

  bool supports_graphs() const override { return true; }
  uint64_t scratch_generation() const override { return scratch_generation_; }
  void begin_capture() override;
  std::shared_ptr<void> end_capture() override;
  void abort_capture() override;
  void replay(const std::shared_ptr<void>& graph) override;

  DType activation_dtype(DType weights) const override;

  bool supports_linear(WeightFormat format, DType weights) const override;

  // Parts (q/k/v, gate/up) become row slices of one buffer, so that each group runs as one
  // GEMM or GEMV; biases become one F32 vector. A layer with a quantized part keeps each part
  // as its own weight for the quantized kernels (cuda_quant_matmul.cu).
  std::unique_ptr<LinearWeight> load_linear(const LinearSpec& spec) override;

  // Grouped experts as one 16-bit buffer [E, rows, in] (each expert's parts in order: gate
  // rows, then up rows), for cuda_moe's grouped GEMMs. GGUF block experts are dequantized here
  // (the grouped GEMMs have no quantized form yet), with a warning that says so.
  std::unique_ptr<LinearWeight> load_experts(const LinearSpec& spec);

  // Rows of GGUF blocks [rows, row bytes] (host) as F32 [rows, cols], decoded by the CPU's
  // reference (its block embedding, every row looked up).
  static std::vector<float> dequantize_blocks(const Tensor& blocks, WeightFormat f, int64_t cols);
  // Expert e's weight [rows, in] of a GPTQ/AWQ/FP8 grouped part, as F32 (quant_pack.h's rows).
  static std::vector<float> dequantize_packed(const LinearSpec& spec, const LinearPart& grouped, int64_t e);

  // Each part as the quantized kernels read it: GGUF blocks as stored, GPTQ/AWQ/FP8 repacked
  // (quant_pack.h), dense parts (GGUF tensors without a kernel, dequantized) in the
  // activations' type.
  std::unique_ptr<LinearWeight> load_quantized(const LinearSpec& spec);

  void linear(const Tensor& x, const LinearWeight& lw, Tensor& out, LinearEpilogue epilogue) override;

  // The grouped GEMMs are 16-bit tensor-core kernels.
  bool supports_moe(DType activations) const override;

  // Routing, the grouped expert GEMMs and the weighted sum on the device (cuda_moe.h), in
  // buffers sized by the token count alone: a decode step's graph records the whole block.
  void moe_ffn(const Tensor& x, const MoeWeights& mw, Tensor& out) override;

  void embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out) override;

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;

  void qkv_rope_write_kv(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                         const Tensor& positions, const RopeTable& table, const Tensor& slots, Tensor& q_out,
                         Tensor& kc, Tensor& vc, const KvScales& kv) override;
  void paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                       Tensor& out, const KvScales& kv) override;
  // Decode steps (one query token per sequence) over the tensor-core kernel: one kernel forms q
  // and writes k/v itself (cuda::QkvRope). FERRUM_FUSED_ROPE_ATTENTION=N: only for steps of
  // up to N tokens (default 32; 0: two kernels always).
  void qkv_rope_attention(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                          const Tensor& positions, const RopeTable& table, const AttentionMeta& meta, float scale,
                          Tensor& q_out, Tensor& kc, Tensor& vc, Tensor& out, const KvScales& kv) override;
  bool supports_kv_cache(DType cache, DType activations) const override;
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override;

  // Row parameters and edits go up in one copy, ids and logprobs come back in one or two, and
  // an event marks their arrival. Host staging is double-buffered by ticket parity: a step's
  // buffers are written while the step before may still be queued.
  uint64_t start_sample(Tensor& logits, const SampleBatch& batch) override;

  void finish_sample(uint64_t ticket, SampleResult& out) override;

  void take_sampled_tokens(Tensor& ids, const Tensor& pairs) override;

 private:
  static void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
  }
  static void check(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLAS {}: status {}", what, static_cast<int>(s));
  }
  static cudaDataType_t cuda_type(DType t) {
    switch (t) {
      case DType::BF16: return CUDA_R_16BF;
      case DType::F16: return CUDA_R_16F;
      case DType::F32: return CUDA_R_32F;
      default: fail("CUDA matmul: weights must be F32, F16 or BF16, not {}", dtype_name(t));
    }
  }

  // Grows a sampling staging buffer (pinned host or device) to at least `bytes`, with
  // headroom. Sampling runs outside graphs, so this leaves the recorded graphs valid.
  void grow(Tensor& t, size_t bytes, bool host);

  // Makes this backend's GPU current on the calling thread (the engine thread is not the one
  // that built the backend); a thread-local check, so it costs nothing once set.
  void use_device() const;
  bool capturing() const;
  // paged_attention's body; rope: q is formed (and k/v written) by the kernel (qkv_rope_attention).
  void attend(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale, Tensor& out,
              const KvScales& kv, const cuda::QkvRope* rope);
  void check_qkv_rope(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, const Tensor& q_out,
                      const Tensor& kc, const Tensor& vc) const;
  static Tensor shaped(std::initializer_list<int64_t> shape, DType dtype);
  void launched(const char* what);
  struct QuantPart {
    cuda::QuantWeight w;       // a dense part beside quantized ones (cuda_quant_matmul.cu), or
    cuda::PackedWeight packed; // GGUF/GPTQ/AWQ/FP8 tiles (cuda_packed_matmul.cu), when is_packed
    bool is_packed = false;
    Tensor data, scales, perm;  // what the pointers above point into (scales: packed parameters)
    Tensor fp8_codes, fp8_scales;  // FP8 by rows, [rows, in] E4M3 and F32 [rows]: the W8A8 GEMM's
  };
  static constexpr int64_t kPackedScratchFloats = 16 << 20;  // split-K partials (64 MiB)
  static constexpr int64_t kDequantizeBytes = 64 << 20;      // 16-bit weight chunks for cuBLAS
  struct CudaLinear final : LinearWeight {
    Tensor w;     // [out, in], parts as row slices
    Tensor bias;  // F32 [out], or empty
    std::vector<QuantPart> quant;  // a quantized layer: its parts, run one by one
    int32_t num_experts = 0;       // grouped experts: w is [num_experts * out, in], or
    bool experts_packed = false;   // the experts' tiles (quant[0]'s data and scales), one after another
    cuda::PackedExperts packed_experts;
  };

  static cuda::QuantKind quant_kind(WeightFormat f);
  void load_packed_experts(const LinearSpec& spec, DType act, CudaLinear& w);
  void prepare_quantized();  // once: quantized kernels' scratch and shared memory limits
  static bool packed_experts_enabled();  // FERRUM_MOE_PACKED=0: GGUF experts dequantized to 16 bits

  // A host vector on the device (Backend::upload: copied before it returns).
  template <typename T>
  Tensor upload_vector(const std::vector<T>& v) {
    Tensor host;
    host.dtype = DType::U8;
    host.ndim = 1;
    host.shape[0] = static_cast<int64_t>(v.size() * sizeof(T));
    host.data = const_cast<T*>(v.data());
    return upload(host);
  }

  // A dense host weight into dst (device, dtype `stored`), converted on the host when the
  // types differ.
  void put_dense(Tensor& dst, const Tensor& src, DType stored, const std::string& layer, const std::string& part);

  void load_bias(const LinearSpec& spec, CudaLinear& w);

  // A quantized layer: every piece into its columns of the output (SwiGLU: of a scratch
  // [M, 2 * rows] in the activations' type, then silu(gate) * up).
  void quant_linear(const Tensor& x, const CudaLinear& w, Tensor& out, LinearEpilogue epilogue);

  // Rows of x from which a packed weight is dequantized to 16 bits (in chunks of the
  // dequantize_ buffer) and multiplied by cuBLAS: long prefills, where the tensor-core GEMM
  // beats reading the weight once per 128 rows. FERRUM_PACKED_DEQUANT_ROWS moves the switch.
  static int64_t dequantize_rows();
  bool fused_gate_up(const Tensor& x, const CudaLinear& w, Tensor& out);
  // FP8 layers from this many rows of x on go through the W8A8 GEMM (FERRUM_FP8_W8A8_ROWS; 0:
  // never, the 16-bit paths only). Default 32: on an H200 (Llama-3.1-8B shapes) its layers
  // took 0.75x the 16-bit paths' time at 32 rows, 0.58x at 64, 0.36x at 256, but 1.2x at 16
  // (docs/bench/h200-quantized.md). The codes by rows double an FP8 model's weight memory.
  static int64_t fp8_w8a8_rows();
  // The W8A16 GEMV over the E4M3 codes by rows (up to cuda::fp8_gemv_max_rows() rows, below
  // fp8_w8a8_rows(); the codes exist only when that is not 0); false where it does not apply.
  bool fp8_gemv(const Tensor& x, const QuantPart& q, const float* bias, void* out, int64_t ldo, DType out_dtype,
                cuda::GemvMode mode);
  // x rounded to E4M3 by rows and the W8A8 GEMM; false where cuBLASLt has no algorithm.
  bool fp8_w8a8(const Tensor& x, const QuantPart& q, const float* bias, void* out, DType out_dtype, int64_t ldo,
                bool accumulate);

  void packed_gemm(const void* x, DType act, int64_t M, int64_t K, const cuda::PackedWeight& w, const float* bias,
                   void* out, DType out_dtype, int64_t ldo, bool accumulate);

  // x with permuted columns (act-order GPTQ), grown as needed (outside graphs: the first,
  // eager step of each shape sizes it).
  void* permuted_x(size_t bytes);

  // A tensor's values as F32 on the host (biases, wherever they live).
  std::vector<float> host_f32(const Tensor& t);

  // A device buffer of at least `bytes` for GEMM outputs that an epilogue consumes (one
  // stream: no overlap between uses).
  void* fused_out(size_t bytes);

  // out[M, N] = x[M, K] w[N, K]^T (+ beta * out) on cuBLAS. Row-major out is column-major
  // out^T[N, M]: w is the transposed A (K x N, lda K), x the B (K x M, ldb K). x has the
  // weights' type (F32 weights: an exact SGEMM); out is F32 or that type; F32 accumulation.
  void gemm(const Tensor& x, const Tensor& w, void* out, DType out_dtype, float beta);

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Tensor cublas_workspace_;
  Tensor fused_out_;     // GEMM outputs an epilogue consumes (gate and up halves)
  Tensor quant_scratch_;  // split-K partials of the quantized GEMM (a fixed size)
  Tensor dequantize_;     // packed weights as 16-bit chunks for packed_gemm
  Tensor permuted_x_;     // x in act order (GPTQ desc_act)
  Tensor fp8_x_;          // x as E4M3 and its row scales, for fp8_w8a8
  std::unique_ptr<cuda::Fp8Gemm> fp8_gemm_;
  Tensor moe_scratch_;    // the MoE block's routes, expert rows and shared expert (moe_ffn)
  // FERRUM_MOE_Q8=0 (read when the backend is made): decode steps' quantized experts on the
  // grouped tensor-core kernels instead of the int8-x GEMV.
  const bool moe_q8_ = [] {
    const char* v = std::getenv("FERRUM_MOE_Q8");
    return !v || std::atoi(v) != 0;
  }();
  // FERRUM_MOE_Q8_PAIRS=0 (read when the backend is made): that GEMV reads an expert once per
  // route instead of once per two routes (cuda::Q8Routes).
  const bool moe_q8_pairs_ = [] {
    const char* v = std::getenv("FERRUM_MOE_Q8_PAIRS");
    return !v || std::atoi(v) != 0;
  }();
  // Sampling: device buffers, and per ticket parity the pinned host staging and an event.
  Tensor sample_in_, sample_out_, sample_split_;
  static bool splits_rows(const SampleBatch& batch, int64_t vocab);
  void* split_scratch(int64_t vocab);
  struct PendingSample {
    Tensor in_host, out_host;
    cudaEvent_t done = nullptr;
    int64_t rows = 0;
    bool top = false;
  };
  PendingSample pending_[2];
  uint64_t next_ticket_ = 0;
  long replays_ = 0;  // graph replays, counted for FERRUM_FAULT_GPU_REPLAY
  int64_t latest_rows_ = 0;  // rows of the latest start_sample (its picks lead sample_out_)
  Tensor attn_scratch_;  // attention partials of split keys
  std::vector<int32_t> tiles_host_;  // prefill query tiles: (sequence, first token) pairs
  Tensor tiles_;
  uint64_t scratch_generation_ = 0;};

}  // namespace ferrum
