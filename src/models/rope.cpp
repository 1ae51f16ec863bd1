#include "models/rope.h"

#include <cmath>

#include "core/error.h"

namespace ferrum {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.head_dim;
  std::vector<float> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
    const float p = static_cast<float>(std::pow(c.rope_theta, static_cast<double>(expo)));
    inv[i] = 1.0f / p;  // float32 steps, as torch computes it
  }
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "freq_factors") {
    FERRUM_CHECK(r.freq_factors.size() == inv.size(), "RoPE: {} frequency factors for {} frequencies",
                 r.freq_factors.size(), inv.size());
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= r.freq_factors[i];
  } else if (r.type == "linear") {
    for (auto& f : inv) f = static_cast<float>(f / r.factor);
  } else if (r.type == "llama3") {
    const double old_len = static_cast<double>(r.original_max_position_embeddings);
    const double low_wavelen = old_len / r.low_freq_factor;
    const double high_wavelen = old_len / r.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      double scaled = wavelen > low_wavelen ? f / r.factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const double smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        scaled = (1.0 - smooth) * scaled / r.factor + smooth * scaled;
      }
      f = static_cast<float>(scaled);
    }
  }
  return inv;
}

RopeTable make_rope_table(Backend& backend, const ModelConfig& c, int64_t max_positions) {
  const std::vector<float> inv = rope_inv_freq(c);
  const int64_t half = static_cast<int64_t>(inv.size());
  std::vector<float> cos(max_positions * half), sin(max_positions * half);
  for (int64_t p = 0; p < max_positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * inv[i];  // float32 product, as torch
      cos[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  RopeTable t;
  t.max_positions = max_positions;
  t.rotary_dim = c.head_dim;
  t.cos = backend.alloc({max_positions, half}, DType::F32);
  t.sin = backend.alloc({max_positions, half}, DType::F32);
  backend.copy_from_host(t.cos, cos.data(), cos.size() * 4);
  backend.copy_from_host(t.sin, sin.data(), sin.size() * 4);
  return t;
}

}  // namespace ferrum
