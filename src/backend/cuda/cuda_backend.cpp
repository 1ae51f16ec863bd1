// The CUDA backend: tensors in device memory, one stream, kernels from cuda_kernels.h, and
// matmuls on our GEMV (1-2 rows) or cuBLAS. A 16-bit model's activations are kept in its own
// type between ops (F32 math inside kernels, as PyTorch runs bf16 models); the residual
// stream and the logits are F32.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/dummy_fill.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_moe.h"
#include "backend/cuda/cuda_packed_layout.h"
#include "backend/cuda/cuda_runtime.h"
#include "backend/quant_pack.h"
#include "core/error.h"
#include "core/log.h"
#include "backend/cpu/cpu_kernels.h"

namespace ferrum {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLAS {}: status {}", what, static_cast<int>(s));
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    case DType::F32: return CUDA_R_32F;
    default: fail("CUDA matmul: weights must be F32, F16 or BF16, not {}", dtype_name(t));
  }
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    auto devices = cuda::list_devices();
    if (devices.empty()) fail("--device cuda: no CUDA device is available (no GPU or no driver)");
    if (device < 0 || device >= static_cast<int>(devices.size()))
      fail("--device cuda:{}: there are {} CUDA device(s)", device, devices.size());
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasCreate(&cublas_), "cublasCreate");
    check(cublasSetStream(cublas_, stream_), "cublasSetStream");
    // Exact F32 GEMMs (no TF32): F32 weights keep float32 parity with the CPU.
    check(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    // A fixed cuBLAS workspace: nothing is allocated while a graph is being captured.
    cublas_workspace_ = alloc({32 << 20}, DType::U8);
    check(cublasSetWorkspace(cublas_, cublas_workspace_.data, cublas_workspace_.nbytes()), "cublasSetWorkspace");
    name_ = "cuda:" + std::to_string(device) + " (" + devices[device].name + ")";
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (PendingSample& p : pending_)
      if (p.done) cudaEventDestroy(p.done);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  const char* name() const override { return name_.c_str(); }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    use_device();
    Tensor t = shaped(shape, dtype);
    t.device = Device::CUDA;
    void* p = nullptr;
    const size_t bytes = std::max<size_t>(t.nbytes(), 16);
    FERRUM_CHECK(!capturing(), "CUDA: allocating {} bytes while a graph is being recorded", bytes);
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      size_t free = 0, total = 0;
      cudaMemGetInfo(&free, &total);
      fail("out of GPU memory allocating {:.1f} MiB ({:.1f} MiB free of {:.1f} MiB)", bytes / 1048576.0,
           free / 1048576.0, total / 1048576.0);
    }
    t.data = p;
    // cudaFree waits for the device, so queued kernels that use the buffer finish first. No
    // reference to this backend: tensors may outlive it.
    t.owner = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    return t;
  }

  Tensor alloc_host(std::initializer_list<int64_t> shape, DType dtype) override {
    use_device();
    Tensor t = shaped(shape, dtype);
    void* p = nullptr;
    check(cudaHostAlloc(&p, std::max<size_t>(t.nbytes(), 16), cudaHostAllocDefault), "cudaHostAlloc");
    t.data = p;
    t.owner = std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
    return t;
  }

  Tensor upload(const Tensor& host) override {
    use_device();
    if (host.device == Device::CUDA) return host;
    Tensor t = alloc({host.numel()}, host.dtype);
    copy_from_host(t, host.data, host.nbytes());
    check(cudaStreamSynchronize(stream_), "upload");  // the host copy may go away
    t.ndim = host.ndim;
    t.shape = host.shape;
    return t;
  }

  void fill_random(Tensor& t, uint64_t seed, float center, float scale) override {
    use_device();
    cuda::fill_random(t.data, t.dtype, t.numel(), seed, center, scale, stream_);
    launched("fill_random");
  }

  void copy_from_host(Tensor& dst, const void* src, size_t bytes) override {
    use_device();
    check(cudaMemcpyAsync(dst.data, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
  }
  void copy_to_host(const Tensor& src, void* dst, size_t bytes) override {
    use_device();
    check(cudaMemcpyAsync(dst, src.data, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    check(cudaStreamSynchronize(stream_), "copy to host");
  }
  void synchronize() override {
    use_device();
    check(cudaStreamSynchronize(stream_), "synchronize");
  }

  bool supports_graphs() const override { return true; }
  uint64_t scratch_generation() const override { return scratch_generation_; }
  void begin_capture() override {
    use_device();
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
  }
  std::shared_ptr<void> end_capture() override {
    use_device();
    cudaGraph_t graph = nullptr;
    check(cudaStreamEndCapture(stream_, &graph), "end capture");
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(e, "graph instantiate");
    return std::shared_ptr<void>(exec, [](void* g) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g)); });
  }
  void abort_capture() override {
    use_device();
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_, &graph);  // errors ignored: the capture is being thrown away
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
  }
  void replay(const std::shared_ptr<void>& graph) override {
    use_device();
    check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), stream_), "graph launch");
  }

  DType activation_dtype(DType weights) const override {
    return weights == DType::BF16 || weights == DType::F16 ? weights : DType::F32;
  }

  bool supports_linear(WeightFormat format, DType weights) const override {
    if (gguf_block_values(format)) return weights == DType::U8;
    if (is_packed_source(format)) return true;  // repacked at load (quant_pack.h)
    return Backend::supports_linear(format, weights);
  }

  // Parts (q/k/v, gate/up) become row slices of one buffer, so that each group runs as one
  // GEMM or GEMV; biases become one F32 vector. A layer with a quantized part keeps each part
  // as its own weight for the quantized kernels (cuda_quant_matmul.cu).
  std::unique_ptr<LinearWeight> load_linear(const LinearSpec& spec) override {
    use_device();
    if (spec.num_experts > 0) return load_experts(spec);
    check_linear_spec(spec);
    bool quantized = false;
    for (const LinearPart& p : spec.parts) quantized |= p.format != WeightFormat::Dense;
    if (quantized) return load_quantized(spec);
    auto w = std::make_unique<CudaLinear>();
    w->name = spec.name;
    w->in_features = spec.in_features;
    w->out_features = spec.out_features();
    w->has_bias = !spec.parts.front().bias.empty();
    for (const LinearPart& p : spec.parts) w->part_rows.push_back(p.rows);
    const LinearPart& first = spec.parts.front();
    const DType source = spec.dummy ? *spec.dummy : first.weight.dtype;
    // In a model whose other layers are quantized (16-bit activations), dense weights are kept
    // in the activations' type.
    const DType stored = spec.activations && *spec.activations != DType::F32 ? *spec.activations : source;
    if (!spec.dummy && spec.parts.size() == 1 && first.weight.device == Device::CUDA && stored == source) {
      w->w = first.weight;  // already here (tied embeddings)
    } else {
      w->w = alloc({w->out_features, w->in_features}, stored);
      int64_t at = 0;
      for (const LinearPart& p : spec.parts) {
        Tensor slice = w->w.slice_rows(at, p.rows);
        at += p.rows;
        if (spec.dummy) {
          const DummyRange r = dummy_range(false);
          fill_random(slice, dummy_seed(p.name.c_str()), r.center, r.scale);
          continue;
        }
        put_dense(slice, p.weight, stored, spec.name, p.name);
      }
    }
    w->dtype = w->w.dtype;
    w->stored_bytes = w->w.nbytes();
    load_bias(spec, *w);
    synchronize();  // the host sources are mmapped pages or locals
    return w;
  }

  // Grouped experts as one 16-bit buffer [E, rows, in] (each expert's parts in order: gate
  // rows, then up rows), for cuda_moe's grouped GEMMs. GGUF block experts are dequantized here
  // (the grouped GEMMs have no quantized form yet), with a warning that says so.
  std::unique_ptr<LinearWeight> load_experts(const LinearSpec& spec) {
    check_linear_spec(spec, true);
    // The model's activations' type, else the experts' own 16-bit type, else BF16.
    const LinearPart& first = spec.parts.front();
    const DType source = spec.dummy ? *spec.dummy : first.experts.front().dtype;
    const DType act = spec.activations.value_or(source == DType::F16 ? DType::F16 : DType::BF16);
    if (act != DType::BF16 && act != DType::F16)
      fail("layer '{}': MoE experts on CUDA run with 16-bit activations (BF16 or F16 models), not {}", spec.name,
           dtype_name(act));
    const int64_t E = spec.num_experts, K = spec.in_features, R = spec.out_features();
    auto w = std::make_unique<CudaLinear>();
    w->name = spec.name;
    w->in_features = K;
    w->out_features = R;
    w->dtype = act;
    w->num_experts = static_cast<int32_t>(E);
    for (const LinearPart& p : spec.parts) w->part_rows.push_back(p.rows);
    cuda::moe_prepare();
    w->w = alloc({E * R, K}, act);
    w->stored_bytes = w->w.nbytes();
    if (spec.dummy) {
      const DummyRange r = dummy_range(false);
      fill_random(w->w, dummy_seed(spec.name.c_str()), r.center, r.scale);
      return w;
    }
    static bool warned = false;
    for (int64_t e = 0; e < E; ++e) {
      int64_t at = e * R;
      for (const LinearPart& p : spec.parts) {
        Tensor slice = w->w.slice_rows(at, p.rows);
        at += p.rows;
        if (!gguf_block_values(p.format)) {
          put_dense(slice, p.experts[e], act, spec.name, p.name);
          continue;
        }
        if (!warned) {
          log::warn("MoE experts in GGUF blocks ({}) are dequantized to {} on CUDA: the grouped GEMMs have no "
                   "quantized form yet, so they take 16-bit memory and speed", weight_format_name(p.format),
                   dtype_name(act));
          warned = true;
        }
        std::vector<float> values = dequantize_blocks(p.experts[e], p.format, K);
        Tensor host = shaped({p.rows, K}, DType::F32);
        host.data = values.data();
        put_dense(slice, host, act, spec.name, p.name);  // converts to 16 bits, so copies before returning
      }
    }
    synchronize();
    return w;
  }

  // Rows of GGUF blocks [rows, row bytes] (host) as F32 [rows, cols], decoded by the CPU's
  // reference (its block embedding, every row looked up).
  static std::vector<float> dequantize_blocks(const Tensor& blocks, WeightFormat f, int64_t cols) {
    const int64_t rows = blocks.dim(0);
    std::vector<float> out(static_cast<size_t>(rows * cols));
    std::vector<int32_t> ids(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) ids[r] = static_cast<int32_t>(r);
    Tensor id_view = shaped({rows}, DType::I32), out_view = shaped({rows, cols}, DType::F32);
    id_view.data = ids.data();
    out_view.data = out.data();
    cpu::embedding_blocks(blocks, f, id_view, out_view);
    return out;
  }

  // Each part as the quantized kernels read it: GGUF blocks as stored, GPTQ/AWQ/FP8 repacked
  // (quant_pack.h), dense parts (GGUF tensors without a kernel, dequantized) in the
  // activations' type.
  std::unique_ptr<LinearWeight> load_quantized(const LinearSpec& spec) {
    const DType act = spec.activations.value_or(DType::BF16);
    if (act != DType::BF16 && act != DType::F16)
      fail("layer '{}': quantized weights on CUDA take F16 or BF16 activations, not {}", spec.name, dtype_name(act));
    const int64_t K = spec.in_features;
    if (K % 64 != 0)
      fail("layer '{}': {} input features: CUDA's quantized kernels need a multiple of 64", spec.name, K);
    auto w = std::make_unique<CudaLinear>();
    w->name = spec.name;
    w->in_features = K;
    w->out_features = spec.out_features();
    w->has_bias = !spec.parts.front().bias.empty();
    w->dtype = act;
    if (quant_scratch_.empty()) {
      quant_scratch_ = alloc({std::max<int64_t>(cuda::quant_matmul_scratch_floats(), kPackedScratchFloats)}, DType::F32);
      dequantize_ = alloc({kDequantizeBytes}, DType::U8);
      cuda::packed_matmul_prepare();
    }
    for (const LinearPart& p : spec.parts) w->part_rows.push_back(p.rows);
    for (cuda::LayerPiece& piece : cuda::tile_layer(spec, act)) {
      QuantPart q;
      if (const LinearPart* p = piece.dense) {
        q.data = alloc({p->rows, K}, act);
        if (spec.dummy) {
          const DummyRange r = dummy_range(false);
          fill_random(q.data, dummy_seed(p->name.c_str()), r.center, r.scale);
        } else {
          put_dense(q.data, p->weight, act, spec.name, p->name);
        }
        q.w = {cuda::QuantKind::Dense, static_cast<const uint8_t*>(q.data.data), p->rows, K * 2};
        w->quant.push_back(std::move(q));
        continue;
      }
      const cuda::MmaTiles& t = piece.tiles;
      q.data = upload_vector(t.data);
      q.scales = upload_vector(t.params);
      if (!piece.perm.empty()) q.perm = upload_vector(piece.perm);
      q.packed = {t.mode, static_cast<const uint8_t*>(q.data.data), q.scales.ptr<uint32_t>(),
                  q.perm.empty() ? nullptr : q.perm.ptr<int32_t>(), t.rows, t.padded_rows, t.cols, t.group};
      q.is_packed = true;
      w->quant.push_back(std::move(q));
    }
    for (const QuantPart& q : w->quant)
      w->stored_bytes += q.data.nbytes() + q.scales.nbytes() + q.perm.nbytes();
    load_bias(spec, *w);
    synchronize();
    return w;
  }

  void linear(const Tensor& x, const LinearWeight& lw, Tensor& out, LinearEpilogue epilogue) override {
    use_device();
    const auto& w = static_cast<const CudaLinear&>(lw);
    const int64_t M = x.rows(), K = x.cols(), N = w.out_features;
    const bool silu = epilogue == LinearEpilogue::SiluMul;
    const int64_t out_cols = silu ? N / 2 : N;
    FERRUM_CHECK(K == w.in_features && x.dtype == activation_dtype(w.dtype) && out.rows() == M && out.cols() == out_cols,
                 "linear '{}' [{}, {}] {}: x {} {}, out {} {}", w.name, N, K, dtype_name(w.dtype), x.shape_str(),
                 dtype_name(x.dtype), out.shape_str(), dtype_name(out.dtype));
    FERRUM_CHECK(out.dtype == DType::F32 || out.dtype == x.dtype, "linear '{}': output dtype {}", w.name,
                 dtype_name(out.dtype));
    FERRUM_CHECK(epilogue != LinearEpilogue::Accumulate || out.dtype == DType::F32,
                 "linear '{}': accumulates into F32 only", w.name);
    FERRUM_CHECK(!silu || (w.part_rows.size() == 2 && w.part_rows[0] == w.part_rows[1] && out.dtype == x.dtype),
                 "linear '{}': SiluMul needs two equal parts and an output of the activations' type", w.name);
    if (M == 0) return;
    if (!w.quant.empty()) return quant_linear(x, w, out, epilogue);
    const float* bias = w.bias.empty() ? nullptr : w.bias.ptr<float>();
    const cuda::GemvMode mode = silu ? cuda::GemvMode::SiluMul
                                     : (epilogue == LinearEpilogue::Accumulate ? cuda::GemvMode::Accumulate
                                                                               : cuda::GemvMode::Store);
    if (w.dtype != DType::F32 &&
        cuda::gemv_16bit(x.data, M, w.dtype, w.w.data, bias, N, K, out.data, out.dtype, mode, stream_)) {
      launched("gemv");
      return;
    }
    if (silu) {
      void* both = fused_out(static_cast<size_t>(M * N) * dtype_size(x.dtype));
      gemm(x, w.w, both, x.dtype, 0.0f);
      if (bias) cuda::add_bias(both, x.dtype, bias, M, N, stream_);
      cuda::silu_mul_halves(both, M, N / 2, out.data, out.dtype, stream_);
      launched("silu_mul_halves");
      return;
    }
    gemm(x, w.w, out.data, out.dtype, epilogue == LinearEpilogue::Accumulate ? 1.0f : 0.0f);
    if (bias) {
      cuda::add_bias(out.data, out.dtype, bias, M, N, stream_);
      launched("add_bias");
    }
  }

  // The grouped GEMMs are 16-bit tensor-core kernels.
  bool supports_moe(DType activations) const override {
    return activations == DType::BF16 || activations == DType::F16;
  }

  // Routing, the grouped expert GEMMs and the weighted sum on the device (cuda_moe.h), in
  // buffers sized by the token count alone: a decode step's graph records the whole block.
  void moe_ffn(const Tensor& x, const MoeWeights& mw, Tensor& out) override {
    use_device();
    const auto& gate_up = static_cast<const CudaLinear&>(*mw.gate_up);
    const auto& down = static_cast<const CudaLinear&>(*mw.down);
    const int64_t T = x.rows(), H = x.cols(), I = gate_up.part_rows.front();
    const int32_t E = gate_up.num_experts, k = mw.routing.top_k;
    FERRUM_CHECK(E > 0 && down.num_experts == E && gate_up.in_features == H && down.in_features == I &&
                     down.out_features == H && x.dtype == gate_up.dtype && out.dtype == DType::F32 &&
                     out.rows() == T && out.cols() == H,
                 "moe_ffn: x {} {}, experts '{}' / '{}', out {}", x.shape_str(), dtype_name(x.dtype), gate_up.name,
                 down.name, out.shape_str());
    if (T == 0) return;
    const int32_t block_m = cuda::moe_block_m(T, k, E);
    const int64_t capacity = cuda::moe_sorted_capacity(T, k, E, block_m);
    const int64_t S = mw.shared_gate_up ? mw.shared_down->in_features : 0;
    const size_t act = dtype_size(x.dtype);
    // One scratch buffer, carved in 256-byte aligned pieces.
    const std::vector<size_t> sizes = {
        static_cast<size_t>(T * E) * 4, static_cast<size_t>(T * k) * 4, static_cast<size_t>(T * k) * 4,
        static_cast<size_t>(capacity) * 4, static_cast<size_t>(capacity / block_m) * 4,
        static_cast<size_t>(capacity * I) * act, static_cast<size_t>(capacity * H) * act,
        static_cast<size_t>(T * H) * 4 * (S > 0), static_cast<size_t>(T * S) * act, static_cast<size_t>(T) * 4 * (S > 0),
        static_cast<size_t>(E) * 4};
    size_t total = 0;
    std::vector<size_t> at;
    for (size_t n : sizes) at.push_back(total), total += (n + 255) / 256 * 256;
    if (moe_scratch_.nbytes() < total) {
      FERRUM_CHECK(!capturing(), "CUDA: MoE scratch grown while a graph is being recorded");
      moe_scratch_ = alloc({static_cast<int64_t>(total + total / 4)}, DType::U8);
      ++scratch_generation_;
    }
    auto* base = static_cast<uint8_t*>(moe_scratch_.data);
    auto piece = [&](int i, std::initializer_list<int64_t> shape, DType dtype) {
      Tensor t = shaped(shape, dtype);
      t.device = Device::CUDA;
      t.data = base + at[i];
      return t;
    };
    Tensor logits = piece(0, {T, E}, DType::F32);
    const cuda::MoeRoutesDev r{reinterpret_cast<int32_t*>(base + at[1]), reinterpret_cast<float*>(base + at[2]),
                               reinterpret_cast<int32_t*>(base + at[3]), reinterpret_cast<int32_t*>(base + at[4]),
                               reinterpret_cast<int32_t*>(base + at[10])};
    linear(x, *mw.router, logits, LinearEpilogue::Store);
    cuda::moe_route(logits.ptr<float>(), T, E, k, mw.routing.norm_topk_prob, block_m, r, stream_);
    launched("moe_route");
    void* expert_act = base + at[5];
    void* expert_out = base + at[6];
    cuda::moe_gate_up(x.data, x.dtype, gate_up.w.data, I, H, k, r, capacity, block_m, expert_act, stream_);
    launched("moe_gate_up");
    cuda::moe_down(expert_act, x.dtype, down.w.data, H, I, r, capacity, block_m, expert_out, stream_);
    launched("moe_down");
    const float *shared = nullptr, *shared_gate = nullptr;
    if (S > 0) {
      Tensor shared_out = piece(7, {T, H}, DType::F32), shared_act = piece(8, {T, S}, x.dtype);
      Tensor gate = piece(9, {T, 1}, DType::F32);
      linear(x, *mw.shared_gate_up, shared_act, LinearEpilogue::SiluMul);
      linear(shared_act, *mw.shared_down, shared_out, LinearEpilogue::Store);
      linear(x, *mw.shared_gate, gate, LinearEpilogue::Store);
      shared = shared_out.ptr<float>();
      shared_gate = gate.ptr<float>();
    }
    cuda::moe_combine(expert_out, x.dtype, T, H, k, r, shared, shared_gate, out.ptr<float>(), stream_);
    launched("moe_combine");
  }

  void embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out) override {
    use_device();
    FERRUM_CHECK(blocks.device == Device::CUDA && gguf_block_values(format) && out.dtype == DType::F32,
                 "embedding_blocks: a device table of GGUF blocks into F32");
    cuda::QuantWeight qw;
    qw.kind = quant_kind(format);
    qw.data = static_cast<const uint8_t*>(blocks.data);
    qw.rows = blocks.dim(0);
    qw.row_bytes = blocks.dim(1);
    cuda::quant_embedding(qw, out.cols(), ids.ptr<int32_t>(), ids.numel(), out.ptr<float>(), stream_);
    launched("quant_embedding");
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    use_device();
    FERRUM_CHECK(out.dtype == DType::F32, "embedding: the output (residual stream) is F32");
    cuda::embedding(table.data, table.dtype, table.dim(0), table.dim(1), ids.ptr<int32_t>(), ids.numel(),
                    out.ptr<float>(), stream_);
    launched("embedding");
  }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    use_device();
    FERRUM_CHECK(w.numel() == x.cols(), "rms_norm: weight has {} elements, rows have {}", w.numel(), x.cols());
    FERRUM_CHECK(x.dtype == DType::F32 && out.numel() == x.numel(), "rms_norm: x {} {} -> out {}", x.shape_str(),
                 dtype_name(x.dtype), out.shape_str());
    cuda::rms_norm(x.ptr<float>(), w.data, w.dtype, x.rows(), x.cols(), eps, out.data, out.dtype, stream_);
    launched("rms_norm");
  }

  void qkv_rope_write_kv(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                         const Tensor& positions, const RopeTable& table, const Tensor& slots, Tensor& q_out,
                         Tensor& kc, Tensor& vc) override {
    use_device();
    const int64_t T = q_out.dim(0), Hq = q_out.dim(1), D = q_out.dim(2), Hk = kc.dim(2);
    FERRUM_CHECK(qkv.rows() == T && qkv.cols() == (Hq + 2 * Hk) * D && qkv.dtype == q_out.dtype && D % 2 == 0,
                 "qkv_rope_write_kv: qkv {} {} for q {} {}", qkv.shape_str(), dtype_name(qkv.dtype), q_out.shape_str(),
                 dtype_name(q_out.dtype));
    FERRUM_CHECK(kc.dtype == vc.dtype && kc.dim(3) == D, "qkv_rope_write_kv: caches {} {} / {}", kc.shape_str(),
                 dtype_name(kc.dtype), dtype_name(vc.dtype));
    FERRUM_CHECK((q_norm == nullptr) == (k_norm == nullptr) && (!q_norm || q_norm->dtype == k_norm->dtype),
                 "qkv_rope_write_kv: q and k norms come together, of one dtype");
    cuda::qkv_rope_write_kv(qkv.data, qkv.dtype, q_norm ? q_norm->data : nullptr, k_norm ? k_norm->data : nullptr,
                            q_norm ? q_norm->dtype : DType::F32, eps, positions.ptr<int32_t>(), table.cos.ptr<float>(),
                            table.sin.ptr<float>(), table.max_positions, slots.ptr<int32_t>(), T, Hq, Hk, D,
                            kc.dim(0) * kc.dim(1), q_out.data, kc.data, vc.data, kc.dtype, stream_);
    launched("qkv_rope_write_kv");
  }
  void paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                       Tensor& out) override {
    use_device();
    const int64_t D = q.dim(2);
    FERRUM_CHECK(q.dtype == kc.dtype && out.dtype == kc.dtype && vc.dtype == kc.dtype,
                 "CUDA attention: q ({}), caches ({}) and out ({}) must share a dtype", dtype_name(q.dtype),
                 dtype_name(kc.dtype), dtype_name(out.dtype));
    int64_t max_context = std::max<int64_t>(1, meta.max_context);
    if (meta.max_context <= 0)
      for (int32_t len : meta.host_seq_lens) max_context = std::max<int64_t>(max_context, len);
    int64_t splits = 1, keys_per_split = max_context;
    const int64_t floats =
        cuda::attention_partial_floats(q.dim(0), q.dim(1), kc.dim(2), D, max_context, &splits, &keys_per_split);
    if (floats > 0 && attn_scratch_.nbytes() < static_cast<size_t>(floats) * 4) {
      attn_scratch_ = alloc({floats + floats / 4}, DType::F32);
      ++scratch_generation_;
    }
    // Long prompts over a 16-bit cache go to the tensor-core kernel, in tiles of 128 queries
    // (never inside a graph: graphs are decode steps).
    tiles_host_.clear();
    const bool tiled = (kc.dtype == DType::BF16 || kc.dtype == DType::F16) && (D == 64 || D == 128 || D == 256);
    for (int32_t s = 0; tiled && s < meta.num_seqs; ++s) {
      const int32_t begin = meta.host_query_start[s], end = meta.host_query_start[s + 1];
      if (end - begin < cuda::kPrefillTile) continue;
      for (int32_t t = begin; t < end; t += cuda::prefill_tile_rows(D)) tiles_host_.insert(tiles_host_.end(), {s, t});
    }
    const int32_t num_tiles = static_cast<int32_t>(tiles_host_.size() / 2);
    if (!cuda::paged_attention(q.data, kc.data, vc.data, kc.dtype, meta.query_start.ptr<int32_t>(),
                               meta.seq_lens.ptr<int32_t>(), meta.block_tables.ptr<int32_t>(), meta.num_seqs,
                               meta.max_blocks_per_seq, meta.block_size, q.dim(0), q.dim(1), kc.dim(2), D, scale,
                               out.data, splits, keys_per_split, attn_scratch_.ptr<float>(),
                               num_tiles > 0 ? cuda::kPrefillTile : 0, stream_))
      fail("CUDA attention supports head_dim up to 256, not {} (or got {} key splits)", D, splits);
    if (num_tiles > 0) {
      FERRUM_CHECK(!capturing(), "CUDA: prefill attention inside a graph");
      if (tiles_.numel() < static_cast<int64_t>(tiles_host_.size()))
        tiles_ = alloc({static_cast<int64_t>(tiles_host_.size() * 2)}, DType::I32);
      copy_from_host(tiles_, tiles_host_.data(), tiles_host_.size() * 4);
      cuda::prefill_attention(q.data, kc.data, vc.data, kc.dtype, tiles_.ptr<int32_t>(), num_tiles,
                              meta.query_start.ptr<int32_t>(), meta.seq_lens.ptr<int32_t>(),
                              meta.block_tables.ptr<int32_t>(), meta.max_blocks_per_seq, meta.block_size, q.dim(1),
                              kc.dim(2), D, scale, out.data, stream_);
      launched("prefill_attention");
    }
    launched("paged_attention");
  }
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override {
    use_device();
    cuda::gather_rows(x.ptr<float>(), rows.ptr<int32_t>(), rows.numel(), x.cols(), x.rows(), out.ptr<float>(), stream_);
    launched("gather_rows");
  }

  // Row parameters and edits go up in one copy, ids and logprobs come back in one or two, and
  // an event marks their arrival. Host staging is double-buffered by ticket parity: a step's
  // buffers are written while the step before may still be queued.
  uint64_t start_sample(Tensor& logits, const SampleBatch& batch) override {
    use_device();
    const int64_t R = static_cast<int64_t>(batch.rows.size()), E = static_cast<int64_t>(batch.edits.size());
    const uint64_t ticket = next_ticket_++;
    PendingSample& slot = pending_[ticket % 2];
    slot.rows = R;
    slot.top = false;
    if (!slot.done) check(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "sample event");
    if (R == 0) {  // nothing to pick; the ticket still marks the end of the work queued so far
      check(cudaEventRecord(slot.done, stream_), "sample event");
      return ticket;
    }
    const int64_t V = logits.cols();
    FERRUM_CHECK(logits.dtype == DType::F32 && logits.rows() >= R, "sample: logits {} for {} rows", logits.shape_str(), R);
    for (const LogitEdit& e : batch.edits)
      FERRUM_CHECK(e.token >= 0 && e.token < V, "sample: edit of token {} outside [0, {})", e.token, V);
    for (const SampleRow& r : batch.rows) slot.top |= r.num_logprobs > 0;
    const size_t row_bytes = R * sizeof(SampleRow), edit_bytes = E * sizeof(LogitEdit);
    const size_t in_bytes = row_bytes + edit_bytes;
    // Device out: tokens, logprobs, top ids, top logprobs, then the edits' raw values.
    const size_t top_bytes = R * kMaxTopLogprobs * 4;
    const size_t out_bytes = R * 8 + 2 * top_bytes + E * 4;
    grow(slot.in_host, in_bytes, true);
    grow(sample_in_, in_bytes, false);
    grow(slot.out_host, R * 8 + 2 * top_bytes, true);
    grow(sample_out_, out_bytes, false);
    auto* in = static_cast<uint8_t*>(slot.in_host.data);
    std::memcpy(in, batch.rows.data(), row_bytes);
    if (E) std::memcpy(in + row_bytes, batch.edits.data(), edit_bytes);
    check(cudaMemcpyAsync(sample_in_.data, in, in_bytes, cudaMemcpyHostToDevice, stream_), "sample inputs");
    auto* dev_in = static_cast<uint8_t*>(sample_in_.data);
    auto* dev_out = static_cast<uint8_t*>(sample_out_.data);
    cuda::sample(logits.ptr<float>(), R, V, reinterpret_cast<const SampleRow*>(dev_in),
                 reinterpret_cast<const LogitEdit*>(dev_in + row_bytes),
                 reinterpret_cast<float*>(dev_out + R * 8 + 2 * top_bytes), reinterpret_cast<int32_t*>(dev_out),
                 reinterpret_cast<float*>(dev_out + R * 4), reinterpret_cast<int32_t*>(dev_out + R * 8),
                 reinterpret_cast<float*>(dev_out + R * 8 + top_bytes), stream_);
    launched("sample");
    latest_rows_ = R;
    const size_t back = slot.top ? R * 8 + 2 * top_bytes : R * 8;
    check(cudaMemcpyAsync(slot.out_host.data, dev_out, back, cudaMemcpyDeviceToHost, stream_), "sample outputs");
    check(cudaEventRecord(slot.done, stream_), "sample event");
    return ticket;
  }

  void finish_sample(uint64_t ticket, SampleResult& out) override {
    use_device();
    FERRUM_CHECK(ticket + 2 >= next_ticket_ && ticket < next_ticket_, "finish_sample: ticket {} is not outstanding",
                 ticket);
    const PendingSample& slot = pending_[ticket % 2];
    const int64_t R = slot.rows;
    out.tokens.clear();
    out.logprobs.clear();
    out.top_ids.clear();
    out.top_logprobs.clear();
    check(cudaEventSynchronize(slot.done), "sample");  // this ticket's picks, not the work after them
    if (R == 0) return;
    const auto* host = static_cast<const uint8_t*>(slot.out_host.data);
    const size_t top_bytes = R * kMaxTopLogprobs * 4;
    out.tokens.assign(reinterpret_cast<const int32_t*>(host), reinterpret_cast<const int32_t*>(host) + R);
    out.logprobs.assign(reinterpret_cast<const float*>(host + R * 4), reinterpret_cast<const float*>(host + R * 4) + R);
    if (slot.top) {
      out.top_ids.assign(reinterpret_cast<const int32_t*>(host + R * 8),
                         reinterpret_cast<const int32_t*>(host + R * 8) + R * kMaxTopLogprobs);
      out.top_logprobs.assign(reinterpret_cast<const float*>(host + R * 8 + top_bytes),
                              reinterpret_cast<const float*>(host + R * 8 + top_bytes) + R * kMaxTopLogprobs);
    }
  }

  void take_sampled_tokens(Tensor& ids, const Tensor& pairs) override {
    use_device();
    const int64_t n = pairs.numel() / 2;
    if (n == 0) return;
    FERRUM_CHECK(latest_rows_ > 0, "take_sampled_tokens: nothing was sampled");
    cuda::take_picks(ids.ptr<int32_t>(), ids.numel(), pairs.ptr<int32_t>(), n,
                     static_cast<const int32_t*>(sample_out_.data), latest_rows_, stream_);
    launched("take_picks");
  }

 private:
  // Grows a sampling staging buffer (pinned host or device) to at least `bytes`, with
  // headroom. Sampling runs outside graphs, so this leaves the recorded graphs valid.
  void grow(Tensor& t, size_t bytes, bool host) {
    if (t.nbytes() >= bytes) return;
    if (!t.empty()) synchronize();  // queued copies may still use it
    const int64_t n = static_cast<int64_t>(bytes + bytes / 2 + 256);
    t = host ? alloc_host({n}, DType::U8) : alloc({n}, DType::U8);
  }

  // Makes this backend's GPU current on the calling thread (the engine thread is not the one
  // that built the backend); a thread-local check, so it costs nothing once set.
  void use_device() const {
    thread_local int current = -1;
    if (current != device_) {
      check(cudaSetDevice(device_), "cudaSetDevice");
      current = device_;
    }
  }
  bool capturing() const {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(stream_, &status);
    return status != cudaStreamCaptureStatusNone;
  }
  static Tensor shaped(std::initializer_list<int64_t> shape, DType dtype) {
    Tensor t;
    t.dtype = dtype;
    t.ndim = static_cast<int>(shape.size());
    int i = 0;
    for (int64_t d : shape) t.shape[i++] = d;
    return t;
  }
  void launched(const char* what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
  }
  struct QuantPart {
    cuda::QuantWeight w;       // a dense part beside quantized ones (cuda_quant_matmul.cu), or
    cuda::PackedWeight packed; // GGUF/GPTQ/AWQ/FP8 tiles (cuda_packed_matmul.cu), when is_packed
    bool is_packed = false;
    Tensor data, scales, perm;  // what the pointers above point into (scales: packed parameters)
  };
  static constexpr int64_t kPackedScratchFloats = 16 << 20;  // split-K partials (64 MiB)
  static constexpr int64_t kDequantizeBytes = 64 << 20;      // 16-bit weight chunks for cuBLAS
  struct CudaLinear final : LinearWeight {
    Tensor w;     // [out, in], parts as row slices
    Tensor bias;  // F32 [out], or empty
    std::vector<QuantPart> quant;  // a quantized layer: its parts, run one by one
    int32_t num_experts = 0;       // grouped experts: w is [num_experts * out, in]
  };

  static cuda::QuantKind quant_kind(WeightFormat f) {
    switch (f) {
      case WeightFormat::GgufQ8_0: return cuda::QuantKind::Q8_0;
      case WeightFormat::GgufQ4_0: return cuda::QuantKind::Q4_0;
      case WeightFormat::GgufQ4K: return cuda::QuantKind::Q4K;
      case WeightFormat::GgufQ5K: return cuda::QuantKind::Q5K;
      case WeightFormat::GgufQ6K: return cuda::QuantKind::Q6K;
      default: fail("CUDA: {} is not a GGUF block format", weight_format_name(f));
    }
  }

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
  void put_dense(Tensor& dst, const Tensor& src, DType stored, const std::string& layer, const std::string& part) {
    FERRUM_CHECK(src.device == Device::CPU, "layer '{}': part '{}' is not in host memory", layer, part);
    if (src.dtype == stored) return copy_from_host(dst, src.data, src.nbytes());
    std::vector<uint16_t> converted(static_cast<size_t>(src.numel()));
    for (int64_t i = 0; i < src.numel(); ++i) {
      const float v = to_f32(src.data, src.dtype, i);
      converted[i] = stored == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
    FERRUM_CHECK(stored == DType::BF16 || stored == DType::F16, "layer '{}': cannot store weights as {}", layer,
                 dtype_name(stored));
    copy_from_host(dst, converted.data(), converted.size() * 2);
    synchronize();  // `converted` goes away
  }

  void load_bias(const LinearSpec& spec, CudaLinear& w) {
    if (!w.has_bias) return;
    std::vector<float> all;
    for (const LinearPart& p : spec.parts) {
      const std::vector<float> b = host_f32(p.bias);
      all.insert(all.end(), b.begin(), b.end());
    }
    w.bias = alloc({w.out_features}, DType::F32);
    copy_from_host(w.bias, all.data(), all.size() * sizeof(float));
  }

  // A quantized layer: every piece into its columns of the output (SwiGLU: of a scratch
  // [M, 2 * rows] in the activations' type, then silu(gate) * up).
  void quant_linear(const Tensor& x, const CudaLinear& w, Tensor& out, LinearEpilogue epilogue) {
    const int64_t M = x.rows(), K = x.cols(), N = w.out_features;  // shapes checked by linear()
    const bool silu = epilogue == LinearEpilogue::SiluMul;
    void* dst = silu ? fused_out(static_cast<size_t>(M * N) * dtype_size(x.dtype)) : out.data;
    const DType dst_dtype = silu ? x.dtype : out.dtype;
    int64_t at = 0;
    for (const QuantPart& q : w.quant) {
      const float* bias = w.bias.empty() ? nullptr : w.bias.ptr<float>() + at;
      void* part_out = static_cast<uint8_t*>(dst) + at * dtype_size(dst_dtype);
      const bool accumulate = epilogue == LinearEpilogue::Accumulate;
      if (q.is_packed) {
        const void* xin = x.data;
        if (q.packed.perm) {  // act order: x's columns in the order the weight stores them
          xin = permuted_x(static_cast<size_t>(M * K) * dtype_size(x.dtype));
          cuda::permute_columns(x.data, x.dtype, M, K, q.packed.perm, const_cast<void*>(xin), stream_);
        }
        if (M >= dequantize_rows()) {
          packed_gemm(xin, x.dtype, M, K, q.packed, bias, part_out, dst_dtype, N, accumulate);
        } else {
          cuda::packed_matmul(xin, x.dtype, M, K, q.packed, bias, part_out, dst_dtype, N, accumulate,
                              quant_scratch_.ptr<float>(), quant_scratch_.numel(), stream_);
          launched("packed_matmul");
        }
        at += q.packed.rows;
        continue;
      }
      cuda::quant_matmul(x.data, x.dtype, M, K, q.w, bias, part_out, dst_dtype, N, accumulate,
                         quant_scratch_.ptr<float>(), stream_);
      launched("quant_matmul");
      at += q.w.rows;
    }
    if (silu) {
      cuda::silu_mul_halves(dst, M, N / 2, out.data, out.dtype, stream_);
      launched("silu_mul_halves");
    }
  }

  // Rows of x from which a packed weight is dequantized to 16 bits (in chunks of the
  // dequantize_ buffer) and multiplied by cuBLAS: long prefills, where the tensor-core GEMM
  // beats reading the weight once per 128 rows. FERRUM_PACKED_DEQUANT_ROWS moves the switch.
  static int64_t dequantize_rows() {
    static const int64_t n = [] {
      const char* v = std::getenv("FERRUM_PACKED_DEQUANT_ROWS");
      return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t{256};
    }();
    return n;
  }

  void packed_gemm(const void* x, DType act, int64_t M, int64_t K, const cuda::PackedWeight& w, const float* bias,
                   void* out, DType out_dtype, int64_t ldo, bool accumulate) {
    const int64_t chunk = std::max<int64_t>(16, static_cast<int64_t>(dequantize_.nbytes()) / (K * 2) / 16 * 16);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    for (int64_t r0 = 0; r0 < w.rows; r0 += chunk) {
      const int64_t rows = std::min(chunk, w.rows - r0);
      cuda::packed_dequantize(w, act, r0, rows, dequantize_.data, stream_);
      void* o = static_cast<uint8_t*>(out) + r0 * dtype_size(out_dtype);
      check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, rows, M, K, &one, dequantize_.data, cuda_type(act), K, x,
                         cuda_type(act), K, &beta, o, cuda_type(out_dtype), ldo, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            "packed gemm");
    }
    launched("packed_gemm");
    if (bias) cuda::add_bias(out, out_dtype, bias, M, w.rows, stream_, ldo);
  }

  // x with permuted columns (act-order GPTQ), grown as needed (outside graphs: the first,
  // eager step of each shape sizes it).
  void* permuted_x(size_t bytes) {
    if (permuted_x_.nbytes() < bytes) {
      permuted_x_ = alloc({static_cast<int64_t>(bytes + bytes / 4)}, DType::U8);
      ++scratch_generation_;
    }
    return permuted_x_.data;
  }

  // A tensor's values as F32 on the host (biases, wherever they live).
  std::vector<float> host_f32(const Tensor& t) {
    std::vector<uint8_t> raw(t.nbytes());
    if (t.device == Device::CUDA) copy_to_host(t, raw.data(), raw.size());
    else std::memcpy(raw.data(), t.data, raw.size());
    std::vector<float> f(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < f.size(); ++i) f[i] = to_f32(raw.data(), t.dtype, static_cast<int64_t>(i));
    return f;
  }

  // A device buffer of at least `bytes` for GEMM outputs that an epilogue consumes (one
  // stream: no overlap between uses).
  void* fused_out(size_t bytes) {
    if (fused_out_.nbytes() < bytes) {
      fused_out_ = alloc({static_cast<int64_t>(bytes + bytes / 4)}, DType::U8);
      ++scratch_generation_;
    }
    return fused_out_.data;
  }

  // out[M, N] = x[M, K] w[N, K]^T (+ beta * out) on cuBLAS. Row-major out is column-major
  // out^T[N, M]: w is the transposed A (K x N, lda K), x the B (K x M, ldb K). x has the
  // weights' type (F32 weights: an exact SGEMM); out is F32 or that type; F32 accumulation.
  void gemm(const Tensor& x, const Tensor& w, void* out, DType out_dtype, float beta) {
    const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
    const float one = 1.0f;
    if (w.dtype == DType::F32) {
      FERRUM_CHECK(out_dtype == DType::F32, "F32 GEMM into {}", dtype_name(out_dtype));
      check(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w.ptr<float>(), K, x.ptr<float>(), K, &beta,
                        static_cast<float*>(out), N),
            "sgemm");
      return;
    }
    const cudaDataType_t type = cuda_type(w.dtype);
    check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w.data, type, K, x.data, type, K, &beta, out,
                       cuda_type(out_dtype), N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "gemm");
  }

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Tensor cublas_workspace_;
  Tensor fused_out_;     // GEMM outputs an epilogue consumes (gate and up halves)
  Tensor quant_scratch_;  // split-K partials of the quantized GEMM (a fixed size)
  Tensor dequantize_;     // packed weights as 16-bit chunks for packed_gemm
  Tensor permuted_x_;     // x in act order (GPTQ desc_act)
  Tensor moe_scratch_;    // the MoE block's routes, expert rows and shared expert (moe_ffn)
  // Sampling: device buffers, and per ticket parity the pinned host staging and an event.
  Tensor sample_in_, sample_out_;
  struct PendingSample {
    Tensor in_host, out_host;
    cudaEvent_t done = nullptr;
    int64_t rows = 0;
    bool top = false;
  };
  PendingSample pending_[2];
  uint64_t next_ticket_ = 0;
  int64_t latest_rows_ = 0;  // rows of the latest start_sample (its picks lead sample_out_)
  Tensor attn_scratch_;  // attention partials of split keys
  std::vector<int32_t> tiles_host_;  // prefill query tiles: (sequence, first token) pairs
  Tensor tiles_;
  uint64_t scratch_generation_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

}  // namespace ferrum
