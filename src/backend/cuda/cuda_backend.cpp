// CudaBackend (cuda_backend.h): construction, memory, graphs, dense linear layers, norms,
// attention; and make_cuda_backend.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_runtime.h"
#include "backend/dummy_fill.h"
#include "core/log.h"

namespace ferrum {

CudaBackend::CudaBackend(int device) : device_(device) {
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

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  for (PendingSample& p : pending_)
    if (p.done) cudaEventDestroy(p.done);
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
}

Tensor CudaBackend::alloc(std::initializer_list<int64_t> shape, DType dtype) {
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

Tensor CudaBackend::alloc_host(std::initializer_list<int64_t> shape, DType dtype) {
  use_device();
  Tensor t = shaped(shape, dtype);
  void* p = nullptr;
  check(cudaHostAlloc(&p, std::max<size_t>(t.nbytes(), 16), cudaHostAllocDefault), "cudaHostAlloc");
  t.data = p;
  t.owner = std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
  return t;
}

Tensor CudaBackend::upload(const Tensor& host) {
  use_device();
  if (host.device == Device::CUDA) return host;
  Tensor t = alloc({host.numel()}, host.dtype);
  copy_from_host(t, host.data, host.nbytes());
  check(cudaStreamSynchronize(stream_), "upload");  // the host copy may go away
  t.ndim = host.ndim;
  t.shape = host.shape;
  return t;
}

void CudaBackend::fill_random(Tensor& t, uint64_t seed, float center, float scale) {
  use_device();
  cuda::fill_random(t.data, t.dtype, t.numel(), seed, center, scale, stream_);
  launched("fill_random");
}

void CudaBackend::copy_from_host(Tensor& dst, const void* src, size_t bytes) {
  use_device();
  check(cudaMemcpyAsync(dst.data, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
}

void CudaBackend::copy_to_host(const Tensor& src, void* dst, size_t bytes) {
  use_device();
  check(cudaMemcpyAsync(dst, src.data, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
  check(cudaStreamSynchronize(stream_), "copy to host");
}

void CudaBackend::synchronize() {
  use_device();
  check(cudaStreamSynchronize(stream_), "synchronize");
}

void CudaBackend::begin_capture() {
  use_device();
  check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
}

std::shared_ptr<void> CudaBackend::end_capture() {
  use_device();
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(stream_, &graph), "end capture");
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(e, "graph instantiate");
  return std::shared_ptr<void>(exec, [](void* g) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g)); });
}

void CudaBackend::abort_capture() {
  use_device();
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream_, &graph);  // errors ignored: the capture is being thrown away
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

void CudaBackend::replay(const std::shared_ptr<void>& graph) {
  use_device();
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), stream_), "graph launch");
  // A test hook (tests/gpu/gpu_fault.sh): FERRUM_FAULT_GPU_REPLAY=N faults the device after
  // the Nth graph replay, as a kernel that reads out of bounds would.
  static const long fault_at = [] {
    const char* v = std::getenv("FERRUM_FAULT_GPU_REPLAY");
    return v ? std::atol(v) : 0L;
  }();
  if (fault_at > 0 && ++replays_ == fault_at) {
    log::warn("FERRUM_FAULT_GPU_REPLAY: faulting the GPU after replay {}", replays_);
    cuda::fault(stream_);
  }
}

std::string CudaBackend::device_failure() {
  use_device();
  // A sticky error outlives cudaGetLastError, which clears the others.
  if (cudaDeviceSynchronize() == cudaSuccess) return {};
  cudaGetLastError();
  const cudaError_t e = cudaDeviceSynchronize();
  return e == cudaSuccess ? std::string() : fmt::format("CUDA: {} ({})", cudaGetErrorString(e), cudaGetErrorName(e));
}

DType CudaBackend::activation_dtype(DType weights) const {
  return weights == DType::BF16 || weights == DType::F16 ? weights : DType::F32;
}

bool CudaBackend::supports_linear(WeightFormat format, DType weights) const {
  if (gguf_block_values(format)) return weights == DType::U8;
  if (is_packed_source(format)) return true;  // repacked at load (quant_pack.h)
  return Backend::supports_linear(format, weights);
}

std::unique_ptr<LinearWeight> CudaBackend::load_linear(const LinearSpec& spec) {
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

void CudaBackend::linear(const Tensor& x, const LinearWeight& lw, Tensor& out, LinearEpilogue epilogue) {
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

void CudaBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  use_device();
  FERRUM_CHECK(out.dtype == DType::F32, "embedding: the output (residual stream) is F32");
  cuda::embedding(table.data, table.dtype, table.dim(0), table.dim(1), ids.ptr<int32_t>(), ids.numel(),
                  out.ptr<float>(), stream_);
  launched("embedding");
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  use_device();
  FERRUM_CHECK(w.numel() == x.cols(), "rms_norm: weight has {} elements, rows have {}", w.numel(), x.cols());
  FERRUM_CHECK(x.dtype == DType::F32 && out.numel() == x.numel(), "rms_norm: x {} {} -> out {}", x.shape_str(),
               dtype_name(x.dtype), out.shape_str());
  cuda::rms_norm(x.ptr<float>(), w.data, w.dtype, x.rows(), x.cols(), eps, out.data, out.dtype, stream_);
  launched("rms_norm");
}

void CudaBackend::qkv_rope_write_kv(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                       const Tensor& positions, const RopeTable& table, const Tensor& slots, Tensor& q_out,
                       Tensor& kc, Tensor& vc, const KvScales& kv) {
  use_device();
  check_qkv_rope(qkv, q_norm, k_norm, q_out, kc, vc);
  const int64_t T = q_out.dim(0), Hq = q_out.dim(1), D = q_out.dim(2), Hk = kc.dim(2);
  cuda::qkv_rope_write_kv(qkv.data, qkv.dtype, q_norm ? q_norm->data : nullptr, k_norm ? k_norm->data : nullptr,
                          q_norm ? q_norm->dtype : DType::F32, eps, positions.ptr<int32_t>(), table.cos.ptr<float>(),
                          table.sin.ptr<float>(), table.max_positions, slots.ptr<int32_t>(), T, Hq, Hk, D,
                          kc.dim(0) * kc.dim(1), q_out.data, kc.data, vc.data, kc.dtype, kv.k, kv.v, stream_);
  launched("qkv_rope_write_kv");
}

void CudaBackend::check_qkv_rope(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, const Tensor& q_out,
                                 const Tensor& kc, const Tensor& vc) const {
  const int64_t T = q_out.dim(0), Hq = q_out.dim(1), D = q_out.dim(2), Hk = kc.dim(2);
  FERRUM_CHECK(qkv.rows() == T && qkv.cols() == (Hq + 2 * Hk) * D && qkv.dtype == q_out.dtype && D % 2 == 0,
               "qkv_rope_write_kv: qkv {} {} for q {} {}", qkv.shape_str(), dtype_name(qkv.dtype), q_out.shape_str(),
               dtype_name(q_out.dtype));
  FERRUM_CHECK(kc.dtype == vc.dtype && kc.dim(3) == D && supports_kv_cache(kc.dtype, q_out.dtype),
               "qkv_rope_write_kv: caches {} {} / {} beside {} activations", kc.shape_str(), dtype_name(kc.dtype),
               dtype_name(vc.dtype), dtype_name(q_out.dtype));
  FERRUM_CHECK((q_norm == nullptr) == (k_norm == nullptr) && (!q_norm || q_norm->dtype == k_norm->dtype),
               "qkv_rope_write_kv: q and k norms come together, of one dtype");
}

namespace {
// Decode steps of up to this many tokens take the fused kernel (FERRUM_FUSED_ROPE_ATTENTION=N;
// 0: never). On an H200 (Llama-3.1-8B shapes, engine) it gained 1.2-1.4% at one sequence and
// 3% at 16 (GPTQ), was even at 64 and lost 3% at 256 (FP8: there every block's own rotation
// delays its keys, where one separate kernel does them all at once).
int64_t fused_rope_attention_max_tokens() {
  static const int64_t n = [] {
    const char* v = std::getenv("FERRUM_FUSED_ROPE_ATTENTION");
    return v ? std::max<int64_t>(0, std::atoll(v)) : int64_t{32};
  }();
  return n;
}

// Every sequence of the step has one query token (a decode step, graph-padded or not).
bool all_decodes(const AttentionMeta& meta, int64_t tokens) {
  const std::vector<int32_t>& qs = meta.host_query_start;
  if (meta.num_seqs != tokens || qs.size() != static_cast<size_t>(meta.num_seqs) + 1) return false;
  for (int32_t s = 0; s < meta.num_seqs; ++s)
    if (qs[s + 1] - qs[s] != 1) return false;
  return true;
}
}  // namespace

void CudaBackend::qkv_rope_attention(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                                     const Tensor& positions, const RopeTable& table, const AttentionMeta& meta,
                                     float scale, Tensor& q_out, Tensor& kc, Tensor& vc, Tensor& out,
                                     const KvScales& kv) {
  if (q_out.dim(0) > fused_rope_attention_max_tokens() ||
      !cuda::tensor_core_attention(q_out.dtype, kc.dtype, q_out.dim(2)) ||
      !all_decodes(meta, q_out.dim(0)))
    return Backend::qkv_rope_attention(qkv, q_norm, k_norm, eps, positions, table, meta, scale, q_out, kc, vc, out,
                                       kv);
  use_device();
  check_qkv_rope(qkv, q_norm, k_norm, q_out, kc, vc);
  cuda::QkvRope rope;
  rope.qkv = qkv.data;
  rope.q_norm = q_norm ? q_norm->data : nullptr;
  rope.k_norm = k_norm ? k_norm->data : nullptr;
  rope.norm_dtype = q_norm ? q_norm->dtype : DType::F32;
  rope.eps = eps;
  rope.positions = positions.ptr<int32_t>();
  rope.cos = table.cos.ptr<float>();
  rope.sin = table.sin.ptr<float>();
  rope.max_positions = table.max_positions;
  rope.slots = meta.slot_mapping.ptr<int32_t>();
  rope.num_slots = kc.dim(0) * kc.dim(1);
  attend(q_out, kc, vc, meta, scale, out, kv, &rope);
}

bool CudaBackend::supports_kv_cache(DType cache, DType activations) const {
  // A cache of the activations' own type, or E4M3 beside any of them (converted as it is read).
  return cache == activations || cache == DType::F8E4M3;
}

void CudaBackend::paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                     Tensor& out, const KvScales& kv) {
  attend(q, kc, vc, meta, scale, out, kv, nullptr);
}

void CudaBackend::attend(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                         Tensor& out, const KvScales& kv, const cuda::QkvRope* rope) {
  use_device();
  const int64_t D = q.dim(2);
  FERRUM_CHECK(out.dtype == q.dtype && vc.dtype == kc.dtype && supports_kv_cache(kc.dtype, q.dtype),
               "CUDA attention: q ({}) and out ({}) must share a dtype, and the caches ({}) have it or F8_E4M3",
               dtype_name(q.dtype), dtype_name(out.dtype), dtype_name(kc.dtype));
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
  // Long prompts over a 16-bit or E4M3 cache (16-bit activations) go to the tensor-core kernel,
  // in tiles of 128 queries (never inside a graph: graphs are decode steps).
  tiles_host_.clear();
  const bool tiled = cuda::tensor_core_attention(q.dtype, kc.dtype, D);
  for (int32_t s = 0; tiled && s < meta.num_seqs; ++s) {
    const int32_t begin = meta.host_query_start[s], end = meta.host_query_start[s + 1];
    if (end - begin < cuda::kPrefillTile) continue;
    for (int32_t t = begin; t < end; t += cuda::prefill_tile_rows(D)) tiles_host_.insert(tiles_host_.end(), {s, t});
  }
  const int32_t num_tiles = static_cast<int32_t>(tiles_host_.size() / 2);
  FERRUM_CHECK(!rope || num_tiles == 0, "CUDA: a fused q/k/v attention over prefill tiles");
  if (!cuda::paged_attention(rope ? nullptr : q.data, q.dtype, kc.data, vc.data, kc.dtype, kv.k, kv.v,
                             meta.query_start.ptr<int32_t>(), meta.seq_lens.ptr<int32_t>(),
                             meta.block_tables.ptr<int32_t>(), meta.num_seqs, meta.max_blocks_per_seq,
                             meta.block_size, q.dim(0), q.dim(1), kc.dim(2), D, scale, out.data, splits,
                             keys_per_split, attn_scratch_.ptr<float>(), num_tiles > 0 ? cuda::kPrefillTile : 0,
                             stream_, rope))
    fail("CUDA attention supports head_dim up to 256, not {} (or got {} key splits)", D, splits);
  if (num_tiles > 0) {
    FERRUM_CHECK(!capturing(), "CUDA: prefill attention inside a graph");
    if (tiles_.numel() < static_cast<int64_t>(tiles_host_.size()))
      tiles_ = alloc({static_cast<int64_t>(tiles_host_.size() * 2)}, DType::I32);
    copy_from_host(tiles_, tiles_host_.data(), tiles_host_.size() * 4);
    if (!cuda::prefill_attention(q.data, q.dtype, kc.data, vc.data, kc.dtype, kv.k, kv.v, tiles_.ptr<int32_t>(),
                                 num_tiles, meta.query_start.ptr<int32_t>(), meta.seq_lens.ptr<int32_t>(),
                                 meta.block_tables.ptr<int32_t>(), meta.max_blocks_per_seq, meta.block_size, q.dim(1),
                                 kc.dim(2), D, scale, out.data, stream_))
      fail("CUDA prefill attention: no kernel for {} activations over a {} cache, head_dim {}", dtype_name(q.dtype),
           dtype_name(kc.dtype), D);
    launched("prefill_attention");
  }
  launched("paged_attention");
}

void CudaBackend::gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) {
  use_device();
  cuda::gather_rows(x.ptr<float>(), rows.ptr<int32_t>(), rows.numel(), x.cols(), x.rows(), out.ptr<float>(), stream_);
  launched("gather_rows");
}

void CudaBackend::use_device() const {
  thread_local int current = -1;
  if (current != device_) {
    check(cudaSetDevice(device_), "cudaSetDevice");
    current = device_;
  }
}

bool CudaBackend::capturing() const {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(stream_, &status);
  return status != cudaStreamCaptureStatusNone;
}

Tensor CudaBackend::shaped(std::initializer_list<int64_t> shape, DType dtype) {
  Tensor t;
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) t.shape[i++] = d;
  return t;
}

void CudaBackend::launched(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
}

void CudaBackend::put_dense(Tensor& dst, const Tensor& src, DType stored, const std::string& layer, const std::string& part) {
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

void CudaBackend::load_bias(const LinearSpec& spec, CudaLinear& w) {
  if (!w.has_bias) return;
  std::vector<float> all;
  for (const LinearPart& p : spec.parts) {
    const std::vector<float> b = host_f32(p.bias);
    all.insert(all.end(), b.begin(), b.end());
  }
  w.bias = alloc({w.out_features}, DType::F32);
  copy_from_host(w.bias, all.data(), all.size() * sizeof(float));
}

std::vector<float> CudaBackend::host_f32(const Tensor& t) {
  std::vector<uint8_t> raw(t.nbytes());
  if (t.device == Device::CUDA) copy_to_host(t, raw.data(), raw.size());
  else std::memcpy(raw.data(), t.data, raw.size());
  std::vector<float> f(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < f.size(); ++i) f[i] = to_f32(raw.data(), t.dtype, static_cast<int64_t>(i));
  return f;
}

void* CudaBackend::fused_out(size_t bytes) {
  if (fused_out_.nbytes() < bytes) {
    fused_out_ = alloc({static_cast<int64_t>(bytes + bytes / 4)}, DType::U8);
    ++scratch_generation_;
  }
  return fused_out_.data;
}

void CudaBackend::gemm(const Tensor& x, const Tensor& w, void* out, DType out_dtype, float beta) {
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

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

}  // namespace ferrum
