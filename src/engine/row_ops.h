// Kernels over one vocabulary-sized logits row, for the sampler: AVX2 where the build has it
// (x86-64-v3 is ferrum's baseline), plain loops elsewhere.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ferrum::row_ops {

// Multiplies x by `scale` (skipped when 1) and returns the maximum (-inf if there is none).
float scale_and_max(float* x, size_t n, float scale);

// w[i] = exp(x[i] - shift) for x[i] - shift >= -87, else 0 (so -inf and NaN logits weigh
// nothing); returns the sum of w. Relative error of each weight < 4e-7 (a few ulp).
double exp_shifted(const float* x, float* w, size_t n, float shift);

// The first index of the maximum, as torch.argmax (NaN never wins over a number).
int32_t argmax(const float* x, size_t n);

}  // namespace ferrum::row_ops
