// Times the CPU's GGUF block matmuls (cpu_quant_matmul.cpp) at one shape against a plain read
// of the same bytes on the same thread pool: how close a decode matmul comes to streaming its
// weights. Random blocks (scales kept finite); the numbers are speeds, not results.
//   block_matmul_perf [--format q4_k|q5_k|q6_k|q8_0|q4_0] [--n 151936] [--k 2048] [--m 1]
//                     [--threads 2] [--reps 20] [--kernel best|avx2|vnni|avx512]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/linear.h"
#include "core/error.h"

using namespace ferrum;

namespace {

using Matmul = void (*)(ThreadPool&, const Tensor&, const Tensor&, const Tensor*, float*, int64_t);

struct Format {
  const char* name;
  WeightFormat format;
  Matmul matmul;
};

const Format kFormats[] = {
    {"q4_k", WeightFormat::GgufQ4K, cpu::matmul_q4_k}, {"q5_k", WeightFormat::GgufQ5K, cpu::matmul_q5_k},
    {"q6_k", WeightFormat::GgufQ6K, cpu::matmul_q6_k}, {"q8_0", WeightFormat::GgufQ8_0, cpu::matmul_q8_0},
    {"q4_0", WeightFormat::GgufQ4_0, cpu::matmul_q4_0},
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  std::string format = "q6_k";
  int64_t N = 151936, K = 2048, M = 1;
  int threads = 2, reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--format") format = v;
    else if (a == "--n") N = std::stoll(v);
    else if (a == "--k") K = std::stoll(v);
    else if (a == "--m") M = std::stoll(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--kernel") FERRUM_CHECK(cpu::set_block_dot_kernel(v), "no {} kernel here", v);
    else fail("unknown option {}", a);
  }
  const Format* f = nullptr;
  for (const auto& c : kFormats)
    if (format == c.name) f = &c;
  FERRUM_CHECK(f, "unknown format {}", format);
  const int64_t values = gguf_block_values(f->format), bytes = gguf_block_bytes(f->format);
  FERRUM_CHECK(K % values == 0, "K must be a multiple of {}", values);
  const int64_t row_bytes = K / values * bytes;

  std::vector<uint8_t> w(static_cast<size_t>(N * row_bytes));
  std::mt19937 rng(1);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  // Every f16 of a block's header to a small value, so no product is Inf or NaN (which could
  // change a kernel's speed): the scales lie at the start (Q4_0/Q8_0/Q4_K/Q5_K) or end (Q6_K).
  for (int64_t blk = 0; blk < N * (K / values); ++blk) {
    uint8_t* p = w.data() + blk * bytes;
    const uint16_t h = 0x2000;  // 2^-7
    if (f->format == WeightFormat::GgufQ6K) std::memcpy(p + 208, &h, 2);
    else {
      std::memcpy(p, &h, 2);
      if (values == 256) std::memcpy(p + 2, &h, 2);
    }
  }
  std::vector<float> x(static_cast<size_t>(M * K)), out(static_cast<size_t>(M * N));
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  Tensor xt, wt;
  xt.data = x.data(), xt.dtype = DType::F32, xt.ndim = 2, xt.shape = {M, K, 0, 0};
  wt.data = w.data(), wt.dtype = DType::U8, wt.ndim = 2, wt.shape = {N, row_bytes, 0, 0};

  ThreadPool pool(threads);
  std::vector<double> t_mm, t_read;
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8);
  for (int r = 0; r < reps + 2; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f->matmul(pool, xt, wt, nullptr, out.data(), N);
    auto t1 = std::chrono::steady_clock::now();
    // The same bytes read once by the pool (64-bit sums, so the loads cannot be dropped).
    pool.parallel_for(N, 16, [&](int64_t b, int64_t e) {
      const auto* p = reinterpret_cast<const uint64_t*>(w.data() + b * row_bytes);
      const int64_t n = (e - b) * row_bytes / 8;
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
      for (; i < n; ++i) s0 += p[i];
      sums[static_cast<size_t>(b % threads) * 8] += s0 + s1 + s2 + s3;
    });
    auto t2 = std::chrono::steady_clock::now();
    if (r < 2) continue;  // warm-up
    t_mm.push_back(std::chrono::duration<double>(t1 - t0).count());
    t_read.push_back(std::chrono::duration<double>(t2 - t1).count());
  }
  const double gb = static_cast<double>(w.size()) / 1e9, mm = median(t_mm), rd = median(t_read);
  std::printf("%s N=%lld K=%lld M=%lld threads %d: %.3f GB of weights\n", f->name, static_cast<long long>(N),
              static_cast<long long>(K), static_cast<long long>(M), threads, gb);
  std::printf("matmul %8.1f us  %6.1f GB/s\nread   %8.1f us  %6.1f GB/s\nmatmul / read %.2f  (checksum %g %llu)\n",
              mm * 1e6, gb / mm, rd * 1e6, gb / rd, mm / rd, static_cast<double>(out[0]),
              static_cast<unsigned long long>(sums[0] & 0xff));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "block_matmul_perf: %s\n", e.what());
  return 1;
}
