#include "chat/jinja_value.h"

#include "chat/jinja_builtins.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/error.h"

namespace ferrum::chat::jinja {

const Value* Object::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, old] : items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  items.emplace_back(key, std::move(v));
}

const Value* CallArgs::kwarg(const std::string& name) const {
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

const Value* CallArgs::get(size_t index, const std::string& name) const {
  if (index < positional.size()) return &positional[index];
  return kwarg(name);
}

namespace {
thread_local int nesting_depth = 0;
constexpr int kMaxNesting = 256;
}  // namespace

NestingGuard::NestingGuard() {
  if (++nesting_depth > kMaxNesting) {
    --nesting_depth;
    fail("value nested too deeply (more than {} levels)", kMaxNesting);
  }
}
NestingGuard::~NestingGuard() { --nesting_depth; }

namespace {
// While one list/dict is being freed, the ones it releases queue here and are freed after it.
thread_local bool freeing = false;
thread_local std::vector<Array*> arrays_to_free;
thread_local std::vector<Object*> objects_to_free;

template <typename T>
void drain_or_defer(T* p, std::vector<T*>& queue) {
  if (freeing) {
    queue.push_back(p);
    return;
  }
  freeing = true;
  delete p;
  while (!arrays_to_free.empty() || !objects_to_free.empty()) {
    if (!arrays_to_free.empty()) {
      Array* a = arrays_to_free.back();
      arrays_to_free.pop_back();
      delete a;
    } else {
      Object* o = objects_to_free.back();
      objects_to_free.pop_back();
      delete o;
    }
  }
  freeing = false;
}
}  // namespace

std::shared_ptr<Array> make_array() { return make_array(Array{}); }

std::shared_ptr<Array> make_array(Array items) {
  return std::shared_ptr<Array>(new Array(std::move(items)), [](Array* p) { drain_or_defer(p, arrays_to_free); });
}

std::shared_ptr<Object> make_object() {
  return std::shared_ptr<Object>(new Object(), [](Object* p) { drain_or_defer(p, objects_to_free); });
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

bool Value::truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_float()) return as_double() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_array()) return !as_array().empty();
  if (is_object()) return as_object().is_namespace || !as_object().items.empty();
  return true;
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // like "-1.2345e-05"
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  std::string out;
  if (exp < -4 || exp >= 16) {  // Python repr switches to exponent form here
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += exp < 0 ? "e-" : "e+";
    std::string ed = std::to_string(std::abs(exp));
    if (ed.size() < 2) ed = "0" + ed;
    out += ed;
  } else if (exp < 0) {
    out = "0." + std::string(size_t(-exp - 1), '0') + digits;
  } else {
    if (digits.size() <= size_t(exp) + 1) {
      out = digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
  }
  return neg ? "-" + out : out;
}

static std::string repr_string(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == q) {
          out += '\\';
          out += char(c);
        } else if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += char(c);
        }
    }
  }
  out += q;
  return out;
}

std::string Value::str() const {
  if (is_undefined()) return "";
  if (is_string()) return as_string();
  return repr();
}

std::string Value::repr() const {
  if (is_undefined()) return "";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return std::to_string(as_int());
  if (is_float()) return format_float(as_double());
  if (is_string()) return repr_string(as_string());
  NestingGuard guard;
  if (is_array()) {
    std::string out = "[";
    bool first = true;
    for (const auto& item : as_array()) {
      if (!first) out += ", ";
      first = false;
      out += item.repr();
      // Checked as it grows: a million-item list of dicts would otherwise build its whole
      // text before the caller's check (seconds under ASan; found by fuzz_jinja).
      StringLimit::check(out.size());
    }
    return out + "]";
  }
  if (is_object()) {
    if (as_object().is_namespace) return "<Namespace>";
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : as_object().items) {
      if (!first) out += ", ";
      first = false;
      out += repr_string(k) + ": " + v.repr();
      StringLimit::check(out.size());
    }
    return out + "}";
  }
  return "<function>";
}

std::string Value::type_name() const {
  if (is_undefined()) return "undefined";
  if (is_none()) return "NoneType";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return "str";
  if (is_array()) return "list";
  if (is_object()) return as_object().is_namespace ? "Namespace" : "dict";
  return "function";
}

void Value::wrong_type(const char* wanted) const { fail("expected {}, got {}", wanted, type_name()); }

bool Value::equals(const Value& o) const {
  if ((is_number() || is_bool()) && (o.is_number() || o.is_bool())) {
    if ((is_int() || is_bool()) && (o.is_int() || o.is_bool())) {
      int64_t a = is_bool() ? as_bool() : as_int();
      int64_t b = o.is_bool() ? o.as_bool() : o.as_int();
      return a == b;
    }
    return as_double() == o.as_double();
  }
  if (is_string() && o.is_string()) return as_string() == o.as_string();
  if (is_none() && o.is_none()) return true;
  if (is_undefined() && o.is_undefined()) return true;
  NestingGuard guard;
  if (is_array() && o.is_array()) {
    const Array &a = as_array(), &b = o.as_array();
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!a[i].equals(b[i])) return false;
    return true;
  }
  if (is_object() && o.is_object()) {
    const Object &a = as_object(), &b = o.as_object();
    if (&a == &b) return true;
    if (a.is_namespace || b.is_namespace) return false;
    if (a.items.size() != b.items.size()) return false;
    for (const auto& [k, v] : a.items) {
      const Value* other = b.find(k);
      if (!other || !v.equals(*other)) return false;
    }
    return true;
  }
  if (is_function() && o.is_function()) return &as_function() == &o.as_function();
  return false;
}

size_t Value::length() const {
  if (is_string()) return utf8_length(as_string());
  if (is_array()) return as_array().size();
  if (is_object()) return as_object().items.size();
  fail("object of type '{}' has no len()", type_name());
}

template <typename J>
static Value value_from_json(const J& j) {
  switch (j.type()) {
    case J::value_t::null: return Value(None{});
    case J::value_t::boolean: return Value(j.template get<bool>());
    case J::value_t::number_integer: return Value(j.template get<int64_t>());
    case J::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Value(double(u));
      return Value(int64_t(u));
    }
    case J::value_t::number_float: return Value(j.template get<double>());
    case J::value_t::string: return Value(j.template get<std::string>());
    case J::value_t::array: {
      Array a;
      a.reserve(j.size());
      for (const auto& item : j) a.push_back(value_from_json(item));
      return Value(std::move(a));
    }
    case J::value_t::object: {
      auto o = make_object();
      for (auto it = j.begin(); it != j.end(); ++it) o->set(it.key(), value_from_json(it.value()));
      return Value(o);
    }
    default: return Value(None{});
  }
}

Value Value::from_json(const ordered_json& j) { return value_from_json(j); }
Value Value::from_json(const json& j) { return value_from_json(j); }

ordered_json Value::to_json() const {
  if (is_undefined() || is_none()) return nullptr;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int();
  if (is_float()) return as_double();
  if (is_string()) return as_string();
  if (is_array()) {
    ordered_json a = ordered_json::array();
    for (const auto& item : as_array()) a.push_back(item.to_json());
    return a;
  }
  if (is_object()) {
    ordered_json o = ordered_json::object();
    for (const auto& [k, v] : as_object().items) o[k] = v.to_json();
    return o;
  }
  fail("Object of type function is not JSON serializable");
}

static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
          out += fmt::format("\\u{:04x}", c);
        } else if (c >= 0x80 && ensure_ascii) {
          int n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
          uint32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : n == 4 ? (c & 0x07) : c;
          for (int k = 1; k < n && i + 1 < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
          if (cp >= 0x10000) {
            cp -= 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
          } else {
            out += fmt::format("\\u{:04x}", cp);
          }
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

static void dump(std::string& out, const Value& v, const JsonStyle& st, int depth) {
  if (depth > 512) fail("tojson: nesting too deep");
  const std::string& item_sep = st.custom_item_separator ? st.item_separator : (st.indent < 0 ? std::string(", ") : std::string(","));
  auto newline = [&](int d) {
    if (st.indent < 0) return;
    out += '\n';
    out.append(size_t(st.indent) * size_t(d), ' ');
  };
  StringLimit::check(out.size());
  if (v.is_undefined() || v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    double d = v.as_double();
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : format_float(d);
  } else if (v.is_string()) {
    json_string(out, v.as_string(), st.ensure_ascii);
  } else if (v.is_array()) {
    const Array& a = v.as_array();
    if (a.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < a.size(); ++i) {
      if (i) out += item_sep;
      newline(depth + 1);
      dump(out, a[i], st, depth + 1);
    }
    newline(depth);
    out += ']';
  } else if (v.is_object() && !v.as_object().is_namespace) {
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& item : v.as_object().items) items.push_back(&item);
    if (st.sort_keys)
      std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
    if (items.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep;
      newline(depth + 1);
      json_string(out, items[i]->first, st.ensure_ascii);
      out += st.key_separator;
      dump(out, items[i]->second, st, depth + 1);
    }
    newline(depth);
    out += '}';
  } else {
    fail("Object of type {} is not JSON serializable", v.type_name());
  }
}

std::string dump_json(const Value& v, const JsonStyle& style) {
  std::string out;
  dump(out, v, style, 0);
  return out;
}

}  // namespace ferrum::chat::jinja
