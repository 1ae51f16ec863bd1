#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ferrum::cuda {

struct DeviceInfo {
  int index;
  std::string name;
  size_t total_memory;
  int compute_capability;  // e.g. 90 for Hopper
  int multiprocessors;
};

// The CUDA devices this process can use; empty without a driver or a GPU.
std::vector<DeviceInfo> list_devices();
// Multiprocessors of the current device (asked once; kernels size their grids by it).
int sm_count();

}  // namespace ferrum::cuda
