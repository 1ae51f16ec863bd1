// CudaBackend's quantized layers: GGUF blocks as stored, GPTQ/AWQ/FP8 repacked into the tiles
// of cuda_packed_layout.h, run by cuda_packed_matmul.cu / cuda_quant_matmul.cu, or dequantized
// in chunks for cuBLAS on long prefills.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>

#include "backend/cuda/cuda_packed_layout.h"
#include "backend/cuda/cuda_packed_q8.h"
#include "backend/dummy_fill.h"
#include "backend/quant_pack.h"

namespace ferrum {

std::unique_ptr<LinearWeight> CudaBackend::load_quantized(const LinearSpec& spec) {
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
  prepare_quantized();
  for (const LinearPart& p : spec.parts) w->part_rows.push_back(p.rows);
  for (cuda::LayerPiece& piece : cuda::tile_layer(spec, act, fp8_w8a8_rows() > 0)) {
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
    if (!piece.fp8_codes.empty()) {
      q.fp8_codes = upload_vector(piece.fp8_codes);
      q.fp8_scales = upload_vector(piece.fp8_row_scales);
    }
    q.packed = {t.mode, static_cast<const uint8_t*>(q.data.data), q.scales.ptr<uint32_t>(),
                q.perm.empty() ? nullptr : q.perm.ptr<int32_t>(), t.rows, t.padded_rows, t.cols, t.group};
    q.is_packed = true;
    w->quant.push_back(std::move(q));
  }
  for (const QuantPart& q : w->quant)
    // The tiles' bytes: one decode step reads them or the FP8 codes by rows kept beside them
    // (the FP8 GEMV at one row, the W8A8 GEMM from fp8_w8a8_rows() rows).
    w->stored_bytes += q.data.nbytes() + q.scales.nbytes() + q.perm.nbytes();
  load_bias(spec, *w);
  synchronize();
  return w;
}

void CudaBackend::prepare_quantized() {
  if (!quant_scratch_.empty()) return;
  quant_scratch_ = alloc({std::max<int64_t>(cuda::quant_matmul_scratch_floats(), kPackedScratchFloats)}, DType::F32);
  dequantize_ = alloc({kDequantizeBytes}, DType::U8);
  cuda::packed_matmul_prepare();
}

void CudaBackend::embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out) {
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

cuda::QuantKind CudaBackend::quant_kind(WeightFormat f) {
  switch (f) {
    case WeightFormat::GgufQ8_0: return cuda::QuantKind::Q8_0;
    case WeightFormat::GgufQ4_0: return cuda::QuantKind::Q4_0;
    case WeightFormat::GgufQ4K: return cuda::QuantKind::Q4K;
    case WeightFormat::GgufQ5K: return cuda::QuantKind::Q5K;
    case WeightFormat::GgufQ6K: return cuda::QuantKind::Q6K;
    default: fail("CUDA: {} is not a GGUF block format", weight_format_name(f));
  }
}

void CudaBackend::quant_linear(const Tensor& x, const CudaLinear& w, Tensor& out, LinearEpilogue epilogue) {
  const int64_t M = x.rows(), K = x.cols(), N = w.out_features;  // shapes checked by linear()
  const bool silu = epilogue == LinearEpilogue::SiluMul;
  if (silu && fused_gate_up(x, w, out)) return;
  void* dst = silu ? fused_out(static_cast<size_t>(M * N) * dtype_size(x.dtype)) : out.data;
  const DType dst_dtype = silu ? x.dtype : out.dtype;
  if (!silu && w.quant.size() == 2 && w.quant[0].is_packed && w.quant[1].is_packed) {
    // Two packed pieces of two integer modes (q/k and v of a K-quant mix): one launch at decode.
    const cuda::PackedWeight& w0 = w.quant[0].packed;
    const float* bias = w.bias.empty() ? nullptr : w.bias.ptr<float>();
    void* out1 = static_cast<uint8_t*>(dst) + w0.rows * dtype_size(dst_dtype);
    if (cuda::packed_matmul_q8_two(x.data, x.dtype, static_cast<int>(M), K, w0, bias, dst, w.quant[1].packed,
                                   bias ? bias + w0.rows : nullptr, out1, dst_dtype == DType::F32, N,
                                   epilogue == LinearEpilogue::Accumulate, stream_)) {
      launched("packed_matmul_q8_two");
      return;
    }
  }
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
      const cuda::GemvMode mode = accumulate ? cuda::GemvMode::Accumulate : cuda::GemvMode::Store;
      if (fp8_gemv(x, q, bias, part_out, N, dst_dtype, mode) ||
          (!q.fp8_codes.empty() && M >= fp8_w8a8_rows() && fp8_w8a8(x, q, bias, part_out, dst_dtype, N, accumulate))) {
        at += q.packed.rows;
        continue;
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

// A gate/up layer that is one packed weight (gate rows, then as many up rows) whose kernel
// writes silu(gate) * up itself: the int8-x GEMV at 1-2 rows (cuda::packed_matmul_q8_silu),
// the batched tensor-core kernel from 17 rows (cuda::packed_rows_silu).
bool CudaBackend::fused_gate_up(const Tensor& x, const CudaLinear& w, Tensor& out) {
  if (w.quant.size() != 1 || w.part_rows.size() != 2 || w.part_rows[0] != w.part_rows[1]) return false;
  const QuantPart& q = w.quant.front();
  if (!q.is_packed || out.dtype != x.dtype) return false;
  const float* bias = w.bias.empty() ? nullptr : w.bias.ptr<float>();
  if (fp8_gemv(x, q, bias, out.data, out.cols(), out.dtype, cuda::GemvMode::SiluMul)) return true;
  const int64_t M = x.rows();
  if (M > 16 && M < dequantize_rows() && cuda::packed_rows_enabled() && !q.packed.perm && w.bias.empty() &&
      q.packed.rows % 32 == 0 && (q.fp8_codes.empty() || M < fp8_w8a8_rows())) {
    // Batches: the tensor-core kernel writes silu(gate) * up (passes of up to 128 rows).
    const size_t row_bytes = static_cast<size_t>(x.cols()) * dtype_size(x.dtype);
    for (int64_t m0 = 0; m0 < M; m0 += 128)
      cuda::packed_rows_silu(static_cast<const uint8_t*>(x.data) + m0 * row_bytes, x.dtype,
                             static_cast<int>(std::min<int64_t>(128, M - m0)), x.cols(), q.packed,
                             static_cast<uint8_t*>(out.data) + m0 * out.cols() * dtype_size(out.dtype), out.cols(),
                             quant_scratch_.ptr<float>(), quant_scratch_.numel(), stream_);
    launched("packed_rows_silu");
    return true;
  }
  // (FP8 tiles never take the int8-x path)
  if (!cuda::packed_matmul_q8_silu(x.data, x.dtype, static_cast<int>(x.rows()), x.cols(), q.packed, bias, out.data,
                                   out.cols(), stream_))
    return false;
  launched("packed_matmul_q8_silu");
  return true;
}

int64_t CudaBackend::dequantize_rows() {
  static const int64_t n = [] {
    const char* v = std::getenv("FERRUM_PACKED_DEQUANT_ROWS");
    return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t{256};
  }();
  return n;
}

void CudaBackend::packed_gemm(const void* x, DType act, int64_t M, int64_t K, const cuda::PackedWeight& w, const float* bias,
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

// Decode of FP8 weights kept by rows (per-channel or per-tensor scales): the W8A16 GEMV reads
// the E4M3 codes (half the bytes of the 16-bit weights) and applies each row's scale.
bool CudaBackend::fp8_gemv(const Tensor& x, const QuantPart& q, const float* bias, void* out, int64_t ldo,
                           DType out_dtype, cuda::GemvMode mode) {
  if (q.fp8_codes.empty() || x.rows() >= fp8_w8a8_rows()) return false;
  if (!cuda::gemv_fp8(x.data, x.rows(), x.dtype, q.fp8_codes.ptr<uint8_t>(), q.fp8_scales.ptr<float>(), bias,
                      q.packed.rows, x.cols(), out, ldo, out_dtype, mode, stream_))
    return false;
  launched("gemv_fp8");
  return true;
}

bool CudaBackend::rounds_x_to_fp8(const LinearWeight& w, int64_t rows) const {
  const auto* l = dynamic_cast<const CudaLinear*>(&w);
  if (!l || fp8_w8a8_rows() == 0 || rows < fp8_w8a8_rows()) return false;
  for (const QuantPart& q : l->quant)
    if (!q.fp8_codes.empty()) return true;
  return false;
}

int64_t CudaBackend::fp8_w8a8_rows() {
  static const int64_t n = [] {
    const char* v = std::getenv("FERRUM_FP8_W8A8_ROWS");
    return v ? std::max<int64_t>(0, std::atoll(v)) : int64_t{32};
  }();
  return n;
}

bool CudaBackend::fp8_w8a8(const Tensor& x, const QuantPart& q, const float* bias, void* out, DType out_dtype,
                           int64_t ldo, bool accumulate) {
  const int64_t M = x.rows(), K = x.cols(), rows = q.packed.rows;
  const int64_t bytes = M * K + M * 4;  // codes, then the row scales (K is a multiple of 64)
  if (fp8_x_.numel() < bytes) {
    fp8_x_ = alloc({bytes + bytes / 4}, DType::U8);
    ++scratch_generation_;
  }
  if (!fp8_gemm_) fp8_gemm_ = std::make_unique<cuda::Fp8Gemm>();
  if (!fp8_gemm_->usable(rows, K, M, ldo, out_dtype, accumulate)) return false;
  uint8_t* xq = fp8_x_.ptr<uint8_t>();
  float* xs = reinterpret_cast<float*>(xq + M * K);
  cuda::quantize_rows_fp8(x.data, x.dtype, M, K, xq, xs, stream_);
  launched("quantize_rows_fp8");
  if (!fp8_gemm_->run(q.fp8_codes.ptr<uint8_t>(), q.fp8_scales.ptr<float>(), rows, K, xq, xs, M, out, out_dtype, ldo,
                      accumulate, stream_))
    return false;
  if (bias) cuda::add_bias(out, out_dtype, bias, M, rows, stream_, ldo);
  launched("fp8 gemm");
  return true;
}

void* CudaBackend::permuted_x(size_t bytes) {
  if (permuted_x_.nbytes() < bytes) {
    permuted_x_ = alloc({static_cast<int64_t>(bytes + bytes / 4)}, DType::U8);
    ++scratch_generation_;
  }
  return permuted_x_.data;
}

}  // namespace ferrum
