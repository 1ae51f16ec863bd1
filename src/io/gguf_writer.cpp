#include "io/gguf_writer.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"

namespace ferrum {
namespace {

constexpr uint64_t kAlign = 32;

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
void put_key(std::vector<uint8_t>& out, const std::string& key, GgufValue::Type t) {
  put_string(out, key);
  put<uint32_t>(out, static_cast<uint32_t>(t));
}

// llama.cpp's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d).
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

// llama.cpp's quantize_row_q4_0_ref: the value of largest magnitude maps to -8, d = max / -8,
// q = min(15, (int8)(x / d + 8.5)).
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

}  // namespace

bool can_quantize(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::Q8_0 ||
         t == GgmlType::Q4_0;
}

void quantize_row(GgmlType t, const float* x, void* dst, int64_t n) {
  const auto info = ggml_type_info(static_cast<uint32_t>(t));
  FERRUM_CHECK(info && n % info->block_elems == 0, "quantize_row: {} values of {}", n, ggml_type_name(t));
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, x, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(x[i]);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
      return;
    case GgmlType::Q8_0: return quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), n / kQK);
    case GgmlType::Q4_0: return quantize_q4_0(x, static_cast<BlockQ4_0*>(dst), n / kQK);
    default: break;
  }
  fail("quantizing to {} is not implemented yet", ggml_type_name(t));
}

template <typename T>
void GgufWriter::add_scalar(const std::string& key, GgufValue::Type type, T v) {
  put_key(kv_, key, type);
  put<T>(kv_, v);
  ++kv_count_;
}

template <typename T>
void GgufWriter::add_array(const std::string& key, GgufValue::Type type, const std::vector<T>& v) {
  put_key(kv_, key, GgufValue::Type::Array);
  put<uint32_t>(kv_, static_cast<uint32_t>(type));
  put<uint64_t>(kv_, v.size());
  for (const T& x : v) {
    if constexpr (std::is_same_v<T, std::string>) put_string(kv_, x);
    else put<T>(kv_, x);
  }
  ++kv_count_;
}

void GgufWriter::add_string(const std::string& key, const std::string& v) {
  put_key(kv_, key, GgufValue::Type::String);
  put_string(kv_, v);
  ++kv_count_;
}
void GgufWriter::add_u32(const std::string& key, uint32_t v) { add_scalar(key, GgufValue::Type::U32, v); }
void GgufWriter::add_i32(const std::string& key, int32_t v) { add_scalar(key, GgufValue::Type::I32, v); }
void GgufWriter::add_f32(const std::string& key, float v) { add_scalar(key, GgufValue::Type::F32, v); }
void GgufWriter::add_bool(const std::string& key, bool v) {
  add_scalar<uint8_t>(key, GgufValue::Type::Bool, v ? 1 : 0);
}
void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& v) {
  add_array(key, GgufValue::Type::String, v);
}
void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& v) {
  add_array(key, GgufValue::Type::I32, v);
}
void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& v) {
  add_array(key, GgufValue::Type::F32, v);
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> dims,
                            std::function<void(std::vector<uint8_t>&)> produce) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  const uint64_t nbytes = ggml_row_bytes(type, dims.at(0)) * static_cast<uint64_t>(n / dims[0]);
  tensors_.push_back({name, type, std::move(dims), nbytes, std::move(produce)});
}

void GgufWriter::write(const std::string& path, const std::function<void(size_t, size_t)>& progress) const {
  std::vector<uint8_t> header;
  put<uint32_t>(header, 0x46554747);
  put<uint32_t>(header, 3);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, kv_count_);
  header.insert(header.end(), kv_.begin(), kv_.end());
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const Entry& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(header, static_cast<uint64_t>(d));
    put<uint32_t>(header, static_cast<uint32_t>(t.type));
    put<uint64_t>(header, offset);
    offsets.push_back(offset);
    offset += (t.nbytes + kAlign - 1) / kAlign * kAlign;
  }
  header.resize((header.size() + kAlign - 1) / kAlign * kAlign, 0);

  const std::string tmp = path + ".part";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write '{}': {}", tmp, std::strerror(errno));
  auto write_bytes = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n) {
      const std::string why = std::strerror(errno);
      std::fclose(f);
      std::remove(tmp.c_str());
      fail("writing '{}' failed: {}", tmp, why);
    }
  };
  write_bytes(header.data(), header.size());
  std::vector<uint8_t> data;
  static const uint8_t zeros[kAlign] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    data.clear();
    tensors_[i].produce(data);
    FERRUM_CHECK(data.size() == tensors_[i].nbytes, "tensor '{}' produced {} bytes, expected {}", tensors_[i].name,
                 data.size(), tensors_[i].nbytes);
    write_bytes(data.data(), data.size());
    write_bytes(zeros, (kAlign - data.size() % kAlign) % kAlign);
    if (progress) progress(i + 1, tensors_.size());
  }
  if (std::fclose(f) != 0) fail("writing '{}' failed: {}", tmp, std::strerror(errno));
  std::filesystem::rename(tmp, path);
}

}  // namespace ferrum
