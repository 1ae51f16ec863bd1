// The per-warp stream of a decode kernel over the tiles of cuda_packed_layout.h: one warp walks
// its split of one n-tile's K tiles in order (or of several n-tiles', one after the other) and keeps kStreamStages of them in flight through
// a ring of slots in shared memory (cp.async: bytes in flight without spending registers). Each
// lane copies its own 16 or 32 bytes of a tile and its two group parameters (rows g, g + 8) and
// reads them back itself, so the loop needs no barrier. Used by packed_stream_kernel (16-bit x
// on tensor cores) and packed_q8_kernel (x rounded to int8, dp4a).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_runtime.h"

namespace ferrum::cuda {

__host__ __device__ constexpr bool four_bit(PackedMode m) { return m == PackedMode::Int4Zero || m == PackedMode::Int4Affine; }

// Ring slots per warp: 4 tiles in flight (2 KB of 4-bit codes, 4 KB of 8-bit codes). Eight
// 4-bit slots measured slower (fewer warps fit in shared memory), two 8-bit slots too.
constexpr int kStreamStages = 4;
constexpr int kMaxSplits = 16;  // warps of a streaming block (each its part of K)
template <PackedMode kMode>
__host__ __device__ constexpr int stream_slot_bytes() { return (four_bit(kMode) ? 512 : 1024) + 32 * 8; }  // tile, then params

// Copies and loads by 32-bit shared-memory addresses (the stream keeps its slots' addresses so,
// which saves the per-tile generic-to-shared conversions and address arithmetic: a one-row
// decode GEMV issues about 130 instructions per 512-byte tile and warp, near the SM's limit).
__device__ __forceinline__ void cp_async4_at(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src) { cp_async4_at(smem_addr(dst), src); }
__device__ __forceinline__ void cp_async16_at(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ uint4 lds128(uint32_t at) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(at));
  return v;
}
__device__ __forceinline__ uint2 lds64(uint32_t at) {
  uint2 v;
  asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(at));
  return v;
}

// kWalk: the stream may run on over several n-tiles (the constructors with a stride); without
// it, one n-tile's tiles, and issue() keeps no per-n-tile count (the 16-bit decode kernel).
template <PackedMode kMode, bool kWalk = false>
struct TileStream {
  static constexpr int kVecs = four_bit(kMode) ? 1 : 2;  // 16-byte pieces per lane per tile
  static constexpr int kSlot = stream_slot_bytes<kMode>();

  // Tiles [kt0, kt1) of n-tile `ntile`; `slots`: this warp's kStreamStages slots.
  __device__ TileStream(uint8_t* slots, const PackedWeight& w, int64_t ntile, int64_t kt0, int64_t kt1, int lane)
      : TileStream(slots, w, ntile, 0, 1, kt0, kt1, lane) {}
  // Tiles [kt0, kt1) of ncount n-tiles from `ntile` on, in that order, each `stride` after the
  // one before: one stream across n-tiles, so that the next n-tile's first tiles are on their
  // way while this one's last are used. `stride_odd`: the step after the 2nd, 4th, ... n-tile
  // (for pairs of n-tiles, as the gate/up kernel walks them).
  __device__ TileStream(uint8_t* slots, const PackedWeight& w, int64_t ntile, int64_t stride, int64_t ncount,
                        int64_t kt0, int64_t kt1, int lane)
      : TileStream(slots, w, ntile, stride, stride, ncount, kt0, kt1, lane) {}
  __device__ TileStream(uint8_t* slots, const PackedWeight& w, int64_t ntile, int64_t stride, int64_t stride_odd,
                        int64_t ncount, int64_t kt0, int64_t kt1, int lane)
      : group_(static_cast<int>(w.group)) {
    const int g = lane / 4, t = lane % 4;
    const int64_t ktiles = w.cols / 64, groups = w.cols / w.group;
    tile_at_ = tile_start_ = reinterpret_cast<const uint4*>(w.tiles) + ((ntile * ktiles + kt0) * 32 + lane) * kVecs;
    tile_step_ = static_cast<int32_t>(stride * ktiles * 32 * kVecs);  // (a weight's tiles: < 2^31 x 16 bytes)
    tile_step_odd_ = static_cast<int32_t>(stride_odd * ktiles * 32 * kVecs);
    col0_ = col_ = static_cast<int>(kt0 * 64 + 16 * t);
    const int grp = col_ / group_;
    next_group0_ = next_group_ = (grp + 1) * group_;
    param_at_ = param_start_ = w.params + (ntile * groups + grp) * 16 + g;
    param_step_ = static_cast<int32_t>(stride * groups * 16);
    param_step_odd_ = static_cast<int32_t>(stride_odd * groups * 16);
    per_ntile_ = static_cast<int32_t>(kt1 > kt0 ? kt1 - kt0 : 0);
    left_in_ntile_ = per_ntile_;
    to_copy_ = per_ntile_ * static_cast<int32_t>(ncount > 0 ? ncount : 0);
    copy_at_ = read_at_ = smem_addr(slots) + lane * kVecs * 16;
    ring_end_ = copy_at_ + kStreamStages * kSlot;
    param_off_ = kVecs * 512 + lane * 8 - lane * kVecs * 16;
  }

  // Requests the next tile into the next slot (one commit group per call, empty past the end).
  __device__ __forceinline__ void issue() {
    if (to_copy_ > 0) {
#pragma unroll
      for (int h = 0; h < kVecs; ++h) cp_async16_at(copy_at_ + h * 16, tile_at_ + h);
      cp_async4_at(copy_at_ + param_off_, param_at_);
      cp_async4_at(copy_at_ + param_off_ + 4, param_at_ + 8);
      --to_copy_;
      if (kWalk && --left_in_ntile_ == 0) {  // on to the next n-tile, at kt0 again
        left_in_ntile_ = per_ntile_;
        // (no array indexed by odd_: it would live in local memory)
        tile_at_ = tile_start_ += odd_ ? tile_step_odd_ : tile_step_;
        param_at_ = param_start_ += odd_ ? param_step_odd_ : param_step_;
        odd_ = !odd_;
        col_ = col0_, next_group_ = next_group0_;
      } else {
        tile_at_ += 32 * kVecs;
        for (col_ += 64; col_ >= next_group_; next_group_ += group_) param_at_ += 16;  // no division
      }
    }
    copy_at_ = copy_at_ + kSlot == ring_end_ ? copy_at_ + kSlot - kStreamStages * kSlot : copy_at_ + kSlot;
    cp_async_commit();
  }
  __device__ __forceinline__ void prologue() {
#pragma unroll
    for (int s = 0; s < kStreamStages - 1; ++s) issue();
  }
  // Waits for the oldest requested tile: this lane's 4 (or 8) words and parameters (p.x: row
  // g, p.y: row g + 8). The next issue() reuses its slot.
  __device__ __forceinline__ void take(uint32_t* words, uint2& p) {
    cp_async_wait<kStreamStages - 1>();
#pragma unroll
    for (int h = 0; h < kVecs; ++h) {
      const uint4 v = lds128(read_at_ + h * 16);
      words[4 * h] = v.x, words[4 * h + 1] = v.y, words[4 * h + 2] = v.z, words[4 * h + 3] = v.w;
    }
    p = lds64(read_at_ + param_off_);
    read_at_ = read_at_ + kSlot == ring_end_ ? read_at_ + kSlot - kStreamStages * kSlot : read_at_ + kSlot;
  }

 private:
  // Shared addresses: this lane's piece of the slot to fill and of the slot to read (the
  // tile's bytes; its parameters param_off_ further), and where the lane's last slot ends.
  uint32_t copy_at_, read_at_, ring_end_, param_off_;
  const uint4 *tile_at_, *tile_start_;  // the next tile, and its n-tile's first
  const uint32_t *param_at_, *param_start_;
  int32_t tile_step_, param_step_, tile_step_odd_, param_step_odd_;  // to the next n-tile (after an odd one)
  int group_, col_, next_group_, col0_, next_group0_;
  int32_t to_copy_, per_ntile_, left_in_ntile_;
  bool odd_ = false;
};

// Blocks of `splits` warps that the GPU holds at once (one wave), per kernel and split count.
template <typename Kernel>
int64_t resident_blocks(Kernel kernel, int splits, int smem) {
  int per_sm = 0;
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, splits * 32, smem);
  return static_cast<int64_t>(std::max(per_sm, 1)) * sm_count();
}

// The split count of a streaming launch: the most warps per n-tile (up to kMaxSplits) that
// keep the grid in one wave with a full ring each. resident(c): blocks of c warps the GPU holds.
template <typename Resident>
int stream_splits(int64_t ntiles, int64_t ktiles, Resident&& resident) {
  int splits = 1;
  for (int c = 2; c <= kMaxSplits; ++c) {
    if (ktiles < static_cast<int64_t>(c) * kStreamStages) break;
    if (ntiles <= resident(c)) splits = c;
  }
  return splits;
}

}  // namespace ferrum::cuda
