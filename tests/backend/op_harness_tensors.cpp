#include "op_harness_tensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "core/error.h"

namespace ferrum::op_harness {

// ---- Tensors ----

double element(const uint8_t* raw, DType dt, size_t i) {
  switch (dt) {
    case DType::F32: {
      float f;
      std::memcpy(&f, raw + 4 * i, 4);
      return f;
    }
    case DType::I32: {
      int32_t v;
      std::memcpy(&v, raw + 4 * i, 4);
      return v;
    }
    case DType::F16:
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, raw + 2 * i, 2);
      return dt == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    case DType::F8E4M3: return fp8_e4m3_to_f32(raw[i]);
    default: fail("op harness: cannot read {} values", dtype_name(dt));
  }
}

Values read_values(Backend& be, const Tensor& t) {
  std::vector<uint8_t> raw(t.nbytes());
  be.copy_to_host(t, raw.data(), raw.size());
  Values v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = element(raw.data(), t.dtype, i);
  return v;
}

void write_bytes(Backend& be, Tensor& t, const void* src) {
  be.copy_from_host(t, src, t.nbytes());
  be.synchronize();
}

Tensor ints(Backend& be, const std::vector<int32_t>& v) {
  Tensor t = be.alloc({static_cast<int64_t>(v.size())}, DType::I32);
  if (!v.empty()) write_bytes(be, t, v.data());
  return t;
}

Tensor poisoned(Backend& be, std::initializer_list<int64_t> shape, DType dt) {
  Tensor t = be.alloc(shape, dt);
  const size_t n = static_cast<size_t>(t.numel());
  if (dt == DType::F32) {
    const std::vector<float> nan(n, std::nanf(""));
    write_bytes(be, t, nan.data());
  } else if (dt == DType::F8E4M3) {
    const std::vector<uint8_t> nan(n, 0x7F);  // E4M3's NaN
    write_bytes(be, t, nan.data());
  } else {
    const std::vector<uint16_t> nan(n, dt == DType::BF16 ? 0x7FC0 : 0x7E00);
    write_bytes(be, t, nan.data());
  }
  return t;
}

std::vector<int32_t> random_ints(size_t n, int32_t lo, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}


RopeTable rope_table(Backend& be, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> cos(kRopePositions * half), sin(kRopePositions * half);
  for (int64_t p = 0; p < kRopePositions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * std::pow(kRopeTheta, -2.0 * i / head_dim);
      cos[p * half + i] = static_cast<float>(std::cos(angle));
      sin[p * half + i] = static_cast<float>(std::sin(angle));
    }
  RopeTable t{kRopePositions, head_dim, be.alloc({kRopePositions, half}, DType::F32),
              be.alloc({kRopePositions, half}, DType::F32)};
  write_bytes(be, t.cos, cos.data());
  write_bytes(be, t.sin, sin.data());
  return t;
}

// ---- Comparison ----

Comparison compare(const std::vector<Output>& outputs, double bound) {
  Comparison c;
  c.bound = bound;
  for (const Output& o : outputs) {
    double scale = 1e-30;
    for (double r : o.ref)
      if (std::isfinite(r)) scale = std::max(scale, std::fabs(r));
    for (size_t i = 0; i < o.ref.size(); ++i) {
      const double got = o.got[i], ref = o.ref[i];
      double diff;
      if (std::isnan(ref)) diff = std::isnan(got) ? 0.0 : INFINITY;  // must stay unwritten
      else diff = std::isfinite(got) ? std::fabs(got - ref) : INFINITY;
      const double error = diff / scale;
      if (error > c.error || c.worst.empty()) {
        c.error = error;
        c.worst = fmt::format("{}[{}]: got {:.7g}, expected {:.7g} (max |expected| {:.4g})", o.name, i, got, ref, scale);
      }
    }
  }
  return c;
}

}  // namespace ferrum::op_harness
