// The CUDA backend: tensors in device memory, one stream, kernels from cuda_kernels.h, and
// matmuls on cuBLAS. Activations stay F32 like the CPU backend's (same contract, same model
// code); a matmul with 16-bit weights rounds its input to the weights' type and runs a
// 16-bit GEMM with F32 accumulation and output, as PyTorch does for bf16 models.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_runtime.h"
#include "core/error.h"
#include "core/log.h"

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

  Tensor random_tensor(std::initializer_list<int64_t> shape, DType dtype, uint64_t seed, float center,
                       float scale) override {
    use_device();
    Tensor t = alloc(shape, dtype);
    cuda::fill_random(t.data, dtype, t.numel(), seed, center, scale, stream_);
    launched("fill_random");
    return t;
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

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    use_device();
    cuda::embedding(table.data, table.dtype, table.dim(0), table.dim(1), ids.ptr<int32_t>(), ids.numel(),
                    out.ptr<float>(), stream_);
    launched("embedding");
  }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    use_device();
    FERRUM_CHECK(w.numel() == x.cols(), "rms_norm: weight has {} elements, rows have {}", w.numel(), x.cols());
    cuda::rms_norm(x.ptr<float>(), w.data, w.dtype, x.rows(), x.cols(), eps, out.ptr<float>(), stream_);
    launched("rms_norm");
  }

  void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    use_device();
    const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
    FERRUM_CHECK(w.cols() == K && out.rows() == M && out.cols() == N, "matmul: shapes {} x {}^T -> {}", x.shape_str(),
                 w.shape_str(), out.shape_str());
    if (M == 0) return;
    if (w.dtype != DType::F32 && gemv(x, {{&w, bias, &out}}, cuda::GemvMode::Store)) return;  // bias included
    gemm(x, w.data, w.dtype, N, out.ptr<float>());
    if (bias) {
      cuda::add_bias(out.ptr<float>(), bias_f32(bias), M, N, stream_);
      launched("add_bias");
    }
  }

  void matmuls(const Tensor& x, std::initializer_list<MatmulTarget> targets) override {
    use_device();
    if (gemv(x, targets, cuda::GemvMode::Store)) return;
    // Weights that are row slices of one buffer (the model stores q, k, v so): one GEMM into
    // scratch, then each target's columns. Batched decode sizes only: the scratch is rows x
    // all columns.
    const int64_t M = x.rows();
    int64_t total = 0;
    if (M <= kFusedGemmRows && adjacent(targets, &total)) {
      float* fused = fused_out(M * total);
      gemm(x, targets.begin()->w->data, targets.begin()->w->dtype, total, fused);
      int64_t at = 0;
      for (const MatmulTarget& t : targets) {
        const int64_t n = t.w->dim(0);
        cuda::copy_columns(fused, M, total, at, n, t.out->ptr<float>(), stream_);
        at += n;
      }
      launched("copy_columns");
      return;
    }
    Backend::matmuls(x, targets);
  }
  void matmul_add(const Tensor& x, const Tensor& w, Tensor& acc, Tensor& tmp) override {
    use_device();
    if (!gemv(x, {{&w, nullptr, &acc}}, cuda::GemvMode::Accumulate)) Backend::matmul_add(x, w, acc, tmp);
  }
  void gate_up_silu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out, Tensor& tmp) override {
    use_device();
    if (gemv(x, {{&w_gate, nullptr, &out}, {&w_up, nullptr, &tmp}}, cuda::GemvMode::SiluMul)) return;
    const int64_t M = x.rows();
    int64_t total = 0;
    if (M <= kFusedGemmRows && adjacent({{&w_gate, nullptr, &out}, {&w_up, nullptr, &tmp}}, &total) &&
        w_gate.dim(0) == w_up.dim(0)) {
      float* fused = fused_out(M * total);
      gemm(x, w_gate.data, w_gate.dtype, total, fused);
      cuda::silu_mul_halves(fused, M, w_gate.dim(0), out.ptr<float>(), stream_);
      launched("silu_mul_halves");
      return;
    }
    Backend::gate_up_silu(x, w_gate, w_up, out, tmp);
  }

  void rope(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) override {
    use_device();
    cuda::rope(q.ptr<float>(), k.ptr<float>(), positions.ptr<int32_t>(), table.cos.ptr<float>(), table.sin.ptr<float>(),
               q.dim(0), q.dim(1), k.dim(1), q.dim(2), table.max_positions, stream_);
    launched("rope");
  }
  void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& kc, Tensor& vc) override {
    use_device();
    const int64_t T = k.dim(0);
    FERRUM_CHECK(kc.dtype == vc.dtype && (kc.dtype == DType::F32 || kc.dtype == DType::BF16 || kc.dtype == DType::F16),
                 "KV cache dtype {}", dtype_name(kc.dtype));
    cuda::write_kv(k.ptr<float>(), v.ptr<float>(), slots.ptr<int32_t>(), T, T ? k.numel() / T : 0,
                   kc.dim(0) * kc.dim(1), kc.data, vc.data, kc.dtype, stream_);
    launched("write_kv");
  }
  void paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                       Tensor& out) override {
    use_device();
    const int64_t D = q.dim(2);
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
    // Long prompts over a 16-bit cache go to the tensor-core kernel, in tiles of 16 queries
    // (never inside a graph: graphs are decode steps).
    tiles_host_.clear();
    const bool tiled = (kc.dtype == DType::BF16 || kc.dtype == DType::F16) && (D == 64 || D == 128 || D == 256);
    for (int32_t s = 0; tiled && s < meta.num_seqs; ++s) {
      const int32_t begin = meta.host_query_start[s], end = meta.host_query_start[s + 1];
      if (end - begin < cuda::kPrefillTile) continue;
      for (int32_t t = begin; t < end; t += cuda::kPrefillTile) tiles_host_.insert(tiles_host_.end(), {s, t});
    }
    const int32_t num_tiles = static_cast<int32_t>(tiles_host_.size() / 2);
    if (!cuda::paged_attention(q.ptr<float>(), kc.data, vc.data, kc.dtype, meta.query_start.ptr<int32_t>(),
                               meta.seq_lens.ptr<int32_t>(), meta.block_tables.ptr<int32_t>(), meta.num_seqs,
                               meta.max_blocks_per_seq, meta.block_size, q.dim(0), q.dim(1), kc.dim(2), D, scale,
                               out.ptr<float>(), splits, keys_per_split, attn_scratch_.ptr<float>(),
                               num_tiles > 0 ? cuda::kPrefillTile : 0, stream_))
      fail("CUDA attention supports head_dim up to 256, not {} (or got {} key splits)", D, splits);
    if (num_tiles > 0) {
      FERRUM_CHECK(!capturing(), "CUDA: prefill attention inside a graph");
      if (tiles_.numel() < static_cast<int64_t>(tiles_host_.size()))
        tiles_ = alloc({static_cast<int64_t>(tiles_host_.size() * 2)}, DType::I32);
      copy_from_host(tiles_, tiles_host_.data(), tiles_host_.size() * 4);
      cuda::prefill_attention(q.ptr<float>(), kc.data, vc.data, kc.dtype, tiles_.ptr<int32_t>(), num_tiles,
                              meta.query_start.ptr<int32_t>(), meta.seq_lens.ptr<int32_t>(),
                              meta.block_tables.ptr<int32_t>(), meta.max_blocks_per_seq, meta.block_size, q.dim(1),
                              kc.dim(2), D, scale, out.ptr<float>(), stream_);
      launched("prefill_attention");
    }
    launched("paged_attention");
  }
  void silu_mul(const Tensor& g, const Tensor& u, Tensor& out) override {
    use_device();
    cuda::silu_mul(g.ptr<float>(), u.ptr<float>(), g.numel(), out.ptr<float>(), stream_);
    launched("silu_mul");
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    use_device();
    cuda::add(a.ptr<float>(), b.ptr<float>(), a.numel(), out.ptr<float>(), stream_);
    launched("add");
  }
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override {
    use_device();
    cuda::gather_rows(x.ptr<float>(), rows.ptr<int32_t>(), rows.numel(), x.cols(), x.rows(), out.ptr<float>(), stream_);
    launched("gather_rows");
  }

 private:
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
  // A device buffer of at least `bytes`, reused by every matmul (one stream: no overlap).
  void* scratch(size_t bytes) {
    if (scratch_.nbytes() < bytes) {
      scratch_ = alloc({static_cast<int64_t>(bytes + bytes / 4)}, DType::U8);
      ++scratch_generation_;
    }
    return scratch_.data;
  }
  static constexpr int64_t kFusedGemmRows = 64;

  // out[M, N] = x[M, K] w[N, K]^T on cuBLAS. Row-major out is column-major out^T[N, M]: w is
  // the transposed A (K x N, lda K), x the B (K x M, ldb K). 16-bit weights take a 16-bit
  // copy of x (F32 accumulation); F32 weights an exact SGEMM.
  void gemm(const Tensor& x, const void* w, DType w_dtype, int64_t N, float* out) {
    const int64_t M = x.rows(), K = x.cols();
    const float one = 1.0f, zero = 0.0f;
    if (w_dtype == DType::F32) {
      check(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, static_cast<const float*>(w), K,
                        x.ptr<float>(), K, &zero, out, N),
            "sgemm");
      return;
    }
    const cudaDataType_t type = cuda_type(w_dtype);
    void* xs = scratch(static_cast<size_t>(M * K) * 2);
    cuda::convert_from_f32(x.ptr<float>(), M * K, w_dtype, xs, stream_);
    launched("convert");
    check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, type, K, xs, type, K, &zero, out,
                       CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "gemm");
  }

  // Whether the targets' weights are consecutive row slices of one buffer (same dtype and
  // columns, no bias); *total = their rows together.
  static bool adjacent(std::initializer_list<MatmulTarget> targets, int64_t* total) {
    const Tensor& first = *targets.begin()->w;
    const char* next = static_cast<const char*>(first.data);
    *total = 0;
    for (const MatmulTarget& t : targets) {
      if (t.bias || t.w->dtype != first.dtype || t.w->cols() != first.cols() || t.w->data != next) return false;
      next += t.w->nbytes();
      *total += t.w->dim(0);
    }
    return true;
  }

  float* fused_out(int64_t floats) {
    if (fused_out_.numel() < floats) {
      fused_out_ = alloc({floats + floats / 4}, DType::F32);
      ++scratch_generation_;
    }
    return fused_out_.ptr<float>();
  }

  // The skinny-matmul kernel for 1-2 rows of x and 16-bit weights of one dtype; false when
  // it does not apply (the caller falls back to cuBLAS).
  bool gemv(const Tensor& x, std::initializer_list<MatmulTarget> targets, cuda::GemvMode mode) {
    const int64_t M = x.rows(), K = x.cols();
    if (M < 1 || M > 2 || targets.size() > 3) return false;
    cuda::GemvTargets t{};
    const DType dtype = targets.begin()->w->dtype;
    for (const MatmulTarget& mt : targets) {
      if (mt.w->dtype != dtype || mt.w->cols() != K) return false;
      FERRUM_CHECK(mt.out->rows() == M && mt.out->cols() == mt.w->dim(0), "matmul: shapes {} x {}^T -> {}",
                   x.shape_str(), mt.w->shape_str(), mt.out->shape_str());
      t.w[t.count] = mt.w->data;
      t.bias[t.count] = bias_f32(mt.bias);
      t.out[t.count] = mt.out->ptr<float>();
      t.n[t.count] = mt.w->dim(0);
      ++t.count;
    }
    if (mode == cuda::GemvMode::SiluMul && t.n[0] != t.n[1]) return false;
    if (!cuda::gemv_16bit(x.ptr<float>(), M, dtype, t, K, mode, stream_)) return false;
    launched("gemv");
    return true;
  }

  const float* bias_f32(const Tensor* bias) {
    if (!bias) return nullptr;
    FERRUM_CHECK(bias->dtype == DType::F32 || bias->dtype == DType::BF16 || bias->dtype == DType::F16,
                 "matmul: bias dtype {}", dtype_name(bias->dtype));
    return bias->dtype == DType::F32 ? bias->ptr<float>() : f32_copy(*bias);
  }
  // 16-bit biases (qkv_bias models) as F32, converted once. The entry keeps the source alive,
  // so its address cannot be reused by another tensor while cached.
  const float* f32_copy(const Tensor& bias) {
    auto it = bias_f32_.find(bias.data);
    if (it != bias_f32_.end()) return it->second.second.ptr<float>();
    std::vector<uint16_t> h(bias.numel());
    copy_to_host(bias, h.data(), h.size() * 2);
    std::vector<float> f(h.size());
    for (size_t i = 0; i < h.size(); ++i) f[i] = bias.dtype == DType::BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
    Tensor t = alloc({bias.numel()}, DType::F32);
    copy_from_host(t, f.data(), f.size() * 4);
    synchronize();
    bias_f32_[bias.data] = {bias, t};
    return t.ptr<float>();
  }

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Tensor cublas_workspace_;
  Tensor scratch_;       // 16-bit matmul inputs
  Tensor fused_out_;     // outputs of GEMMs over adjacent weights
  Tensor attn_scratch_;  // attention partials of split keys
  std::vector<int32_t> tiles_host_;  // prefill query tiles: (sequence, first token) pairs
  Tensor tiles_;
  uint64_t scratch_generation_ = 0;
  std::map<const void*, std::pair<Tensor, Tensor>> bias_f32_;  // source -> (source, F32 copy)
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

}  // namespace ferrum
