// What happens to a sequence after a token is sampled: stop-token and length checks,
// incremental detokenization (vLLM/TGI prefix/read offsets: the streamed pieces concatenate to
// the full decode and never split a UTF-8 character) and stop strings (held back while a
// partial match is possible; never emitted unless include_stop_str_in_output).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/sequence.h"
#include "tokenizer/tokenizer.h"

namespace ferrum {

// Tokens of prompt context re-decoded with the output, so that decoders which strip a leading
// space at the start of a text (SentencePiece) still produce it mid-sentence.
inline constexpr int32_t kDetokContextTokens = 5;

// True when `text` ends inside a UTF-8 character, or with U+FFFD (a decoder's stand-in for
// bytes that do not yet form a character).
bool ends_with_incomplete_utf8(const std::string& text);

// Length of the longest suffix of text[from:] that is a proper prefix of one of `stops`.
size_t stop_prefix_holdback(const std::string& text, size_t from, std::span<const std::string> stops);

class OutputProcessor {
 public:
  OutputProcessor(const Tokenizer* tokenizer, std::vector<int32_t> eos_token_ids)
      : tokenizer_(tokenizer), eos_ids_(std::move(eos_token_ids)) {}

  // Sets up detokenization for a fresh sequence.
  void init(Sequence& seq) const;
  // Appends the sampled token and decides whether the sequence finishes (finish_reason set).
  void append_token(Sequence& seq, int32_t token) const;
  // Moves the sequence's pending tokens, logprobs, text and finish state into `delta`.
  // Returns false when there is nothing to send.
  static bool take_delta(Sequence& seq, CompletionDelta& delta);

 private:
  void update_text(Sequence& seq, int32_t upto, bool final) const;
  void check_stop_strings(Sequence& seq, size_t prev_size) const;

  const Tokenizer* tokenizer_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace ferrum
