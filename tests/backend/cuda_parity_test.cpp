// Every CUDA op against the CPU backend (the reference) on random inputs. Skipped in builds
// without CUDA or on machines without a GPU; run on the GPU machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "backend/backend.h"

namespace ferrum {
namespace {

class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    cpu_ = make_cpu_backend(2);
    gpu_ = make_cuda_backend(0);
  }

  // A host tensor of uniform values in [-a, a], stored as dtype.
  Tensor random(std::initializer_list<int64_t> shape, DType dtype = DType::F32, float a = 1.0f) {
    Tensor t = cpu_->alloc(shape, dtype);
    std::uniform_real_distribution<float> u(-a, a);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float v = u(rng_);
      if (dtype == DType::F32) t.ptr<float>()[i] = v;
      else if (dtype == DType::BF16) t.ptr<uint16_t>()[i] = f32_to_bf16(v);
      else t.ptr<uint16_t>()[i] = f32_to_f16(v);
    }
    return t;
  }
  Tensor ints(const std::vector<int32_t>& v) {
    Tensor t = cpu_->alloc({static_cast<int64_t>(v.size())}, DType::I32);
    std::copy(v.begin(), v.end(), t.ptr<int32_t>());
    return t;
  }
  Tensor zeros_like(Backend& be, const Tensor& like) {
    Tensor t = be.alloc({like.numel()}, like.dtype);
    std::vector<uint8_t> z(like.nbytes(), 0);
    be.copy_from_host(t, z.data(), z.size());
    t.ndim = like.ndim;
    t.shape = like.shape;
    return t;
  }
  Tensor up(const Tensor& h) { return gpu_->upload(h); }
  std::vector<float> down(const Tensor& d) {
    std::vector<float> v(d.numel());
    gpu_->copy_to_host(d, v.data(), v.size() * 4);
    return v;
  }
  std::vector<float> host(const Tensor& t) { return {t.ptr<float>(), t.ptr<float>() + t.numel()}; }
  // Largest absolute difference relative to the largest reference magnitude.
  static double rel_max(const std::vector<float>& got, const std::vector<float>& ref) {
    double diff = 0, mag = 1e-30;
    for (size_t i = 0; i < ref.size(); ++i) {
      diff = std::max(diff, std::fabs(double(got[i]) - ref[i]));
      mag = std::max(mag, std::fabs(double(ref[i])));
    }
    return diff / mag;
  }

  // F32 values rounded to dt's precision, in place (so that a dt copy holds them exactly).
  static void round_to(Tensor& t, DType dt) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      float& v = t.ptr<float>()[i];
      if (dt == DType::BF16) v = bf16_to_f32(f32_to_bf16(v));
      if (dt == DType::F16) v = f16_to_f32(f32_to_f16(v));
    }
  }
  // A host copy of an F32 tensor in dt.
  Tensor as(const Tensor& t, DType dt) {
    if (dt == DType::F32) return t;
    Tensor o = cpu_->alloc({t.numel()}, dt);
    for (int64_t i = 0; i < t.numel(); ++i)
      o.ptr<uint16_t>()[i] = dt == DType::BF16 ? f32_to_bf16(t.ptr<float>()[i]) : f32_to_f16(t.ptr<float>()[i]);
    o.ndim = t.ndim;
    o.shape = t.shape;
    return o;
  }
  // A device tensor of any float dtype, read back as F32.
  std::vector<float> down_any(const Tensor& d) {
    if (d.dtype == DType::F32) return down(d);
    std::vector<uint16_t> h(d.numel());
    gpu_->copy_to_host(d, h.data(), h.size() * 2);
    std::vector<float> f(h.size());
    for (size_t i = 0; i < h.size(); ++i) f[i] = d.dtype == DType::BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
    return f;
  }

  void check_attention(const std::vector<int32_t>& seq_lens, const std::vector<int32_t>& q_lens, int64_t D,
                       int64_t Hq = 8, int64_t Hk = 2, DType cache = DType::F32, double tol = 1e-5) {
    const int32_t bs = 4;
    const int64_t S = static_cast<int64_t>(seq_lens.size());
    int32_t max_blocks = 0;
    for (int32_t len : seq_lens) max_blocks = std::max(max_blocks, (len + bs - 1) / bs);
    const int32_t blocks = static_cast<int32_t>(S) * max_blocks + 3;
    std::vector<int32_t> perm(blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng_);
    std::vector<int32_t> tables(S * max_blocks, 0), query_start = {0}, slots;
    for (int64_t s = 0; s < S; ++s) {
      for (int32_t b = 0; b < max_blocks; ++b) tables[s * max_blocks + b] = perm[s * max_blocks + b];
      query_start.push_back(query_start.back() + q_lens[s]);
      for (int32_t p = seq_lens[s] - q_lens[s]; p < seq_lens[s]; ++p)
        slots.push_back(tables[s * max_blocks + p / bs] * bs + p % bs);
    }
    const int64_t T = query_start.back();
    Tensor kc = random({blocks, bs, Hk, D}), vc = random({blocks, bs, Hk, D});  // earlier tokens
    Tensor k = random({T, Hk, D}), v = random({T, Hk, D}), q = random({T, Hq, D}, DType::F32, 3.0f);
    for (Tensor* t : {&kc, &vc, &k, &v}) round_to(*t, cache);  // the CPU's F32 cache sees the same values
    Tensor gkc = up(as(kc, cache)), gvc = up(as(vc, cache));
    Tensor slot_t = ints(slots);
    cpu_->write_kv(k, v, slot_t, kc, vc);
    gpu_->write_kv(up(k), up(v), up(slot_t), gkc, gvc);
    EXPECT_EQ(down_any(gkc), host(kc));
    EXPECT_EQ(down_any(gvc), host(vc));

    AttentionMeta cm;
    cm.query_start = ints(query_start);
    cm.seq_lens = ints(seq_lens);
    cm.block_tables = ints(tables);
    cm.num_seqs = static_cast<int32_t>(S);
    cm.max_blocks_per_seq = max_blocks;
    cm.block_size = bs;
    cm.host_query_start = query_start;
    cm.host_seq_lens = seq_lens;
    AttentionMeta gm = cm;
    gm.query_start = up(cm.query_start);
    gm.seq_lens = up(cm.seq_lens);
    gm.block_tables = up(cm.block_tables);
    Tensor ref = cpu_->alloc({T, Hq, D}, DType::F32), out = gpu_->alloc({T, Hq, D}, DType::F32);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    cpu_->paged_attention(q, kc, vc, cm, scale, ref);
    gpu_->paged_attention(up(q), gkc, gvc, gm, scale, out);
    EXPECT_LT(rel_max(down(out), host(ref)), tol)
        << "D=" << D << " seqs=" << S << " first len " << seq_lens[0] << " cache " << dtype_name(cache);
  }

  std::mt19937 rng_{42};
  std::unique_ptr<Backend> cpu_, gpu_;
};

TEST_F(CudaParity, EmbeddingIsExact) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Tensor table = random({50, 96}, dt);
    Tensor ids = ints({3, 0, 49, 3, 17});
    Tensor ref = cpu_->alloc({5, 96}, DType::F32), out = gpu_->alloc({5, 96}, DType::F32);
    cpu_->embedding(table, ids, ref);
    gpu_->embedding(up(table), up(ids), out);
    EXPECT_EQ(down(out), host(ref)) << dtype_name(dt);
  }
}

TEST_F(CudaParity, RmsNorm) {
  for (int64_t cols : {64, 896, 4096}) {
    Tensor x = random({7, cols}), w = random({cols}, DType::BF16);
    Tensor ref = cpu_->alloc({7, cols}, DType::F32), out = gpu_->alloc({7, cols}, DType::F32);
    cpu_->rms_norm(x, w, 1e-6f, ref);
    gpu_->rms_norm(up(x), up(w), 1e-6f, out);
    EXPECT_LT(rel_max(down(out), host(ref)), 1e-5) << cols;
  }
}

TEST_F(CudaParity, MatmulF32AndSixteenBitWeights) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t M : {1, 5, 64}) {
      const int64_t K = 320, N = 200;
      Tensor x = random({M, K}), w = random({N, K}, dt, 0.1f), bias = random({N}, dt);
      // The GPU rounds x to the weights' type: give the CPU the same rounded input.
      Tensor xr = random({M, K});
      for (int64_t i = 0; i < x.numel(); ++i) {
        float v = x.ptr<float>()[i];
        if (dt == DType::BF16) v = bf16_to_f32(f32_to_bf16(v));
        if (dt == DType::F16) v = f16_to_f32(f32_to_f16(v));
        xr.ptr<float>()[i] = v;
      }
      Tensor ref = cpu_->alloc({M, N}, DType::F32), out = gpu_->alloc({M, N}, DType::F32);
      Tensor bias_f32 = random({N});
      for (int64_t i = 0; i < N; ++i)
        bias_f32.ptr<float>()[i] = dt == DType::F32 ? bias.ptr<float>()[i]
                                   : dt == DType::BF16 ? bf16_to_f32(bias.ptr<uint16_t>()[i])
                                                       : f16_to_f32(bias.ptr<uint16_t>()[i]);
      cpu_->matmul(xr, w, &bias_f32, ref);
      Tensor bias_gpu = up(bias);
      gpu_->matmul(up(x), up(w), &bias_gpu, out);
      EXPECT_LT(rel_max(down(out), host(ref)), 1e-5) << dtype_name(dt) << " M=" << M;
    }
  }
}

// The fused forms (q/k/v in one launch, residual accumulation, SwiGLU) against the CPU's
// composed ops, for decode-sized and larger batches.
TEST_F(CudaParity, FusedMatmuls) {
  for (DType dt : {DType::BF16, DType::F16}) {
    for (int64_t M : {1, 2, 3, 20, 100}) {
      const int64_t K = 256, N1 = 96, N2 = 32, I = 160;
      Tensor x = random({M, K});
      Tensor xr = random({M, K});  // x rounded to the weights' type, as the GPU does
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float v = x.ptr<float>()[i];
        xr.ptr<float>()[i] = dt == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
      }
      Tensor wa = random({N1, K}, dt, 0.1f), wb = random({N2, K}, dt, 0.1f), bias = random({N2});
      Tensor ra = cpu_->alloc({M, N1}, DType::F32), rb = cpu_->alloc({M, N2}, DType::F32);
      Tensor ga = gpu_->alloc({M, N1}, DType::F32), gb = gpu_->alloc({M, N2}, DType::F32);
      cpu_->matmuls(xr, {{&wa, nullptr, &ra}, {&wb, &bias, &rb}});
      Tensor gwa = up(wa), gwb = up(wb), gbias = up(bias), gx = up(x);
      gpu_->matmuls(gx, {{&gwa, nullptr, &ga}, {&gwb, &gbias, &gb}});
      EXPECT_LT(rel_max(down(ga), host(ra)), 1e-5) << dtype_name(dt) << " M=" << M;
      EXPECT_LT(rel_max(down(gb), host(rb)), 1e-5) << dtype_name(dt) << " M=" << M;

      // Weights stored as row slices of one buffer (as the model stores q/k/v and gate/up on
      // a GPU): batched steps run them as one GEMM.
      Tensor wall = random({N1 + N2, K}, dt, 0.1f);
      Tensor gall = up(wall);
      Tensor wa2 = wall.slice_rows(0, N1), wb2 = wall.slice_rows(N1, N2);
      Tensor ga2 = gall.slice_rows(0, N1), gb2 = gall.slice_rows(N1, N2);
      cpu_->matmuls(xr, {{&wa2, nullptr, &ra}, {&wb2, nullptr, &rb}});
      gpu_->matmuls(gx, {{&ga2, nullptr, &ga}, {&gb2, nullptr, &gb}});
      EXPECT_LT(rel_max(down(ga), host(ra)), 1e-5) << "adjacent " << dtype_name(dt) << " M=" << M;
      EXPECT_LT(rel_max(down(gb), host(rb)), 1e-5) << "adjacent " << dtype_name(dt) << " M=" << M;
      {
        Tensor gu = random({2 * I, K}, dt, 0.1f), ggu = up(gu);
        Tensor wg2 = gu.slice_rows(0, I), wu2 = gu.slice_rows(I, I);
        Tensor gg2 = ggu.slice_rows(0, I), gu2 = ggu.slice_rows(I, I);
        Tensor rs = cpu_->alloc({M, I}, DType::F32), rt = cpu_->alloc({M, I}, DType::F32);
        Tensor gs = gpu_->alloc({M, I}, DType::F32), gt = gpu_->alloc({M, I}, DType::F32);
        cpu_->gate_up_silu(xr, wg2, wu2, rs, rt);
        gpu_->gate_up_silu(gx, gg2, gu2, gs, gt);
        EXPECT_LT(rel_max(down(gs), host(rs)), 1e-5) << "adjacent gate_up_silu " << dtype_name(dt) << " M=" << M;
      }

      Tensor acc = random({M, N1}), tmp = cpu_->alloc({M, N1}, DType::F32), gtmp = gpu_->alloc({M, N1}, DType::F32);
      Tensor gacc = up(acc);
      cpu_->matmul_add(xr, wa, acc, tmp);
      gpu_->matmul_add(gx, gwa, gacc, gtmp);
      EXPECT_LT(rel_max(down(gacc), host(acc)), 1e-5) << "matmul_add " << dtype_name(dt) << " M=" << M;

      Tensor wg = random({I, K}, dt, 0.1f), wu = random({I, K}, dt, 0.1f);
      Tensor rs = cpu_->alloc({M, I}, DType::F32), rt = cpu_->alloc({M, I}, DType::F32);
      Tensor gs = gpu_->alloc({M, I}, DType::F32), gt = gpu_->alloc({M, I}, DType::F32);
      cpu_->gate_up_silu(xr, wg, wu, rs, rt);
      gpu_->gate_up_silu(gx, up(wg), up(wu), gs, gt);
      EXPECT_LT(rel_max(down(gs), host(rs)), 1e-5) << "gate_up_silu " << dtype_name(dt) << " M=" << M;
    }
  }
}

TEST_F(CudaParity, Rope) {
  const int64_t T = 6, Hq = 4, Hk = 2, D = 64, P = 100;
  RopeTable cpu_table{P, D, random({P, D / 2}), random({P, D / 2})};
  RopeTable gpu_table{P, D, up(cpu_table.cos), up(cpu_table.sin)};
  Tensor q = random({T, Hq, D}), k = random({T, Hk, D}), pos = ints({0, 5, 99, 7, 7, 42});
  Tensor gq = up(q), gk = up(k);
  cpu_->rope(q, k, pos, cpu_table);
  gpu_->rope(gq, gk, up(pos), gpu_table);
  EXPECT_LT(rel_max(down(gq), host(q)), 1e-6);
  EXPECT_LT(rel_max(down(gk), host(k)), 1e-6);
}

// Attention over a flat batch, K/V written through write_kv first, blocks shuffled.
TEST_F(CudaParity, WriteKvAndPagedAttention) {
  // A prefill chunk after cached tokens, a fresh prefill and a decode in one batch.
  for (int64_t D : {8, 16, 32, 64, 96, 128, 256}) check_attention({19, 7, 33}, {5, 7, 1}, D);
  // Long decodes: the keys are split over many blocks and merged.
  check_attention({300}, {1}, 128);
  check_attention({1000, 3, 517}, {1, 1, 1}, 128);
  // Query heads per KV head: 1 (MHA), 7, 12 (more than a block serves: two groups), MQA.
  check_attention({40, 9}, {3, 1}, 64, 4, 4);
  check_attention({40, 9}, {3, 1}, 64, 14, 2);
  check_attention({40, 9}, {3, 1}, 64, 24, 2);
  check_attention({300, 9}, {1, 9}, 128, 32, 1);
  // 16-bit caches (the GPU keeps a 16-bit model's K/V in its own type).
  for (DType dt : {DType::BF16, DType::F16}) {
    check_attention({19, 7, 33}, {5, 7, 1}, 128, 8, 2, dt);
    check_attention({1000, 3}, {1, 3}, 64, 8, 2, dt);
  }
  // Long prompts over a 16-bit cache take the tensor-core kernel: q and the softmax weights
  // are rounded to bf16 there, so the bound is bf16's. Whole prompts, a chunk after cached
  // tokens, ragged last tiles, decodes and short chunks in the same batch, GQA groups of 4
  // and 7 (two blocks) and MHA.
  for (int64_t D : {64, 128, 256}) {
    check_attention({300, 57, 9, 40}, {300, 40, 1, 5}, D, 8, 2, DType::BF16, 2e-2);
    check_attention({33, 130}, {33, 17}, D, 14, 2, DType::F16, 2e-2);
  }
  check_attention({200}, {200}, 128, 4, 4, DType::BF16, 2e-2);
}

TEST_F(CudaParity, SiluMulAddGatherRows) {
  Tensor g = random({9, 300}, DType::F32, 4.0f), u = random({9, 300});
  Tensor ref = cpu_->alloc({9, 300}, DType::F32), out = gpu_->alloc({9, 300}, DType::F32);
  cpu_->silu_mul(g, u, ref);
  gpu_->silu_mul(up(g), up(u), out);
  EXPECT_LT(rel_max(down(out), host(ref)), 1e-6);
  cpu_->add(g, u, ref);
  gpu_->add(up(g), up(u), out);
  EXPECT_EQ(down(out), host(ref));
  Tensor rows = ints({8, 0, 3, 3});
  Tensor rref = cpu_->alloc({4, 300}, DType::F32), rout = gpu_->alloc({4, 300}, DType::F32);
  cpu_->gather_rows(g, rows, rref);
  gpu_->gather_rows(up(g), up(rows), rout);
  EXPECT_EQ(down(rout), host(rref));
}

TEST_F(CudaParity, DummyWeightsAreTheSameBits) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Tensor c = cpu_->random_tensor({1000, 37}, dt, 12345, 0.0f, 0.05f);
    Tensor g = gpu_->random_tensor({1000, 37}, dt, 12345, 0.0f, 0.05f);
    std::vector<uint8_t> gb(g.nbytes());
    gpu_->copy_to_host(g, gb.data(), gb.size());
    EXPECT_EQ(0, std::memcmp(gb.data(), c.data, gb.size())) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace ferrum
