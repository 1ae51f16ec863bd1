// The CPU backend: host memory, ops on the thread pool.
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "backend/dummy_fill.h"
#include "backend/cpu/cpu_kernels.h"

namespace ferrum {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}
  Device device() const override { return Device::CPU; }
  const char* name() const override { return "cpu"; }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    Tensor t;
    t.dtype = dtype;
    t.ndim = static_cast<int>(shape.size());
    int i = 0;
    for (int64_t d : shape) t.shape[i++] = d;
    const size_t bytes = std::max<size_t>(64, (t.nbytes() + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) fail("out of memory allocating {} bytes", bytes);
    t.data = p;
    t.owner = std::shared_ptr<void>(p, std::free);
    return t;
  }
  Tensor upload(const Tensor& host) override { return host; }
  void copy_from_host(Tensor& dst, const void* src, size_t bytes) override { std::memcpy(dst.data, src, bytes); }
  void copy_to_host(const Tensor& src, void* dst, size_t bytes) override { std::memcpy(dst, src.data, bytes); }
  Tensor random_tensor(std::initializer_list<int64_t> shape, DType dtype, uint64_t seed, float center,
                       float scale) override {
    Tensor t = alloc(shape, dtype);
    pool_.parallel_for(t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float v = center + scale * dummy_unit(seed, static_cast<uint64_t>(i));
        if (dtype == DType::F32) t.ptr<float>()[i] = v;
        else if (dtype == DType::BF16) t.ptr<uint16_t>()[i] = f32_to_bf16(v);
        else t.ptr<uint16_t>()[i] = f32_to_f16(v);
      }
    });
    return t;
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override { cpu::embedding(pool_, table, ids, out); }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override { cpu::rms_norm(pool_, x, w, eps, out); }
  void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    cpu::matmul(pool_, x, w, bias, out);
  }
  void rope(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) override {
    cpu::rope(pool_, q, k, positions, table);
  }
  void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& kc, Tensor& vc) override {
    cpu::write_kv(k, v, slots, kc, vc);
  }
  void paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const AttentionMeta& meta, float scale,
                       Tensor& out) override {
    cpu::paged_attention(pool_, q, kc, vc, meta, scale, out);
  }
  void silu_mul(const Tensor& g, const Tensor& u, Tensor& out) override { cpu::silu_mul(pool_, g, u, out); }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override { cpu::add(pool_, a, b, out); }
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override { cpu::gather_rows(x, rows, out); }

 private:
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int num_threads) { return std::make_unique<CpuBackend>(num_threads); }

}  // namespace ferrum
