// The CPU backend: host memory, ops on the thread pool.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/dummy_fill.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/quant_pack.h"

namespace ferrum {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}
  Device device() const override { return Device::CPU; }
  const char* name() const override { return "cpu"; }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    Tensor t;
    t.dtype = dtype;
    t.ndim = static_cast<int>(shape.size());
    int i = 0;
    for (int64_t d : shape) t.shape[i++] = d;
    const size_t bytes = std::max<size_t>(64, (t.nbytes() + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) fail("out of memory allocating {} bytes", bytes);
    t.data = p;
    t.owner = std::shared_ptr<void>(p, std::free);
    return t;
  }
  Tensor upload(const Tensor& host) override { return host; }
  void copy_from_host(Tensor& dst, const void* src, size_t bytes) override { std::memcpy(dst.data, src, bytes); }
  void copy_to_host(const Tensor& src, void* dst, size_t bytes) override { std::memcpy(dst, src.data, bytes); }
  void fill_random(Tensor& t, uint64_t seed, float center, float scale) override {
    const DType dtype = t.dtype;
    pool_.parallel_for(t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float v = center + scale * dummy_unit(seed, static_cast<uint64_t>(i));
        if (dtype == DType::F32) t.ptr<float>()[i] = v;
        else if (dtype == DType::BF16) t.ptr<uint16_t>()[i] = f32_to_bf16(v);
        else t.ptr<uint16_t>()[i] = f32_to_f16(v);
      }
    });
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override { cpu::embedding(pool_, table, ids, out); }
  void embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out) override {
    cpu::embedding_blocks(blocks, format, ids, out);
  }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override { cpu::rms_norm(pool_, x, w, eps, out); }
  bool supports_linear(WeightFormat format, DType weights) const override {
    if (gguf_block_values(format)) return weights == DType::U8;
    if (is_packed_source(format)) return true;  // repacked at load (quant_pack.h)
    return Backend::supports_linear(format, weights);
  }
  // Each part stays its own (mmapped) tensor: loading copies nothing. Parts are run one by
  // one into their columns of the output.
  std::unique_ptr<LinearWeight> load_linear(const LinearSpec& spec) override {
    check_linear_spec(spec, true);
    if (spec.num_experts > 0) return load_experts(spec);
    auto w = std::make_unique<CpuLinear>();
    w->name = spec.name;
    w->in_features = spec.in_features;
    w->out_features = spec.out_features();
    w->has_bias = !spec.parts.front().bias.empty();
    for (const LinearPart& p : spec.parts) {
      Tensor t = p.weight;
      w->ints.emplace_back();
      w->fp8.emplace_back();
      if (is_packed_source(p.format)) {  // repacked; rows dequantized as they are used
        if (p.format == WeightFormat::Fp8) w->fp8.back() = std::make_shared<PackedFp8>(fp8_weight(spec, p));
        else w->ints.back() = std::make_shared<PackedInt>(int_weight(spec, p));
        if (&p == &spec.parts.front()) w->dtype = DType::F32;
        w->stored_bytes += w->fp8.back() ? w->fp8.back()->bytes() : w->ints.back()->bytes();
        w->formats.push_back(p.format);
        w->part_rows.push_back(p.rows);
        w->weights.emplace_back();
        w->biases.push_back(p.bias);
        continue;
      }
      if (spec.dummy) {
        t = alloc({p.rows, spec.in_features}, *spec.dummy);
        const DummyRange r = dummy_range(false);
        fill_random(t, dummy_seed(p.name.c_str()), r.center, r.scale);
      }
      FERRUM_CHECK(t.device == Device::CPU, "layer '{}': weight '{}' is not in host memory", spec.name, p.name);
      if (&p == &spec.parts.front())  // block formats take F32 activations
        w->dtype = p.format == WeightFormat::Dense ? t.dtype : DType::F32;
      w->formats.push_back(p.format);
      w->part_rows.push_back(p.rows);
      w->stored_bytes += t.nbytes();
      w->weights.push_back(t);
      w->biases.push_back(p.bias);
    }
    return w;
  }

  void linear(const Tensor& x, const LinearWeight& lw, Tensor& out, LinearEpilogue epilogue) override {
    const auto& w = static_cast<const CpuLinear&>(lw);
    const int64_t M = x.rows();
    FERRUM_CHECK(x.cols() == w.in_features && out.dtype == DType::F32, "linear '{}': x {} ({}), out {} ({})", w.name,
                 x.shape_str(), dtype_name(x.dtype), out.shape_str(), dtype_name(out.dtype));
    auto bias = [&](size_t i) { return w.biases[i].empty() ? nullptr : &w.biases[i]; };
    // Part i of the weight into rows of `ldo` floats at dst.
    auto part = [&](size_t i, float* dst, int64_t ldo) {
      switch (w.formats[i]) {
        case WeightFormat::GgufQ8_0: return cpu::matmul_q8_0(pool_, x, w.weights[i], bias(i), dst, ldo);
        case WeightFormat::GgufQ4_0: return cpu::matmul_q4_0(pool_, x, w.weights[i], bias(i), dst, ldo);
        case WeightFormat::GgufQ4K: return cpu::matmul_q4_k(pool_, x, w.weights[i], bias(i), dst, ldo);
        case WeightFormat::GgufQ5K: return cpu::matmul_q5_k(pool_, x, w.weights[i], bias(i), dst, ldo);
        case WeightFormat::GgufQ6K: return cpu::matmul_q6_k(pool_, x, w.weights[i], bias(i), dst, ldo);
        case WeightFormat::Gptq: case WeightFormat::Awq: {
          const PackedInt& q = *w.ints[i];
          return cpu::matmul_decoded(pool_, x, q.rows, [&](int64_t n, float* row) { int_row(q, n, row); }, bias(i),
                                     dst, ldo);
        }
        case WeightFormat::Fp8: {
          const PackedFp8& q = *w.fp8[i];
          return cpu::matmul_decoded(pool_, x, q.rows, [&](int64_t n, float* row) { fp8_row(q, n, row); }, bias(i),
                                     dst, ldo);
        }
        default: return cpu::matmul(pool_, x, w.weights[i], bias(i), dst, ldo);
      }
    };
    // Every part into its columns of dst [M, out_features]: GGUF blocks as one job.
    auto all_parts = [&](Tensor& dst) {
      FERRUM_CHECK(dst.rows() == M && dst.cols() == w.out_features, "linear '{}': out {} should be [{}, {}]", w.name,
                   dst.shape_str(), M, w.out_features);
      std::vector<cpu::BlockPart> blocks;
      if (add_block_parts(x, w, dst.ptr<float>(), w.out_features, blocks)) return cpu::matmul_block_parts(pool_, blocks);
      int64_t at = 0;
      for (size_t i = 0; i < w.weights.size(); at += w.part_rows[i], ++i)
        part(i, dst.ptr<float>() + at, w.out_features);
    };
    switch (epilogue) {
      case LinearEpilogue::Store:
        all_parts(out);
        return;
      case LinearEpilogue::Accumulate: {  // x W^T into scratch, then added (as two ops did)
        FERRUM_CHECK(out.rows() == M && out.cols() == w.out_features, "linear '{}': out {} should be [{}, {}]", w.name,
                     out.shape_str(), M, w.out_features);
        Tensor tmp = scratch(0, M, w.out_features);
        all_parts(tmp);
        cpu::add(pool_, out, tmp, out);
        return;
      }
      case LinearEpilogue::SiluMul: {
        FERRUM_CHECK(w.weights.size() == 2 && w.part_rows[0] == w.part_rows[1],
                     "linear '{}': SiluMul needs two equal parts (gate, up)", w.name);
        FERRUM_CHECK(out.rows() == M && out.cols() == w.part_rows[0], "linear '{}': out {} should be [{}, {}]", w.name,
                     out.shape_str(), M, w.part_rows[0]);
        Tensor up = scratch(0, M, w.part_rows[1]);
        std::vector<cpu::BlockPart> blocks;
        if (add_block_parts(x, w, out.ptr<float>(), out.cols(), blocks, up.ptr<float>())) {
          cpu::matmul_block_parts(pool_, blocks);
        } else {
          part(0, out.ptr<float>(), out.cols());
          part(1, up.ptr<float>(), up.cols());
        }
        cpu::silu_mul(pool_, out, up, out);
        return;
      }
    }
  }

  bool supports_moe(DType) const override { return true; }
  // Tokens grouped by expert; each active expert runs as a plain layer on its tokens' rows
  // (its weights read once per step), and its outputs are added, weighted, in expert order.
  void moe_ffn(const Tensor& x, const MoeWeights& mw, Tensor& out) override {
    const auto& gate_up = static_cast<const CpuLinear&>(*mw.gate_up);
    const auto& down = static_cast<const CpuLinear&>(*mw.down);
    const int64_t T = x.rows(), H = x.cols(), E = static_cast<int64_t>(gate_up.experts.size());
    FERRUM_CHECK(E > 0 && down.experts.size() == gate_up.experts.size() && mw.router->out_features == E &&
                     out.rows() == T && out.cols() == H && out.dtype == DType::F32 && down.out_features == H,
                 "moe_ffn '{}': {} experts, router of {}, x {}, out {}", gate_up.name, E, mw.router->out_features,
                 x.shape_str(), out.shape_str());
    // Router logits in exact F32 (a dense router never takes the BF16 GEMM: rounding x would
    // change which experts tokens take, an O(1) change to their outputs).
    Tensor logits = moe_scratch(kMoeLogits, T, E);
    const auto& router = static_cast<const CpuLinear&>(*mw.router);
    if (router.formats.size() == 1 && router.formats[0] == WeightFormat::Dense)
      cpu::matmul(pool_, x, router.weights[0], router.biases[0].empty() ? nullptr : &router.biases[0],
                  logits.ptr<float>(), E, false);
    else linear(x, router, logits, LinearEpilogue::Store);
    cpu::moe_route(logits, mw.routing.top_k, mw.routing.norm_topk_prob, routes_);
    cpu::group_by_expert(routes_, E, groups_);
    Tensor sum = moe_scratch(kMoeSum, T, H);
    std::fill_n(sum.ptr<float>(), T * H, 0.0f);
    const bool joint = T <= kJointExpertTokens && experts_in_one_job(x, gate_up, down, sum);
    for (int64_t e = 0; e < E && !joint; ++e) {
      const int32_t begin = groups_.start[e], n = groups_.start[e + 1] - begin;
      if (n == 0) continue;
      Tensor rows = moe_rows(groups_.token.data() + begin, n);
      Tensor xe = moe_scratch(kMoeX, n, H), act = moe_scratch(kMoeAct, n, gate_up.part_rows[0]);
      Tensor ye = moe_scratch(kMoeY, n, H);
      cpu::gather_rows(x, rows, xe);
      linear(xe, gate_up.experts[e], act, LinearEpilogue::SiluMul);
      linear(act, down.experts[e], ye, LinearEpilogue::Store);
      cpu::add_scaled_rows(ye, groups_.token.data() + begin, groups_.weight.data() + begin, sum);
    }
    if (mw.shared_gate_up) {  // sigmoid(x . shared_gate) * shared_expert(x)
      Tensor act = moe_scratch(kMoeAct, T, mw.shared_gate_up->out_features / 2), ys = moe_scratch(kMoeY, T, H);
      Tensor gate = moe_scratch(kMoeLogits, T, 1);
      linear(x, *mw.shared_gate_up, act, LinearEpilogue::SiluMul);
      linear(act, *mw.shared_down, ys, LinearEpilogue::Store);
      linear(x, *mw.shared_gate, gate, LinearEpilogue::Store);
      std::vector<float> scale(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) scale[t] = 1.0f / (1.0f + std::exp(-gate.ptr<float>()[t]));
      cpu::add_scaled_rows(ys, nullptr, scale.data(), sum);
    }
    cpu::add(pool_, out, sum, out);
  }

  // Composed from the separate kernels, in the order the model ran them before they were
  // fused (so the F32 numerics are unchanged): split, per-head norms, RoPE, KV write.
  void qkv_rope_write_kv(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                         const Tensor& positions, const RopeTable& table, const Tensor& slots, Tensor& q_out,
                         Tensor& kc, Tensor& vc, const KvScales&) override {
    FERRUM_CHECK(kc.dtype == DType::F32 && vc.dtype == DType::F32, "the CPU KV cache is F32, not {}",
                 dtype_name(kc.dtype));
    const int64_t T = q_out.dim(0), Hq = q_out.dim(1), D = q_out.dim(2), Hk = kc.dim(2);
    FERRUM_CHECK(qkv.dtype == DType::F32 && qkv.rows() == T && qkv.cols() == (Hq + 2 * Hk) * D,
                 "qkv_rope_write_kv: qkv {} for {} q and {} kv heads of {}", qkv.shape_str(), Hq, Hk, D);
    Tensor k = scratch(0, T, Hk * D), v = scratch(1, T, Hk * D);
    const int64_t n = (Hq + 2 * Hk) * D;
    for (int64_t t = 0; t < T; ++t) {
      const float* row = qkv.ptr<float>() + t * n;
      std::memcpy(q_out.ptr<float>() + t * Hq * D, row, Hq * D * sizeof(float));
      std::memcpy(k.ptr<float>() + t * Hk * D, row + Hq * D, Hk * D * sizeof(float));
      std::memcpy(v.ptr<float>() + t * Hk * D, row + (Hq + Hk) * D, Hk * D * sizeof(float));
    }
    if (q_norm) {
      Tensor qr = q_out.view({T * Hq, D});
      cpu::rms_norm(pool_, qr, *q_norm, eps, qr);
    }
    if (k_norm) {
      Tensor kr = k.view({T * Hk, D});
      cpu::rms_norm(pool_, kr, *k_norm, eps, kr);
    }
    Tensor k3 = k.view({T, Hk, D}), v3 = v.view({T, Hk, D});
    cpu::rope(pool_, q_out, k3, positions, table);
    cpu::write_kv(k3, v3, slots, kc, vc);
  }
  // The scales only apply to an FP8 cache, which the CPU does not keep (exact F32 attention).
  void paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                       Tensor& out, const KvScales&) override {
    cpu::paged_attention(pool_, q, kc, vc, meta, scale, out);
  }
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override { cpu::gather_rows(x, rows, out); }
  // The CPU picks at once; a ticket's picks wait in its slot until finished.
  uint64_t start_sample(Tensor& logits, const SampleBatch& batch) override {
    const uint64_t ticket = next_ticket_++;
    SampleResult& slot = picks_[ticket % 2];
    slot = {};
    if (!batch.rows.empty()) cpu::sample(logits, batch, slot);
    latest_ = slot.tokens;
    return ticket;
  }
  void finish_sample(uint64_t ticket, SampleResult& out) override {
    FERRUM_CHECK(ticket + 2 >= next_ticket_ && ticket < next_ticket_, "finish_sample: ticket {} is not outstanding",
                 ticket);
    out = std::move(picks_[ticket % 2]);
  }
  void take_sampled_tokens(Tensor& ids, const Tensor& pairs) override {
    const int32_t* p = pairs.ptr<int32_t>();
    for (int64_t i = 0; i + 1 < pairs.numel(); i += 2) {
      FERRUM_CHECK(p[i] >= 0 && p[i] < ids.numel() && p[i + 1] >= 0 && p[i + 1] < static_cast<int32_t>(latest_.size()),
                   "take_sampled_tokens: pair ({}, {}) outside {} ids and {} picks", p[i], p[i + 1], ids.numel(),
                   latest_.size());
      ids.ptr<int32_t>()[p[i]] = latest_[p[i + 1]];
    }
  }

 private:
  struct CpuLinear final : LinearWeight {
    std::vector<Tensor> weights, biases;  // per part
    std::vector<WeightFormat> formats;
    std::vector<std::shared_ptr<const PackedInt>> ints;  // per part: GPTQ / AWQ, repacked
    std::vector<std::shared_ptr<const PackedFp8>> fp8;    // per part: FP8
    // Grouped experts: `weights` holds each dense or GGUF part stacked [E, rows, in], and
    // experts[e] views expert e's rows of them as a plain layer (GPTQ/AWQ/FP8 parts: experts[e]
    // holds expert e's repacked weight; `weights` has an empty tensor for them).
    std::vector<CpuLinear> experts;
  };

  // Each part's experts in one buffer, expert after expert (a GGUF tensor's slices already
  // are: kept as they are), so that a step streams the layer's experts front to back.
  Tensor stack_experts(const LinearSpec& spec, const LinearPart& p) {
    if (spec.dummy) {
      Tensor t = alloc({spec.num_experts * p.rows, spec.in_features}, *spec.dummy);
      const DummyRange r = dummy_range(false);
      fill_random(t, dummy_seed(p.name.c_str()), r.center, r.scale);
      return t;
    }
    const Tensor& first = p.experts.front();
    const size_t bytes = first.nbytes();
    bool contiguous = true;
    for (size_t e = 0; e < p.experts.size(); ++e)
      contiguous &= p.experts[e].data == static_cast<const char*>(first.data) + e * bytes;
    if (contiguous) {
      Tensor t = first;
      t.shape[0] = first.dim(0) * spec.num_experts;
      return t;
    }
    Tensor t = alloc({spec.num_experts * first.dim(0), first.dim(1)}, first.dtype);
    pool_.parallel_for(spec.num_experts, 1, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e)
        std::memcpy(static_cast<char*>(t.data) + e * bytes, p.experts[e].data, bytes);
    });
    return t;
  }

  // GPTQ/AWQ/FP8 experts are repacked one by one (quant_pack.h), each expert's rows decoded
  // as they are used; dense and GGUF experts are stacked and viewed expert by expert.
  std::unique_ptr<LinearWeight> load_experts(const LinearSpec& spec) {
    auto w = std::make_unique<CpuLinear>();
    w->name = spec.name;
    w->in_features = spec.in_features;
    w->out_features = spec.out_features();
    for (const LinearPart& p : spec.parts) {
      Tensor t = is_packed_source(p.format) ? Tensor{} : stack_experts(spec, p);
      if (&p == &spec.parts.front()) w->dtype = p.format == WeightFormat::Dense ? t.dtype : DType::F32;
      w->formats.push_back(p.format);
      w->part_rows.push_back(p.rows);
      w->stored_bytes += is_packed_source(p.format) ? 0 : t.nbytes();  // (packed: counted per expert)
      w->weights.push_back(t);
    }
    for (int32_t e = 0; e < spec.num_experts; ++e) {
      CpuLinear x;
      x.name = spec.name + ".experts." + std::to_string(e);
      x.in_features = w->in_features;
      x.out_features = w->out_features;
      x.part_rows = w->part_rows;
      x.dtype = w->dtype;
      x.formats = w->formats;
      for (size_t i = 0; i < spec.parts.size(); ++i) {
        const LinearPart& p = spec.parts[i];
        x.biases.emplace_back();
        x.ints.emplace_back();
        x.fp8.emplace_back();
        if (!is_packed_source(p.format)) {
          x.weights.push_back(w->weights[i].slice_rows(e * w->part_rows[i], w->part_rows[i]));
          x.stored_bytes += x.weights.back().nbytes();
          continue;
        }
        x.weights.emplace_back();
        if (p.format == WeightFormat::Fp8) x.fp8.back() = std::make_shared<PackedFp8>(expert_fp8_weight(spec, p, e));
        else x.ints.back() = std::make_shared<PackedInt>(expert_int_weight(spec, p, e));
        const size_t bytes = x.fp8.back() ? x.fp8.back()->bytes() : x.ints.back()->bytes();
        x.stored_bytes += bytes;
        w->stored_bytes += bytes;
      }
      w->experts.push_back(std::move(x));
    }
    return w;
  }

  // Decode's experts (few tokens) with all of the layer's active experts in two jobs on the
  // pool, gate/up then down, instead of four per expert (gate, up, silu, down: each a round
  // trip through the pool for a few hundred weight rows). GGUF block experts only (false,
  // having done nothing, otherwise). The same kernels and the same order of additions into
  // `sum` as the expert-by-expert loop, so the same bits.
  static constexpr int64_t kJointExpertTokens = 16;
  bool experts_in_one_job(const Tensor& x, const CpuLinear& gate_up, const CpuLinear& down, Tensor& sum) {
    for (const CpuLinear* w : {&gate_up, &down})
      for (WeightFormat f : w->formats)
        if (!cpu::is_block_format(f)) return false;
    if (gate_up.weights.size() != 2 || down.weights.size() != 1) return false;
    const int64_t T = x.rows(), H = x.cols(), I = gate_up.part_rows[0], E = static_cast<int64_t>(gate_up.experts.size());
    const int64_t routed = groups_.start[E];
    Tensor xs = moe_scratch(kMoeX, routed, H), act = moe_scratch(kMoeAct, routed, I);
    Tensor up = moe_scratch(kMoeUp, routed, I), ys = moe_scratch(kMoeY, routed, H);
    std::vector<Tensor> xe, ae;  // per active expert: its rows of x (x itself when it has every token) and of act
    std::vector<cpu::BlockPart> parts;
    xe.reserve(E), ae.reserve(E);  // parts point into them
    for (int64_t e = 0; e < E; ++e) {
      const int32_t begin = groups_.start[e], n = groups_.start[e + 1] - begin;
      if (n == 0) continue;
      if (n == T) {
        xe.push_back(x);  // tokens 0..T-1 in order
      } else {
        xe.push_back(xs.slice_rows(begin, n));
        cpu::gather_rows(x, moe_rows(groups_.token.data() + begin, n), xe.back());
      }
      add_block_parts(xe.back(), gate_up.experts[e], act.ptr<float>() + begin * I, I, parts, up.ptr<float>() + begin * I);
    }
    cpu::matmul_block_parts(pool_, parts);
    act = act.slice_rows(0, routed), up = up.slice_rows(0, routed);
    cpu::silu_mul(pool_, act, up, act);
    parts.clear();
    for (int64_t e = 0; e < E; ++e) {
      const int32_t begin = groups_.start[e], n = groups_.start[e + 1] - begin;
      if (n == 0) continue;
      ae.push_back(act.slice_rows(begin, n));
      add_block_parts(ae.back(), down.experts[e], ys.ptr<float>() + begin * H, H, parts);
    }
    cpu::matmul_block_parts(pool_, parts);
    cpu::add_scaled_rows(ys.slice_rows(0, routed), groups_.token.data(), groups_.weight.data(), sum);
    return true;
  }

  // w's parts as block matmuls of x into their columns of out (rows of ldo floats); with
  // `second`, the second part goes there instead (SiluMul's up). False, adding nothing, where
  // a part is not GGUF blocks.
  static bool add_block_parts(const Tensor& x, const CpuLinear& w, float* out, int64_t ldo,
                              std::vector<cpu::BlockPart>& parts, float* second = nullptr) {
    for (WeightFormat f : w.formats)
      if (!cpu::is_block_format(f)) return false;
    int64_t at = 0;
    for (size_t i = 0; i < w.weights.size(); at += w.part_rows[i], ++i) {
      cpu::BlockPart p;
      p.format = w.formats[i];
      p.x = &x;
      p.w = &w.weights[i];
      p.bias = w.biases[i].empty() ? nullptr : &w.biases[i];
      p.out = second && i == 1 ? second : out + at;
      p.ldo = second && i == 1 ? w.part_rows[1] : ldo;
      parts.push_back(p);
    }
    return true;
  }

  // The MoE block's own scratch buffers, after the two that linear() uses.
  enum MoeBuffer : size_t { kMoeLogits = 2, kMoeSum, kMoeX, kMoeAct, kMoeUp, kMoeY, kScratchBuffers };
  Tensor moe_scratch(MoeBuffer i, int64_t rows, int64_t cols) { return scratch(i, rows, cols); }
  // n token indices as an I32 tensor view (for gather_rows).
  static Tensor moe_rows(const int32_t* rows, int64_t n) {
    Tensor t;
    t.data = const_cast<int32_t*>(rows);
    t.dtype = DType::I32;
    t.ndim = 1;
    t.shape[0] = n;
    return t;
  }
  cpu::MoeRoutes routes_;
  cpu::ExpertGroups groups_;
  // F32 scratch [rows, cols] in buffer i, grown as needed.
  Tensor scratch(size_t i, int64_t rows, int64_t cols) {
    if (scratch_[i].numel() < rows * cols) scratch_[i] = alloc({rows * cols + rows * cols / 4}, DType::F32);
    Tensor t = scratch_[i];
    t.ndim = 2;
    t.shape = {rows, cols, 0, 0};
    return t;
  }
  ThreadPool pool_;
  SampleResult picks_[2];        // start_sample's results by ticket parity
  std::vector<int32_t> latest_;  // the latest start_sample's tokens
  uint64_t next_ticket_ = 0;
  Tensor scratch_[kScratchBuffers];
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int num_threads) { return std::make_unique<CpuBackend>(num_threads); }

}  // namespace ferrum
