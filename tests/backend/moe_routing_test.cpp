// The CPU's MoE routing (cpu_moe.cpp) against transformers' semantics: softmax in F32, the top
// k with ties going to the lower expert (torch.topk), renormalization, and tokens grouped by
// expert in token order. moe_ffn as a whole is in the op harness.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_kernels.h"

namespace ferrum {
namespace {

Tensor logits_tensor(std::vector<float>& v, int64_t rows) {
  Tensor t;
  t.data = v.data();
  t.dtype = DType::F32;
  t.ndim = 2;
  t.shape = {rows, static_cast<int64_t>(v.size()) / rows, 0, 0};
  return t;
}

TEST(MoeRouting, TiesGoToTheLowerExpert) {
  std::vector<float> l = {1.0f, 3.0f, 0.0f, 3.0f, 3.0f,  // three-way tie for first
                          5.0f, 5.0f, 5.0f, 5.0f, 5.0f};
  cpu::MoeRoutes r;
  cpu::moe_route(logits_tensor(l, 2), 2, false, r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 3, 0, 1}));
  EXPECT_FLOAT_EQ(r.weight[2], 0.2f);
  cpu::moe_route(logits_tensor(l, 2), 2, true, r);
  for (float w : r.weight) EXPECT_FLOAT_EQ(w, 0.5f);
}

TEST(MoeRouting, SoftmaxTopKAndRenormalization) {
  std::vector<float> l = {0.5f, -1.0f, 2.0f, 0.25f, 1.5f, -3.0f};
  double sum = 0;
  for (float v : l) sum += std::exp(static_cast<double>(v));
  cpu::MoeRoutes r;
  cpu::moe_route(logits_tensor(l, 1), 3, false, r);
  ASSERT_EQ(r.expert, (std::vector<int32_t>{2, 4, 0}));
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(r.weight[j], std::exp(l[r.expert[j]]) / sum, 1e-7);
  cpu::moe_route(logits_tensor(l, 1), 3, true, r);
  const double chosen = std::exp(2.0) + std::exp(1.5) + std::exp(0.5);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(r.weight[j], std::exp(l[r.expert[j]]) / chosen, 1e-7);
}

TEST(MoeRouting, GroupsTokensByExpertInTokenOrder) {
  cpu::MoeRoutes r;
  r.top_k = 2;
  r.expert = {3, 0, 0, 3, 1, 3};  // tokens 0, 1, 2
  r.weight = {0.6f, 0.4f, 0.7f, 0.3f, 0.9f, 0.1f};
  cpu::ExpertGroups g;
  cpu::group_by_expert(r, 4, g);
  EXPECT_EQ(g.start, (std::vector<int32_t>{0, 2, 3, 3, 6}));
  EXPECT_EQ(g.token, (std::vector<int32_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(g.weight, (std::vector<float>{0.4f, 0.7f, 0.9f, 0.6f, 0.3f, 0.1f}));
  r.expert[0] = 4;
  EXPECT_THROW(cpu::group_by_expert(r, 4, g), Error);
}

}  // namespace
}  // namespace ferrum
