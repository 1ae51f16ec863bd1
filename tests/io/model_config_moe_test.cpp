// config.json's mixture-of-experts fields: which layers are sparse (as transformers decides),
// transformers' defaults for absent fields, and clear refusals.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "io/model_config.h"

namespace ferrum {
namespace {

std::string config(const std::string& model_type, const std::string& moe_fields) {
  return R"({"model_type":")" + model_type +
         R"(","vocab_size":10,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":6,
             "num_attention_heads":4)" +
         (moe_fields.empty() ? "" : "," + moe_fields) + "}";
}

TEST(MoeConfig, SparseLayersFollowMlpOnlyLayersAndTheSparseStep) {
  const ModelConfig c = ModelConfig::from_json_text(config(
      "qwen3_moe", R"("num_experts":8,"num_experts_per_tok":2,"moe_intermediate_size":32,"norm_topk_prob":true,
                     "decoder_sparse_step":2,"mlp_only_layers":[3],"router_aux_loss_coef":0.001)"));
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_EQ(c.moe.experts_per_token, 2);
  EXPECT_EQ(c.moe.intermediate_size, 32);
  EXPECT_TRUE(c.moe.norm_topk_prob);
  std::string sparse;
  for (int64_t l = 0; l < 6; ++l) sparse += c.moe.sparse_layer(l) ? 'S' : 'D';
  EXPECT_EQ(sparse, "DSDDDS");  // (l + 1) % 2 == 0, except layer 3
  // transformers 5 writes it as num_local_experts.
  EXPECT_EQ(ModelConfig::from_json_text(config("qwen3_moe", R"("num_local_experts":16)")).moe.num_experts, 16);
}

TEST(MoeConfig, AbsentFieldsTakeTransformersDefaults) {
  const ModelConfig q3 = ModelConfig::from_json_text(config("qwen3_moe", ""));
  EXPECT_EQ(q3.moe.num_experts, 128);
  EXPECT_EQ(q3.moe.experts_per_token, 8);
  EXPECT_EQ(q3.moe.intermediate_size, 768);
  EXPECT_FALSE(q3.moe.norm_topk_prob);
  EXPECT_FALSE(q3.attention_bias);
  const ModelConfig q2 = ModelConfig::from_json_text(config("qwen2_moe", ""));
  EXPECT_EQ(q2.moe.num_experts, 60);
  EXPECT_EQ(q2.moe.experts_per_token, 4);
  EXPECT_EQ(q2.moe.shared_expert_intermediate_size, 5632);
  EXPECT_TRUE(q2.attention_bias);  // qkv_bias defaults to true
  EXPECT_FALSE(ModelConfig::from_json_text(config("qwen2_moe", R"("qkv_bias":false)")).attention_bias);
  const ModelConfig dense = ModelConfig::from_json_text(config("llama", ""));
  EXPECT_EQ(dense.moe.num_experts, 0);
  EXPECT_FALSE(dense.moe.sparse_layer(0));
}

TEST(MoeConfig, BadFieldsAreRefusedByName) {
  auto error = [](const std::string& fields) {
    try {
      ModelConfig::from_json_text(config("qwen3_moe", fields));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(R"("num_experts":4,"num_experts_per_tok":5)").find("num_experts_per_tok"), std::string::npos);
  EXPECT_NE(error(R"("decoder_sparse_step":0)").find("decoder_sparse_step"), std::string::npos);
  EXPECT_NE(error(R"("mlp_only_layers":"1")").find("mlp_only_layers"), std::string::npos);
  EXPECT_NE(error(R"("moe_intermediate_size":-1)").find("moe_intermediate_size"), std::string::npos);
}

}  // namespace
}  // namespace ferrum
