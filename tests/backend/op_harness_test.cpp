// The op harness's table on every backend this machine has (the CPU always; CUDA where
// cuda_available()), the refusal of malformed quantized weights, and the dummy-weight
// pattern's bits across backends. FERRUM_OP_FILTER=substring runs only the matching cases.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "op_harness.h"

namespace ferrum {
namespace {

using op_harness::CaseOutcome;

void expect_every_case_passes(Backend& be) {
  const char* filter = std::getenv("FERRUM_OP_FILTER");
  const std::vector<CaseOutcome> outcomes =
      op_harness::run_cases(be, op_harness::correctness_cases(), filter ? filter : "");
  int passed = 0;
  for (const CaseOutcome& o : outcomes) {
    if (o.status == CaseOutcome::Status::Failed) ADD_FAILURE() << o.name << " on " << be.name() << ": " << o.message;
    // The CPU is every weight format's reference: it runs every linear case.
    if (be.device() == Device::CPU && o.status == CaseOutcome::Status::Skipped && o.name.rfind("linear", 0) == 0)
      ADD_FAILURE() << o.name << " was skipped on the CPU: " << o.message;
    passed += o.status == CaseOutcome::Status::Passed;
  }
  EXPECT_GT(passed, 0) << "no case ran";
}

// The MoE cases on a CUDA backend made with `variable` set to "0" (read as a backend is made).
void cuda_moe_cases_with_off(const char* variable) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  const char* was = std::getenv(variable);
  const std::string saved = was ? was : "";
  setenv(variable, "0", 1);
  auto be = make_cuda_backend(0);
  if (was) setenv(variable, saved.c_str(), 1);
  else unsetenv(variable);
  const std::vector<CaseOutcome> outcomes = op_harness::run_cases(*be, op_harness::correctness_cases(), "moe_ffn");
  int passed = 0;
  for (const CaseOutcome& o : outcomes) {
    if (o.status == CaseOutcome::Status::Failed) ADD_FAILURE() << o.name << ": " << o.message;
    passed += o.status == CaseOutcome::Status::Passed;
  }
  EXPECT_GT(passed, 0) << "no MoE case ran";
}

// The MoE cases with the int8-x GEMV off (FERRUM_MOE_Q8=0): the cases of up to 128 routes that
// CudaMatchesReference runs through it take the grouped tensor-core kernels here (decode blocks
// split over K, silu(gate) * up in the partials' sum).
TEST(BackendOps, CudaMoeTensorCoreExpertsMatchReference) { cuda_moe_cases_with_off("FERRUM_MOE_Q8"); }

// The MoE cases with the int8-x GEMV's routes unpaired (FERRUM_MOE_Q8_PAIRS=0): a route per
// row of blocks, as at one token.
TEST(BackendOps, CudaMoeUnpairedRoutesMatchReference) { cuda_moe_cases_with_off("FERRUM_MOE_Q8_PAIRS"); }

// The BF16 prefill GEMM (AVX512-BF16 where present, else its portable form) on every linear
// case, dense and GGUF blocks, and the MoE blocks, within bf16 rounding of the float64 reference.
TEST(BackendOps, CpuBf16GemmMatchesReference) {
  const bool was = cpu::bf16_gemm_enabled();
  cpu::set_bf16_gemm(true);
  auto be = make_cpu_backend(0);
  std::vector<CaseOutcome> outcomes = op_harness::run_cases(*be, op_harness::correctness_cases(), "linear");
  for (CaseOutcome& o : op_harness::run_cases(*be, op_harness::correctness_cases(), "moe_ffn"))
    outcomes.push_back(std::move(o));  // experts on more than 16 rows take the GEMM too
  int passed = 0;
  for (const CaseOutcome& o : outcomes) {
    if (o.status == CaseOutcome::Status::Failed) ADD_FAILURE() << o.name << ": " << o.message;
    passed += o.status == CaseOutcome::Status::Passed && o.name.find("M=130") != std::string::npos;
  }
  EXPECT_GT(passed, 0) << "no case of more than 16 rows ran";
  cpu::set_bf16_gemm(was);
}

// Every row-dot kernel of the GGUF block matmuls this processor has (the default takes the
// best; the others serve processors without it), on every GGUF linear and MoE case.
TEST(BackendOps, CpuBlockDotKernelsMatchReference) {
  auto be = make_cpu_backend(0);
  int kernels = 0;
  for (const char* kernel : {"avx2", "vnni", "avx512", "portable"}) {
    if (!cpu::set_block_dot_kernel(kernel)) continue;
    ++kernels;
    std::vector<CaseOutcome> outcomes = op_harness::run_cases(*be, op_harness::correctness_cases(), "GGUF");
    int passed = 0;
    for (const CaseOutcome& o : outcomes) {
      if (o.status == CaseOutcome::Status::Failed) ADD_FAILURE() << o.name << " with " << kernel << ": " << o.message;
      passed += o.status == CaseOutcome::Status::Passed;
    }
    EXPECT_GT(passed, 20) << kernel;
  }
  EXPECT_GT(kernels, 0);
  cpu::set_block_dot_kernel("best");
}

TEST(BackendOps, CpuMatchesReference) {
  auto be = make_cpu_backend(0);
  expect_every_case_passes(*be);
}

TEST(BackendOps, CudaMatchesReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto be = make_cuda_backend(0);
  expect_every_case_passes(*be);
}

// The E4M3 (FP8) KV cache of --kv-cache-dtype fp8 on a GPU: the KV write (rounding, saturation,
// scales, skipped slots) and decode, mixed and prefill attention over it (the CUDA-core and
// tensor-core kernels, split keys, graph-padded tables), for f32, f16 and bf16 activations;
// none may be skipped there. (CudaMatchesReference runs them too, among the rest.)
TEST(BackendOps, CudaFp8KvCacheMatchesReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto be = make_cuda_backend(0);
  int passed = 0;
  for (const CaseOutcome& o : op_harness::run_cases(*be, op_harness::correctness_cases(), "kv-cache f8_e4m3")) {
    if (o.status != CaseOutcome::Status::Passed) ADD_FAILURE() << o.name << ": " << o.message;
    passed += o.status == CaseOutcome::Status::Passed;
  }
  EXPECT_GE(passed, 39);  // every case with an E4M3 cache (42 ran and passed on an H200), none skipped
}

// The CPU keeps an exact F32 cache: it takes no E4M3 cache, and its harness skips those cases
// (visibly) instead of running them wrongly.
TEST(BackendOps, CpuRefusesAnFp8KvCache) {
  auto be = make_cpu_backend(1);
  EXPECT_TRUE(be->supports_kv_cache(DType::F32, DType::F32));
  EXPECT_FALSE(be->supports_kv_cache(DType::F8E4M3, DType::F32));
  const std::vector<CaseOutcome> outcomes =
      op_harness::run_cases(*be, op_harness::correctness_cases(), "f32 T=4 Hq=8 Hk=1 D=64 2 slots -1 kv-cache f8_e4m3");
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].status, CaseOutcome::Status::Skipped);
  EXPECT_NE(outcomes[0].message.find("F8_E4M3"), std::string::npos) << outcomes[0].message;
}

// Weights that are not what their format says are refused at load, naming the layer and the
// format: GGUF formats need their raw blocks (checked before any backend sees them), GPTQ and
// AWQ their qweight/qzeros/scales (checked as they are repacked).
TEST(BackendOps, MalformedQuantizedWeightsAreRefusedAtLoad) {
  auto cpu = make_cpu_backend(1);
  for (WeightFormat f : {WeightFormat::GgufQ8_0, WeightFormat::GgufQ4K, WeightFormat::GgufQ6K, WeightFormat::Gptq,
                         WeightFormat::Awq}) {
    LinearSpec spec;
    spec.name = "model.layers.0.mlp.down_proj";
    spec.in_features = 256;
    LinearPart part;
    part.format = f;
    part.name = spec.name;
    part.rows = 64;
    part.weight = cpu->random_tensor({64, 256}, DType::F16, 1, 0.0f, 0.05f);
    spec.parts.push_back(part);
    const bool gguf = gguf_block_values(f) != 0;
    EXPECT_EQ(cpu->supports_linear(f, DType::F16), !gguf) << weight_format_name(f);
    for (int via_backend = gguf ? 0 : 1; via_backend < 2; ++via_backend) {
      try {
        if (via_backend) cpu->load_linear(spec);
        else check_linear_spec(spec);
        ADD_FAILURE() << weight_format_name(f) << " weights were accepted";
      } catch (const Error& e) {
        EXPECT_NE(std::strstr(e.what(), weight_format_name(f)), nullptr) << e.what();
        EXPECT_NE(std::strstr(e.what(), spec.name.c_str()), nullptr) << e.what();
      }
    }
  }
}

TEST(BackendOps, DenseFloatWeightsAreSupported) {
  auto cpu = make_cpu_backend(1);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) EXPECT_TRUE(cpu->supports_linear(WeightFormat::Dense, dt));
  EXPECT_TRUE(cpu->supports_linear(WeightFormat::GgufQ8_0, DType::U8));
  EXPECT_TRUE(cpu->supports_linear(WeightFormat::GgufQ4_0, DType::U8));
  for (WeightFormat f : {WeightFormat::GgufQ4K, WeightFormat::GgufQ5K, WeightFormat::GgufQ6K})
    EXPECT_TRUE(cpu->supports_linear(f, DType::U8)) << weight_format_name(f);
  EXPECT_FALSE(cpu->supports_linear(WeightFormat::Dense, DType::I32));
}

// Dummy weights (benchmarks, and the harness's inputs) are the same bits on every backend.
TEST(BackendOps, DummyWeightsAreTheSameBits) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Tensor c = cpu->random_tensor({1000, 37}, dt, 12345, 0.0f, 0.05f);
    Tensor g = gpu->random_tensor({1000, 37}, dt, 12345, 0.0f, 0.05f);
    std::vector<uint8_t> gb(g.nbytes());
    gpu->copy_to_host(g, gb.data(), gb.size());
    EXPECT_EQ(0, std::memcmp(gb.data(), c.data, gb.size())) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace ferrum
