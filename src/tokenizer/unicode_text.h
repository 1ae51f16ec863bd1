// UTF-8 helpers shared by the tokenizer stages: code point iteration, lossy repair of invalid
// input (as Rust's String::from_utf8_lossy does) and GPT-2's byte <-> printable char table.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace ferrum::tok {

// Decodes the code point starting at s[i] and advances i. Invalid bytes decode as U+FFFD and
// advance by the length of the maximal invalid subpart (WHATWG / Unicode recommendation).
char32_t next_code_point(std::string_view s, size_t& i);
bool is_valid_utf8(std::string_view s);
// Invalid sequences replaced by U+FFFD, exactly as String::from_utf8_lossy / TextDecoder.
std::string utf8_lossy(std::string_view s);
using ferrum::append_utf8;  // core/utf8.h
size_t utf8_char_len(unsigned char lead);

// Unicode predicates with the meaning Rust's char methods give them (tokenizers is Rust).
bool is_whitespace(char32_t c);    // char::is_whitespace (White_Space property)
bool is_alphanumeric(char32_t c);  // char::is_alphanumeric (L* or N*)
bool is_numeric(char32_t c);       // char::is_numeric (Nd, Nl, No)
bool is_punctuation(char32_t c);   // ASCII punctuation or P* (the Punctuation pre-tokenizer)

// GPT-2 byte-level alphabet: every byte maps to one printable code point.
const std::array<char32_t, 256>& bytes_to_chars();
// Inverse: returns -1 for a code point that is not in the alphabet.
int char_to_byte(char32_t c);

}  // namespace ferrum::tok
