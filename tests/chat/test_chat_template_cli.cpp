// `ferrum chat-template` end to end: runs the built binary (FERRUM_BINARY_DIR/ferrum) on a
// model directory made from a fixture, compares stdout byte for byte with jinja2's rendering,
// and checks the error paths (exit code and message on stderr). Skipped when the binary has
// not been built (test_chat does not depend on it); CI builds everything first. FERRUM_CLI
// may name the binary of another build.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>

#include "core/json.h"
#include "golden_reference.h"

namespace ferrum::chat {
namespace {
namespace fs = std::filesystem;
using testing::fixtures_dir;
using testing::read_file;

struct CommandResult {
  int exit_code;
  std::string out, err;
};

class ChatTemplateCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* override_path = std::getenv("FERRUM_CLI");  // another build's binary
    binary_ = override_path ? fs::path(override_path) : fs::path(FERRUM_BINARY_DIR) / "ferrum";
    if (!fs::exists(binary_)) GTEST_SKIP() << binary_ << " is not built";
    // One folder per process: ctest runs the cases of this file in parallel.
    dir_ = fs::path(FERRUM_BINARY_DIR) / ("chat_cli_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "model");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }

  CommandResult run(const std::string& args) {
    std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    std::string cmd = binary_.string() + " chat-template " + args + " >" + out + " 2>" + err;
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
  }

  fs::path binary_, dir_;
};

TEST_F(ChatTemplateCommand, PrintsThePromptExactly) {
  // Qwen3 with tools and thinking disabled, against the stored jinja2 rendering.
  ordered_json config = {{"eos_token", "<|im_end|>"}, {"bos_token", nullptr},
                         {"chat_template", read_file(fixtures_dir() + "/qwen3.jinja")}};
  write("model/tokenizer_config.json", config.dump());
  ordered_json convs = ordered_json::parse(read_file(fixtures_dir() + "/conversations.json"));
  json py = json::parse(read_file(fixtures_dir() + "/jinja2_reference.json"))["results"]["qwen3"];
  for (const auto& c : convs["cases"]) {
    std::string name = c["name"].get<std::string>();
    if (name != "tool_call_and_result" && name != "thinking_disabled" && name != "multi_turn_no_generation_prompt") continue;
    SCOPED_TRACE(name);
    std::string args = "-m " + (dir_ / "model").string() + " --messages " + write("m.json", c["messages"].dump());
    if (c.value("use_tools", false)) args += " --tools " + write("t.json", convs["tools"].dump());
    if (!c["add_generation_prompt"].get<bool>()) args += " --no-generation-prompt";
    if (c.contains("kwargs")) args += " --kwargs '" + c["kwargs"].dump() + "'";
    CommandResult r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, py[name]["text"].get<std::string>());
  }
}

TEST_F(ChatTemplateCommand, ErrorsGoToStderrWithNonZeroExit) {
  std::string msgs = write("m.json", R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])");
  std::string model = (dir_ / "model").string();

  CommandResult missing = run("-m " + model + " --messages " + msgs);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no chat template found"), std::string::npos) << missing.err;
  EXPECT_TRUE(missing.out.empty());

  write("model/chat_template.jinja", read_file(fixtures_dir() + "/gemma2.jinja"));
  CommandResult raised = run("-m " + model + " --messages " + msgs);
  EXPECT_NE(raised.exit_code, 0);
  EXPECT_NE(raised.err.find("System role not supported"), std::string::npos) << raised.err;

  write("model/chat_template.jinja", "{% for m in messages %}{{ m.content }");
  CommandResult syntax = run("-m " + model + " --messages " + msgs);
  EXPECT_NE(syntax.exit_code, 0);
  EXPECT_NE(syntax.err.find("syntax error"), std::string::npos) << syntax.err;

  CommandResult bad_kwargs = run("-m " + model + " --messages " + msgs + " --kwargs '[1]'");
  EXPECT_NE(bad_kwargs.exit_code, 0);
  EXPECT_NE(bad_kwargs.err.find("--kwargs"), std::string::npos) << bad_kwargs.err;
}

}  // namespace
}  // namespace ferrum::chat
