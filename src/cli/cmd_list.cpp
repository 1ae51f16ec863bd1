// ferrum list: the models in the Hugging Face cache, with their sizes on disk.
#include <cstdio>

#include "cli/commands.h"
#include "io/hf_hub.h"

namespace ferrum::cli {

void register_list(CLI::App& app) {
  add_command(app, "list", "List the models in the Hugging Face cache with their sizes", [] {
    std::string cache = hub::cache_dir();
    auto repos = hub::list_cached(cache);
    if (repos.empty()) {
      std::fprintf(stderr, "no models in %s (download one with `ferrum pull ORG/NAME`)\n", cache.c_str());
      return 0;
    }
    size_t width = 8;
    for (auto& r : repos) width = std::max(width, r.repo_id.size());
    std::printf("%-*s  %10s  %s\n", static_cast<int>(width), "MODEL", "SIZE", "REVISIONS");
    for (auto& r : repos) {
      std::string revs;
      for (auto& ref : r.refs) revs += (revs.empty() ? "" : ", ") + ref;
      if (revs.empty())
        for (auto& s : r.snapshots) revs += (revs.empty() ? "" : ", ") + s.substr(0, 12);
      std::printf("%-*s  %10s  %s\n", static_cast<int>(width), r.repo_id.c_str(), hub::human_bytes(r.size_bytes).c_str(),
                  revs.c_str());
    }
    return 0;
  });
}

}  // namespace ferrum::cli
