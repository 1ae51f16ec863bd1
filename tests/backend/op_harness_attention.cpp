// The op harness's KV-write and attention cases (op_harness_cases.h): qkv_rope_write_kv into
// caches of the activations' type or of E4M3, and paged_attention over them, against the
// float64 references of op_harness_reference.cpp. An E4M3 cache's reference reads what the
// cache holds (its codes times the scale), and the KV write's reference rounds to E4M3 as the
// cache must, so the E4M3 cases keep the bounds of 16-bit caches.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "backend/dummy_fill.h"
#include "core/dtype.h"
#include "op_harness_cases.h"
#include "op_harness_tensors.h"

namespace ferrum::op_harness {
namespace {

DType cache_dtype(CacheKind c, DType act) { return c.fp8 ? DType::F8E4M3 : act; }

std::string cache_label(CacheKind c) {
  return c.fp8 ? fmt::format(" kv-cache f8_e4m3 scales {:g}/{:g}", c.scales.k, c.scales.v) : std::string();
}

// Why `be` cannot run a case of `act` activations over this cache; empty if it can.
std::string cache_support(const Backend& be, DType act, CacheKind c) {
  std::string why = activation_support(be, act);
  if (!why.empty() || be.supports_kv_cache(cache_dtype(c, act), act)) return why;
  return fmt::format("no {} KV cache beside {} activations", dtype_name(cache_dtype(c, act)), dtype_name(act));
}

// A cache of E4M3 codes: the dummy pattern's values in [-1, 1) rounded to E4M3 on the host.
Tensor fp8_cache(Backend& be, std::initializer_list<int64_t> shape, uint64_t seed) {
  Tensor t = be.alloc(shape, DType::F8E4M3);
  std::vector<uint8_t> codes(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = f32_to_fp8_e4m3(dummy_unit(seed, i));
  write_bytes(be, t, codes.data());
  return t;
}

// The values attention reads from a cache: as stored, times the scale for E4M3.
Values cache_values(Backend& be, const Tensor& cache, bool fp8, float scale) {
  Values v = read_values(be, cache);
  if (fp8)
    for (double& x : v) x *= scale;
  return v;
}

// What an E4M3 cache must hold for exact values: each divided by the scale, rounded to the
// nearest code (saturating at 448). Where a value lies so near the midpoint of two codes that
// the backend's F32 arithmetic (RoPE, norms) may round it either way, the code the backend
// wrote (`stored`) is taken when it is that close too. NaN (no write) stays NaN.
Values as_fp8_codes(const Values& exact, const Values& stored, double scale) {
  Values r(exact.size());
  for (size_t i = 0; i < exact.size(); ++i) {
    if (std::isnan(exact[i])) {
      r[i] = exact[i];
      continue;
    }
    const double v = exact[i] / scale;
    const double nearest = fp8_e4m3_to_f32(f32_to_fp8_e4m3(static_cast<float>(v)));
    const double tolerance = 1e-5 * std::max(std::fabs(v), 1.0 / 64);
    r[i] = std::fabs(stored[i] - v) <= std::fabs(nearest - v) + tolerance ? stored[i] : nearest;
  }
  return r;
}

// The attention metadata of a paged layout (its device tensors and host copies).
AttentionMeta paged_meta(Backend& be, const PagedLayout& l) {
  AttentionMeta meta;
  meta.query_start = ints(be, l.query_start);
  meta.seq_lens = ints(be, l.seq_lens);
  meta.block_tables = ints(be, l.block_tables);
  meta.num_seqs = static_cast<int32_t>(l.seq_lens.size());
  meta.max_blocks_per_seq = l.width;
  meta.block_size = kBlockSize;
  meta.max_context = l.max_context;
  meta.host_query_start = l.query_start;
  meta.host_seq_lens = l.seq_lens;
  return meta;
}

// A K or V cache of the layout's blocks: E4M3 codes, or random values of the activations' type.
Tensor layout_cache(Backend& be, const PagedLayout& l, int64_t Hk, int64_t D, DType act, CacheKind c, uint64_t seed) {
  return c.fp8 ? fp8_cache(be, {l.num_blocks, kBlockSize, Hk, D}, seed)
               : be.random_tensor({l.num_blocks, kBlockSize, Hk, D}, act, seed, 0.0f, 1.0f);
}

class QkvRopeCase final : public OpCase {
 public:
  QkvRopeCase(int64_t tokens, HeadShape h, bool qk_norm, int skipped_slots, DType act, CacheKind cache)
      : tokens_(tokens), h_(h), qk_norm_(qk_norm), skipped_(skipped_slots), act_(act), cache_(cache) {}
  std::string name() const override {
    return fmt::format("qkv_rope_write_kv {} T={} Hq={} Hk={} D={}{}{}{}", lower_name(act_), tokens_, h_.Hq, h_.Hk,
                       h_.D, qk_norm_ ? " qk-norm" : "", skipped_ ? fmt::format(" {} slots -1", skipped_) : "",
                       cache_label(cache_));
  }
  std::string unsupported(const Backend& be) const override { return cache_support(be, act_, cache_); }

  PreparedOp prepare(Backend& be, Backend&, uint64_t seed, bool with_reference) const override {
    const int64_t Hq = h_.Hq, Hk = h_.Hk, D = h_.D;
    const int64_t blocks = (tokens_ + kBlockSize - 1) / kBlockSize + 2;
    // Distinct slots anywhere in the cache; the first `skipped_` tokens are not cached.
    std::vector<int32_t> slots = shuffled_range(static_cast<int32_t>(blocks * kBlockSize), seed);
    slots.resize(tokens_);
    std::fill_n(slots.begin(), std::min<int64_t>(skipped_, tokens_), -1);
    const std::vector<int32_t> positions = random_ints(tokens_, 0, kRopePositions - 1, seed + 1);
    // The norm weights: BF16 with F32 activations (a conversion on the way), else the model's.
    const DType norm_dtype = act_ == DType::F32 ? DType::BF16 : act_;
    const DType cache = cache_dtype(cache_, act_);
    Tensor qkv = be.random_tensor({tokens_, (Hq + 2 * Hk) * D}, act_, seed + 2, 0.0f, 2.0f);
    Tensor q_norm = be.random_tensor({D}, norm_dtype, seed + 3, 1.0f, 0.3f);
    Tensor k_norm = be.random_tensor({D}, norm_dtype, seed + 4, 1.0f, 0.3f);
    Tensor pos_t = ints(be, positions), slot_t = ints(be, slots);
    const RopeTable table = rope_table(be, D);
    Tensor q = poisoned(be, {tokens_, Hq, D}, act_);
    Tensor kc = poisoned(be, {blocks, kBlockSize, Hk, D}, cache), vc = poisoned(be, {blocks, kBlockSize, Hk, D}, cache);
    PreparedOp op;
    const bool norm = qk_norm_;
    const KvScales scales = cache_.scales;
    op.run = [&be, qkv, q_norm, k_norm, norm, pos_t, table, slot_t, q, kc, vc, scales]() mutable {
      be.qkv_rope_write_kv(qkv, norm ? &q_norm : nullptr, norm ? &k_norm : nullptr, kEps, pos_t, table, slot_t, q, kc,
                           vc, scales);
    };
    op.bytes = static_cast<double>(qkv.nbytes() + q.nbytes() + 2 * tokens_ * Hk * D * dtype_size(cache));
    if (!with_reference) return op;
    op.compare = [=, this, &be] {
      const Values qn = read_values(be, q_norm), kn = read_values(be, k_norm);
      const QkvRef ref = ref_qkv_rope_write_kv(read_values(be, qkv), qk_norm_ ? &qn : nullptr, qk_norm_ ? &kn : nullptr,
                                               read_values(be, table.cos), read_values(be, table.sin), positions,
                                               slots, Hq, Hk, D, blocks * kBlockSize);
      const Values k = read_values(be, kc), v = read_values(be, vc);
      if (!cache_.fp8)
        return compare({{"q", read_values(be, q), ref.q}, {"k_cache", k, ref.k_cache}, {"v_cache", v, ref.v_cache}},
                       bound_for(act_));
      // The caches' codes exactly (a code off by one is 1/16 of its value, which a bound
      // relative to the largest value would let pass for small ones), then q as usual.
      const Comparison codes = compare({{"k_cache", k, as_fp8_codes(ref.k_cache, k, cache_.scales.k)},
                                        {"v_cache", v, as_fp8_codes(ref.v_cache, v, cache_.scales.v)}},
                                       kExact);
      if (!codes.passed()) return codes;
      return compare({{"q", read_values(be, q), ref.q}}, bound_for(act_));
    };
    return op;
  }

 private:
  int64_t tokens_;
  HeadShape h_;
  bool qk_norm_;
  int skipped_;
  DType act_;
  CacheKind cache_;
};

class AttentionCase final : public OpCase {
 public:
  AttentionCase(std::string label, std::vector<Sequence> seqs, HeadShape h, DType act, bool padded, CacheKind cache)
      : label_(std::move(label)), seqs_(std::move(seqs)), h_(h), act_(act), padded_(padded), cache_(cache) {}
  std::string name() const override {
    std::string seqs;
    for (const Sequence& s : seqs_) seqs += fmt::format("{}{}/{}", seqs.empty() ? "" : ",", s.queries, s.context);
    if (seqs_.size() > 6) seqs = fmt::format("{} x {}/{}", seqs_.size(), seqs_[0].queries, seqs_[0].context);
    return fmt::format("paged_attention {} {} D={} Hq={} Hk={} queries/context={}{}{}", label_, lower_name(act_), h_.D,
                       h_.Hq, h_.Hk, seqs, padded_ ? " padded" : "", cache_label(cache_));
  }
  std::string unsupported(const Backend& be) const override { return cache_support(be, act_, cache_); }

  PreparedOp prepare(Backend& be, Backend&, uint64_t seed, bool with_reference) const override {
    const int64_t Hq = h_.Hq, Hk = h_.Hk, D = h_.D;
    const PagedLayout l = paged_layout(seqs_, padded_, seed);
    const int64_t T = l.query_start.back();
    const DType cache = cache_dtype(cache_, act_);
    Tensor kc = layout_cache(be, l, Hk, D, act_, cache_, seed + 1);
    Tensor vc = layout_cache(be, l, Hk, D, act_, cache_, seed + 2);
    Tensor q = be.random_tensor({T, Hq, D}, act_, seed + 3, 0.0f, 3.0f);  // peaked and flat softmaxes
    Tensor out = poisoned(be, {T, Hq, D}, act_);
    const AttentionMeta meta = paged_meta(be, l);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const KvScales scales = cache_.scales;
    PreparedOp op;
    op.run = [&be, q, kc, vc, meta, scale, out, scales]() mutable {
      be.paged_attention(q, kc, vc, meta, scale, out, scales);
    };
    int64_t keys = 0;
    for (const Sequence& s : seqs_) keys += s.context;
    op.bytes = static_cast<double>(q.nbytes() + out.nbytes() + 2 * keys * Hk * D * dtype_size(cache));
    if (!with_reference) return op;
    op.compare = [=, this, &be] {
      const Values ref = ref_paged_attention(read_values(be, q), cache_values(be, kc, cache_.fp8, scales.k),
                                             cache_values(be, vc, cache_.fp8, scales.v), l, Hq, Hk, D, scale);
      return compare({{"out", read_values(be, out), ref}}, bound());
    };
    return op;
  }

 private:
  // A 16-bit batch with a sequence of at least 64 queries takes the tensor-core prefill kernel.
  double bound() const {
    for (const Sequence& s : seqs_)
      if (s.queries >= 64 && act_ != DType::F32) return kTensorCore;
    return bound_for(act_);
  }

  std::string label_;
  std::vector<Sequence> seqs_;
  HeadShape h_;
  DType act_;
  bool padded_;
  CacheKind cache_;
};

// Backend::qkv_rope_attention on a decode step (one query per sequence, the token at the last
// position of its context): q/k/v as qkv_rope_write_kv makes them, then attention over caches
// that already hold the other keys. The reference is the two ops' references in turn (q
// rounded to the activations' type, as the backend stores it between them); the attention's
// reads the caches as the backend left them, after the written slots are checked on their
// own. `skipped`: the first sequences' slots are -1 (a graph's padding: nothing written).
class QkvRopeAttentionCase final : public OpCase {
 public:
  QkvRopeAttentionCase(std::vector<int32_t> contexts, HeadShape h, bool qk_norm, int skipped, bool padded, DType act,
                       CacheKind cache)
      : contexts_(std::move(contexts)), h_(h), qk_norm_(qk_norm), skipped_(skipped), padded_(padded), act_(act),
        cache_(cache) {}
  std::string name() const override {
    std::string ctx;
    for (int32_t c : contexts_) ctx += fmt::format("{}{}", ctx.empty() ? "" : ",", c);
    return fmt::format("qkv_rope_attention {} D={} Hq={} Hk={} contexts={}{}{}{}{}", lower_name(act_), h_.D, h_.Hq,
                       h_.Hk, ctx, qk_norm_ ? " qk-norm" : "", skipped_ ? fmt::format(" {} slots -1", skipped_) : "",
                       padded_ ? " padded" : "", cache_label(cache_));
  }
  std::string unsupported(const Backend& be) const override { return cache_support(be, act_, cache_); }

  PreparedOp prepare(Backend& be, Backend&, uint64_t seed, bool with_reference) const override {
    const int64_t Hq = h_.Hq, Hk = h_.Hk, D = h_.D, T = static_cast<int64_t>(contexts_.size());
    std::vector<Sequence> seqs;
    for (int32_t c : contexts_) seqs.push_back({c, 1});
    const PagedLayout l = paged_layout(seqs, padded_, seed);
    std::vector<int32_t> positions, slots;
    for (int64_t s = 0; s < T; ++s) {
      const int32_t p = contexts_[s] - 1;
      positions.push_back(p);
      slots.push_back(s < skipped_ ? -1 : l.block_tables[s * l.width + p / kBlockSize] * kBlockSize + p % kBlockSize);
    }
    const DType norm_dtype = act_ == DType::F32 ? DType::BF16 : act_;
    Tensor kc = layout_cache(be, l, Hk, D, act_, cache_, seed + 1);
    Tensor vc = layout_cache(be, l, Hk, D, act_, cache_, seed + 2);
    Tensor qkv = be.random_tensor({T, (Hq + 2 * Hk) * D}, act_, seed + 3, 0.0f, 2.0f);
    Tensor q_norm = be.random_tensor({D}, norm_dtype, seed + 4, 1.0f, 0.3f);
    Tensor k_norm = be.random_tensor({D}, norm_dtype, seed + 5, 1.0f, 0.3f);
    const RopeTable table = rope_table(be, D);
    Tensor q = poisoned(be, {T, Hq, D}, act_), out = poisoned(be, {T, Hq, D}, act_);
    AttentionMeta meta = paged_meta(be, l);
    meta.slot_mapping = ints(be, slots);
    meta.positions = ints(be, positions);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const KvScales scales = cache_.scales;
    const bool norm = qk_norm_;
    const Values k_before = with_reference ? read_values(be, kc) : Values{};
    const Values v_before = with_reference ? read_values(be, vc) : Values{};
    PreparedOp op;
    op.run = [&be, qkv, q_norm, k_norm, norm, table, meta, scale, q, kc, vc, out, scales]() mutable {
      be.qkv_rope_attention(qkv, norm ? &q_norm : nullptr, norm ? &k_norm : nullptr, kEps, meta.positions, table, meta,
                            scale, q, kc, vc, out, scales);
    };
    int64_t keys = 0;
    for (int32_t c : contexts_) keys += c;
    op.bytes = static_cast<double>(qkv.nbytes() + out.nbytes() + 2 * keys * Hk * D * dtype_size(cache_dtype(cache_, act_)));
    if (!with_reference) return op;
    op.compare = [=, this, &be] {
      const Values qn = read_values(be, q_norm), kn = read_values(be, k_norm);
      const QkvRef ref = ref_qkv_rope_write_kv(read_values(be, qkv), qk_norm_ ? &qn : nullptr, qk_norm_ ? &kn : nullptr,
                                               read_values(be, table.cos), read_values(be, table.sin), positions,
                                               slots, Hq, Hk, D, l.num_blocks * kBlockSize);
      // The caches: the written slots as qkv_rope_write_kv's reference says (E4M3: the codes
      // exactly), every other entry as it was.
      const Values k = read_values(be, kc), v = read_values(be, vc);
      Values k_ref = cache_.fp8 ? as_fp8_codes(ref.k_cache, k, scales.k) : ref.k_cache;
      Values v_ref = cache_.fp8 ? as_fp8_codes(ref.v_cache, v, scales.v) : ref.v_cache;
      for (size_t i = 0; i < k_ref.size(); ++i) {
        if (std::isnan(k_ref[i])) k_ref[i] = k_before[i];
        if (std::isnan(v_ref[i])) v_ref[i] = v_before[i];
      }
      const Comparison caches =
          compare({{"k_cache", k, k_ref}, {"v_cache", v, v_ref}}, cache_.fp8 ? kExact : bound_for(act_));
      if (!caches.passed()) return caches;
      Values q_rounded = ref.q;
      for (double& x : q_rounded) x = round_to(act_, x);
      const Values want = ref_paged_attention(q_rounded, cache_values(be, kc, cache_.fp8, scales.k),
                                              cache_values(be, vc, cache_.fp8, scales.v), l, Hq, Hk, D, scale);
      return compare({{"out", read_values(be, out), want}}, bound_for(act_));
    };
    return op;
  }

 private:
  // x as a value of dtype t holds it (round to nearest even).
  static double round_to(DType t, double x) {
    const float f = static_cast<float>(x);
    if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(f));
    if (t == DType::F16) return f16_to_f32(f32_to_f16(f));
    return f;
  }

  std::vector<int32_t> contexts_;
  HeadShape h_;
  bool qk_norm_;
  int skipped_;
  bool padded_;
  DType act_;
  CacheKind cache_;
};

// E4M3 caches: scales of 1 (the engine's default), saturating ones (values past 448 x scale
// are clipped), and ones whose products with any E4M3 value are exact in bf16 and f16 (so that
// the tensor-core kernels' conversion adds no rounding and the 16-bit bounds hold).
constexpr CacheKind kFp8Unit{true, {1.0f, 1.0f}};
constexpr CacheKind kFp8Saturating{true, {0.004f, 0.004f}};
constexpr CacheKind kFp8Scaled{true, {0.375f, 1.75f}};

void add_fp8_cache_cases(CaseList& cases, DType act) {
  cases.push_back(qkv_rope_case(17, HeadShape{32, 8, 128}, true, 0, act, kFp8Unit));
  cases.push_back(qkv_rope_case(5, HeadShape{4, 4, 64}, false, 0, act, kFp8Scaled));
  cases.push_back(qkv_rope_case(4, HeadShape{8, 1, 64}, false, 2, act, kFp8Saturating));
  // Decode (the CUDA-core kernel for D=8, tensor cores for 64-256), mixed with prefill chunks.
  const std::vector<Sequence> mixed = {{19, 5}, {7, 7}, {33, 1}};
  for (int64_t D : {8, 64, 128, 256})
    cases.push_back(attention_case("mixed", mixed, HeadShape{8, 2, D}, act, false, kFp8Unit));
  cases.push_back(attention_case("gqa", {{40, 3}, {9, 1}}, HeadShape{32, 4, 64}, act, false, kFp8Scaled));
  cases.push_back(
      attention_case("long-decode", {{2000, 1}, {3, 1}, {1100, 1}}, HeadShape{32, 8, 128}, act, false, kFp8Scaled));
  cases.push_back(attention_case("graph-decode", {{100, 1}, {37, 1}}, HeadShape{8, 2, 128}, act, true, kFp8Unit));
  // Prompts in tiles of 64 queries (the tensor-core prefill kernel) beside decodes.
  const std::vector<Sequence> tiles = {{300, 300}, {57, 40}, {9, 1}, {40, 5}, {1500, 1}};
  for (int64_t D : {64, 128, 256})
    cases.push_back(attention_case("prefill", tiles, HeadShape{8, 2, D}, act, false, kFp8Scaled));
  const std::vector<Sequence> chunks = {{700, 130}, {64, 64}, {200, 1}, {1000, 77}};
  cases.push_back(attention_case("prefill-chunk", chunks, HeadShape{32, 8, 128}, act, false, kFp8Unit));
  cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{700, 1, 65}, HeadShape{32, 8, 128}, true,
                                                         0, true, act, kFp8Scaled));
  cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{40, 300}, HeadShape{8, 2, 64}, false, 1,
                                                         false, act, kFp8Unit));
}

}  // namespace

std::unique_ptr<OpCase> qkv_rope_case(int64_t tokens, HeadShape h, bool qk_norm, int skipped_slots, DType act,
                                      CacheKind cache) {
  return std::make_unique<QkvRopeCase>(tokens, h, qk_norm, skipped_slots, act, cache);
}

std::unique_ptr<OpCase> attention_case(std::string label, std::vector<Sequence> seqs, HeadShape h, DType act,
                                       bool padded, CacheKind cache) {
  return std::make_unique<AttentionCase>(std::move(label), std::move(seqs), h, act, padded, cache);
}

void add_attention_cases(CaseList& cases) {
  for (DType act : kFloatTypes) {
    cases.push_back(qkv_rope_case(5, HeadShape{4, 4, 64}, false, 0, act));
    cases.push_back(qkv_rope_case(17, HeadShape{32, 8, 128}, true, 0, act));
    cases.push_back(qkv_rope_case(3, HeadShape{16, 2, 128}, true, 1, act));
    cases.push_back(qkv_rope_case(4, HeadShape{8, 1, 64}, false, 2, act));

    // A prefill chunk after cached tokens, a whole short prompt and a decode in one batch.
    const std::vector<Sequence> mixed = {{19, 5}, {7, 7}, {33, 1}};
    for (int64_t D : {8, 64, 128, 256}) cases.push_back(attention_case("mixed", mixed, HeadShape{8, 2, D}, act));
    // Query heads per KV head: 1 (MHA), 4, 8, 32 (MQA).
    for (HeadShape h : {HeadShape{4, 4, 64}, HeadShape{16, 4, 64}, HeadShape{32, 4, 64}, HeadShape{32, 1, 64}})
      cases.push_back(attention_case("gqa", {{40, 3}, {9, 1}}, h, act));
    // Long decodes: keys split over many blocks and merged.
    cases.push_back(attention_case("long-decode", {{2000, 1}, {3, 1}, {1100, 1}}, HeadShape{32, 8, 128}, act));
    // Decodes with the table width and max_context of a decode graph.
    cases.push_back(attention_case("graph-decode", {{100, 1}, {37, 1}}, HeadShape{8, 2, 128}, act, true));
    // Prompts in tiles of 64 queries (ragged last tiles, chunks after cached tokens, an exact
    // tile) mixed with decodes and short chunks.
    const std::vector<Sequence> tiles = {{300, 300}, {57, 40}, {9, 1}, {40, 5}, {1500, 1}};
    for (int64_t D : {64, 128, 256}) cases.push_back(attention_case("prefill", tiles, HeadShape{8, 2, D}, act));
    const std::vector<Sequence> chunks = {{700, 130}, {64, 64}, {200, 1}, {1000, 77}};
    for (int64_t D : {64, 128, 256}) cases.push_back(attention_case("prefill-chunk", chunks, HeadShape{32, 8, D}, act));
    cases.push_back(attention_case("prefill", {{33, 33}, {130, 17}}, HeadShape{14, 2, 128}, act));
    // q/k/v and attention of a decode step in one call (CUDA: one kernel over the tensor-core
    // path): one sequence and several, GQA and MHA, qk-norm, a graph's table width, short and
    // long contexts (one key, a split's last key, many splits), padding slots.
    for (int64_t D : {64, 128, 256})
      cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{437}, HeadShape{8, 2, D}, true, 0,
                                                             false, act, CacheKind{}));
    cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{1, 64, 65, 2000}, HeadShape{32, 8, 128},
                                                           true, 0, true, act, CacheKind{}));
    cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{9, 130, 17}, HeadShape{4, 4, 64}, false,
                                                           1, true, act, CacheKind{}));
    cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{100, 3}, HeadShape{32, 2, 128}, false,
                                                           0, false, act, CacheKind{}));
    // The token's own key past its split's first tile (64 blocks: 32 splits of 128 keys for
    // the longest context, 4,090), with 4 query heads a KV head and with 16 (two blocks
    // write it); or 8 splits of 125 merged in a cluster (1,000).
    const std::vector<int32_t> eight = {4090, 2500, 1500, 700, 33, 3000, 2, 4000};
    std::vector<int32_t> sixteen = eight;
    sixteen.insert(sixteen.end(), {130, 200, 1000, 2000, 64, 65, 129, 3333});
    cases.push_back(std::make_unique<QkvRopeAttentionCase>(eight, HeadShape{32, 8, 128}, true, 0, false, act,
                                                           CacheKind{}));
    cases.push_back(std::make_unique<QkvRopeAttentionCase>(sixteen, HeadShape{32, 2, 128}, true, 0, false, act,
                                                           CacheKind{}));
    cases.push_back(std::make_unique<QkvRopeAttentionCase>(std::vector<int32_t>{1000}, HeadShape{32, 8, 128}, false, 0,
                                                           false, act, CacheKind{}));

    add_fp8_cache_cases(cases, act);
  }
}

}  // namespace ferrum::op_harness
