// The Hugging Face cache: repo ids, where the cache is, finding snapshots, listing sizes.
// (Downloads are tested end to end against a fake hub: tests/scripts/hub_pull.sh.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/hf_hub.h"

namespace fs = std::filesystem;
using namespace ferrum;

namespace {

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST(HfHub, RepoRefs) {
  auto r = hub::parse_repo_ref("Qwen/Qwen3-0.6B");
  EXPECT_EQ(r.repo_id, "Qwen/Qwen3-0.6B");
  EXPECT_EQ(r.revision, "main");
  r = hub::parse_repo_ref("meta-llama/Llama-3.2-1B:refs/pr/1");
  EXPECT_EQ(r.revision, "refs/pr/1");
  for (const char* bad : {"noslash", "a/b/c", "../etc", "a/..", "/abs", "a/b:", "a/b:../x", "a--b/c", "a/b c", ""})
    EXPECT_THROW(hub::parse_repo_ref(bad), Error) << bad;
  EXPECT_EQ(hub::repo_folder_name("org/name"), "models--org--name");
}

// ORG/NAME:QUANT names a GGUF file of the repo (llama.cpp's -hf, ollama); other tags stay
// revisions.
TEST(HfHub, GgufQuantRefs) {
  auto r = hub::parse_repo_ref("unsloth/Qwen3-8B-GGUF:q4_k_m");
  EXPECT_EQ(r.repo_id, "unsloth/Qwen3-8B-GGUF");
  EXPECT_EQ(r.gguf_quant, "Q4_K_M");
  EXPECT_EQ(r.revision, "main");
  for (const char* q : {"Q8_0", "IQ4_XS", "Q5_K_S", "F16", "bf16", "Q6_K", "TQ1_0"})
    EXPECT_TRUE(hub::looks_like_gguf_quant(q)) << q;
  for (const char* rev : {"main", "v1", "refs/pr/1", "0123abc", "Q", "Qwen"}) {
    EXPECT_FALSE(hub::looks_like_gguf_quant(rev)) << rev;
    EXPECT_TRUE(hub::parse_repo_ref(std::string("a/b:") + rev).gguf_quant.empty()) << rev;
  }
  const std::vector<std::string> files = {"README.md", "Qwen3-8B-Q4_K_M.gguf", "Qwen3-8B-Q4_K_S.gguf", "Qwen3-8B-Q8_0.gguf",
                                          "mmproj-Qwen3-8B-Q8_0.gguf", "BF16/Qwen3-8B-BF16-00001-of-00002.gguf",
                                          "BF16/Qwen3-8B-BF16-00002-of-00002.gguf"};
  EXPECT_EQ(hub::pick_gguf_file(files, "Q4_K_M", "r"), "Qwen3-8B-Q4_K_M.gguf");
  EXPECT_EQ(hub::pick_gguf_file(files, "q8_0", "r"), "Qwen3-8B-Q8_0.gguf") << "not the projector";
  try {
    hub::pick_gguf_file(files, "Q2_K", "org/r");
    ADD_FAILURE() << "no Q2_K file, yet one was picked";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K_S"), std::string::npos) << "lists what the repo has: " << e.what();
  }
  EXPECT_THROW(hub::pick_gguf_file(files, "BF16", "r"), Error) << "split files";
}

TEST(HfHub, CacheDirPrecedence) {
  ScopedEnv a("HF_HUB_CACHE", nullptr), b("HUGGINGFACE_HUB_CACHE", nullptr), c("HF_HOME", nullptr),
      d("XDG_CACHE_HOME", nullptr), e("HOME", "/home/u");
  EXPECT_EQ(hub::cache_dir(), "/home/u/.cache/huggingface/hub");
  ScopedEnv x("XDG_CACHE_HOME", "/xdg");
  EXPECT_EQ(hub::cache_dir(), "/xdg/huggingface/hub");
  ScopedEnv h("HF_HOME", "/hf");
  EXPECT_EQ(hub::cache_dir(), "/hf/hub");
  ScopedEnv hc("HF_HUB_CACHE", "/cache");
  EXPECT_EQ(hub::cache_dir(), "/cache");
}

TEST(HfHub, FindAndListSnapshots) {
  fs::path cache = fs::temp_directory_path() / ("ferrum_hub_test_" + std::to_string(getpid()));
  fs::remove_all(cache);
  fs::path repo = cache / "models--org--model";
  std::string commit = "abcdef0123456789abcdef0123456789abcdef01";
  write(repo / "blobs" / "b1", std::string(1500, 'x'));
  write(repo / "blobs" / "b2", std::string(500, 'y'));
  write(repo / "blobs" / "b3.incomplete", std::string(9999, 'z'));  // not counted
  fs::create_directories(repo / "snapshots" / commit);
  fs::create_symlink("../../blobs/b1", repo / "snapshots" / commit / "config.json");
  write(repo / "refs" / "main", commit + "\n");
  fs::create_directories(cache / "models--org--partial" / "snapshots" / commit);  // no config.json

  auto snap = hub::find_snapshot(cache.string(), {"org/model", "main"});
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(fs::path(*snap), repo / "snapshots" / commit);
  EXPECT_TRUE(hub::find_snapshot(cache.string(), {"org/model", commit}).has_value());
  EXPECT_FALSE(hub::find_snapshot(cache.string(), {"org/model", "dev"}).has_value());
  EXPECT_FALSE(hub::find_snapshot(cache.string(), {"org/partial", commit}).has_value());
  EXPECT_FALSE(hub::find_snapshot(cache.string(), {"org/absent", "main"}).has_value());

  auto repos = hub::list_cached(cache.string());
  ASSERT_EQ(repos.size(), 2u);
  EXPECT_EQ(repos[0].repo_id, "org/model");
  EXPECT_EQ(repos[0].size_bytes, 2000u);
  ASSERT_EQ(repos[0].refs.size(), 1u);
  EXPECT_EQ(repos[0].refs[0], "main -> abcdef012345");
  EXPECT_EQ(repos[1].repo_id, "org/partial");

  {
    ScopedEnv hc("HF_HUB_CACHE", cache.c_str());
    EXPECT_EQ(fs::path(hub::resolve_model("org/model", false)), repo / "snapshots" / commit);
    EXPECT_THROW(hub::resolve_model("org/absent", false), Error);
    EXPECT_THROW(hub::resolve_model("not a model", false), Error);
    EXPECT_EQ(hub::resolve_model(cache.string(), false), cache.string());  // a folder is itself
  }
  fs::remove_all(cache);
}

TEST(HfHub, HumanBytes) {
  EXPECT_EQ(hub::human_bytes(999), "999 B");
  EXPECT_EQ(hub::human_bytes(1500), "1.5 KB");
  EXPECT_EQ(hub::human_bytes(2'500'000'000ull), "2.5 GB");
}
