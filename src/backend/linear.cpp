#include "backend/linear.h"

#include <fmt/format.h>

#include "core/error.h"

namespace ferrum {

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::Dense: return "dense";
    case WeightFormat::GgufQ8_0: return "GGUF Q8_0";
    case WeightFormat::GgufQ4_0: return "GGUF Q4_0";
    case WeightFormat::GgufQ4K: return "GGUF Q4_K";
    case WeightFormat::GgufQ5K: return "GGUF Q5_K";
    case WeightFormat::GgufQ6K: return "GGUF Q6_K";
    case WeightFormat::Gptq: return "GPTQ";
    case WeightFormat::Awq: return "AWQ";
    case WeightFormat::Fp8: return "FP8";
  }
  return "?";
}

int64_t gguf_block_values(WeightFormat f) {
  switch (f) {
    case WeightFormat::GgufQ8_0: case WeightFormat::GgufQ4_0: return 32;
    case WeightFormat::GgufQ4K: case WeightFormat::GgufQ5K: case WeightFormat::GgufQ6K: return 256;
    default: return 0;
  }
}

int64_t gguf_block_bytes(WeightFormat f) {
  switch (f) {
    case WeightFormat::GgufQ8_0: return 34;
    case WeightFormat::GgufQ4_0: return 18;
    case WeightFormat::GgufQ4K: return 144;
    case WeightFormat::GgufQ5K: return 176;
    case WeightFormat::GgufQ6K: return 210;
    default: return 0;
  }
}

bool is_packed_source(WeightFormat f) {
  return f == WeightFormat::Gptq || f == WeightFormat::Awq || f == WeightFormat::Fp8;
}

LinearPart expert_part(const LinearPart& p, int64_t e) {
  LinearPart x;
  x.name = p.name + ".experts." + std::to_string(e);
  x.rows = p.rows;
  x.format = p.format;
  x.quant = p.quant;
  if (static_cast<size_t>(e) < p.experts.size()) x.weight = p.experts[static_cast<size_t>(e)];
  if (static_cast<size_t>(e) < p.expert_extra.size()) x.extra = p.expert_extra[static_cast<size_t>(e)];
  return x;
}

namespace {

// One source weight of part p ([rows, in] dense, or its raw GGUF blocks); `what` names it.
void check_weight(const LinearSpec& spec, const LinearPart& p, const Tensor& w, const std::string& what) {
  if (const int64_t values = gguf_block_values(p.format), bytes = gguf_block_bytes(p.format); values) {
    // Raw blocks: U8 [rows, in / values * bytes].
    if (spec.in_features % values != 0)
      fail("layer '{}': {} rows of {} values are not whole blocks", spec.name, weight_format_name(p.format),
           spec.in_features);
    if (w.dtype != DType::U8 || w.ndim != 2 || w.dim(0) != p.rows || w.dim(1) != spec.in_features / values * bytes)
      fail("layer '{}': {} weights of '{}' must be its raw blocks, U8 [{}, {}]; got {} {}", spec.name,
           weight_format_name(p.format), what, p.rows, spec.in_features / values * bytes, dtype_name(w.dtype),
           w.shape_str());
    return;
  }
  if (p.format != WeightFormat::Dense) return;  // a source that quant_pack checks
  if (w.ndim != 2 || w.dim(0) != p.rows || w.dim(1) != spec.in_features)
    fail("tensor '{}' has shape {}, but config.json implies [{}, {}]", what, w.shape_str(), p.rows, spec.in_features);
  if (w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
    fail("tensor '{}' has dtype {}; dense weights must be F32, F16 or BF16", what, dtype_name(w.dtype));
}

// Grouped experts: one weight per expert in every part, all of one dtype, no biases; GPTQ,
// AWQ and FP8 experts each with their companions (checked as they are packed).
void check_experts(const LinearSpec& spec) {
  for (const LinearPart& p : spec.parts) {
    if (!p.bias.empty() || !p.weight.empty() || !p.extra.empty())
      fail("layer '{}': grouped experts take one weight per expert and no bias", spec.name);
    if (spec.dummy) continue;
    if (p.experts.size() != static_cast<size_t>(spec.num_experts))
      fail("layer '{}': part '{}' has {} expert weights for {} experts", spec.name, p.name, p.experts.size(),
           spec.num_experts);
    if (is_packed_source(p.format) != (p.expert_extra.size() == p.experts.size()))
      fail("layer '{}': part '{}' has {} experts' {} companions for {} experts", spec.name, p.name,
           p.expert_extra.size(), weight_format_name(p.format), p.experts.size());
    for (size_t e = 0; e < p.experts.size(); ++e) {
      check_weight(spec, p, p.experts[e], fmt::format("{} (expert {})", p.name, e));
      if (p.experts[e].dtype != p.experts[0].dtype)
        fail("layer '{}': experts 0 and {} of '{}' have different dtypes", spec.name, e, p.name);
    }
  }
}

}  // namespace

void check_linear_spec(const LinearSpec& spec, bool experts) {
  if (spec.num_experts < 0 || (spec.num_experts > 0 && !experts))
    fail("layer '{}': grouped expert weights (MoE) are not supported on this backend yet", spec.name);
  if (spec.shard.kind != LinearShard::Kind::None || spec.shard.world != 1)
    fail("layer '{}': tensor-parallel shards are not supported yet", spec.name);
  FERRUM_CHECK(!spec.parts.empty() && spec.in_features > 0, "layer '{}': no parts or no input features", spec.name);
  for (const LinearPart& p : spec.parts)
    if (gguf_block_values(p.format) && spec.dummy) fail("layer '{}': dummy weights are dense only", spec.name);
  if (spec.num_experts > 0) check_experts(spec);
  bool any_bias = false, all_bias = true;
  for (const LinearPart& p : spec.parts) {
    FERRUM_CHECK(p.rows > 0, "layer '{}': part '{}' has no rows", spec.name, p.name);
    if (!p.extra.empty() && !is_packed_source(p.format))
      fail("layer '{}': part '{}' has format companions, but its format ({}) takes none", spec.name, p.name,
           weight_format_name(p.format));
    const bool bias = !p.bias.empty();
    any_bias |= bias;
    all_bias &= bias;
    if (bias && (p.bias.numel() != p.rows || (p.bias.dtype != DType::F32 && p.bias.dtype != DType::F16 &&
                                              p.bias.dtype != DType::BF16)))
      fail("layer '{}': bias of '{}' is {} {}, expected {} F32/F16/BF16 values", spec.name, p.name,
           dtype_name(p.bias.dtype), p.bias.shape_str(), p.rows);
    if (spec.dummy || spec.num_experts > 0) continue;
    check_weight(spec, p, p.weight, p.name);
    const LinearPart& first = spec.parts.front();
    if (first.format == WeightFormat::Dense && p.format == WeightFormat::Dense && p.weight.dtype != first.weight.dtype)
      fail("layer '{}': parts '{}' and '{}' have different dtypes ({} and {})", spec.name, first.name, p.name,
           dtype_name(first.weight.dtype), dtype_name(p.weight.dtype));
  }
  if (any_bias && !all_bias) fail("layer '{}': some parts have a bias and some do not", spec.name);
}

}  // namespace ferrum
