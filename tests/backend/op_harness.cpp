// Cases, comparison and runner of the backend op harness (op_harness.h); the references are in
// op_harness_reference.cpp. Inputs are filled on the backend under test (random_tensor: values already
// in the activation or weight dtype) and read back for the reference, so that backend and
// reference see the same values.
#include "op_harness.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

#include "backend/cpu/cpu_kernels.h"
#include "backend/dummy_fill.h"
#include "backend/quant_pack.h"
#include "op_harness_blocks.h"
#include "op_harness_cases.h"
#include "op_harness_packed.h"
#include "op_harness_reference.h"
#include "op_harness_tensors.h"

namespace ferrum::op_harness {
namespace {

// ---- Cases ----

struct LinearShape {
  int64_t M, K;
  std::vector<int64_t> parts;  // output rows of each part
  bool bias = false;
  LinearEpilogue epilogue = LinearEpilogue::Store;
  bool f32_out = false;  // Store into F32 (logits) instead of the activation dtype
  // GGUF blocks: the last part in this format instead (a K-quant mix's v beside its q/k).
  WeightFormat last_part_format = WeightFormat::Dense;
};

const char* epilogue_name(LinearEpilogue e) {
  switch (e) {
    case LinearEpilogue::Store: return "store";
    case LinearEpilogue::Accumulate: return "accumulate";
    case LinearEpilogue::SiluMul: return "silu_mul";
  }
  return "?";
}

class LinearCase final : public OpCase {
 public:
  LinearCase(std::string label, LinearShape s, DType weights, WeightFormat format = WeightFormat::Dense, int variant = 0)
      : label_(std::move(label)), s_(std::move(s)), weights_(weights), format_(format), variant_(variant) {}

  std::string name() const override {
    std::string parts = std::to_string(s_.parts.front());
    for (size_t i = 1; i < s_.parts.size(); ++i) parts += fmt::format("+{}", s_.parts[i]);
    return fmt::format("linear{} {}{}{} {} M={} K={} N={}{} {}{}", label_.empty() ? "" : " " + label_,
                       weight_format_name(format_), mixed() ? fmt::format("+{}", weight_format_name(s_.last_part_format)) : "",
                       is_packed_source(format_) ? fmt::format(" v{}", variant_) : "",
                       lower_name(weights_), s_.M, s_.K, parts, s_.bias ? " bias" : "",
                       epilogue_name(s_.epilogue), s_.f32_out ? " f32-out" : "");
  }
  std::string unsupported(const Backend& be) const override {
    for (size_t i = 0; i < s_.parts.size(); ++i)
      if (!be.supports_linear(part_format(i), weights_))
        return fmt::format("no {} {} linear layers", weight_format_name(part_format(i)), dtype_name(weights_));
    return {};
  }

  PreparedOp prepare(Backend& be, Backend& host, uint64_t seed, bool with_reference) const override {
    // Quantized weights take the activations a 16-bit model has (F32 on the CPU).
    const DType act = be.activation_dtype(format_ == WeightFormat::Dense ? weights_ : DType::BF16);
    const bool accumulate = s_.epilogue == LinearEpilogue::Accumulate;
    const DType out_dtype = accumulate || s_.f32_out ? DType::F32 : act;
    const int64_t N = std::accumulate(s_.parts.begin(), s_.parts.end(), int64_t{0});
    const int64_t out_cols = s_.epilogue == LinearEpilogue::SiluMul ? N / 2 : N;
    const LinearSpec spec = make_spec(host, seed, !with_reference);
    std::shared_ptr<LinearWeight> w = be.load_linear(spec);
    Tensor x = be.random_tensor({s_.M, s_.K}, act, seed + 1, 0.0f, 1.0f);
    Tensor out = accumulate ? be.random_tensor({s_.M, out_cols}, DType::F32, seed + 2, 0.0f, 1.0f)
                            : poisoned(be, {s_.M, out_cols}, out_dtype);
    PreparedOp op;
    const LinearEpilogue epilogue = s_.epilogue;
    op.run = [&be, x, w, out, epilogue]() mutable { be.linear(x, *w, out, epilogue); };
    op.weight_bytes = 0.0;
    for (size_t i = 0; gguf_block_bytes(format_) && i < s_.parts.size(); ++i)
      op.weight_bytes += static_cast<double>(s_.parts[i] * (s_.K / gguf_block_values(part_format(i))) *
                                             gguf_block_bytes(part_format(i)));
    op.weight_bytes = gguf_block_bytes(format_) ? op.weight_bytes
                      : format_ == WeightFormat::Fp8 ? static_cast<double>(N * s_.K)
                      : is_packed_source(format_)    ? static_cast<double>(N * s_.K / 2)
                                                     : static_cast<double>(N * s_.K * dtype_size(weights_));
    op.bytes = op.weight_bytes + x.nbytes() + out.nbytes() * (accumulate ? 2.0 : 1.0);
    if (!with_reference) return op;
    const Values initial = accumulate ? read_values(be, out) : Values{};
    op.compare = [this, &be, &host, spec, x, out, initial, N, w] {
      Values w_all, b_all;
      for (const LinearPart& p : spec.parts) {
        const Values w = gguf_block_bytes(format_)    ? block_values(p.format, p.weight)
                         : is_packed_source(format_) ? packed_values(p, s_.K)
                                                     : read_values(host, p.weight);
        w_all.insert(w_all.end(), w.begin(), w.end());
        if (!p.bias.empty()) {
          const Values b = read_values(host, p.bias);
          b_all.insert(b_all.end(), b.begin(), b.end());
        }
      }
      Values xv = read_values(be, x);
      // An FP8 layer's W8A8 GEMM rounds x's rows to E4M3 first: so does the reference.
      if (be.rounds_x_to_fp8(*w, s_.M)) {
        std::vector<float> rows(xv.begin(), xv.end());
        fp8_round_rows(rows.data(), s_.M, s_.K);
        xv.assign(rows.begin(), rows.end());
      }
      const Values y = ref_matmul(xv, w_all, b_all, s_.M, N, s_.K);
      const Values ref = ref_linear_epilogue(y, s_.M, N, s_.epilogue, initial);
      // Block kernels round each row of x to int8 too (as llama.cpp: per 32 values for Q8_0 /
      // Q4_0, per 256 for the K-quants): about 1/254 of a block's largest value per element.
      // So does the CPU's BF16 prefill GEMM (x and w rounded to bf16) above 16 rows, and a
      // GPU's quantized GEMM (weights decoded to the activations' 16-bit type).
      const bool bf16_gemm = be.device() == Device::CPU && cpu::bf16_gemm_enabled() && s_.M > 16;
      const bool quantized_gpu = be.device() != Device::CPU && format_ != WeightFormat::Dense;
      const double bound = gguf_block_bytes(format_) || bf16_gemm || quantized_gpu ? 2e-2 : bound_for(out.dtype);
      return compare({{"out", read_values(be, out), ref}}, bound);
    };
    return op;
  }

 private:
  // Host weights (F32/F16/BF16 values scaled so that outputs stay near 1), or for timing the
  // backend's dummy fill.
  LinearSpec make_spec(Backend& host, uint64_t seed, bool dummy) const {
    LinearSpec spec;
    spec.name = name();
    spec.in_features = s_.K;
    if (dummy && !gguf_block_bytes(format_)) spec.dummy = weights_;
    const float w_scale = 2.0f / std::sqrt(static_cast<float>(s_.K));
    for (size_t i = 0; i < s_.parts.size(); ++i) {
      LinearPart p;
      p.name = fmt::format("{}.part{}", spec.name, i);
      p.rows = s_.parts[i];
      p.format = part_format(i);
      if (dummy && is_packed_source(format_)) p.quant.group_size = 128;  // the backend's random fill
      if (gguf_block_bytes(format_)) {  // no dummy fill for blocks: random ones, as for the reference
        p.weight = make_block_weights(host, p.format, p.rows, s_.K, w_scale, seed + 10 + i);
      } else if (!dummy && is_packed_source(format_)) {
        make_packed_part(host, format_, variant_, s_.K, w_scale, seed + 10 + i, p);
      } else if (!dummy) {
        p.weight = host.random_tensor({p.rows, s_.K}, weights_, seed + 10 + i, 0.0f, w_scale);
      }
      const DType bias_dtype = format_ == WeightFormat::Dense ? weights_ : DType::F32;
      if (s_.bias) p.bias = host.random_tensor({p.rows}, bias_dtype, seed + 20 + i, 0.0f, 0.5f);
      spec.parts.push_back(std::move(p));
    }
    return spec;
  }

  bool mixed() const { return s_.last_part_format != WeightFormat::Dense; }
  WeightFormat part_format(size_t i) const { return mixed() && i + 1 == s_.parts.size() ? s_.last_part_format : format_; }

  std::string label_;
  LinearShape s_;
  DType weights_;
  WeightFormat format_;
  int variant_;  // layout variant of a GPTQ/AWQ/FP8 source (op_harness_packed.h)
};

struct MoeShape {
  int64_t T, H, E, I;
  int top_k;
  bool renormalize;
  int64_t shared = 0;  // the shared expert's width (Qwen2-MoE), 0: none
};

// Backend::moe_ffn: router, top-k routing, grouped experts and the shared expert, onto a
// random residual stream.
class MoeCase final : public OpCase {
 public:
  // experts: the experts' weight format (GGUF blocks: GGUF qwen3moe files); the router and the
  // shared expert stay dense, of `weights` dtype.
  // GPTQ/AWQ/FP8 experts: `variant` is the layout (op_harness_packed.h).
  MoeCase(MoeShape s, DType weights, WeightFormat experts = WeightFormat::Dense, int variant = 0)
      : s_(s), weights_(weights), experts_(experts), variant_(variant) {}
  std::string name() const override {
    return fmt::format("moe_ffn {}{} T={} H={} E={} I={} top{}{}{}", lower_name(weights_),
                       experts_ == WeightFormat::Dense ? ""
                       : is_packed_source(experts_)
                           ? fmt::format(" {} v{} experts", weight_format_name(experts_), variant_)
                           : fmt::format(" {} experts", weight_format_name(experts_)),
                       s_.T, s_.H, s_.E, s_.I, s_.top_k, s_.renormalize ? " norm" : "",
                       s_.shared ? fmt::format(" shared={}", s_.shared) : "");
  }
  std::string unsupported(const Backend& be) const override {
    if (!be.supports_moe(be.activation_dtype(weights_)))
      return fmt::format("no MoE blocks (moe_ffn) with {} activations", lower_name(be.activation_dtype(weights_)));
    if (gguf_block_values(experts_) && !be.supports_linear(experts_, DType::U8))
      return fmt::format("no {} linear layers", weight_format_name(experts_));
    return {};
  }

  PreparedOp prepare(Backend& be, Backend& host, uint64_t seed, bool with_reference) const override {
    const int64_t H = s_.H, E = s_.E, I = s_.I, S = s_.shared;
    const DType act = be.activation_dtype(weights_);
    uint64_t next = seed + 10;
    // A host weight [rows, cols] scaled so that outputs stay near 1.
    auto host_weight = [&](int64_t rows, int64_t cols) {
      return host.random_tensor({rows, cols}, weights_, next++, 0.0f, 2.0f / std::sqrt(static_cast<float>(cols)));
    };
    auto plain = [&](const std::string& name, std::vector<int64_t> parts, int64_t cols) {
      LinearSpec spec;
      spec.name = name;
      spec.in_features = cols;
      for (int64_t rows : parts) spec.parts.push_back({.name = name, .rows = rows, .weight = host_weight(rows, cols)});
      return spec;
    };
    auto grouped = [&](const std::string& name, std::vector<int64_t> parts, int64_t cols) {
      LinearSpec spec;
      spec.name = name;
      spec.in_features = cols;
      spec.num_experts = static_cast<int32_t>(E);
      if (experts_ != WeightFormat::Dense) spec.activations = act;  // as a model sets it for its blocks
      for (int64_t rows : parts) {
        LinearPart p{.name = name, .rows = rows, .format = experts_};
        const float scale = 2.0f / std::sqrt(static_cast<float>(cols));
        for (int64_t e = 0; e < E; ++e) {
          if (is_packed_source(experts_)) {
            LinearPart q{.name = name, .rows = rows};
            make_packed_part(host, experts_, variant_, cols, scale, next++, q);
            p.quant = q.quant;
            p.experts.push_back(q.weight);
            p.expert_extra.push_back(q.extra);
            continue;
          }
          p.experts.push_back(experts_ == WeightFormat::Dense ? host_weight(rows, cols)
                                                              : make_block_weights(host, experts_, rows, cols, scale, next++));
        }
        spec.parts.push_back(std::move(p));
      }
      return spec;
    };
    std::vector<LinearSpec> specs = {plain("router", {E}, H), grouped("experts.gate_up", {I, I}, H),
                                     grouped("experts.down", {H}, I)};
    if (S) {
      specs.push_back(plain("shared_expert.gate_up", {S, S}, H));
      specs.push_back(plain("shared_expert.down", {H}, S));
      specs.push_back(plain("shared_expert_gate", {1}, H));
    }
    std::vector<std::shared_ptr<LinearWeight>> w;
    for (const LinearSpec& spec : specs) w.push_back(be.load_linear(spec));
    MoeWeights mw{w[0].get(), w[1].get(), w[2].get()};
    if (S) mw.shared_gate_up = w[3].get(), mw.shared_down = w[4].get(), mw.shared_gate = w[5].get();
    mw.routing = {s_.top_k, s_.renormalize};
    Tensor x = be.random_tensor({s_.T, H}, act, seed + 1, 0.0f, 1.0f);
    Tensor out = be.random_tensor({s_.T, H}, DType::F32, seed + 2, 0.0f, 1.0f);
    PreparedOp op;
    op.run = [&be, x, w, mw, out]() mutable { be.moe_ffn(x, mw, out); };
    op.weight_bytes = static_cast<double>(w[0]->stored_bytes + (w[1]->stored_bytes + w[2]->stored_bytes) / E * s_.top_k);
    op.bytes = op.weight_bytes + x.nbytes() + 2.0 * out.nbytes();
    if (!with_reference) return op;
    const Values initial = read_values(be, out);
    op.compare = [this, &be, &host, specs, x, out, initial] {
      MoeRefWeights r{.H = s_.H, .E = s_.E, .I = s_.I, .S = s_.shared};
      r.router = read_values(host, specs[0].parts[0].weight);
      auto expert = [&](const LinearSpec& spec, size_t part, int64_t e) {
        const LinearPart& p = spec.parts[part];
        if (is_packed_source(experts_)) return packed_values(expert_part(p, e), spec.in_features);
        return experts_ == WeightFormat::Dense ? read_values(host, p.experts[e]) : block_values(experts_, p.experts[e]);
      };
      for (int64_t e = 0; e < s_.E; ++e) {
        r.gate.push_back(expert(specs[1], 0, e));
        r.up.push_back(expert(specs[1], 1, e));
        r.down.push_back(expert(specs[2], 0, e));
      }
      if (s_.shared) {
        r.shared_gate_proj = read_values(host, specs[3].parts[0].weight);
        r.shared_up = read_values(host, specs[3].parts[1].weight);
        r.shared_down = read_values(host, specs[4].parts[0].weight);
        r.shared_gate = read_values(host, specs[5].parts[0].weight);
      }
      const Values ref = ref_moe_ffn(read_values(be, x), s_.T, r, s_.top_k, s_.renormalize, initial);
      // More than 16 rows (an expert's, the shared expert's) may take the CPU's BF16 prefill GEMM;
      // block kernels round x to int8 (as the linear cases).
      // 16-bit activations (a GPU) round the experts' rows twice: after SwiGLU and after down.
      const bool bf16_gemm = be.device() == Device::CPU && cpu::bf16_gemm_enabled() && s_.T > 16;
      const bool rounded = bf16_gemm || experts_ != WeightFormat::Dense || be.activation_dtype(weights_) != DType::F32;
      return compare({{"out", read_values(be, out), ref}}, rounded ? kTensorCore : kF32);
    };
    return op;
  }

 private:
  MoeShape s_;
  DType weights_;
  WeightFormat experts_;
  int variant_;
};

class RmsNormCase final : public OpCase {
 public:
  RmsNormCase(int64_t rows, int64_t cols, DType weight, DType out)
      : rows_(rows), cols_(cols), weight_(weight), out_(out) {}
  std::string name() const override {
    return fmt::format("rms_norm {} weight -> {} rows={} cols={}", lower_name(weight_), lower_name(out_), rows_, cols_);
  }
  std::string unsupported(const Backend& be) const override { return activation_support(be, out_); }

  PreparedOp prepare(Backend& be, Backend&, uint64_t seed, bool with_reference) const override {
    Tensor x = be.random_tensor({rows_, cols_}, DType::F32, seed + 1, 0.0f, 2.0f);
    Tensor w = be.random_tensor({cols_}, weight_, seed + 2, 1.0f, 0.2f);
    Tensor out = poisoned(be, {rows_, cols_}, out_);
    PreparedOp op;
    op.run = [&be, x, w, out]() mutable { be.rms_norm(x, w, kEps, out); };
    op.bytes = static_cast<double>(x.nbytes() + w.nbytes() + out.nbytes());
    if (!with_reference) return op;
    op.compare = [this, &be, x, w, out] {
      Values ref = read_values(be, x);
      ref_rms_norm_rows(ref.data(), rows_, read_values(be, w), kEps);
      return compare({{"out", read_values(be, out), ref}}, bound_for(out_));
    };
    return op;
  }

 private:
  int64_t rows_, cols_;
  DType weight_, out_;
};

class EmbeddingCase final : public OpCase {
 public:
  EmbeddingCase(int64_t vocab, int64_t dim, int64_t tokens, DType table)
      : vocab_(vocab), dim_(dim), tokens_(tokens), table_(table) {}
  std::string name() const override {
    return fmt::format("embedding {} vocab={} dim={} tokens={}", lower_name(table_), vocab_, dim_, tokens_);
  }

  PreparedOp prepare(Backend& be, Backend&, uint64_t seed, bool with_reference) const override {
    std::vector<int32_t> ids = random_ints(tokens_, 0, static_cast<int32_t>(vocab_ - 1), seed);
    ids.front() = static_cast<int32_t>(vocab_ - 1);  // the last row, too
    Tensor table = be.random_tensor({vocab_, dim_}, table_, seed + 1, 0.0f, 1.0f);
    Tensor id_t = ints(be, ids);
    Tensor out = poisoned(be, {tokens_, dim_}, DType::F32);
    PreparedOp op;
    op.run = [&be, table, id_t, out]() mutable { be.embedding(table, id_t, out); };
    op.bytes = static_cast<double>(tokens_ * dim_ * (dtype_size(table_) + 4));
    if (!with_reference) return op;
    op.compare = [this, &be, table, ids, out] {
      const Values ref = ref_gather_rows(read_values(be, table), ids, dim_);
      return compare({{"out", read_values(be, out), ref}}, kExact);
    };
    return op;
  }

 private:
  int64_t vocab_, dim_, tokens_;
  DType table_;
};

class GatherRowsCase final : public OpCase {
 public:
  GatherRowsCase(int64_t rows, int64_t cols, int64_t picked) : rows_(rows), cols_(cols), picked_(picked) {}
  std::string name() const override { return fmt::format("gather_rows rows={} cols={} picked={}", rows_, cols_, picked_); }

  PreparedOp prepare(Backend& be, Backend&, uint64_t seed, bool with_reference) const override {
    std::vector<int32_t> picked = random_ints(picked_, 0, static_cast<int32_t>(rows_ - 1), seed);
    picked.back() = static_cast<int32_t>(rows_ - 1);
    Tensor x = be.random_tensor({rows_, cols_}, DType::F32, seed + 1, 0.0f, 1.0f);
    Tensor picked_t = ints(be, picked);
    Tensor out = poisoned(be, {picked_, cols_}, DType::F32);
    PreparedOp op;
    op.run = [&be, x, picked_t, out]() mutable { be.gather_rows(x, picked_t, out); };
    op.bytes = static_cast<double>(2 * out.nbytes());
    if (!with_reference) return op;
    op.compare = [this, &be, x, picked, out] {
      return compare({{"out", read_values(be, out), ref_gather_rows(read_values(be, x), picked, cols_)}}, kExact);
    };
    return op;
  }

 private:
  int64_t rows_, cols_, picked_;
};

void add_linear_cases(CaseList& cases) {
  using E = LinearEpilogue;
  for (DType w : kFloatTypes) {
    // One part: every row tail (a GPU: GEMV for 1-2 rows, cuBLAS beyond); K = 200 is not a
    // multiple of 32 or 64, N odd.
    for (int64_t M : {1, 2, 3, 5, 8, 9, 16, 17, 64, 130}) add<LinearCase>(cases, "", LinearShape{M, 200, {97}}, w);
    // K not a multiple of 8 (no 16-byte rows: a GPU's GEMV does not take it).
    for (int64_t M : {1, 2, 17}) add<LinearCase>(cases, "", LinearShape{M, 67, {33}, true}, w);
    // Fused q/k/v with biases.
    for (int64_t M : {1, 3, 17}) add<LinearCase>(cases, "qkv", LinearShape{M, 128, {64, 32, 32}, true}, w);
    // Gate and up with SwiGLU.
    for (int64_t M : {1, 2, 5, 12, 64}) add<LinearCase>(cases, "gate_up", LinearShape{M, 192, {96, 96}, false, E::SiluMul}, w);
    add<LinearCase>(cases, "gate_up", LinearShape{3, 136, {40, 40}, true, E::SiluMul}, w);
    // Onto the residual stream (F32, random to begin with).
    for (int64_t M : {1, 2, 11, 17, 130}) add<LinearCase>(cases, "down", LinearShape{M, 320, {160}, false, E::Accumulate}, w);
    add<LinearCase>(cases, "", LinearShape{5, 96, {48, 17}, true, E::Accumulate}, w);
    // K of 1024 and more: a GPU GEMV's unrolled main loop (128 chunks of 8 per pass), alone
    // (1024) and with a tail (1280), in every epilogue.
    for (int64_t M : {1, 2, 3}) {
      add<LinearCase>(cases, "", LinearShape{M, 1024, {97}}, w);
      add<LinearCase>(cases, "gate_up", LinearShape{M, 1280, {48, 48}, false, E::SiluMul}, w);
      add<LinearCase>(cases, "down", LinearShape{M, 1280, {64}, false, E::Accumulate}, w);
    }
    // Logits: 16-bit weights into an F32 output.
    if (w != DType::F32)
      for (int64_t M : {1, 5}) add<LinearCase>(cases, "lm_head", LinearShape{M, 256, {129}, false, E::Store, true}, w);
  }
  // GGUF Q8_0 and Q4_0 blocks (the CPU runs them; other backends skip them, visibly).
  for (WeightFormat f : {WeightFormat::GgufQ8_0, WeightFormat::GgufQ4_0}) {
    for (int64_t M : {1, 3, 17}) add<LinearCase>(cases, "", LinearShape{M, 256, {96}}, DType::U8, f);
    for (int64_t M : {1, 5}) add<LinearCase>(cases, "qkv", LinearShape{M, 128, {64, 32, 32}, true}, DType::U8, f);
    for (int64_t M : {1, 4}) add<LinearCase>(cases, "gate_up", LinearShape{M, 192, {96, 96}, false, E::SiluMul}, DType::U8, f);
    for (int64_t M : {1, 2}) add<LinearCase>(cases, "down", LinearShape{M, 320, {160}, false, E::Accumulate}, DType::U8, f);
  }
  // GGUF K-quant super-blocks of 256, over row tails and 1..4-row register tiles.
  for (WeightFormat f : {WeightFormat::GgufQ4K, WeightFormat::GgufQ5K, WeightFormat::GgufQ6K}) {
    for (int64_t M : {1, 2, 3, 4, 5, 17}) add<LinearCase>(cases, "", LinearShape{M, 512, {37}}, DType::U8, f);
    for (int64_t M : {1, 5}) add<LinearCase>(cases, "qkv", LinearShape{M, 256, {64, 32, 32}, true}, DType::U8, f);
    for (int64_t M : {1, 4, 40}) add<LinearCase>(cases, "gate_up", LinearShape{M, 256, {96, 96}, false, E::SiluMul}, DType::U8, f);
    for (int64_t M : {1, 2, 70}) add<LinearCase>(cases, "down", LinearShape{M, 768, {160}, false, E::Accumulate}, DType::U8, f);
  }
  // Q4_K_M's and Q5_K_M's q/k beside a Q6_K v: on a GPU one int8-x launch for both pieces at
  // 1-2 rows (packed_matmul_q8_two), a launch each otherwise.
  for (WeightFormat f : {WeightFormat::GgufQ4K, WeightFormat::GgufQ5K}) {
    for (int64_t M : {1, 2, 5})
      add<LinearCase>(cases, "qkv", LinearShape{M, 256, {64, 32, 32}, true, E::Store, false, WeightFormat::GgufQ6K},
                      DType::U8, f);
    for (int64_t M : {1, 2})
      add<LinearCase>(cases, "qkv", LinearShape{M, 2048, {512, 128, 128}, false, E::Store, false, WeightFormat::GgufQ6K},
                      DType::U8, f);
  }
  // Few output features and a long K at 17-128 rows: a GPU's batched kernel splits over K.
  add<LinearCase>(cases, "", LinearShape{20, 2048, {96}, true}, DType::U8, WeightFormat::GgufQ4K);
  add<LinearCase>(cases, "down", LinearShape{70, 2048, {48}, false, E::Accumulate}, DType::U8, WeightFormat::GgufQ6K);
  // More rows of x through a GPU's quantized GEMM (split over K, tiles of 64 x 64 x 128).
  for (WeightFormat f : {WeightFormat::GgufQ4K, WeightFormat::GgufQ6K, WeightFormat::GgufQ8_0})
    for (int64_t M : {8, 9, 64, 130, 512}) add<LinearCase>(cases, "", LinearShape{M, 768, {37}}, DType::U8, f);
  // GPTQ, AWQ and FP8 checkpoint tensors, repacked at load: every layout variant over rows of
  // x from 1 to 512, K a multiple of 64 but not of 128, fused parts and every epilogue.
  for (WeightFormat f : {WeightFormat::Gptq, WeightFormat::Awq, WeightFormat::Fp8})
    for (int v = 0; v < kPackedVariants; ++v) {
      if (!has_packed_variant(f, v)) continue;
      for (int64_t M : {1, 2, 3, 5, 8, 9, 16, 33, 64, 130, 512})
        add<LinearCase>(cases, "", LinearShape{M, 256, {96}}, DType::U8, f, v);
      for (int64_t M : {1, 5, 40}) add<LinearCase>(cases, "qkv", LinearShape{M, 192, {64, 32, 32}, true}, DType::U8, f, v);
      for (int64_t M : {1, 4, 20}) add<LinearCase>(cases, "gate_up", LinearShape{M, 192, {96, 96}, false, E::SiluMul}, DType::U8, f, v);
      for (int64_t M : {1, 2, 65}) add<LinearCase>(cases, "down", LinearShape{M, 320, {160}, false, E::Accumulate}, DType::U8, f, v);
      add<LinearCase>(cases, "lm_head", LinearShape{3, 256, {136}, false, E::Store, true}, DType::U8, f, v);
    }
}

void add_moe_cases(CaseList& cases) {
  for (DType w : kFloatTypes) {
    // Decode rows (one or two tokens: most experts idle), prefill rows (every expert busy,
    // some with more than 16 rows), top-k renormalized or not, Qwen2-MoE's shared expert.
    for (int64_t T : {1, 2, 9, 70}) add<MoeCase>(cases, MoeShape{T, 64, 8, 32, 2, true}, w);
    add<MoeCase>(cases, MoeShape{5, 96, 16, 24, 4, false}, w);
    add<MoeCase>(cases, MoeShape{3, 64, 8, 32, 2, false, 48}, w);
    add<MoeCase>(cases, MoeShape{33, 64, 6, 16, 3, true, 40}, w);
  }
  // GGUF block experts (qwen3moe files): rows of 256 values for the K-quants.
  for (WeightFormat f : {WeightFormat::GgufQ8_0, WeightFormat::GgufQ4_0})
    for (int64_t T : {1, 20}) add<MoeCase>(cases, MoeShape{T, 64, 8, 32, 2, true}, DType::BF16, f);
  for (WeightFormat f : {WeightFormat::GgufQ4K, WeightFormat::GgufQ5K, WeightFormat::GgufQ6K})
    for (int64_t T : {2, 30}) add<MoeCase>(cases, MoeShape{T, 256, 8, 256, 2, false, 256}, DType::F32, f);
  // The same with 16-bit activations: a GPU keeps such experts as tiles (cuda_packed_rows.cu),
  // in blocks of 16 sorted rows (decode; 70 tokens: 17 routes per expert, some over 16) and of
  // 64 (160 tokens: 40 routes per expert); on a GPU up to 128 routes of integer-coded experts
  // go through the int8-x GEMV instead, a route (4-bit with zero points: two of an expert) per
  // row of blocks (cuda_packed_q8.h; BackendOps.CudaMoeTensorCoreExperts runs these cases on
  // the tensor-core kernels too, CudaMoeUnpairedRoutes with a route per row always).
  for (WeightFormat f : {WeightFormat::GgufQ4K, WeightFormat::GgufQ5K, WeightFormat::GgufQ6K})
    for (int64_t T : {1, 2, 3, 70, 160}) add<MoeCase>(cases, MoeShape{T, 256, 8, 256, 2, true}, DType::BF16, f);
  for (int64_t T : {1, 40}) add<MoeCase>(cases, MoeShape{T, 128, 8, 64, 2, false}, DType::F16, WeightFormat::GgufQ8_0);
  // A decode step of 16 tokens over 64 experts: experts of one, two and more routes, which the
  // int8-x GEMV pairs for GPTQ (an expert read once for two of its routes) and not for Q4_K.
  add<MoeCase>(cases, MoeShape{16, 256, 64, 256, 4, true}, DType::BF16, WeightFormat::GgufQ4K);
  add<MoeCase>(cases, MoeShape{16, 256, 64, 256, 4, true}, DType::BF16, WeightFormat::Gptq, 2);
  // One token of a wider shape: a GPU splits the experts' blocks over K (partials summed, silu
  // in the sum for gate/up).
  add<MoeCase>(cases, MoeShape{1, 1024, 8, 512, 2, true}, DType::BF16, WeightFormat::GgufQ4K);
  // GPTQ/AWQ/FP8 checkpoint experts, repacked at load: a GPU tiles GPTQ in order (v1: one
  // group a row; v2: group 64), AWQ and FP8 (v1: a scale per row; v2: blocks of [32, 64]) and
  // dequantizes act-order GPTQ (v0; v3 in 8 bits) to 16 bits.
  using F = WeightFormat;
  for (int64_t T : {1, 2, 3, 70, 160}) add<MoeCase>(cases, MoeShape{T, 256, 8, 256, 2, true}, DType::BF16, F::Gptq, 2);
  for (int64_t T : {1, 40}) add<MoeCase>(cases, MoeShape{T, 128, 8, 64, 2, false}, DType::BF16, F::Gptq, 1);
  for (int v : {0, 3}) add<MoeCase>(cases, MoeShape{5, 128, 8, 64, 2, true}, DType::BF16, F::Gptq, v);
  for (int64_t T : {1, 70}) add<MoeCase>(cases, MoeShape{T, 128, 8, 128, 2, true}, DType::F16, F::Awq, 0);
  for (int v : {1, 2})
    for (int64_t T : {2, 70}) add<MoeCase>(cases, MoeShape{T, 128, 8, 128, 2, true}, DType::BF16, F::Fp8, v);
  add<MoeCase>(cases, MoeShape{1, 1024, 8, 512, 2, true}, DType::BF16, F::Gptq, 2);  // split over K
  add<MoeCase>(cases, MoeShape{2, 64, 8, 32, 2, true}, DType::F32, F::Gptq, 0);      // the CPU's F32 models
}

void add_norm_and_copy_cases(CaseList& cases) {
  for (DType out : kFloatTypes)
    for (DType w : {DType::F32, DType::BF16}) {
      add<RmsNormCase>(cases, 1, 4096, w, out);
      add<RmsNormCase>(cases, 7, 896, w, out);
      add<RmsNormCase>(cases, 130, 65, w, out);
    }
  for (DType table : kFloatTypes) {
    add<EmbeddingCase>(cases, 50, 96, 5, table);
    add<EmbeddingCase>(cases, 1000, 4097, 17, table);
  }
  add<GatherRowsCase>(cases, 9, 300, 4);
  add<GatherRowsCase>(cases, 130, 4096, 64);
}

}  // namespace

uint64_t case_seed(const std::string& name) { return dummy_seed(name.c_str()); }

CaseList correctness_cases() {
  CaseList cases;
  add_linear_cases(cases);
  add_moe_cases(cases);
  add_norm_and_copy_cases(cases);
  add_attention_cases(cases);
  return cases;
}

CaseList llama8b_cases(int64_t rows, DType weights, DType act, WeightFormat format) {
  using E = LinearEpilogue;
  const int64_t M = rows, H = 4096, Hq = 32, Hk = 8, D = 128, I = 14336, V = 128256;
  const DType lw = format == WeightFormat::Dense ? weights : DType::U8;  // the layers' linear weights
  CaseList cases;
  add<EmbeddingCase>(cases, V, H, M, weights);
  add<RmsNormCase>(cases, M, H, weights, act);
  add<LinearCase>(cases, "qkv", LinearShape{M, H, {Hq * D, Hk * D, Hk * D}}, lw, format);
  cases.push_back(qkv_rope_case(M, HeadShape{Hq, Hk, D}, false, 0, act));
  for (int32_t context : {128, 2048})
    cases.push_back(attention_case("decode", std::vector<Sequence>(M, Sequence{context, 1}), HeadShape{Hq, Hk, D}, act));
  const int32_t prompt = static_cast<int32_t>(M);
  cases.push_back(attention_case("prompt", std::vector<Sequence>{{prompt, prompt}}, HeadShape{Hq, Hk, D}, act));
  add<LinearCase>(cases, "o_proj", LinearShape{M, Hq * D, {H}, false, E::Accumulate}, lw, format);
  add<LinearCase>(cases, "gate_up", LinearShape{M, H, {I, I}, false, E::SiluMul}, lw, format);
  add<LinearCase>(cases, "down", LinearShape{M, I, {H}, false, E::Accumulate}, lw, format);
  add<GatherRowsCase>(cases, M, H, M);
  add<LinearCase>(cases, "lm_head", LinearShape{M, H, {V}, false, E::Store, true}, weights);
  return cases;
}

std::vector<CaseOutcome> run_cases(Backend& be, const CaseList& cases, const std::string& filter) {
  using Status = CaseOutcome::Status;
  auto host = make_cpu_backend(1);
  std::vector<CaseOutcome> outcomes;
  int counts[3] = {0, 0, 0};
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& c : cases) {
    const std::string name = c->name();
    if (name.find(filter) == std::string::npos) continue;
    CaseOutcome o{Status::Skipped, name, c->unsupported(be)};
    if (!o.message.empty()) {
      std::printf("skip %s on %s: %s\n", name.c_str(), be.name(), o.message.c_str());
    } else {
      try {
        PreparedOp op = c->prepare(be, *host, case_seed(name), true);
        op.run();
        const Comparison r = op.compare();
        o.status = r.passed() ? Status::Passed : Status::Failed;
        o.message = fmt::format("error {:.3g} {} bound {:.0e}; worst {}", r.error, r.passed() ? "<=" : ">", r.bound,
                                r.worst);
      } catch (const std::exception& e) {
        o.status = Status::Failed;
        o.message = fmt::format("threw: {}", e.what());
      }
      std::printf("%s %s on %s: %s\n", o.status == Status::Passed ? "ok  " : "FAIL", name.c_str(), be.name(),
                  o.message.c_str());
    }
    ++counts[static_cast<int>(o.status)];
    outcomes.push_back(std::move(o));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %d passed, %d failed, %d skipped (%.1f s)\n", be.name(), counts[0], counts[1], counts[2], seconds);
  std::fflush(stdout);
  return outcomes;
}

}  // namespace ferrum::op_harness
