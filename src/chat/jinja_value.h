// Values of the Jinja interpreter: Python-like dynamic values (None, bool, int, float, str,
// list, dict, callables) with reference semantics for lists and dicts, as in jinja2.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/json.h"

namespace ferrum::chat::jinja {

class Value;
using Array = std::vector<Value>;

// A dict keeps insertion order (Python dicts and JSON objects from the request do).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // namespace() objects accept attribute assignment

  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  const Value* kwarg(const std::string& name) const;
  // The argument at `index` or named `name`, or nullptr if absent.
  const Value* get(size_t index, const std::string& name) const;
};

using Function = std::function<Value(CallArgs&)>;

// Lists and dicts are freed through these so that tearing down a deeply nested value (a template
// can nest a list in itself a million times) runs in a loop instead of recursing.
// (An overload, not a default argument: clang will not default-construct Array while Value is
// incomplete.)
std::shared_ptr<Array> make_array();
std::shared_ptr<Array> make_array(Array items);
std::shared_ptr<Object> make_object();

struct Undefined {
  std::string name;  // what was looked up, for error messages
};
struct None {};

class Value {
 public:
  using ArrayPtr = std::shared_ptr<Array>;
  using ObjectPtr = std::shared_ptr<Object>;
  using FunctionPtr = std::shared_ptr<Function>;

  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(int64_t(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(size_t i) : v_(int64_t(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Array a) : v_(make_array(std::move(a))) {}
  Value(ArrayPtr a) : v_(std::move(a)) {}
  Value(ObjectPtr o) : v_(std::move(o)) {}
  Value(Function f) : v_(std::make_shared<Function>(std::move(f))) {}
  static Value undefined(std::string name = "") { Value v; v.v_ = Undefined{std::move(name)}; return v; }
  static Value object() { return Value(make_object()); }

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<ArrayPtr>(v_); }
  bool is_object() const { return std::holds_alternative<ObjectPtr>(v_); }
  bool is_function() const { return std::holds_alternative<FunctionPtr>(v_); }

  // The accessors check the type: a template that passes a string where a filter wants a number
  // gets a template error naming both, not std::bad_variant_access (found by fuzz_jinja).
  bool as_bool() const { return get<bool>("a boolean"); }
  int64_t as_int() const { return get<int64_t>("an integer"); }
  double as_double() const { return is_int() ? double(as_int()) : is_bool() ? double(as_bool()) : get<double>("a number"); }
  const std::string& as_string() const { return get<std::string>("a string"); }
  Array& as_array() const { return *get<ArrayPtr>("a list"); }
  Object& as_object() const { return *get<ObjectPtr>("a dict"); }
  Function& as_function() const { return *get<FunctionPtr>("a callable"); }
  const std::string& undefined_name() const { return std::get<Undefined>(v_).name; }

  // Python truthiness.
  bool truthy() const;
  // str(value) as jinja2 prints it (None -> "None", True -> "True", 1.0 -> "1.0").
  std::string str() const;
  // repr(value): strings quoted, as inside a printed list or dict.
  std::string repr() const;
  // The Python type name, for error messages.
  std::string type_name() const;
  // Python ==.
  bool equals(const Value& other) const;
  // Number of items of a str (code points), list or dict; throws for others.
  size_t length() const;

  static Value from_json(const ordered_json& j);
  static Value from_json(const json& j);
  ordered_json to_json() const;

 private:
  template <typename T>
  const T& get(const char* wanted) const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    wrong_type(wanted);
  }
  [[noreturn]] void wrong_type(const char* wanted) const;

  std::variant<Undefined, None, bool, int64_t, double, std::string, ArrayPtr, ObjectPtr, FunctionPtr> v_;
};

// Bounds recursion over nested values (repr, ==, <) so that a template that nests a list in
// itself thousands of deep fails with an error instead of overflowing the stack.
class NestingGuard {
 public:
  NestingGuard();
  ~NestingGuard();
  NestingGuard(const NestingGuard&) = delete;
  NestingGuard& operator=(const NestingGuard&) = delete;
};

// Python's repr() of a float: shortest round-trip digits, "1.0", "1e-05", "inf".
std::string format_float(double d);
// json.dumps as transformers' tojson filter calls it (ensure_ascii=False by default).
struct JsonStyle {
  int indent = -1;                 // < 0: one line
  bool sort_keys = false;
  bool ensure_ascii = false;       // escape non-ASCII as \uXXXX
  std::string item_separator;      // default ", " on one line, "," when indented
  std::string key_separator = ": ";
  bool custom_item_separator = false;
};
std::string dump_json(const Value& v, const JsonStyle& style);
inline std::string dump_json(const Value& v, int indent, bool sort_keys = false) {
  JsonStyle style;
  style.indent = indent;
  style.sort_keys = sort_keys;
  return dump_json(v, style);
}
// The number of Unicode code points in UTF-8 text (Python's len of a str).
size_t utf8_length(const std::string& s);

}  // namespace ferrum::chat::jinja
