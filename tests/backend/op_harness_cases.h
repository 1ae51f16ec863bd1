// What the op harness's case files share (op_harness.cpp: linear, MoE, norms and copies;
// op_harness_attention.cpp: the KV write and attention): error bounds, dtype names, and the
// attention cases' constructors, which the Llama-3.1-8B table uses too.
#pragma once
#include <fmt/format.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "op_harness.h"
#include "op_harness_reference.h"

namespace ferrum::op_harness {

// Bounds on max |got - ref| / max |ref|, set by where values are rounded: the output's dtype
// (products of 16-bit inputs are exact in F32, so an F32 output of them is held to F32's).
constexpr double kExact = 0.0;        // copies (embedding, gather_rows)
constexpr double kF32 = 1e-5;         // F32 math into F32 (H200 and CPU: worst 6e-7)
constexpr double kF16 = 2e-3;         // an f16 rounding is 2^-11 (H200: worst 7e-4)
constexpr double kBF16 = 1e-2;        // a bf16 rounding is 2^-8 (H200: worst 4e-3)
constexpr double kTensorCore = 2e-2;  // prefill attention rounds q and P to bf16 (H200: 6e-3)

inline double bound_for(DType out) { return out == DType::F32 ? kF32 : out == DType::F16 ? kF16 : kBF16; }

inline const char* lower_name(DType dt) {
  switch (dt) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F8E4M3: return "f8_e4m3";
    default: return dtype_name(dt);
  }
}

// Why `be` cannot run a case of 16-bit activations (the CPU keeps them in F32); empty if it can.
inline std::string activation_support(const Backend& be, DType act) {
  const DType kept = be.activation_dtype(act);
  if (kept == act) return {};
  return fmt::format("keeps the activations of {} models in {}", dtype_name(act), dtype_name(kept));
}

template <typename C, typename... Args>
void add(CaseList& cases, Args&&... args) {
  cases.push_back(std::make_unique<C>(std::forward<Args>(args)...));
}

constexpr DType kFloatTypes[] = {DType::F32, DType::F16, DType::BF16};

struct HeadShape {
  int64_t Hq, Hk, D;
};

// The KV cache of an attention case: the activations' own type, or E4M3 with these scales
// (Backend's KvScales; 1.0 is the engine's default).
struct CacheKind {
  bool fp8 = false;
  KvScales scales;
};
constexpr CacheKind kSameAsActivations{};

// qkv_rope_write_kv of `tokens` tokens; skipped_slots: that many tokens get slot -1 (their k/v
// must not be written).
std::unique_ptr<OpCase> qkv_rope_case(int64_t tokens, HeadShape h, bool qk_norm, int skipped_slots, DType act,
                                      CacheKind cache = kSameAsActivations);
// paged_attention over these sequences; padded: block tables and max_context padded as a
// decode graph's are.
std::unique_ptr<OpCase> attention_case(std::string label, std::vector<Sequence> seqs, HeadShape h, DType act,
                                       bool padded = false, CacheKind cache = kSameAsActivations);
// Every attention and KV-write case of correctness_cases(), E4M3 caches included.
void add_attention_cases(CaseList& cases);

}  // namespace ferrum::op_harness
