// Times each Backend op at Llama-3.1-8B shapes (hidden 4096, 32/8 heads of 128, MLP 14336,
// vocab 128256) with the op harness's cases (tests/backend/op_harness.h): where a step's time
// goes. Per op: rows, median time, GB/s (weights + activations moved) and, for linear layers,
// the share of the read bandwidth (measured on CUDA; --bandwidth on the CPU).
//   op_perf [--device cpu|cuda|cuda:N] [--rows 1,8,16,64,256] [--filter substring]
//           [--dtype f32|f16|bf16] [--format dense|gptq|awq|fp8|q8_0|q4_0|q4_k|q5_k|q6_k]
//           [--bandwidth GB/s] [--threads N]
// --format puts the layers' linear weights (not the output layer) in a quantized format:
// GPTQ/AWQ int4 in groups of 128 and per-row FP8 filled at random by the backend, GGUF blocks
// random. "of bw" counts the weights as their format stores them on disk.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "op_harness.h"

using namespace ferrum;

namespace {

struct Options {
  std::string device = cuda_available() ? "cuda" : "cpu";
  std::vector<int64_t> rows = {1, 8, 16, 64, 256};
  std::string filter, dtype, format = "dense";
  double bandwidth = 0;  // GB/s; 0: measured on CUDA, none on the CPU
  int threads = 0;
};

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  for (size_t at = 0; at < s.size();) {
    const size_t comma = std::min(s.find(',', at), s.size());
    v.push_back(std::stoll(s.substr(at, comma - at)));
    at = comma + 1;
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) fail("{}: expected a value (see the usage at the top of bench/op_perf.cpp)", arg);
    const std::string value = argv[++i];
    if (arg == "--device") o.device = value;
    else if (arg == "--rows") o.rows = parse_list(value);
    else if (arg == "--filter") o.filter = value;
    else if (arg == "--dtype") o.dtype = value;
    else if (arg == "--format") o.format = value;
    else if (arg == "--bandwidth") o.bandwidth = std::stod(value);
    else if (arg == "--threads") o.threads = std::stoi(value);
    else fail("unknown option {}", arg);
  }
  return o;
}

WeightFormat parse_format(const std::string& s) {
  static const std::pair<const char*, WeightFormat> kNames[] = {
      {"dense", WeightFormat::Dense}, {"gptq", WeightFormat::Gptq},     {"awq", WeightFormat::Awq},
      {"fp8", WeightFormat::Fp8},     {"q8_0", WeightFormat::GgufQ8_0},  {"q4_0", WeightFormat::GgufQ4_0},
      {"q4_k", WeightFormat::GgufQ4K}, {"q5_k", WeightFormat::GgufQ5K}, {"q6_k", WeightFormat::GgufQ6K}};
  for (const auto& [name, f] : kNames)
    if (s == name) return f;
  fail("--format {}: expected dense, gptq, awq, fp8, q8_0, q4_0, q4_k, q5_k or q6_k", s);
}

DType parse_dtype(const std::string& s, bool cuda) {
  if (s.empty()) return cuda ? DType::BF16 : DType::F32;
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  fail("--dtype {}: expected f32, f16 or bf16", s);
}

constexpr double kRotateBytes = 160e6;  // weights rotated per timed op: over 3x a 50 MB L2

// Median time of one run in microseconds, after a warm-up (first-launch costs, cuBLAS's
// choice of kernel). Each sample times `per_sample` runs between synchronizations. On a device
// with graphs they are recorded as one graph and replayed, as a model's step runs them: the
// time is the kernels', without the host's launch cost (ops that cannot be recorded are timed
// as launched).
double median_us(Backend& be, const std::function<void()>& run, int samples, int per_sample) {
  for (int i = 0; i < 2; ++i) run();
  be.synchronize();
  std::shared_ptr<void> graph;
  if (be.supports_graphs()) {
    be.begin_capture();
    try {
      for (int i = 0; i < per_sample; ++i) run();
      graph = be.end_capture();
    } catch (const std::exception&) {  // an op that cannot be recorded (a prefill): timed as launched
      be.abort_capture();
    }
  }
  std::vector<double> us;
  for (int s = 0; s < samples; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    if (graph) be.replay(graph);
    else
      for (int i = 0; i < per_sample; ++i) run();
    be.synchronize();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / per_sample);
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  auto be = make_backend(o.device, o.threads);
  const bool cuda = be->device() == Device::CUDA;
  const DType weights = parse_dtype(o.dtype, cuda);
  const WeightFormat format = parse_format(o.format);
  // Quantized layers take a 16-bit model's activations (F32 on the CPU).
  const DType act = be->activation_dtype(format == WeightFormat::Dense ? weights : DType::BF16);
  const double bandwidth = o.bandwidth > 0 ? o.bandwidth : (cuda ? cuda_read_bandwidth_gbs(cuda_device_index(o.device)) : 0);
  std::printf("%s: weights %s (layers: %s), activations %s, read bandwidth %s\n", be->name(), dtype_name(weights),
              weight_format_name(format), dtype_name(act),
              bandwidth > 0 ? fmt::format("{:.0f} GB/s", bandwidth).c_str() : "unknown (--bandwidth)");
  std::printf("%-84s %5s %10s %8s %6s\n", "op", "rows", "us", "GB/s", "of bw");
  auto host = make_cpu_backend(1);
  for (int64_t rows : o.rows) {
    for (const auto& c : op_harness::llama8b_cases(rows, weights, act, format)) {
      const std::string name = c->name();
      if (name.find(o.filter) == std::string::npos) continue;
      if (const std::string why = c->unsupported(*be); !why.empty()) {
        std::printf("skip %s: %s\n", name.c_str(), why.c_str());
        continue;
      }
      // A GPU's L2 (50 MB on an H100/H200) would keep a small weight between runs, which a
      // model's step (a different weight every op) never sees: rotate over copies that
      // together are larger than it.
      std::vector<op_harness::PreparedOp> copies;
      copies.push_back(c->prepare(*be, *host, op_harness::case_seed(name), false));
      const double weight_bytes = copies.front().weight_bytes, bytes = copies.front().bytes;
      while (cuda && weight_bytes > 0 && weight_bytes * static_cast<double>(copies.size()) < kRotateBytes)
        copies.push_back(c->prepare(*be, *host, op_harness::case_seed(name) + copies.size(), false));
      size_t next = 0;
      const auto run = [&] { copies[next++ % copies.size()].run(); };
      const double us = cuda ? median_us(*be, run, 15, 20) : median_us(*be, run, 5, 1);
      const double gbs = bytes / us / 1e3;
      const std::string share = weight_bytes > 0 && bandwidth > 0 ? fmt::format("{:.0f}%", 100 * gbs / bandwidth) : "";
      std::printf("%-84s %5lld %10.1f %8.0f %6s\n", name.c_str(), static_cast<long long>(rows), us, gbs, share.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "op_perf: %s\n", e.what());
  return 1;
}
