// Built-in behaviour of values: attribute and item access, Python str/dict methods, filters
// and tests, as jinja2 (in transformers' immutable sandbox) provides them.
#pragma once
#include <string>

#include "chat/jinja_value.h"

namespace ferrum::chat::jinja {

// Limits on what one render may allocate; set by the interpreter for the current thread.
struct StringLimit {
  static size_t& max_bytes();
  // Throws if a string of n bytes would exceed the limit.
  static void check(size_t n);
};

// obj.name: a dict key, or a bound method (str.split, dict.items ...); Undefined if absent.
// Throws for attribute access on an undefined value, as jinja2 does.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: dict key, list index (negative from the end) or str character; Undefined if absent.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python semantics; null parts are passed as Undefined.
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The items a for loop visits: list items, dict keys, str characters; undefined -> empty.
Array iterate(const Value& v);

Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& input, CallArgs& args);

// Python-style whitespace strip (Unicode whitespace as str.strip() sees it), or of `chars`.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right);
// Python's printf-style "fmt % args" (%s %r %d %i %f %x %%, with flags, width and precision);
// args is one value or a list of them (a tuple in Python).
std::string percent_format(const std::string& fmt, const Value& args);
// Globals every template sees: range, namespace, dict.
void add_builtin_globals(Object& globals);

}  // namespace ferrum::chat::jinja
