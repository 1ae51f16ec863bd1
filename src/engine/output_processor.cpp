#include "engine/output_processor.h"

#include <algorithm>

namespace ferrum {

bool ends_with_incomplete_utf8(const std::string& text) {
  const size_t n = text.size();
  if (n >= 3 && static_cast<unsigned char>(text[n - 3]) == 0xEF &&
      static_cast<unsigned char>(text[n - 2]) == 0xBF && static_cast<unsigned char>(text[n - 1]) == 0xBD)
    return true;  // U+FFFD
  // Find the lead byte of the last character and check that all its bytes are there.
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back < len;
  }
  return false;
}

size_t stop_prefix_holdback(const std::string& text, size_t from, std::span<const std::string> stops) {
  const size_t avail = text.size() - std::min(from, text.size());
  size_t best = 0;
  for (const std::string& s : stops) {
    for (size_t k = std::min(s.size() - 1, avail); k > best; --k) {
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        best = k;
        break;
      }
    }
  }
  return best;
}

void OutputProcessor::init(Sequence& seq) const {
  seq.detok = DetokState{};
  seq.detok.prefix_offset = static_cast<size_t>(std::max(0, seq.prompt_len - kDetokContextTokens));
  seq.detok.read_offset = static_cast<size_t>(seq.prompt_len);
}

void OutputProcessor::update_text(Sequence& seq, int32_t upto, bool final) const {
  DetokState& d = seq.detok;
  if (!tokenizer_ || static_cast<size_t>(upto) <= d.read_offset) return;
  const bool skip = seq.params->skip_special_tokens;
  std::span<const int32_t> all(seq.tokens);
  const std::string prefix_text =
      tokenizer_->decode(all.subspan(d.prefix_offset, d.read_offset - d.prefix_offset), skip);
  const std::string new_text = tokenizer_->decode(all.subspan(d.prefix_offset, upto - d.prefix_offset), skip);
  if (new_text.size() > prefix_text.size() && (final || !ends_with_incomplete_utf8(new_text))) {
    d.text.append(new_text, prefix_text.size());
    d.prefix_offset = d.read_offset;
    d.read_offset = static_cast<size_t>(upto);
  }
}

void OutputProcessor::check_stop_strings(Sequence& seq, size_t prev_size) const {
  const SamplingParams& p = *seq.params;
  std::string& text = seq.detok.text;
  size_t best_pos = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : p.stop) {
    // A new match must end in the text added by this step.
    const size_t start = prev_size >= s.size() - 1 ? prev_size - (s.size() - 1) : 0;
    const size_t pos = text.find(s, start);
    if (pos < best_pos) {
      best_pos = pos;
      best = &s;
    }
  }
  if (!best) return;
  seq.finish_reason = FinishReason::Stop;
  seq.stop_reason = *best;
  const size_t keep = best_pos + (p.include_stop_str_in_output ? best->size() : 0);
  text.resize(std::max(keep, seq.detok.emitted));
}

void OutputProcessor::append_token(Sequence& seq, int32_t token) const {
  const SamplingParams& p = *seq.params;
  seq.tokens.push_back(token);
  ++seq.output_counts[token];
  seq.new_token_ids.push_back(token);
  const int32_t n_out = seq.num_output_tokens();
  const bool min_reached = n_out >= p.min_tokens;

  const bool is_stop_id = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  const bool is_eos = !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  // Structured output: the token's bytes advance the grammar (EOS was only allowed where the
  // output is complete); once nothing more can follow, the completion stops.
  bool grammar_done = false;
  if (seq.constraint && !is_eos) {
    if (!seq.constraint->advance(token)) {
      seq.finish_reason = FinishReason::Error;
      seq.error = "structured output: token " + std::to_string(token) + " does not continue the grammar";
    }
    grammar_done = seq.constraint->complete();
  }
  if (seq.finish_reason != FinishReason::None) {
    update_text(seq, seq.num_tokens(), true);
  } else if (min_reached && (is_stop_id || is_eos)) {
    seq.finish_reason = FinishReason::Stop;
    seq.stop_reason = is_stop_id ? std::to_string(token) : "";
    // The stop token's own text is not part of the output unless asked for.
    update_text(seq, p.include_stop_str_in_output ? seq.num_tokens() : seq.num_tokens() - 1, true);
  } else {
    const bool at_length = n_out >= p.max_tokens;
    const size_t prev_size = seq.detok.text.size();
    update_text(seq, seq.num_tokens(), at_length || grammar_done);
    if (min_reached && !p.stop.empty()) check_stop_strings(seq, prev_size);
    if (seq.finish_reason == FinishReason::None && grammar_done) seq.finish_reason = FinishReason::Stop;
    if (seq.finish_reason == FinishReason::None && at_length) seq.finish_reason = FinishReason::Length;
  }

  DetokState& d = seq.detok;
  if (seq.finish_reason != FinishReason::None || p.stop.empty() || p.include_stop_str_in_output) {
    d.emittable = d.text.size();
  } else {
    d.emittable = std::max(d.emitted, d.text.size() - stop_prefix_holdback(d.text, d.emitted, p.stop));
  }
}

bool OutputProcessor::take_delta(Sequence& seq, CompletionDelta& delta) {
  DetokState& d = seq.detok;
  if (seq.new_token_ids.empty() && seq.finish_reason == FinishReason::None && d.emittable == d.emitted)
    return false;
  delta.index = seq.index;
  delta.token_ids = std::move(seq.new_token_ids);
  delta.logprobs = std::move(seq.new_logprobs);
  seq.new_token_ids.clear();
  seq.new_logprobs.clear();
  if (d.emittable > d.emitted) delta.text = d.text.substr(d.emitted, d.emittable - d.emitted);
  d.emitted = d.emittable;
  delta.finish_reason = seq.finish_reason;
  delta.stop_reason = seq.stop_reason;
  delta.error = seq.error;
  return true;
}

}  // namespace ferrum
