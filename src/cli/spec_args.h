// The speculative decoding flags shared by `ferrum generate` and `ferrum serve`.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "engine/engine.h"

namespace ferrum::cli {

struct SpecArgs {
  bool ngram = false;
  std::string draft;
  int tokens = 4;
  int max_batch = 8;
  int ngram_min = 2, ngram_max = 3;
  bool ngram_always = false;

  bool enabled() const { return ngram || !draft.empty(); }
  // Everything but the draft model itself (loaded by the caller).
  SpeculativeOptions options() const {
    SpeculativeOptions o;
    if (!enabled()) return o;
    o.num_tokens = tokens;
    o.ngram = ngram;
    o.ngram_min = ngram_min;
    o.ngram_max = ngram_max;
    o.max_batch = max_batch;
    o.adaptive = !ngram_always;
    return o;
  }
};

inline void add_spec_options(CLI::App* cmd, SpecArgs& a) {
  cmd->add_flag("--spec-ngram", a.ngram,
                "Speculative decoding by n-gram (prompt) lookup: propose the tokens that followed the last "
                "n tokens where they occurred before in the request");
  cmd->add_option("--spec-draft", a.draft,
                  "Speculative decoding with this draft model (a folder, .gguf or hub id with the target's tokenizer)");
  cmd->add_option("--spec-tokens", a.tokens, "Tokens proposed per step when speculating (K)")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--spec-max-batch", a.max_batch,
                  "Speculate only while at most this many sequences run or wait (0: always)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--spec-ngram-min", a.ngram_min, "Shortest n-gram matched")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--spec-ngram-max", a.ngram_max, "Longest n-gram matched")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_flag("--spec-ngram-always", a.ngram_always,
                "Look up and verify every n-gram proposal at every step (on a GPU no step then overlaps the one "
                "before; default: only those expected to pay, by each request's measured acceptance and the "
                "measured step times)");
}

}  // namespace ferrum::cli
