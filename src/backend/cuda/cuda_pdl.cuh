// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may start while the
// kernel before it in the stream is still finishing. It must call pdl_wait() before it reads
// anything an earlier kernel wrote (every thread that reads, and at least one thread of every
// block: a grid counts as done only when its blocks are, which keeps the chain of waits
// transitive). What no earlier kernel writes (weights) may be read before the wait: that is
// how a decode step's GEMVs start streaming their weights during the previous op's tail.
// Activations must then be read with load_activation() (or load_x<true>), never through the
// read-only path: __ldg, and the ld.global.nc that nvcc makes of a const __restrict__ pointer by
// itself, assume data that no grid writes while this one runs, which an overlapped predecessor
// breaks. pdl_trigger() lets the next kernel launch once every block of this one has started.
//
// Off unless FERRUM_PDL=1. On an H200 (2 December 2026) the read-only loads of x raced with it
// (bf16 decode at one row left transformers' greedy tokens at the first token; a self-draft
// accepted 0 of 700 proposals). With x through L2 it is correct (the op harness, the golden
// fixtures and SpecFixture.CudaSelfDraftOfARandomBf16ModelAcceptsAtOneSequence passed under
// FERRUM_PDL=1) but slower than no PDL with __ldg (8B bf16 c=1: 165.7 against 208.7 tok/s).
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace ferrum::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

inline bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FERRUM_PDL");
    return v && v[0] == '1';
  }();
  return on;
}

// For kernels that may always overlap their predecessor, whatever FERRUM_PDL says: each reads
// what earlier kernels wrote only after pdl_wait(), through L2 (load_activation, cp.async), and
// writes only after it (rms_norm). The environment variable `name` = 0 launches them without
// overlap (to compare). Callers keep the answer (a static).
inline bool overlap_unless_off(const char* name) {
  const char* v = std::getenv(name);
  return !(v && v[0] == '0');
}

// A load of an earlier kernel's output: through L2 (ld.global.cg, not the read-only cache), and
// volatile with a memory clobber, so that it is never moved above pdl_wait().
__device__ __forceinline__ uint4 load_activation(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}
__device__ __forceinline__ int2 load_activation(const int2* p) {
  int2 v;
  asm volatile("ld.global.cg.v2.s32 {%0, %1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "l"(p) : "memory");
  return v;
}

// One element (16 or 32 bits: bf16, half, float) of an earlier kernel's output, the same way.
// Plain `const T* __restrict__` loads are not enough: nvcc turns them into read-only
// (ld.global.nc) loads by itself (it did for qkv_rope's input and quantize_x's).
template <typename T>
__device__ __forceinline__ T load_activation(const T* p) {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4, "16- or 32-bit elements; uint4 and int2 have their own");
  T v;
  if constexpr (sizeof(T) == 2) {
    unsigned short bits;
    asm volatile("ld.global.cg.u16 %0, [%1];\n" : "=h"(bits) : "l"(p) : "memory");
    memcpy(&v, &bits, 2);
  } else {
    unsigned bits;
    asm volatile("ld.global.cg.u32 %0, [%1];\n" : "=r"(bits) : "l"(p) : "memory");
    memcpy(&v, &bits, 4);
  }
  return v;
}

// x (an earlier kernel's output) in the hot loops of the decode kernels, which come in two
// forms: without PDL a kernel starts once the one before it has finished, so the read-only path
// (__ldg, cached in L1, where the warps of a block share x) is safe and the fastest; with PDL it
// is not (above), and x comes through L2. The launch picks the form by pdl_enabled().
template <bool kPdl, typename T>
__device__ __forceinline__ T load_x(const T* p) {
  if constexpr (kPdl) return load_activation(p);
  else return __ldg(p);
}

// Launches `kernel`, which may overlap its predecessor's tail when `overlap` (see above).
template <typename... KernelArgs, typename... Args>
void launch_overlapping(bool overlap, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                        cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = overlap ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

// The same, overlapping under FERRUM_PDL=1 only.
template <typename... KernelArgs, typename... Args>
void launch_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  launch_overlapping(pdl_enabled(), kernel, grid, block, smem, s, std::forward<Args>(args)...);
}

}  // namespace ferrum::cuda
