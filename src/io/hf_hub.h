// The Hugging Face hub cache (~/.cache/huggingface/hub, as huggingface_hub lays it out:
// models--org--name/{blobs,snapshots/<commit>,refs/<revision>}) and downloads into it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferrum::hub {

struct RepoRef {
  std::string repo_id;            // "org/name"
  std::string revision = "main";  // branch, tag or commit
  // "Q4_K_M" in "org/name:Q4_K_M" (as llama.cpp's -hf and ollama take it): the repo's .gguf
  // file of that quantization, not a revision. Empty otherwise.
  std::string gguf_quant;
};

// "org/name", "org/name:revision" or "org/name:QUANT" (a tag that names a GGUF quantization:
// Q4_K_M, Q8_0, IQ4_XS, F16, BF16, ... in any case); throws ferrum::Error on anything else.
RepoRef parse_repo_ref(const std::string& spec);
bool looks_like_gguf_quant(const std::string& tag);
// The GGUF file of `quant` among a repo's file names: a .gguf whose name has the quant as a
// word (Qwen3-8B-Q4_K_M.gguf), not a projector (mmproj); the first in name order when several
// do. Fails naming the quantizations the repo has when none does, and for split files.
std::string pick_gguf_file(const std::vector<std::string>& files, const std::string& quant, const std::string& repo);
bool looks_like_repo_id(const std::string& spec);

// HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub.
std::string cache_dir();
std::string repo_folder_name(const std::string& repo_id);  // models--org--name

// The snapshot folder of a cached revision (a ref name resolved through refs/, or a commit).
std::optional<std::string> find_snapshot(const std::string& cache, const RepoRef& ref);

struct CachedRepo {
  std::string repo_id;
  std::string path;                    // the repo folder in the cache
  uint64_t size_bytes = 0;             // blobs on disk (each counted once)
  std::vector<std::string> refs;       // "main -> 1a2b3c4"
  std::vector<std::string> snapshots;  // commit hashes present
};
std::vector<CachedRepo> list_cached(const std::string& cache);

struct DownloadOptions {
  std::string endpoint;  // default: HF_ENDPOINT or https://huggingface.co
  std::string token;     // default: HF_TOKEN, else the token file of huggingface-cli login
  bool progress = true;  // progress bar on stderr
  std::string cache;     // default: cache_dir()
};
DownloadOptions default_download_options();

// Downloads the files a model needs (config, tokenizer, chat template, safetensors weights; or
// for a GGUF quant reference, that one .gguf file) into the cache, resuming partial downloads.
// Returns the snapshot folder (the .gguf file's path for a quant reference).
std::string download_model(const RepoRef& ref, const DownloadOptions& options);

// MODEL as the CLI takes it: a local folder; else a repo id found in the cache; else (when
// allow_download) downloaded. Throws ferrum::Error with what was tried.
std::string resolve_model(const std::string& spec, bool allow_download = true);

std::string human_bytes(uint64_t bytes);  // "1.5 GB"
std::string env(const char* name);        // the variable's value, or "" when unset

}  // namespace ferrum::hub
