#include "backend/cuda/cuda_packed_layout.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/gguf_k_scales.h"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

uint16_t to_act(float v, DType act) { return act == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v); }

bool four_bit(PackedMode m) { return m == PackedMode::Int4Zero || m == PackedMode::Int4Affine; }

// (row, column c) of lane l's value i in a step, in the order of the tile's nibbles (4-bit) or
// bytes (8-bit); step j's column in the tile is 16t + 4j + c (see the header).
void position(bool nibbles, int lane, int i, int& row, int& col) {
  const int g = lane / 4;
  if (nibbles) {
    row = g + (i % 2) * 8;
    col = ((i / 2) % 2) * 2 + i / 4;
  } else {
    row = g + ((i / 2) % 2) * 8;
    col = (i / 4) * 2 + i % 2;
  }
}

// A row's codes (one per input feature) and, per group, its scale and its zero point or offset.
struct RowCodes {
  std::vector<uint8_t> codes;
  std::vector<float> scale, second;
};

// Tiles and parameters from a function that fills the codes of row n. Rows are decoded 16 at a
// time, n-tiles spread over the host's threads.
template <typename Decode>
MmaTiles build(PackedMode mode, int64_t rows, int64_t cols, int64_t group, DType act, const Decode& decode) {
  FERRUM_CHECK(act == DType::BF16 || act == DType::F16, "packed weights take F16 or BF16 activations, not {}",
               dtype_name(act));
  FERRUM_CHECK(cols % 64 == 0 && group % 16 == 0 && cols % group == 0,
               "quantized weights of {} columns in groups of {}: the GPU layout needs multiples of 64", cols, group);
  MmaTiles t;
  t.mode = mode;
  t.rows = rows;
  t.padded_rows = (rows + 15) / 16 * 16;
  t.cols = cols;
  t.group = group;
  const bool nibbles = four_bit(mode);
  const int64_t ktiles = cols / 64, groups = cols / group, ntiles = t.padded_rows / 16;
  const int64_t tile_bytes = nibbles ? 512 : 1024;
  t.data.assign(static_cast<size_t>(ntiles * ktiles * tile_bytes), 0);
  t.params.assign(static_cast<size_t>(ntiles * groups * 16), 0);
  const float magic4 = act == DType::BF16 ? 128.0f : 1024.0f;
  auto word = [&](float scale, float second) -> uint32_t {
    uint16_t hi = 0;
    switch (mode) {
      case PackedMode::Int4Zero: hi = to_act(magic4 + second, act); break;
      case PackedMode::Int8Zero: hi = f32_to_f16(1024.0f + second); break;  // subtracted in F16
      case PackedMode::Int4Affine: case PackedMode::Int8Affine: hi = to_act(second, act); break;
      case PackedMode::Fp8: break;
    }
    return static_cast<uint32_t>(to_act(scale, act)) | static_cast<uint32_t>(hi) << 16;
  };
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    std::vector<RowCodes> tile_rows(16);
    for (RowCodes& r : tile_rows) {
      r.codes.resize(cols);
      r.scale.resize(groups);
      r.second.resize(groups);
    }
    for (int64_t nt; (nt = next++) < ntiles;) {
      for (int r = 0; r < 16; ++r) {
        RowCodes& rc = tile_rows[r];
        if (nt * 16 + r < rows) {
          decode(nt * 16 + r, rc);
        } else {  // padding: zero codes, zero scales (and zero points that make zero weights)
          std::fill(rc.codes.begin(), rc.codes.end(), 0);
          std::fill(rc.scale.begin(), rc.scale.end(), 0.0f);
          std::fill(rc.second.begin(), rc.second.end(), 0.0f);
        }
        for (int64_t g = 0; g < groups; ++g) t.params[(nt * groups + g) * 16 + r] = word(rc.scale[g], rc.second[g]);
      }
      for (int64_t kt = 0; kt < ktiles; ++kt)
        for (int lane = 0; lane < 32; ++lane) {
          uint8_t* dst = t.data.data() + ((nt * ktiles + kt) * 32 + lane) * (tile_bytes / 32);
          for (int j = 0; j < 4; ++j)
            for (int i = 0; i < 8; ++i) {
              int r, c;
              position(nibbles, lane, i, r, c);
              const uint8_t code = tile_rows[r].codes[kt * 64 + 16 * (lane % 4) + 4 * j + c];
              if (nibbles) dst[j * 4 + i / 2] |= static_cast<uint8_t>((code & 15) << (4 * (i % 2)));
              else dst[j * 8 + i] = code;
            }
        }
    }
  };
  // Nibble i of a 4-bit word sits at bits 4i: byte i / 2, low half for even i.
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 32u);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (std::thread& th : pool) th.join();
  return t;
}

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// One GGUF block's codes (block values of them) and group parameters, from ggml's layouts.
void gguf_block(WeightFormat f, const uint8_t* b, uint8_t* codes, float* scale, float* second) {
  switch (f) {
    case WeightFormat::GgufQ4_0:  // d, 16 bytes: value j low nibble of byte j, j + 16 high; w = d (q - 8)
      for (int j = 0; j < 32; ++j) codes[j] = (b[2 + j % 16] >> (j < 16 ? 0 : 4)) & 15;
      scale[0] = f16_at(b);
      second[0] = 8;
      return;
    case WeightFormat::GgufQ8_0:  // d, 32 int8; w = d q = d ((q + 128) - 128)
      for (int j = 0; j < 32; ++j) codes[j] = static_cast<uint8_t>(static_cast<int8_t>(b[2 + j]) + 128);
      scale[0] = f16_at(b);
      second[0] = 128;
      return;
    case WeightFormat::GgufQ4K: case WeightFormat::GgufQ5K: {  // w = d sc q - dmin m per 32
      const bool five = f == WeightFormat::GgufQ5K;
      const float d = f16_at(b), dmin = f16_at(b + 2);
      const uint8_t* qs = b + (five ? 48 : 16);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        gguf_scale_min_k4(j, b + 4, sc, m);
        scale[j] = d * sc;
        second[j] = -dmin * m;
        for (int l = 0; l < 32; ++l) {
          int q = (qs[32 * (j / 2) + l] >> (j % 2 ? 4 : 0)) & 15;
          if (five) q += ((b[16 + l] >> j) & 1) << 4;
          codes[32 * j + l] = static_cast<uint8_t>(q);
        }
      }
      return;
    }
    case WeightFormat::GgufQ6K: {  // w = d sc (q - 32) per 16
      const float d = f16_at(b + 208);
      const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
      for (int i = 0; i < 16; ++i) {
        scale[i] = d * sc[i];
        second[i] = 32;
      }
      for (int h = 0; h < 2; ++h)
        for (int t = 0; t < 4; ++t)
          for (int l = 0; l < 32; ++l) {
            const uint8_t ql = b[64 * h + l + (t % 2) * 32], qh = b[128 + 32 * h + l];
            codes[128 * h + 32 * t + l] = static_cast<uint8_t>(((ql >> (t / 2 * 4)) & 15) | (((qh >> (2 * t)) & 3) << 4));
          }
      return;
    }
    default: fail("CUDA: no packed layout for {}", weight_format_name(f));
  }
}

}  // namespace

bool gguf_tiles_supported(WeightFormat f) {
  return f == WeightFormat::GgufQ4_0 || f == WeightFormat::GgufQ8_0 || f == WeightFormat::GgufQ4K ||
         f == WeightFormat::GgufQ5K || f == WeightFormat::GgufQ6K;
}

MmaTiles tile_int(const PackedInt& w, DType act) {
  const PackedMode mode = w.bits == 8 ? PackedMode::Int8Zero : PackedMode::Int4Zero;
  return build(mode, w.rows, w.cols, w.group, act, [&](int64_t n, RowCodes& r) {
    const uint8_t* row = w.qs.data() + n * (w.cols * w.bits / 8);
    for (int64_t i = 0; i < w.cols; ++i)
      r.codes[i] = w.bits == 8 ? row[i] : (row[i / 32 * 16 + i % 16] >> (i % 32 < 16 ? 0 : 4)) & 15;
    for (int64_t g = 0; g < w.groups(); ++g) {
      r.scale[g] = w.scales[n * w.groups() + g];
      r.second[g] = w.zeros[n * w.groups() + g];
    }
  });
}

MmaTiles tile_fp8(const PackedFp8& w, DType act) {
  // BF16 takes E4M3's bits as they are (exponent bias 7 read as bias 127): scales carry 2^120.
  const float factor = act == DType::BF16 ? std::ldexp(1.0f, 120) : 1.0f;
  const int64_t group = std::min(w.block_cols, w.cols);
  return build(PackedMode::Fp8, w.rows, w.cols, group, act, [&](int64_t n, RowCodes& r) {
    std::memcpy(r.codes.data(), w.q.data() + n * w.cols, w.cols);
    for (size_t g = 0; g < r.scale.size(); ++g) {
      const float s = w.scales[(n / w.block_rows) * w.scale_cols() + g * group / w.block_cols];
      FERRUM_CHECK(std::isfinite(s * factor) && (act == DType::BF16 || std::fabs(s) * 448.0f < 65504.0f),
                   "FP8 scale {} is out of the activations' range", s);
      r.scale[g] = s * factor;
      r.second[g] = 0;
    }
  });
}

MmaTiles tile_gguf(const uint8_t* blocks, WeightFormat f, int64_t rows, int64_t cols, DType act) {
  const int64_t values = gguf_block_values(f), bytes = gguf_block_bytes(f);
  const int64_t group = f == WeightFormat::GgufQ6K ? 16 : 32, per_block = values / group;
  const PackedMode mode = f == WeightFormat::GgufQ4_0   ? PackedMode::Int4Zero
                          : f == WeightFormat::GgufQ4K  ? PackedMode::Int4Affine
                          : f == WeightFormat::GgufQ5K  ? PackedMode::Int8Affine
                                                        : PackedMode::Int8Zero;  // Q6_K, Q8_0
  FERRUM_CHECK(gguf_tiles_supported(f) && cols % values == 0, "tile_gguf: {} rows of {}", weight_format_name(f), cols);
  return build(mode, rows, cols, group, act, [&](int64_t n, RowCodes& r) {
    const uint8_t* row = blocks + n * (cols / values) * bytes;
    for (int64_t b = 0; b < cols / values; ++b)
      gguf_block(f, row + b * bytes, r.codes.data() + b * values, r.scale.data() + b * per_block,
                 r.second.data() + b * per_block);
  });
}

namespace {

// Whether part p's experts fit the tiles: FP8 scale blocks and GPTQ/AWQ groups of whole
// 16-column pieces, and GPTQ input features in order (no act-order g_idx: the grouped kernels
// read x's rows as they are, not permuted per expert).
bool experts_fit_tiles(const LinearPart& p, int64_t K) {
  if (p.format == WeightFormat::Fp8) {  // scale blocks of whole tiles' columns
    const int64_t bc = p.quant.fp8_block[1];
    return bc <= 0 || (K % bc == 0 && bc % 16 == 0);
  }
  if (p.format != WeightFormat::Gptq && p.format != WeightFormat::Awq) return true;
  if (p.quant.group_size > 0 && (K % p.quant.group_size != 0 || p.quant.group_size % 16 != 0)) return false;
  if (p.format == WeightFormat::Awq) return true;
  const int64_t group = p.quant.group_size > 0 ? p.quant.group_size : K;
  for (const std::vector<Tensor>& extra : p.expert_extra) {
    if (extra.size() < 3) continue;  // no g_idx
    const Tensor& g = extra[2];
    if (g.dtype != DType::I32 || g.numel() != K) return false;  // pack_int says what is wrong
    for (int64_t k = 0; k < K; ++k)
      if (g.ptr<int32_t>()[k] != k / group) return false;
  }
  return true;
}

}  // namespace

bool experts_tileable(const LinearSpec& spec) {
  const LinearPart& first = spec.parts.front();
  if (spec.num_experts <= 0 || spec.in_features % 64 != 0) return false;
  if (!gguf_tiles_supported(first.format) && !is_packed_source(first.format)) return false;
  if (spec.parts.size() == 2 && spec.parts[0].rows != spec.parts[1].rows) return false;  // gate/up pairs
  for (size_t i = 0; i < spec.parts.size(); ++i) {
    const LinearPart& p = spec.parts[i];
    if (p.format != first.format || (i + 1 < spec.parts.size() && p.rows % 16 != 0)) return false;
    if (!experts_fit_tiles(p, spec.in_features)) return false;
  }
  return true;
}

MmaTiles tile_expert(const LinearSpec& spec, int64_t e, DType act) {
  // (experts_tileable(spec) is the caller's to ask once: it reads every expert's g_idx)
  FERRUM_CHECK(e >= 0 && e < spec.num_experts, "tile_expert: layer '{}', expert {}", spec.name, e);
  MmaTiles all;
  for (const LinearPart& p : spec.parts) {
    MmaTiles t;
    if (is_packed_source(p.format)) {  // GPTQ/AWQ/FP8: repacked first (random for dummy specs)
      t = p.format == WeightFormat::Fp8 ? tile_fp8(expert_fp8_weight(spec, p, e), act)
                                        : tile_int(expert_int_weight(spec, p, e), act);
    } else {
      const Tensor& blocks = p.experts[static_cast<size_t>(e)];
      FERRUM_CHECK(blocks.device == Device::CPU, "layer '{}': GGUF blocks of '{}' are not in host memory", spec.name,
                   p.name);
      t = tile_gguf(blocks.ptr<uint8_t>(), p.format, p.rows, spec.in_features, act);
    }
    if (all.data.empty()) {
      all = std::move(t);
      continue;
    }
    FERRUM_CHECK(t.mode == all.mode && t.group == all.group, "layer '{}': parts of expert {} tile differently",
                 spec.name, e);
    all.data.insert(all.data.end(), t.data.begin(), t.data.end());
    all.params.insert(all.params.end(), t.params.begin(), t.params.end());
    all.rows += t.rows;
    all.padded_rows += t.padded_rows;
  }
  return all;
}

std::vector<LayerPiece> tile_layer(const LinearSpec& spec, DType act, bool fp8_rows) {
  const int64_t K = spec.in_features;
  std::vector<LayerPiece> pieces;
  for (const LinearPart& p : spec.parts) {
    LayerPiece piece;
    if (p.format == WeightFormat::Dense) {
      piece.dense = &p;
      pieces.push_back(std::move(piece));
      continue;
    }
    if (gguf_block_values(p.format)) {
      FERRUM_CHECK(p.weight.device == Device::CPU, "layer '{}': GGUF blocks of '{}' are not in host memory", spec.name,
                   p.name);
      piece.tiles = tile_gguf(p.weight.ptr<uint8_t>(), p.format, p.rows, K, act);
    } else if (p.format == WeightFormat::Fp8) {
      PackedFp8 w = fp8_weight(spec, p);
      piece.tiles = tile_fp8(w, act);
      if (fp8_rows && w.block_cols >= w.cols) {  // a scale per row (blocks of [128, 128] have none)
        piece.fp8_row_scales.resize(static_cast<size_t>(w.rows));
        for (int64_t n = 0; n < w.rows; ++n) piece.fp8_row_scales[n] = w.scales[n / w.block_rows];
        piece.fp8_codes = std::move(w.q);
      }
    } else {
      PackedInt w = int_weight(spec, p);
      piece.tiles = tile_int(w, act);
      piece.perm = std::move(w.perm);
    }
    LayerPiece* last = pieces.empty() ? nullptr : &pieces.back();
    if (last && !last->dense && last->perm.empty() && piece.perm.empty() && last->tiles.mode == piece.tiles.mode &&
        last->tiles.group == piece.tiles.group && last->tiles.rows % 16 == 0) {
      MmaTiles& t = last->tiles;
      t.data.insert(t.data.end(), piece.tiles.data.begin(), piece.tiles.data.end());
      t.params.insert(t.params.end(), piece.tiles.params.begin(), piece.tiles.params.end());
      t.rows += piece.tiles.rows;
      t.padded_rows += piece.tiles.padded_rows;
      if (!last->fp8_codes.empty() && !piece.fp8_codes.empty() && last->tiles.rows - piece.tiles.rows ==
                                                                       static_cast<int64_t>(last->fp8_row_scales.size())) {
        last->fp8_codes.insert(last->fp8_codes.end(), piece.fp8_codes.begin(), piece.fp8_codes.end());
        last->fp8_row_scales.insert(last->fp8_row_scales.end(), piece.fp8_row_scales.begin(), piece.fp8_row_scales.end());
      } else {
        last->fp8_codes.clear();
        last->fp8_row_scales.clear();
      }
      continue;
    }
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

}  // namespace ferrum::cuda
