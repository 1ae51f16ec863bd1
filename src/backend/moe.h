// A mixture-of-experts feed-forward block (Qwen2-MoE, Qwen3-MoE) as Backend::moe_ffn runs it.
// The weights are backend-owned LinearWeights; this names their roles.
#pragma once
#include <cstdint>

#include "backend/linear.h"

namespace ferrum {

struct MoeRouting {
  int32_t top_k = 0;            // experts per token
  bool norm_topk_prob = false;  // renormalize the top-k probabilities to sum 1
};

struct MoeWeights {
  const LinearWeight* router = nullptr;   // [E, H]: one logit per expert
  const LinearWeight* gate_up = nullptr;  // grouped (E experts): gate, up [I, H] each
  const LinearWeight* down = nullptr;     // grouped: [H, I] each
  // Qwen2-MoE's shared expert, run on every token: a SwiGLU MLP whose output is scaled by
  // sigmoid(x . shared_gate) ([1, H]). All null without one.
  const LinearWeight* shared_gate_up = nullptr;
  const LinearWeight* shared_down = nullptr;
  const LinearWeight* shared_gate = nullptr;
  MoeRouting routing;
};

}  // namespace ferrum
