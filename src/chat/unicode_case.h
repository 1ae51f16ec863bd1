// Case mapping of UTF-8 text as Python's str.upper/lower/capitalize/title do it, for ASCII,
// Latin-1, Latin Extended-A, Greek and Cyrillic (other scripts pass through unchanged).
#pragma once
#include <string>

namespace ferrum::chat::jinja {

std::string utf8_upper(const std::string& s);
std::string utf8_lower(const std::string& s);
std::string utf8_capitalize(const std::string& s);  // first character upper, the rest lower
// Uppercases the first cased character of each word and lowercases the rest. str.title():
// words are runs of cased letters; jinja2's title filter (jinja_style): words start after
// whitespace, '-', or an opening bracket.
std::string utf8_title(const std::string& s, bool jinja_style);

}  // namespace ferrum::chat::jinja
