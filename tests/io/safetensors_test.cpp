// Corrupt or truncated safetensors files and bad config.json give clear errors, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "scoped_temp_dir.h"

namespace ferrum {
namespace {
namespace fs = std::filesystem;

std::string temp_dir() {
  static const test::ScopedTempDir dir("ferrum_io_test_");
  return dir.path().string();
}

std::string write_st(const std::string& name, const std::string& header, size_t data_bytes, int64_t header_len_override = -1) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header_len_override >= 0 ? static_cast<uint64_t>(header_len_override) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  std::string data(data_bytes, '\x01');
  out << data;
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ReadsValidFile) {
  auto p = write_st("ok.safetensors",
                    R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"__metadata__":{"format":"pt"}})",
                    32);
  auto ws = WeightStore::open_file(p);
  EXPECT_EQ(ws.get("a").shape_str(), "[2, 3]");
  EXPECT_EQ(ws.get("b").dtype, DType::BF16);
  EXPECT_EQ(ws.total_bytes(), 32u);
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  EXPECT_NE(error_of([] { WeightStore::open_file(write_st("short", "", 0, 0).substr(0) + "x"); }).find("cannot open"), std::string::npos);
  {
    const std::string path = temp_dir() + "/tiny";
    std::ofstream(path) << "abc";
    EXPECT_NE(error_of([&] { WeightStore::open_file(path); }).find("truncated"), std::string::npos);
  }
  EXPECT_NE(error_of([] { WeightStore::open_file(write_st("hl", "{}", 0, 1 << 30)); }).find("runs past the end"), std::string::npos);
  EXPECT_NE(error_of([] { WeightStore::open_file(write_st("json", "{not json", 0)); }).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([] {
              WeightStore::open_file(write_st("range", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4));
            }).find("outside the data section"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              WeightStore::open_file(write_st("size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8));
            }).find("expected"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              WeightStore::open_file(write_st(
                  "overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
            }).find("overlap"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              WeightStore::open_file(write_st("dtype", R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", 8));
            }).find("unsupported tensor dtype"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              WeightStore::open_file(write_st("shape", R"({"a":{"dtype":"F32","shape":"x","data_offsets":[0,8]}})", 8));
            }).find("malformed"),
            std::string::npos);
  auto ws = WeightStore::open_file(write_st("ok2", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(error_of([&] { ws.get("missing.weight"); }).find("missing tensor 'missing.weight'"), std::string::npos);
}

TEST(ModelConfig, ParsesBothRopeFormats) {
  auto old_fmt = ModelConfig::from_json_text(R"({"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":64,
    "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"rope_theta":500000.0,
    "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
    "eos_token_id":[1,2]})");
  EXPECT_EQ(old_fmt.head_dim, 16);
  EXPECT_EQ(old_fmt.num_key_value_heads, 4);
  EXPECT_EQ(old_fmt.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(old_fmt.rope_theta, 500000.0);
  EXPECT_EQ(old_fmt.eos_token_ids, (std::vector<int32_t>{1, 2}));
  auto new_fmt = ModelConfig::from_json_text(R"({"vocab_size":10,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
    "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"rope_parameters":{"rope_theta":1000.0,"rope_type":"linear","factor":2.0}})");
  EXPECT_EQ(new_fmt.head_dim, 32);
  EXPECT_EQ(new_fmt.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(new_fmt.rope_theta, 1000.0);
}

TEST(ModelConfig, MistralSlidingWindowCapsTheContext) {
  const std::string base = R"({"vocab_size":10,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
    "num_attention_heads":4,"max_position_embeddings":32768,)";
  EXPECT_EQ(ModelConfig::from_json_text(base + R"("sliding_window":4096})").max_position_embeddings, 4096);
  EXPECT_EQ(ModelConfig::from_json_text(base + R"("sliding_window":null})").max_position_embeddings, 32768);
  // Qwen2-style: the window is off unless use_sliding_window says so.
  EXPECT_EQ(ModelConfig::from_json_text(base + R"("sliding_window":4096,"use_sliding_window":false})").max_position_embeddings,
            32768);
}

TEST(ModelConfig, RejectsBadConfigs) {
  EXPECT_NE(error_of([] { ModelConfig::from_json_text("{"); }).find("invalid JSON"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json_text(R"({"vocab_size":"x"})"); }).find("wrong type"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json_text(R"({"vocab_size":10})"); }).find("hidden_size"), std::string::npos);
  EXPECT_NE(error_of([] {
              ModelConfig::from_json_text(R"({"vocab_size":10,"hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,
                "num_attention_heads":4,"num_key_value_heads":3})");
            }).find("multiple of num_key_value_heads"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ModelConfig::from_json_text(R"({"vocab_size":10,"hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,
                "num_attention_heads":4,"rope_scaling":{"type":"yarn","factor":4}})");
            }).find("not supported"),
            std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_dir("/nonexistent/model"); }).find("does not exist"), std::string::npos);
}

}  // namespace
}  // namespace ferrum
