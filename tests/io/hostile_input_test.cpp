// Regression tests for inputs found by fuzzing (fuzz/) or by reviewing the parsers for it: each
// one is also in fuzz/seeds so that the fuzzers start from it.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/mapped_files.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace ferrum {
namespace {

std::string config_with(const std::string& extra) {
  return R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32,
             "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
             "num_attention_heads": 2)" + extra + "}";
}

// fuzz_model_config: a huge float where an integer belongs was cast to int64_t (undefined
// behaviour, UBSan); it is now an error naming the key.
TEST(HostileInput, ConfigIntegerOutOfRangeIsAnError) {
  try {
    ModelConfig::from_json_text(config_with(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "original_max_position_embeddings": 818888888888888888888888888888888888892})"));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("original_max_position_embeddings"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ModelConfig::from_json_text(config_with(R"(, "max_position_embeddings": 1e300)")), Error);
  EXPECT_THROW(ModelConfig::from_json_text(config_with(R"(, "max_position_embeddings": 1.5)")), Error);
  EXPECT_THROW(ModelConfig::from_json_text(config_with(R"(, "bos_token_id": 4294967296)")), Error);
  EXPECT_THROW(ModelConfig::from_json_text(config_with(R"(, "eos_token_id": [1, -4294967296])")), Error);
}

TEST(HostileInput, ConfigIntegralFloatsStillRead) {
  const ModelConfig c = ModelConfig::from_json_text(config_with(R"(, "max_position_embeddings": 2048.0)"));
  EXPECT_EQ(c.max_position_embeddings, 2048);
}

// fuzz_safetensors: a data offset of 1e59 (a float) was cast to uint64_t (undefined behaviour);
// offsets and dimensions must be non-negative integers.
TEST(HostileInput, SafetensorsNonIntegerOffsetsAreErrors) {
  for (const std::string bad : {"[0, 1e59]", "[-1, 4]", "[0.5, 4]", "[0, \"4\"]"}) {
    const std::string header = R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": )" + bad + "}}";
    std::vector<uint8_t> image(8 + header.size() + 4);
    const uint64_t n = header.size();
    std::memcpy(image.data(), &n, 8);
    std::memcpy(image.data() + 8, header.data(), header.size());
    EXPECT_THROW(WeightStore::parse(image.data(), image.size(), "bad.safetensors"), Error) << bad;
  }
  const std::string header = R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 4]}})";
  std::vector<uint8_t> image(8 + header.size() + 4);
  const uint64_t n = header.size();
  std::memcpy(image.data(), &n, 8);
  std::memcpy(image.data() + 8, header.data(), header.size());
  EXPECT_THROW(WeightStore::parse(image.data(), image.size(), "bad.safetensors"), Error);
}

// A shape whose element count wraps past 2^64 (here to 0) matched an empty data range: a
// tensor of 2^64 elements over no bytes. Found reviewing the header parser for fuzzing.
TEST(HostileInput, SafetensorsWrappedElementCountIsAnError) {
  const std::string header = R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})";
  std::vector<uint8_t> image(8 + header.size());
  const uint64_t n = header.size();
  std::memcpy(image.data(), &n, 8);
  std::memcpy(image.data() + 8, header.data(), header.size());
  try {
    WeightStore::parse(image.data(), image.size(), "wrapped.safetensors");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
}

void report_and_exit(int, siginfo_t* info, void*) {
  report_mapped_file_fault(info->si_addr, STDERR_FILENO);
  _exit(3);
}

// A weights file truncated while mapped: reading past its new end is a SIGBUS, which the crash
// handler (src/cli/crash_handler.cpp) reports through report_mapped_file_fault, naming the file.
TEST(HostileInputDeathTest, TruncatedMappedFileIsNamed) {
  const std::string path = (std::filesystem::temp_directory_path() / ("ferrum_trunc_" + std::to_string(getpid()))).string();
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string(3 * 4096, 'w');
  }
  EXPECT_EXIT(
      {
        MappedFile file(path);
        std::filesystem::resize_file(path, 100);
        struct sigaction sa {};
        sa.sa_sigaction = report_and_exit;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGBUS, &sa, nullptr);
        volatile uint8_t b = file.data()[2 * 4096 + 5];
        (void)b;
        std::_Exit(0);
      },
      testing::ExitedWithCode(3), "ferrum_trunc_.*was truncated or replaced.*byte 8197 of 12288");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ferrum
