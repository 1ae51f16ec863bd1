// The host side of the CPU's MoE block (CpuBackend::moe_ffn): routing as transformers does it,
// tokens grouped by expert, and the weighted sums of the experts' outputs.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/cpu/cpu_kernels.h"

namespace ferrum::cpu {

void moe_route(const Tensor& logits, int32_t top_k, bool renormalize, MoeRoutes& out) {
  const int64_t T = logits.rows(), E = logits.cols();
  FERRUM_CHECK(logits.dtype == DType::F32 && top_k >= 1 && top_k <= E, "moe_route: top {} of {} {} logits", top_k, E,
               dtype_name(logits.dtype));
  out.top_k = top_k;
  out.expert.resize(static_cast<size_t>(T * top_k));
  out.weight.resize(static_cast<size_t>(T * top_k));
  std::vector<float> p(static_cast<size_t>(E));
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    // Softmax in F32 (torch's softmax(dtype=float)), then the top k of the probabilities: two
    // logits may round to one probability, and then the lower expert wins, as in torch.topk.
    const float* l = logits.ptr<float>() + t * E;
    const float m = *std::max_element(l, l + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += p[e] = std::exp(l[e] - m);
    for (int64_t e = 0; e < E; ++e) p[e] = static_cast<float>(p[e] / sum);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float chosen = 0;
    for (int32_t j = 0; j < top_k; ++j) chosen += p[order[j]];
    for (int32_t j = 0; j < top_k; ++j) {
      out.expert[t * top_k + j] = order[j];
      out.weight[t * top_k + j] = renormalize ? p[order[j]] / chosen : p[order[j]];
    }
  }
}

void group_by_expert(const MoeRoutes& routes, int64_t num_experts, ExpertGroups& out) {
  const size_t n = routes.expert.size();
  out.start.assign(static_cast<size_t>(num_experts + 1), 0);
  for (int32_t e : routes.expert) {
    FERRUM_CHECK(e >= 0 && e < num_experts, "group_by_expert: expert {} of {}", e, num_experts);
    ++out.start[e + 1];
  }
  std::partial_sum(out.start.begin(), out.start.end(), out.start.begin());
  out.token.resize(n);
  out.weight.resize(n);
  std::vector<int32_t> fill(out.start.begin(), out.start.end() - 1);
  for (size_t i = 0; i < n; ++i) {  // token order within an expert
    const int32_t at = fill[routes.expert[i]]++;
    out.token[at] = static_cast<int32_t>(i / routes.top_k);
    out.weight[at] = routes.weight[i];
  }
}

void add_scaled_rows(const Tensor& y, const int32_t* rows, const float* scales, Tensor& out) {
  const int64_t n = y.rows(), D = y.cols();
  FERRUM_CHECK(out.cols() == D && y.dtype == DType::F32 && out.dtype == DType::F32, "add_scaled_rows: {} into {}",
               y.shape_str(), out.shape_str());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows ? rows[i] : i;
    FERRUM_CHECK(r >= 0 && r < out.rows(), "add_scaled_rows: row {} of {}", r, out.rows());
    const float* src = y.ptr<float>() + i * D;
    float* dst = out.ptr<float>() + r * D;
    const float s = scales[i];
    for (int64_t d = 0; d < D; ++d) dst[d] += src[d] * s;
  }
}

}  // namespace ferrum::cpu
