#include "io/gguf_writer.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
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

}  // namespace

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

namespace {

// One value's bytes (no key): scalars in their own width, arrays as element type, count and
// elements.
void put_value(std::vector<uint8_t>& out, GgufValue::Type type, const GgufValue& v) {
  using T = GgufValue::Type;
  auto u = [&] { return std::get<uint64_t>(v.scalar); };
  auto i = [&] { return std::get<int64_t>(v.scalar); };
  switch (type) {
    case T::U8: return put<uint8_t>(out, static_cast<uint8_t>(u()));
    case T::I8: return put<int8_t>(out, static_cast<int8_t>(i()));
    case T::U16: return put<uint16_t>(out, static_cast<uint16_t>(u()));
    case T::I16: return put<int16_t>(out, static_cast<int16_t>(i()));
    case T::U32: return put<uint32_t>(out, static_cast<uint32_t>(u()));
    case T::I32: return put<int32_t>(out, static_cast<int32_t>(i()));
    case T::U64: return put<uint64_t>(out, u());
    case T::I64: return put<int64_t>(out, i());
    case T::F32: return put<float>(out, static_cast<float>(std::get<double>(v.scalar)));
    case T::F64: return put<double>(out, std::get<double>(v.scalar));
    case T::Bool: return put<uint8_t>(out, std::get<bool>(v.scalar) ? 1 : 0);
    case T::String: return put_string(out, std::get<std::string>(v.scalar));
    case T::Array:
      put<uint32_t>(out, static_cast<uint32_t>(v.array_type));
      put<uint64_t>(out, v.array.size());
      for (const GgufValue& e : v.array) put_value(out, v.array_type, e);
      return;
  }
  fail("GGUF value of unknown type {}", static_cast<uint32_t>(type));
}

}  // namespace

void GgufWriter::add_value(const std::string& key, const GgufValue& v) {
  put_key(kv_, key, v.type);
  put_value(kv_, v.type, v);
  ++kv_count_;
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
  // The temporary file is closed and removed on any failure (writing, or a tensor's producer
  // throwing), and renamed into place only when complete.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(tmp.c_str(), "wb"), std::fclose);
  if (!f) fail("cannot write '{}': {}", tmp, std::strerror(errno));
  try {
    auto write_bytes = [&](const void* p, size_t n) {
      if (n && std::fwrite(p, 1, n, f.get()) != n) fail("writing '{}' failed: {}", tmp, std::strerror(errno));
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
    if (std::fclose(f.release()) != 0) fail("writing '{}' failed: {}", tmp, std::strerror(errno));
  } catch (...) {
    f.reset();
    std::remove(tmp.c_str());
    throw;
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace ferrum
