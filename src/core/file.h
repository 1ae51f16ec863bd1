// Reading a whole file into memory, with the error every caller wants.
#pragma once
#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"

namespace ferrum {

// The file's bytes; throws ferrum::Error "cannot read PATH" when it cannot be opened.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace ferrum
