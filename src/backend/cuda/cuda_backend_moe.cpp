// CudaBackend's mixtures of experts: grouped expert weights and moe_ffn over cuda_moe.h's
// kernels.
#include "backend/cuda/cuda_backend.h"

#include <array>
#include <cstdlib>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cuda/cuda_moe.h"
#include "backend/cuda/cuda_packed_layout.h"
#include "backend/cuda/cuda_packed_q8.h"
#include "backend/dummy_fill.h"
#include "backend/quant_pack.h"
#include "core/log.h"

namespace ferrum {

std::unique_ptr<LinearWeight> CudaBackend::load_experts(const LinearSpec& spec) {
  check_linear_spec(spec, true);
  // The model's activations' type, else the experts' own 16-bit type, else BF16.
  const LinearPart& first = spec.parts.front();
  const DType source = spec.dummy ? *spec.dummy : is_packed_source(first.format) ? DType::BF16 : first.experts.front().dtype;
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
  if (cuda::experts_tileable(spec) && packed_experts_enabled()) {
    load_packed_experts(spec, act, *w);
    return w;
  }
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
      if (p.format == WeightFormat::Dense) {
        put_dense(slice, p.experts[e], act, spec.name, p.name);
        continue;
      }
      if (!warned) {
        log::warn("MoE experts in {} are dequantized to {} on CUDA (a format without tiles, mixed formats, GPTQ act "
                  "order, input features not a multiple of 64, groups or scale blocks not of whole 16-column "
                  "pieces, gate and up of unequal rows, parts of rows not a multiple of 16, or "
                  "FERRUM_MOE_PACKED=0): they take 16-bit memory and speed",
                  weight_format_name(p.format), dtype_name(act));
        warned = true;
      }
      std::vector<float> values = gguf_block_values(p.format) ? dequantize_blocks(p.experts[e], p.format, K)
                                                              : dequantize_packed(spec, p, e);
      Tensor host = shaped({p.rows, K}, DType::F32);
      host.data = values.data();
      put_dense(slice, host, act, spec.name, p.name);  // converts to 16 bits, so copies before returning
    }
  }
  synchronize();
  return w;
}

// GGUF, GPTQ, AWQ and FP8 experts as the tiles of cuda_packed_layout.h, expert after expert (the grouped
// quantized GEMMs of cuda_packed_rows.h read them as stored: 4.5 bits a weight for Q4_K).
void CudaBackend::load_packed_experts(const LinearSpec& spec, DType act, CudaLinear& w) {
  const int64_t E = spec.num_experts;
  prepare_quantized();  // split-K partials, and the kernels' shared memory
  QuantPart q;
  cuda::MmaTiles t;
  for (int64_t e = 0; e < E; ++e) {
    // Dummy experts (speed runs: the bytes are what count) all take expert 0's random tiles.
    if (e == 0 || !spec.dummy) t = cuda::tile_expert(spec, e, act);
    if (e == 0) {
      q.data = alloc({static_cast<int64_t>(t.data.size()) * E}, DType::U8);
      q.scales = alloc({static_cast<int64_t>(t.params.size()) * E}, DType::I32);
      w.packed_experts.w = {t.mode, static_cast<const uint8_t*>(q.data.data), q.scales.ptr<uint32_t>(), nullptr,
                            t.rows, t.padded_rows, t.cols, t.group};
      w.packed_experts.tile_stride = static_cast<int64_t>(t.data.size());
      w.packed_experts.param_stride = static_cast<int64_t>(t.params.size());
    }
    FERRUM_CHECK(static_cast<int64_t>(t.data.size()) == w.packed_experts.tile_stride &&
                     static_cast<int64_t>(t.params.size()) == w.packed_experts.param_stride,
                 "layer '{}': expert {} tiles to another size than expert 0", spec.name, e);
    Tensor tiles = q.data.slice_rows(e * w.packed_experts.tile_stride, w.packed_experts.tile_stride);
    Tensor params = q.scales.slice_rows(e * w.packed_experts.param_stride, w.packed_experts.param_stride);
    copy_from_host(tiles, t.data.data(), t.data.size());
    copy_from_host(params, t.params.data(), t.params.size() * 4);
    synchronize();  // t's host memory goes with the next iteration
  }
  w.stored_bytes = q.data.nbytes() + q.scales.nbytes();
  w.experts_packed = true;
  w.quant.push_back(std::move(q));
}

bool CudaBackend::packed_experts_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FERRUM_MOE_PACKED");
    return !v || std::atoi(v) != 0;
  }();
  return on;
}

std::vector<float> CudaBackend::dequantize_packed(const LinearSpec& spec, const LinearPart& grouped, int64_t e) {
  const int64_t K = spec.in_features;
  std::vector<float> out(static_cast<size_t>(grouped.rows * K));
  if (grouped.format == WeightFormat::Fp8) {
    const PackedFp8 w = expert_fp8_weight(spec, grouped, e);
    for (int64_t n = 0; n < w.rows; ++n) fp8_row(w, n, out.data() + n * K);
  } else {
    const PackedInt w = expert_int_weight(spec, grouped, e);
    for (int64_t n = 0; n < w.rows; ++n) int_row(w, n, out.data() + n * K);
  }
  return out;
}

std::vector<float> CudaBackend::dequantize_blocks(const Tensor& blocks, WeightFormat f, int64_t cols) {
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

bool CudaBackend::supports_moe(DType activations) const {
  return activations == DType::BF16 || activations == DType::F16;
}

void CudaBackend::moe_ffn(const Tensor& x, const MoeWeights& mw, Tensor& out) {
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
  const int32_t block_m = cuda::moe_block_m(T, k, E, gate_up.experts_packed && down.experts_packed);
  const int64_t capacity = cuda::moe_sorted_capacity(T, k, E, block_m);
  const int64_t S = mw.shared_gate_up ? mw.shared_down->in_features : 0;
  const size_t act = dtype_size(x.dtype);
  // One scratch buffer, carved in 256-byte aligned pieces (no host allocation per layer).
  enum Piece { kLogits, kRoutePos, kRouteWeight, kSorted, kBlockExpert, kExpertAct, kExpertOut, kSharedOut,
               kSharedAct, kSharedGate, kCounts, kRouteExpert, kPieces };
  const std::array<size_t, kPieces> sizes = {
      static_cast<size_t>(T * E) * 4, static_cast<size_t>(T * k) * 4, static_cast<size_t>(T * k) * 4,
      static_cast<size_t>(capacity) * 4, static_cast<size_t>(capacity / block_m) * 4,
      static_cast<size_t>(capacity * I) * act, static_cast<size_t>(capacity * H) * act,
      static_cast<size_t>(T * H) * 4 * (S > 0), static_cast<size_t>(T * S) * act, static_cast<size_t>(T) * 4 * (S > 0),
      static_cast<size_t>(E) * 4, static_cast<size_t>(T * k) * 4};
  std::array<size_t, kPieces> at{};
  size_t total = 0;
  for (int p = 0; p < kPieces; ++p) at[p] = total, total += (sizes[p] + 255) / 256 * 256;
  if (moe_scratch_.nbytes() < total) {
    FERRUM_CHECK(!capturing(), "CUDA: MoE scratch grown while a graph is being recorded");
    moe_scratch_ = alloc({static_cast<int64_t>(total + total / 4)}, DType::U8);
    ++scratch_generation_;
  }
  auto* base = static_cast<uint8_t*>(moe_scratch_.data);
  auto piece = [&](Piece p, std::initializer_list<int64_t> shape, DType dtype) {
    Tensor t = shaped(shape, dtype);
    t.device = Device::CUDA;
    t.data = base + at[p];
    return t;
  };
  Tensor logits = piece(kLogits, {T, E}, DType::F32);
  const cuda::MoeRoutesDev r{reinterpret_cast<int32_t*>(base + at[kRoutePos]),
                             reinterpret_cast<float*>(base + at[kRouteWeight]),
                             reinterpret_cast<int32_t*>(base + at[kSorted]),
                             reinterpret_cast<int32_t*>(base + at[kBlockExpert]),
                             reinterpret_cast<int32_t*>(base + at[kCounts]),
                             reinterpret_cast<int32_t*>(base + at[kRouteExpert])};
  linear(x, *mw.router, logits, LinearEpilogue::Store);
  cuda::moe_route(logits.ptr<float>(), T, E, k, mw.routing.norm_topk_prob, block_m, r, stream_);
  launched("moe_route");
  void* expert_act = base + at[kExpertAct];
  void* expert_out = base + at[kExpertOut];
  // Up to cuda::q8_max_routes() routes: quantized experts through the int8-x GEMV, a route per
  // row of blocks.
  const int routes = static_cast<int>(T * k);
  // Where packed_moe_q8 pairs an expert's routes (one read of it for two), it needs the sorted rows.
  auto q8_routes = [&](const CudaLinear& w, bool x_by_pos) {
    return cuda::Q8Routes{r.route_pos, r.route_expert, k, x_by_pos, w.packed_experts.tile_stride,
                          w.packed_experts.param_stride, moe_q8_pairs_ ? r.sorted_route : nullptr, E};
  };
  if (gate_up.experts_packed && moe_q8_ &&
      cuda::packed_moe_q8(x.data, x.dtype, gate_up.packed_experts.w, true, routes, q8_routes(gate_up, false),
                          expert_act, I, stream_)) {
    launched("packed_moe_q8 (gate/up)");
  } else {
    if (gate_up.experts_packed)
      cuda::packed_moe_gate_up(x.data, x.dtype, gate_up.packed_experts, I, k, r, capacity, block_m, expert_act,
                               quant_scratch_.ptr<float>(), quant_scratch_.numel(), stream_);
    else
      cuda::moe_gate_up(x.data, x.dtype, gate_up.w.data, I, H, k, r, capacity, block_m, expert_act, stream_);
    launched("moe_gate_up");
  }
  if (down.experts_packed && moe_q8_ &&
      cuda::packed_moe_q8(expert_act, x.dtype, down.packed_experts.w, false, routes, q8_routes(down, true), expert_out,
                          H, stream_)) {
    launched("packed_moe_q8 (down)");
  } else {
    if (down.experts_packed)
      cuda::packed_moe_down(expert_act, x.dtype, down.packed_experts, r, capacity, block_m, expert_out,
                            quant_scratch_.ptr<float>(), quant_scratch_.numel(), stream_);
    else
      cuda::moe_down(expert_act, x.dtype, down.w.data, H, I, r, capacity, block_m, expert_out, stream_);
    launched("moe_down");
  }
  const float *shared = nullptr, *shared_gate = nullptr;
  if (S > 0) {
    Tensor shared_out = piece(kSharedOut, {T, H}, DType::F32), shared_act = piece(kSharedAct, {T, S}, x.dtype);
    Tensor gate = piece(kSharedGate, {T, 1}, DType::F32);
    linear(x, *mw.shared_gate_up, shared_act, LinearEpilogue::SiluMul);
    linear(shared_act, *mw.shared_down, shared_out, LinearEpilogue::Store);
    linear(x, *mw.shared_gate, gate, LinearEpilogue::Store);
    shared = shared_out.ptr<float>();
    shared_gate = gate.ptr<float>();
  }
  cuda::moe_combine(expert_out, x.dtype, T, H, k, r, shared, shared_gate, out.ptr<float>(), stream_);
  launched("moe_combine");
}

}  // namespace ferrum
