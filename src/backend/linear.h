// A linear layer's weight as a backend-owned object. Model code describes the layer (a
// LinearSpec: its parts, their source tensors, the storage format, how it is fused or
// sharded); the backend decides how to store it (mmapped as it is on the CPU, one fused
// device buffer on a GPU, repacked for a quantized kernel later) and runs it with
// Backend::linear. Model code never sees how a weight is stored.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ferrum {

// How the weight bytes are laid out, as the checkpoint stores them. Backends repack the
// non-GGUF quantized forms at load time into their kernels' layout (backend/quant_pack.h).
enum class WeightFormat : uint8_t {
  Dense,     // [out, in] F32 / F16 / BF16, row-major
  GgufQ8_0,  // GGUF blocks of 32: f16 scale + 32 int8
  GgufQ4_0,  // GGUF blocks of 32: f16 scale + 16 bytes of 4-bit values (minus 8)
  GgufQ4K,   // GGUF Q4_K super-blocks of 256: f16 d, dmin, 6-bit scales/mins, 4-bit quants
  GgufQ5K,   // GGUF Q5_K: Q4_K plus a fifth bit per value
  GgufQ6K,   // GGUF Q6_K super-blocks of 256: 6-bit quants, int8 scale per 16, f16 d
  Gptq,      // GPTQ (4 or 8 bits): weight = qweight I32 [in * bits / 32, out]; extra = {qzeros
             // I32 [groups, out * bits / 32], scales [groups, out], g_idx I32 [in] (optional)}
  Awq,       // AWQ (GEMM layout, 4 bits): weight = qweight I32 [in, out/8]; extra = {qzeros I32
             // [groups, out/8], scales [groups, out]}
  Fp8,       // E4M3 [out, in] with extra = {scales}: one, one per output row, or one per block
             // of QuantScheme::fp8_block; or a dense weight to quantize at load (per row)
};
const char* weight_format_name(WeightFormat f);
// Values and bytes of one block of a GGUF block format (32 for Q8_0 / Q4_0, 256 for the
// K-quants); 0 for the others.
int64_t gguf_block_values(WeightFormat f);
int64_t gguf_block_bytes(WeightFormat f);
// GPTQ, AWQ and FP8: formats that backends repack at load (backend/quant_pack.h).
bool is_packed_source(WeightFormat f);

// How a layer is split over tensor-parallel ranks: Column splits the output features (each
// rank holds out/world rows), Row splits the input features (partial sums, then all-reduce).
struct LinearShard {
  enum class Kind : uint8_t { None, Column, Row } kind = Kind::None;
  int32_t rank = 0, world = 1;
};

// Parameters of the quantized source formats (GPTQ/AWQ/FP8) that their tensors do not say.
struct QuantScheme {
  int bits = 4;                  // GPTQ: 4 or 8
  int64_t group_size = 0;        // GPTQ/AWQ: input features per scale (the layer's in: one group)
  bool zeros_plus_one = false;   // GPTQ's original ("v1") checkpoints store each zero point minus one
  int64_t fp8_block[2] = {0, 0}; // FP8 block-wise scales: [rows, cols] per scale (0: not blocks)
};

// One part of a fused layer (q, k, v; gate, up): its output rows. The parts' outputs are
// concatenated in order along the output features.
struct LinearPart {
  std::string name;    // the source tensor's name (errors, dummy-weight seeds)
  int64_t rows = 0;    // output features of this part
  Tensor weight;       // host (mmapped) source [rows, in]; empty with dummy weights
  Tensor bias;         // host source [rows], or empty
  // The layout of `weight`: parts may differ (GGUF mixes give v more bits than q and k).
  WeightFormat format = WeightFormat::Dense;
  // Format-specific companions (GPTQ scales/qzeros/g_idx, FP8 scales...); empty for Dense.
  std::vector<Tensor> extra;
  QuantScheme quant;
  // Grouped experts (LinearSpec::num_experts > 0): expert e's weight [rows, in] in `format`,
  // in place of `weight` (checkpoints store one tensor per expert, GGUF slices of one); GPTQ,
  // AWQ and FP8 ones are their checkpoint tensors (qweight, E4M3), with `expert_extra`. The
  // backend keeps them at load as one weight of the layer, expert after expert.
  std::vector<Tensor> experts;
  // GPTQ/AWQ/FP8 experts: expert e's companions (what `extra` holds for a plain part).
  std::vector<std::vector<Tensor>> expert_extra;
};

// Expert e of a grouped part as a plain part of its own (its weight, companions and scheme;
// named "<part>.experts.<e>", which seeds dummy weights), for the per-layer packing functions.
LinearPart expert_part(const LinearPart& p, int64_t e);

struct LinearSpec {
  std::string name;  // the layer, for messages ("model.layers.3.mlp.gate_up")
  int64_t in_features = 0;
  std::vector<LinearPart> parts;
  // Grouped experts (MoE): num_experts weights of the same parts (LinearPart::experts), run
  // by Backend::moe_ffn for the tokens a router sends to each. 0: a plain layer.
  int32_t num_experts = 0;
  LinearShard shard;
  // Fill with random values of this dtype instead of reading `weight` (benchmarks of real
  // shapes without the files; see models' dummy weights).
  std::optional<DType> dummy;
  // The activations' dtype the model runs this layer in, where the backend may choose (a GPU's
  // quantized kernels take F16 or BF16; dense weights are stored in it). Unset: BF16.
  std::optional<DType> activations;

  int64_t out_features() const {
    int64_t n = 0;
    for (const LinearPart& p : parts) n += p.rows;
    return n;
  }
};

// What Backend::linear does with x @ W^T (+ bias).
enum class LinearEpilogue : uint8_t {
  Store,       // out = x W^T + b
  Accumulate,  // out += x W^T + b (a projection added to the residual stream)
  SiluMul,     // two equal parts (gate, up): out = silu(x W_gate^T) * (x W_up^T), [M, rows]
};

class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  std::string name;
  int64_t in_features = 0, out_features = 0;
  std::vector<int64_t> part_rows;
  DType dtype = DType::F32;  // of the stored values (Dense)
  bool has_bias = false;
  size_t stored_bytes = 0;   // the weight as the backend keeps it (what a matmul reads)
};

// Checks what every backend needs of a spec (non-empty parts, source shapes and dtypes, block
// weights as whole raw blocks; GPTQ/AWQ/FP8 sources are checked as they are packed) and
// refuses, with a message naming the layer, what this build cannot run yet: shards, experts
// (unless `experts`: a backend with Backend::moe_ffn; then dense, GGUF block, GPTQ, AWQ or FP8
// experts without biases). Throws ferrum::Error.
void check_linear_spec(const LinearSpec& spec, bool experts = false);

}  // namespace ferrum
