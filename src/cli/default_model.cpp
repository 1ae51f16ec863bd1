#include "cli/default_model.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "core/error.h"

namespace ferrum::cli {
namespace fs = std::filesystem;

std::string default_model_dir() {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path bin = exe.parent_path();
    candidates.push_back(bin / "../models/ferrum-tiny");
    candidates.push_back(bin / "../share/ferrum/models/ferrum-tiny");
  }
#ifdef FERRUM_SOURCE_DIR
  candidates.push_back(fs::path(FERRUM_SOURCE_DIR) / "models/ferrum-tiny");
#endif
  std::string looked;
  for (const auto& c : candidates) {
    if (fs::exists(c / "config.json", ec)) return fs::weakly_canonical(c, ec).string();
    looked += (looked.empty() ? "" : ", ") + c.lexically_normal().string();
  }
  fail("no MODEL given and the bundled model ferrum-tiny was not found (looked in {}); give a model folder", looked);
}

}  // namespace ferrum::cli
