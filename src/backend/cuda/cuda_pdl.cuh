// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may start while the
// kernel before it in the stream is still finishing. It must call pdl_wait() before it reads
// anything an earlier kernel wrote (every thread that reads, and at least one thread of every
// block: a grid counts as done only when its blocks are, which keeps the chain of waits
// transitive). What no earlier kernel writes (weights) may be read before the wait: that is
// how a decode step's GEMVs start streaming their weights during the previous op's tail.
// pdl_trigger() lets the next kernel launch once every block of this one has started.
// FERRUM_NO_PDL=1 launches normally (the waits then return at once).
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
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
  static const bool on = std::getenv("FERRUM_NO_PDL") == nullptr;
  return on;
}

template <typename... KernelArgs, typename... Args>
void launch_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace ferrum::cuda
