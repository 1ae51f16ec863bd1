// Times each Backend op at Llama-3.1-8B shapes (hidden 4096, 32/8 heads of 128, MLP 14336,
// vocab 128256) for a few batch sizes: where a decode step's time goes.
//   backend_ops [cpu|cuda] [rows...]
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"

using namespace ferrum;

namespace {

double time_us(Backend& be, const std::function<void()>& op, int reps) {
  op();
  be.synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) op();
  be.synchronize();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
}

Tensor ints(Backend& be, const std::vector<int32_t>& v) {
  Tensor t = be.alloc({static_cast<int64_t>(v.size())}, DType::I32);
  be.copy_from_host(t, v.data(), v.size() * 4);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string device = argc > 1 ? argv[1] : "cuda";
  std::vector<int64_t> batch;
  for (int i = 2; i < argc; ++i) batch.push_back(std::stoll(argv[i]));
  if (batch.empty()) batch = {1, 8, 16};
  auto be = make_backend(device, 0);
  const int64_t H = 4096, Hq = 32, Hk = 8, D = 128, I = 14336, V = 128256;
  const int reps = device == "cpu" ? 3 : 50;
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"q_proj", Hq * D, H}, {"k_proj", Hk * D, H}, {"o_proj", H, Hq * D},
                          {"gate_proj", I, H},   {"down_proj", H, I},   {"lm_head", V, H}};
  std::printf("%s: %s\n", device.c_str(), be->name());
  for (int64_t M : batch) {
    std::printf("rows %lld\n", static_cast<long long>(M));
    Tensor x = be->random_tensor({M, I}, DType::F32, 1, 0.0f, 1.0f);
    Tensor out = be->alloc({M, V}, DType::F32);
    for (const Shape& s : shapes) {
      Tensor w = be->random_tensor({s.n, s.k}, DType::BF16, 2, 0.0f, 0.05f);
      Tensor xs = x.view({M * I});
      xs.ndim = 2, xs.shape[0] = M, xs.shape[1] = s.k;
      Tensor o = out;
      o.ndim = 2, o.shape[0] = M, o.shape[1] = s.n;
      const double us = time_us(*be, [&] { be->matmul(xs, w, nullptr, o); }, reps);
      std::printf("  matmul %-9s %6lld x %-6lld %9.1f us  %7.0f GB/s of weights\n", s.name,
                  static_cast<long long>(s.n), static_cast<long long>(s.k), us, s.n * s.k * 2 / us / 1e3);
    }
    {  // the fused forms the model calls
      Tensor wq = be->random_tensor({Hq * D, H}, DType::BF16, 11, 0.0f, 0.05f);
      Tensor wk = be->random_tensor({Hk * D, H}, DType::BF16, 12, 0.0f, 0.05f);
      Tensor wg = be->random_tensor({I, H}, DType::BF16, 13, 0.0f, 0.05f);
      Tensor wu = be->random_tensor({I, H}, DType::BF16, 14, 0.0f, 0.05f);
      Tensor wd = be->random_tensor({H, I}, DType::BF16, 15, 0.0f, 0.05f);
      Tensor xh = be->random_tensor({M, H}, DType::F32, 16, 0.0f, 1.0f), xi = be->random_tensor({M, I}, DType::F32, 17, 0.0f, 1.0f);
      Tensor q = be->alloc({M, Hq * D}, DType::F32), k = be->alloc({M, Hk * D}, DType::F32), v = be->alloc({M, Hk * D}, DType::F32);
      Tensor g = be->alloc({M, I}, DType::F32), u = be->alloc({M, I}, DType::F32), acc = be->alloc({M, H}, DType::F32);
      Tensor tmp = be->alloc({M, H}, DType::F32);
      double us = time_us(*be, [&] { be->matmuls(xh, {{&wq, nullptr, &q}, {&wk, nullptr, &k}, {&wk, nullptr, &v}}); }, reps);
      std::printf("  matmuls q,k,v             %9.1f us  %7.0f GB/s\n", us, (Hq + 2 * Hk) * D * H * 2 / us / 1e3);
      us = time_us(*be, [&] { be->gate_up_silu(xh, wg, wu, g, u); }, reps);
      std::printf("  gate_up_silu              %9.1f us  %7.0f GB/s\n", us, 2 * I * H * 2 / us / 1e3);
      us = time_us(*be, [&] { be->matmul_add(xi, wd, acc, tmp); }, reps);
      std::printf("  matmul_add down           %9.1f us  %7.0f GB/s\n", us, I * H * 2 / us / 1e3);
    }
    Tensor h = be->random_tensor({M, H}, DType::F32, 3, 0.0f, 1.0f), y = be->alloc({M, H}, DType::F32);
    Tensor nw = be->random_tensor({H}, DType::BF16, 4, 1.0f, 0.1f);
    std::printf("  rms_norm             %9.1f us\n", time_us(*be, [&] { be->rms_norm(h, nw, 1e-5f, y); }, reps));
    std::printf("  add                  %9.1f us\n", time_us(*be, [&] { be->add(h, y, y); }, reps));
    Tensor g = be->random_tensor({M, I}, DType::F32, 5, 0.0f, 1.0f);
    std::printf("  silu_mul             %9.1f us\n", time_us(*be, [&] { be->silu_mul(g, g, g); }, reps));
    for (int64_t ctx : {128, 2048}) {
      const int32_t bs = 16, width = static_cast<int32_t>((ctx + bs - 1) / bs);
      Tensor kc = be->random_tensor({M * width, bs, Hk, D}, DType::F32, 6, 0.0f, 1.0f);
      Tensor vc = be->random_tensor({M * width, bs, Hk, D}, DType::F32, 7, 0.0f, 1.0f);
      std::vector<int32_t> qs, lens, tables, slots, pos;
      for (int64_t s = 0; s <= M; ++s) qs.push_back(static_cast<int32_t>(s));
      for (int64_t s = 0; s < M; ++s) {
        lens.push_back(static_cast<int32_t>(ctx));
        for (int32_t b = 0; b < width; ++b) tables.push_back(static_cast<int32_t>(s * width + b));
        slots.push_back(static_cast<int32_t>(s * width * bs + ctx - 1));
        pos.push_back(static_cast<int32_t>(ctx - 1));
      }
      AttentionMeta meta;
      meta.query_start = ints(*be, qs);
      meta.seq_lens = ints(*be, lens);
      meta.block_tables = ints(*be, tables);
      meta.num_seqs = static_cast<int32_t>(M);
      meta.max_blocks_per_seq = width;
      meta.block_size = bs;
      meta.host_query_start = qs;
      meta.host_seq_lens = lens;
      Tensor q = be->random_tensor({M, Hq, D}, DType::F32, 8, 0.0f, 1.0f), a = be->alloc({M, Hq, D}, DType::F32);
      Tensor k = be->random_tensor({M, Hk, D}, DType::F32, 9, 0.0f, 1.0f);
      Tensor slot_t = ints(*be, slots);
      std::printf("  write_kv             %9.1f us\n", time_us(*be, [&] { be->write_kv(k, k, slot_t, kc, vc); }, reps));
      std::printf("  attention ctx %-5lld  %9.1f us\n", static_cast<long long>(ctx),
                  time_us(*be, [&] { be->paged_attention(q, kc, vc, meta, 0.088f, a); }, reps));
    }
  }
  // Prefill attention: one sequence whose whole prompt is computed at once (causal).
  for (int64_t T : {512, 2048}) {
    const int32_t bs = 16, width = static_cast<int32_t>((T + bs - 1) / bs);
    Tensor kc = be->random_tensor({width, bs, Hk, D}, DType::BF16, 6, 0.0f, 1.0f);
    Tensor vc = be->random_tensor({width, bs, Hk, D}, DType::BF16, 7, 0.0f, 1.0f);
    std::vector<int32_t> qs = {0, static_cast<int32_t>(T)}, lens = {static_cast<int32_t>(T)}, tables;
    for (int32_t b = 0; b < width; ++b) tables.push_back(b);
    AttentionMeta meta;
    meta.query_start = ints(*be, qs);
    meta.seq_lens = ints(*be, lens);
    meta.block_tables = ints(*be, tables);
    meta.num_seqs = 1;
    meta.max_blocks_per_seq = width;
    meta.block_size = bs;
    meta.host_query_start = qs;
    meta.host_seq_lens = lens;
    Tensor q = be->random_tensor({T, Hq, D}, DType::F32, 8, 0.0f, 1.0f), a = be->alloc({T, Hq, D}, DType::F32);
    std::printf("prefill attention, %lld tokens (bf16 cache): %9.1f us\n", static_cast<long long>(T),
                time_us(*be, [&] { be->paged_attention(q, kc, vc, meta, 0.088f, a); }, device == "cpu" ? 1 : 5));
  }
  return 0;
}
