// ferrum pull ORG/NAME[:REVISION]: downloads a model into the Hugging Face cache.
#include <cstdio>

#include "cli/commands.h"
#include "io/hf_hub.h"

namespace ferrum::cli {

void register_pull(CLI::App& app) {
  auto spec = std::make_shared<std::string>();
  auto* cmd = add_command(app, "pull", "Download a model from the Hugging Face hub into its cache (honours HF_TOKEN, HF_ENDPOINT, HF_HOME, HF_HUB_CACHE)", [spec] {
    hub::RepoRef ref = hub::parse_repo_ref(*spec);
    std::string snapshot = hub::download_model(ref, hub::default_download_options());
    std::printf("%s\n", snapshot.c_str());
    return 0;
  });
  cmd->add_option("repo", *spec, "ORG/NAME or ORG/NAME:REVISION (branch, tag or commit)")->required();
}

}  // namespace ferrum::cli
