// --kv-cache-dtype: vLLM's values are parsed (auto, fp8, fp8_e4m3) and others refused by name;
// the CPU, whose KV cache is exact F32, refuses fp8 at load with a message that says what to do
// instead of ignoring it; on a GPU an fp8 cache is E4M3 and a KV block takes half the bytes of
// the bf16 cache's (so the same memory holds twice the tokens).
#include <gtest/gtest.h>

#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "models/model.h"

namespace ferrum {
namespace {

const std::string kTinyDir = std::string(FERRUM_SOURCE_DIR) + "/models/ferrum-tiny";

TEST(KvCacheDtype, ParsesVllmsValues) {
  EXPECT_EQ(parse_kv_cache_dtype("auto"), KvCacheDtype::Auto);
  EXPECT_EQ(parse_kv_cache_dtype(""), KvCacheDtype::Auto);
  EXPECT_EQ(parse_kv_cache_dtype("fp8"), KvCacheDtype::Fp8E4M3);
  EXPECT_EQ(parse_kv_cache_dtype("fp8_e4m3"), KvCacheDtype::Fp8E4M3);
}

TEST(KvCacheDtype, RefusesOtherValuesByName) {
  for (const char* v : {"fp8_e5m2", "FP8", "bf16", "int8"}) {
    try {
      parse_kv_cache_dtype(v);
      ADD_FAILURE() << v << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("--kv-cache-dtype '") + v + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("fp8_e4m3"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(load_model(kTinyDir, 1, "cpu", "", "fp16"), Error);
}

TEST(KvCacheDtype, Fp8IsRefusedOnTheCpuAtLoad) {
  for (const char* v : {"fp8", "fp8_e4m3"}) {
    try {
      load_model(kTinyDir, 1, "cpu", "", v);
      ADD_FAILURE() << "--kv-cache-dtype " << v << " was accepted on the CPU";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("--kv-cache-dtype fp8 is not supported on cpu"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--device cuda"), std::string::npos) << msg;
    }
  }
  // The same for a model with random weights (ferrum bench --dummy, ferrum serve --dummy).
  EXPECT_THROW(load_model_dummy(kTinyDir, "bf16", 1, "cpu", "", "fp8"), Error);
}

TEST(KvCacheDtype, AutoKeepsTheCpusF32Cache) {
  auto model = load_model(kTinyDir, 1, "cpu", "", "auto");
  EXPECT_EQ(model->kv_cache_dtype(), DType::F32);
  const ModelConfig& c = model->config();
  EXPECT_EQ(model->kv_bytes_per_block(16),
            static_cast<size_t>(c.num_hidden_layers * 2 * 16 * c.num_key_value_heads * c.head_dim * 4));
}

TEST(KvCacheDtype, CudaFp8CacheHasHalfTheBytesPerBlock) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto bf16 = load_model(kTinyDir, 1, "cuda");
  auto fp8 = load_model(kTinyDir, 1, "cuda", "", "fp8");
  EXPECT_EQ(bf16->kv_cache_dtype(), DType::BF16);
  EXPECT_EQ(fp8->kv_cache_dtype(), DType::F8E4M3);
  EXPECT_EQ(2 * fp8->kv_bytes_per_block(16), bf16->kv_bytes_per_block(16));
}

}  // namespace
}  // namespace ferrum
