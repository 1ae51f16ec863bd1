// Parity with Hugging Face tokenizers on five real vocabularies: ids (with and without special
// tokens) and decodes must equal those of transformers.js (tests/js/tokenize_reference.mjs)
// for every string of tests/tokenizer/corpus.json. Also reports encoding speed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using ferrum::json;

namespace {

const fs::path kSourceDir = FERRUM_SOURCE_DIR;
const fs::path kJsDir = kSourceDir / "tests" / "js";

// Cases where transformers.js is known to differ from Python HF; the C++ side follows Python
// and the case is skipped here (test_components.cpp pins the behaviour that decides them).
struct KnownDivergence {
  const char* tokenizer;
  const char* text;
  const char* reason;
};
// JavaScript's \s leaves out U+0085 (NEL), which Oniguruma (Python HF) counts as whitespace,
// so DeepSeek's `\s+(?!\S)` takes " \u0085" as one piece in Python and " " + "\u0085" in JS.
// (U+FEFF is the opposite case; no corpus string gives different ids for it.)
const KnownDivergence kDivergences[] = {
    {"deepseek_v3", "a \u0085 b", "JS \\s excludes U+0085"},
    {"deepseek_v3", "x \u0085\n y", "JS \\s excludes U+0085"},
};

bool is_known_divergence(const std::string& tokenizer, const std::string& text) {
  for (const auto& d : kDivergences)
    if (tokenizer == d.tokenizer && text == d.text) return true;
  return false;
}

std::string escaped(const std::string& s) { return json(s).dump(); }

std::string ids_str(const std::vector<int32_t>& ids) { return json(ids).dump(); }

// Runs the node reference once for the whole test binary.
const json& reference() {
  static const json ref = [] {
    const fs::path out = fs::path(FERRUM_BINARY_DIR) / "tokenizer_reference.json";
    const std::string cmd = "cd '" + kJsDir.string() + "' && node tokenize_reference.mjs '" +
                            (kSourceDir / "tests/tokenizer/corpus.json").string() + "' '" + out.string() + "'";
    if (std::system(cmd.c_str()) != 0) return json();
    std::ifstream in(out);
    return json::parse(in);
  }();
  return ref;
}

json corpus() {
  std::ifstream in(kSourceDir / "tests/tokenizer/corpus.json");
  return json::parse(in).at("strings");
}

bool reference_available(std::string& why) {
  if (std::system("node --version > /dev/null 2>&1") != 0) {
    why = "node is not installed: run scripts/install-deps.sh";
    return false;
  }
  if (!fs::exists(kJsDir / "node_modules" / "@lenml" / "tokenizers")) {
    why = "tests/js/node_modules is missing: run scripts/install-deps.sh (or npm install in tests/js)";
    return false;
  }
  if (reference().is_null()) {
    why = "tests/js/tokenize_reference.mjs failed (see its output above)";
    return false;
  }
  return true;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, MatchesTransformersJs) {
  std::string why;
  ASSERT_TRUE(reference_available(why)) << why;
  const std::string name = GetParam();
  const json& ref = reference().at(name);
  const fs::path model_dir = kJsDir / "node_modules" / "@lenml" / ("tokenizer-" + name) / "models";
  auto tok = ferrum::Tokenizer::from_dir(model_dir.string());
  const json strings = corpus();
  const json& cases = ref.at("cases");
  ASSERT_EQ(cases.size(), strings.size());

  int id_mismatches = 0, decode_mismatches = 0, round_trips = 0, checked = 0;
  double cold_secs = 0;  // first encode of each string: the word cache does not help yet
  size_t bytes = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string text = strings[i].get<std::string>();
    if (is_known_divergence(name, text)) continue;
    ++checked;
    const json& c = cases[i];
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    const auto want_plain = c.at("ids_no_special").get<std::vector<int32_t>>();
    const auto start = std::chrono::steady_clock::now();
    const auto got = tok->encode(text, true);
    cold_secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bytes += text.size();
    const auto got_plain = tok->encode(text, false);
    if (got != want || got_plain != want_plain) {
      if (++id_mismatches <= 10)
        ADD_FAILURE() << name << " #" << i << " " << escaped(text) << "\n  want " << ids_str(want) << "\n  got  "
                      << ids_str(got) << "\n  want (no special) " << ids_str(want_plain) << "\n  got  (no special) "
                      << ids_str(got_plain);
      continue;
    }
    const std::string decoded = tok->decode(got_plain);
    const std::string decoded_skip = tok->decode(got, /*skip_special_tokens=*/true);
    if (decoded != c.at("decoded").get<std::string>() ||
        decoded_skip != c.at("decoded_skip_special").get<std::string>()) {
      if (++decode_mismatches <= 10)
        ADD_FAILURE() << name << " #" << i << " decode of " << escaped(text) << "\n  want "
                      << escaped(c.at("decoded").get<std::string>()) << " / "
                      << escaped(c.at("decoded_skip_special").get<std::string>()) << "\n  got  " << escaped(decoded)
                      << " / " << escaped(decoded_skip);
      continue;
    }
    // Where HF round-trips the text, so must we (implied by the equality above; counted).
    if (c.at("decoded").get<std::string>() == text) ++round_trips;
  }
  EXPECT_EQ(id_mismatches, 0) << name << ": id mismatches out of " << checked;
  EXPECT_EQ(decode_mismatches, 0) << name << ": decode mismatches out of " << checked;
  std::printf("[ %s ] %d strings checked, %d round-trip exactly\n", name.c_str(), checked, round_trips);

  // Speed on the corpus, reported, not asserted: cold above, then with a warm word cache.
  const auto t0 = std::chrono::steady_clock::now();
  size_t tokens = 0;
  constexpr int kRounds = 5;
  for (int r = 0; r < kRounds; ++r)
    for (const auto& s : strings) tokens += tok->encode(s.get_ref<const std::string&>(), false).size();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ %s ] encode: %.2f MB/s cold, %.2f MB/s warm (%.0f tokens/s)\n", name.c_str(),
              bytes / cold_secs / 1e6, bytes * kRounds / secs / 1e6, tokens / secs);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, HfParity,
                         ::testing::Values("llama3_1", "qwen3", "llama2", "gemma3", "deepseek_v3"));

}  // namespace
