// The GGUF reader against files written here byte by byte (an independent writer), every
// header field corrupted and every truncation; and the dequantization of each block format
// against blocks packed here from known values (the packing is the inverse of the layout, so
// the two sides do not share code).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"

namespace ferrum {
namespace {

// A minimal GGUF writer: header, metadata, tensor infos, padding, data.
class Writer {
 public:
  std::vector<uint8_t> out;
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void pad(size_t align) {
    while (out.size() % align) out.push_back(0);
  }
};

struct TensorSpec {
  std::string name;
  uint32_t type;
  std::vector<uint64_t> dims;
  std::vector<uint8_t> data;
};

// Positions of header fields in the file written by `build`, for the corruption tests.
struct Layout {
  size_t version, n_tensors, n_kv, first_key_len, first_value_type, alignment_value, first_tensor_ndims,
      first_tensor_dim0, first_tensor_type, first_tensor_offset;
};

std::vector<uint8_t> build(const std::vector<TensorSpec>& tensors, Layout* layout = nullptr, uint32_t alignment = 32) {
  Writer w;
  Layout l{};
  w.put<uint32_t>(0x46554747);
  l.version = w.out.size();
  w.put<uint32_t>(3);
  l.n_tensors = w.out.size();
  w.put<uint64_t>(tensors.size());
  l.n_kv = w.out.size();
  w.put<uint64_t>(6);
  l.first_key_len = w.out.size();
  w.str("general.architecture");
  l.first_value_type = w.out.size();
  w.put<uint32_t>(8);
  w.str("llama");
  w.str("general.alignment");
  w.put<uint32_t>(4);
  l.alignment_value = w.out.size();
  w.put<uint32_t>(alignment);
  w.str("llama.block_count");
  w.put<uint32_t>(4);
  w.put<uint32_t>(2);
  w.str("llama.rope.freq_base");
  w.put<uint32_t>(6);
  w.put<float>(500000.0f);
  w.str("tokenizer.ggml.tokens");
  w.put<uint32_t>(9);
  w.put<uint32_t>(8);
  w.put<uint64_t>(3);
  for (const char* t : {"<s>", "a", "\xc4\xa0" "b"}) w.str(t);
  w.str("tokenizer.ggml.add_bos_token");
  w.put<uint32_t>(7);
  w.put<uint8_t>(1);
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& t = tensors[i];
    w.str(t.name);
    if (i == 0) l.first_tensor_ndims = w.out.size();
    w.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    if (i == 0) l.first_tensor_dim0 = w.out.size();
    for (uint64_t d : t.dims) w.put<uint64_t>(d);
    if (i == 0) l.first_tensor_type = w.out.size();
    w.put<uint32_t>(t.type);
    if (i == 0) l.first_tensor_offset = w.out.size();
    w.put<uint64_t>(offset);
    offsets.push_back(offset);
    offset += (t.data.size() + alignment - 1) / alignment * alignment;
  }
  w.pad(alignment);
  const size_t data_start = w.out.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    w.out.resize(data_start + offsets[i], 0);
    w.out.insert(w.out.end(), tensors[i].data.begin(), tensors[i].data.end());
  }
  if (layout) *layout = l;
  return w.out;
}

std::vector<TensorSpec> sample_tensors() {
  std::vector<uint8_t> f32(4 * 6), q8(2 * 34);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 3 + 1);
  return {{"token_embd.weight", 0, {3, 2}, f32}, {"blk.0.attn_q.weight", 8, {32, 2}, q8}};
}

template <typename F>
std::string error_msg(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& bytes) {
  return GgufFile::parse(bytes.data(), bytes.size(), "test.gguf");
}

// The message of the error `bytes` gives (empty if it parses).
std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    parse(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Gguf, ReadsMetadataAndTensors) {
  const auto bytes = build(sample_tensors());
  auto g = parse(bytes);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 32u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(static_cast<float>(g->get_float("llama.rope.freq_base")), 500000.0f);
  EXPECT_TRUE(g->get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(g->get_strings("tokenizer.ggml.tokens"), (std::vector<std::string>{"<s>", "a", "\xc4\xa0" "b"}));
  EXPECT_EQ(g->get_int("missing", 7), 7);
  ASSERT_EQ(g->tensors().size(), 2u);
  const GgufTensor& q = g->tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, GgmlType::Q8_0);
  EXPECT_EQ(q.dims, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(q.row_length(), 32);
  EXPECT_EQ(q.rows(), 2);
  EXPECT_EQ(q.nbytes, 68u);
  EXPECT_EQ(q.offset % 32, 0u);
  EXPECT_EQ(std::memcmp(q.data, sample_tensors()[1].data.data(), 68), 0);
  EXPECT_EQ(g->tensor("token_embd.weight").data[5], 35);
  // Wrong types and missing keys name the key.
  EXPECT_NE(error_msg([&] { g->get_int("general.architecture"); }).find("general.architecture"), std::string::npos);
  EXPECT_NE(error_msg([&] { g->tensor("nope"); }).find("nope"), std::string::npos);
}

TEST(Gguf, EveryTruncationIsAClearError) {
  const auto bytes = build(sample_tensors());
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string e = error_of(cut);
    EXPECT_FALSE(e.empty()) << "a file cut to " << n << " of " << bytes.size() << " bytes parsed";
    EXPECT_NE(e.find("test.gguf"), std::string::npos) << e;
  }
}

TEST(Gguf, EachCorruptHeaderFieldIsNamed) {
  Layout l;
  const auto good = build(sample_tensors(), &l);
  auto with = [&](size_t pos, auto value) {
    auto b = good;
    std::memcpy(b.data() + pos, &value, sizeof(value));
    return error_of(b);
  };
  EXPECT_NE(with(0, uint32_t{0x12345678}).find("magic"), std::string::npos);
  EXPECT_NE(with(l.version, uint32_t{1}).find("v1"), std::string::npos);
  EXPECT_NE(with(l.version, uint32_t{4}).find("version"), std::string::npos);
  EXPECT_NE(with(l.version, uint32_t{0x03000000}).find("big-endian"), std::string::npos);
  EXPECT_NE(with(l.n_tensors, uint64_t{1} << 40).find("tensor count"), std::string::npos);
  EXPECT_NE(with(l.n_kv, uint64_t{1} << 40).find("metadata count"), std::string::npos);
  // Under the absolute limit but more entries than the file's bytes can hold: refused before
  // anything is reserved for them (fuzz_gguf found a 1 GB allocation for a 183-byte file).
  EXPECT_NE(with(l.n_tensors, uint64_t{12} << 20).find("tensor count claims 12582912 tensors, more than the file holds"),
            std::string::npos);
  EXPECT_NE(with(l.n_kv, uint64_t{99}).find("metadata"), std::string::npos);
  EXPECT_NE(with(l.first_key_len, uint64_t{1} << 50).find("past the end"), std::string::npos);
  EXPECT_NE(with(l.first_value_type, uint32_t{77}).find("unknown type 77"), std::string::npos);
  EXPECT_NE(with(l.alignment_value, uint32_t{24}).find("power of two"), std::string::npos);
  EXPECT_NE(with(l.alignment_value, uint32_t{0}).find("power of two"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_ndims, uint32_t{0}).find("dimensions"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_ndims, uint32_t{5}).find("dimensions"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_dim0, uint64_t{0}).find("dimension 0"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_dim0, uint64_t{1} << 40).find("runs past the end"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_dim0, uint64_t{1} << 62).find("overflowing"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_type, uint32_t{250}).find("unknown tensor type 250"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_type, uint32_t{12}).find("not a multiple of Q4_K's block of 256"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_offset, uint64_t{3}).find("alignment"), std::string::npos);
  EXPECT_NE(with(l.first_tensor_offset, uint64_t{1} << 20).find("runs past the end"), std::string::npos);
  // Duplicate tensor names, and a tensor whose data the file does not hold.
  auto dup = sample_tensors();
  dup[1].name = dup[0].name;
  EXPECT_NE(error_of(build(dup)).find("appears twice"), std::string::npos);
  // Every single-byte change of the header parses or fails cleanly (no crash, no hang).
  std::mt19937 rng(7);
  const size_t header = l.first_tensor_offset + 8;
  for (size_t pos = 0; pos < header; ++pos)
    for (int k = 0; k < 3; ++k) {
      auto b = good;
      b[pos] = static_cast<uint8_t>(rng());
      (void)error_of(b);
    }
}

// ---------------------------------------------------------------- dequantization

uint16_t f16(float v) { return f32_to_f16(v); }

// Sub-block scales and mins (6 bits each) packed as Q4_K / Q5_K keep them: the inverse of
// the unpacking (low 6 bits of bytes 0-7 for the first four; nibbles of bytes 8-11 and the top
// two bits of bytes 0-7 for the last four).
void pack_scales(const int sc[8], const int mn[8], uint8_t out[12]) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] & 63);
    out[j + 4] = static_cast<uint8_t>(mn[j] & 63);
  }
  for (int j = 4; j < 8; ++j) {
    out[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
    out[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
    out[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
  }
}

std::vector<float> dequant(GgmlType t, const void* block, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(t, block, y.data(), n);
  return y;
}

TEST(GgufDequant, Q8_0AndQ4_0AndQ4_1) {
  std::mt19937 rng(1);
  BlockQ8_0 q8;
  q8.d = f16(0.0312f);
  for (int j = 0; j < 32; ++j) q8.qs[j] = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  auto y = dequant(GgmlType::Q8_0, &q8, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], f16_to_f32(q8.d) * static_cast<float>(q8.qs[j]));

  int q[32];
  BlockQ4_0 q4;
  q4.d = f16(-0.25f);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int>(rng() % 16);
  for (int j = 0; j < 16; ++j) q4.qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));  // value j low, j+16 high
  y = dequant(GgmlType::Q4_0, &q4, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], -0.25f * static_cast<float>(q[j] - 8)) << j;

  BlockQ4_1 q41;
  q41.d = f16(0.5f);
  q41.m = f16(-1.75f);
  for (int j = 0; j < 16; ++j) q41.qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
  y = dequant(GgmlType::Q4_1, &q41, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(q[j]) - 1.75f) << j;
}

TEST(GgufDequant, Q5_0AndQ5_1) {
  std::mt19937 rng(2);
  int q[32];
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int>(rng() % 32);
  uint32_t qh = 0;
  uint8_t qs[16];
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>(q[j] >> 4) << j;  // the fifth bit of value j at bit j
  BlockQ5_0 b0;
  b0.d = f16(0.125f);
  std::memcpy(b0.qh, &qh, 4);
  std::memcpy(b0.qs, qs, 16);
  auto y = dequant(GgmlType::Q5_0, &b0, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.125f * static_cast<float>(q[j] - 16)) << j;
  BlockQ5_1 b1;
  b1.d = f16(0.25f);
  b1.m = f16(3.0f);
  std::memcpy(b1.qh, &qh, 4);
  std::memcpy(b1.qs, qs, 16);
  y = dequant(GgmlType::Q5_1, &b1, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.25f * static_cast<float>(q[j]) + 3.0f) << j;
}

TEST(GgufDequant, Q4_KAndQ5_K) {
  std::mt19937 rng(3);
  int sc[8], mn[8], q[256];
  for (int j = 0; j < 8; ++j) sc[j] = static_cast<int>(rng() % 64), mn[j] = static_cast<int>(rng() % 64);
  for (int& v : q) v = static_cast<int>(rng() % 32);
  const float d = f16_to_f32(f16(0.0123f)), dmin = f16_to_f32(f16(0.0456f));
  BlockQ4_K b4{};
  b4.d = f16(0.0123f);
  b4.dmin = f16(0.0456f);
  pack_scales(sc, mn, b4.scales);
  // Sub-block s, value l: byte (s / 2) * 32 + l, low nibble for even s, high for odd.
  for (int s = 0; s < 8; ++s)
    for (int l = 0; l < 32; ++l) b4.qs[(s / 2) * 32 + l] |= static_cast<uint8_t>((q[s * 32 + l] & 0xF) << (4 * (s % 2)));
  auto y = dequant(GgmlType::Q4_K, &b4, 256);
  for (int v = 0; v < 256; ++v) {
    const int s = v / 32;
    const float want = (d * static_cast<float>(sc[s])) * static_cast<float>(q[v] & 0xF) - dmin * static_cast<float>(mn[s]);
    EXPECT_EQ(y[v], want) << v;
  }
  BlockQ5_K b5{};
  b5.d = b4.d;
  b5.dmin = b4.dmin;
  std::memcpy(b5.scales, b4.scales, 12);
  std::memcpy(b5.qs, b4.qs, 128);
  for (int s = 0; s < 8; ++s)  // the fifth bit of sub-block s, value l: bit s of qh[l]
    for (int l = 0; l < 32; ++l) b5.qh[l] |= static_cast<uint8_t>((q[s * 32 + l] >> 4) << s);
  y = dequant(GgmlType::Q5_K, &b5, 256);
  for (int v = 0; v < 256; ++v) {
    const int s = v / 32;
    const float want = (d * static_cast<float>(sc[s])) * static_cast<float>(q[v]) - dmin * static_cast<float>(mn[s]);
    EXPECT_EQ(y[v], want) << v;
  }
}

TEST(GgufDequant, Q6_K) {
  std::mt19937 rng(4);
  int q[256];
  int8_t sc[16];
  for (int& v : q) v = static_cast<int>(rng() % 64);
  for (auto& s : sc) s = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  BlockQ6_K b{};
  b.d = f16(0.0078f);
  std::memcpy(b.scales, sc, 16);
  // Value v: half n = v / 128; in it, group g = r / 32 and lane l = r % 32. Its low 4 bits are
  // in ql[n * 64 + l + 32 * (g % 2)] (low nibble for g < 2), its top 2 in qh[n * 32 + l] at bit 2g.
  for (int v = 0; v < 256; ++v) {
    const int n = v / 128, r = v % 128, g = r / 32, l = r % 32;
    b.ql[n * 64 + l + 32 * (g % 2)] |= static_cast<uint8_t>((q[v] & 0xF) << (4 * (g / 2)));
    b.qh[n * 32 + l] |= static_cast<uint8_t>((q[v] >> 4) << (2 * g));
  }
  const auto y = dequant(GgmlType::Q6_K, &b, 256);
  const float d = f16_to_f32(b.d);
  for (int v = 0; v < 256; ++v)
    EXPECT_EQ(y[v], d * static_cast<float>(sc[v / 16]) * static_cast<float>(q[v] - 32)) << v;
}

TEST(GgufDequant, PlainTypesAndRefusals) {
  const uint16_t h[2] = {f16(1.5f), f16(-2.0f)};
  auto y = dequant(GgmlType::F16, h, 2);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[1], -2.0f);
  const uint16_t bf[1] = {0x3fc0};  // 1.5
  EXPECT_EQ(dequant(GgmlType::BF16, bf, 1)[0], 1.5f);
  uint8_t junk[256] = {};
  EXPECT_THROW(dequant(GgmlType::IQ2_XXS, junk, 256), Error);
  EXPECT_THROW(dequant(GgmlType::Q8_0, junk, 31), Error);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_FALSE(ggml_type_info(200));
}

}  // namespace
}  // namespace ferrum
