#include "io/gguf.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace ferrum {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF", little-endian
constexpr uint64_t kMaxCount = uint64_t{1} << 24;  // tensors or keys: far above any real model
constexpr int kMaxDims = 4;

// Reads the header front to back; every read is bounds-checked and names what it was reading.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& file) : p_(data), size_(size), file_(file) {}

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " (length)");
    if (n > size_ - pos_) bad(what, fmt::format("has length {}, past the end of the file", n));
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }
  void need(uint64_t n, const std::string& what) const {
    if (n > size_ - pos_) bad(what, "is cut off (the file ends)");
  }
  [[noreturn]] void bad(const std::string& what, const std::string& why) const {
    fail("GGUF file '{}': {} {} (at byte {})", file_, what, why, pos_);
  }
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& file_;
};

// Smallest encoded size of one value of type t (bounds array counts before allocating).
uint64_t min_value_bytes(GgufValue::Type t) {
  using T = GgufValue::Type;
  switch (t) {
    case T::U8: case T::I8: case T::Bool: return 1;
    case T::U16: case T::I16: return 2;
    case T::U32: case T::I32: case T::F32: return 4;
    case T::U64: case T::I64: case T::F64: case T::String: return 8;
    case T::Array: return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= 12; }

GgufValue read_value(Cursor& c, GgufValue::Type type, const std::string& what, bool in_array) {
  using T = GgufValue::Type;
  GgufValue v;
  v.type = type;
  switch (type) {
    case T::U8: v.scalar = uint64_t{c.read<uint8_t>(what)}; break;
    case T::I8: v.scalar = int64_t{c.read<int8_t>(what)}; break;
    case T::U16: v.scalar = uint64_t{c.read<uint16_t>(what)}; break;
    case T::I16: v.scalar = int64_t{c.read<int16_t>(what)}; break;
    case T::U32: v.scalar = uint64_t{c.read<uint32_t>(what)}; break;
    case T::I32: v.scalar = int64_t{c.read<int32_t>(what)}; break;
    case T::U64: v.scalar = c.read<uint64_t>(what); break;
    case T::I64: v.scalar = c.read<int64_t>(what); break;
    case T::F32: v.scalar = double{c.read<float>(what)}; break;
    case T::F64: v.scalar = c.read<double>(what); break;
    case T::Bool: {
      const uint8_t b = c.read<uint8_t>(what);
      if (b > 1) c.bad(what, fmt::format("is a bool of value {}", b));
      v.scalar = b == 1;
      break;
    }
    case T::String: v.scalar = c.read_string(what); break;
    case T::Array: {
      if (in_array) c.bad(what, "is an array of arrays, which GGUF readers do not take");
      const uint32_t et = c.read<uint32_t>(what + " (element type)");
      if (!known_value_type(et)) c.bad(what, fmt::format("has unknown element type {}", et));
      v.array_type = static_cast<T>(et);
      const uint64_t n = c.read<uint64_t>(what + " (count)");
      if (n > c.left() / min_value_bytes(v.array_type))
        c.bad(what, fmt::format("claims {} elements, more than the file holds", n));
      v.array.reserve(n);
      for (uint64_t i = 0; i < n; ++i) v.array.push_back(read_value(c, v.array_type, what, true));
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValue::Type t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  using T = Type;
  return type == T::U8 || type == T::I8 || type == T::U16 || type == T::I16 || type == T::U32 || type == T::I32 ||
         type == T::U64 || type == T::I64;
}

double GgufValue::as_number() const {
  if (const auto* u = std::get_if<uint64_t>(&scalar)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&scalar)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&scalar)) return *d;
  if (const auto* b = std::get_if<bool>(&scalar)) return *b ? 1.0 : 0.0;
  fail("a GGUF {} is not a number", gguf_value_type_name(type));
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  auto file = std::make_unique<MappedFile>(path);
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->name_ = path;
  g->parse_header(file->data(), file->size());
  g->file_ = std::move(file);
  return g;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->name_ = name;
  g->parse_header(data, size);
  return g;
}

void GgufFile::parse_header(const uint8_t* data, size_t size) {
  Cursor c(data, size, name_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) c.bad("magic", "is not 'GGUF': not a GGUF file");
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) c.bad("version", "is 1: GGUF v1 files are not supported (convert them again)");
  if (version_ != 2 && version_ != 3)
    c.bad("version", fmt::format("is {}: only GGUF v2 and v3 are supported{}", version_,
                                 version_ == 0x03000000 || version_ == 0x02000000 ? " (a big-endian file?)" : ""));
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_tensors > kMaxCount) c.bad("tensor count", fmt::format("is {}, more than any model has", n_tensors));
  if (n_kv > kMaxCount) c.bad("metadata count", fmt::format("is {}, more than any model has", n_kv));

  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.read_string(fmt::format("metadata key {}", i));
    const std::string what = fmt::format("metadata '{}'", key);
    const uint32_t t = c.read<uint32_t>(what + " (type)");
    if (!known_value_type(t)) c.bad(what, fmt::format("has unknown type {}", t));
    GgufValue v = read_value(c, static_cast<GgufValue::Type>(t), what, false);
    if (!kv_.emplace(key, std::move(v)).second) c.bad(what, "appears twice");
  }
  if (const auto it = kv_.find("general.alignment"); it != kv_.end()) {
    const GgufValue& a = it->second;
    if (a.type != GgufValue::Type::U32) c.bad("metadata 'general.alignment'", "is not a u32");
    alignment_ = std::get<uint64_t>(a.scalar);
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
      c.bad("metadata 'general.alignment'", fmt::format("is {}, not a power of two", alignment_));
  }

  // A tensor's entry takes at least 32 bytes (name length, one dimension, type, offset): a
  // count the file cannot hold is refused before it is reserved (fuzz_gguf: 12 million claimed
  // by a 183-byte file cost a 1 GB allocation).
  constexpr uint64_t kMinTensorInfo = 8 + 4 + 8 + 4 + 8;
  if (n_tensors > c.left() / kMinTensorInfo)
    c.bad("tensor count", fmt::format("claims {} tensors, more than the file holds", n_tensors));
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.read_string(fmt::format("tensor {} name", i));
    const std::string what = fmt::format("tensor '{}'", t.name);
    const uint32_t n_dims = c.read<uint32_t>(what + " dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.bad(what, fmt::format("has {} dimensions (1 to {} allowed)", n_dims, kMaxDims));
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = c.read<uint64_t>(fmt::format("{} dimension {}", what, d));
      if (n == 0 || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          static_cast<uint64_t>(numel) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / n)
        c.bad(what, fmt::format("has dimension {} of size {} (empty or overflowing)", d, n));
      t.dims.push_back(static_cast<int64_t>(n));
      numel *= static_cast<int64_t>(n);
    }
    const uint32_t type = c.read<uint32_t>(what + " type");
    const std::optional<GgmlTypeInfo> info = ggml_type_info(type);
    if (!info) c.bad(what, fmt::format("has unknown tensor type {}", type));
    t.type = static_cast<GgmlType>(type);
    if (t.dims[0] % info->block_elems != 0)
      c.bad(what, fmt::format("has rows of {} values, not a multiple of {}'s block of {}", t.dims[0], info->name,
                              info->block_elems));
    t.nbytes = static_cast<uint64_t>(numel / info->block_elems) * static_cast<uint64_t>(info->block_bytes);
    t.offset = c.read<uint64_t>(what + " offset");
    if (t.offset % alignment_ != 0)
      c.bad(what, fmt::format("has offset {}, not a multiple of the alignment {}", t.offset, alignment_));
    if (!by_name_.emplace(t.name, tensors_.size()).second) c.bad(what, "appears twice");
    tensors_.push_back(std::move(t));
  }

  const uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (tensors_.empty()) return;
  if (data_start > size) c.bad("tensor data", "is missing (the file ends after the header)");
  const uint64_t data_size = size - data_start;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("GGUF file '{}': tensor '{}' ({} bytes at offset {}) runs past the end of the file ({} bytes of data): "
           "the file is truncated or corrupt", name_, t.name, t.nbytes, t.offset, data_size);
    t.data = data + data_start + t.offset;
  }
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const auto it = kv_.find(key);
  if (it == kv_.end()) fail("GGUF file '{}' has no metadata '{}'", name_, key);
  return it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValue::Type::String)
    fail("GGUF file '{}': metadata '{}' is a {}, not a string", name_, key, gguf_value_type_name(v.type));
  return std::get<std::string>(v.scalar);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_integer())
    fail("GGUF file '{}': metadata '{}' is a {}, not an integer", name_, key, gguf_value_type_name(v.type));
  if (const auto* u = std::get_if<uint64_t>(&v.scalar)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("GGUF file '{}': metadata '{}' is {}, too large", name_, key, *u);
    return static_cast<int64_t>(*u);
  }
  return std::get<int64_t>(v.scalar);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type == GgufValue::Type::String || v.type == GgufValue::Type::Array)
    fail("GGUF file '{}': metadata '{}' is a {}, not a number", name_, key, gguf_value_type_name(v.type));
  return v.as_number();
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValue::Type::Bool)
    fail("GGUF file '{}': metadata '{}' is a {}, not a bool", name_, key, gguf_value_type_name(v.type));
  return std::get<bool>(v.scalar);
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValue::Type::Array || v.array_type != GgufValue::Type::String)
    fail("GGUF file '{}': metadata '{}' is not an array of strings", name_, key);
  std::vector<std::string> out;
  out.reserve(v.array.size());
  for (const GgufValue& e : v.array) out.push_back(std::get<std::string>(e.scalar));
  return out;
}

std::vector<double> GgufFile::get_numbers(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValue::Type::Array || v.array_type == GgufValue::Type::String)
    fail("GGUF file '{}': metadata '{}' is not an array of numbers", name_, key);
  std::vector<double> out;
  out.reserve(v.array.size());
  for (const GgufValue& e : v.array) out.push_back(e.as_number());
  return out;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}
double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}
std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

const GgufTensor* GgufFile::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find(name);
  if (!t) fail("GGUF file '{}' has no tensor '{}'", name_, name);
  return *t;
}

}  // namespace ferrum
