#include "chat/jinja_builtins.h"

#include "chat/unicode_case.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>

#include "core/error.h"

namespace ferrum::chat::jinja {

size_t& StringLimit::max_bytes() {
  thread_local size_t limit = size_t(64) << 20;
  return limit;
}

void StringLimit::check(size_t n) {
  if (n > max_bytes()) fail("template output too large (limit {} bytes)", max_bytes());
}

namespace {

// Decodes one UTF-8 code point at s[i]; sets len. Invalid bytes decode as themselves.
uint32_t decode_at(const std::string& s, size_t i, size_t& len) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (i + size_t(n) > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3F);
  len = size_t(n);
  return cp;
}

// Start offsets of each code point.
std::vector<size_t> char_offsets(const std::string& s) {
  std::vector<size_t> offs;
  for (size_t i = 0; i < s.size();) {
    offs.push_back(i);
    size_t len;
    decode_at(s, i, len);
    i += len;
  }
  return offs;
}

bool py_isspace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

const std::string& need_string(const Value& v, const char* what) {
  if (!v.is_string()) fail("{} expects a string, got {}", what, v.type_name());
  return v.as_string();
}

int64_t need_int(const Value& v, const char* what) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool();
  fail("{} expects an integer, got {}", what, v.type_name());
}

Value bound(Function f) { return Value(std::move(f)); }

std::vector<std::string> py_split(const std::string& s, const Value* sep_v, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (!sep_v || sep_v->is_none() || sep_v->is_undefined()) {
    size_t i = 0;
    auto skip_ws = [&] {
      while (i < s.size()) {
        size_t len;
        uint32_t cp = decode_at(s, i, len);
        if (!py_isspace(cp)) break;
        i += len;
      }
    };
    skip_ws();
    while (i < s.size()) {
      if (maxsplit >= 0 && int64_t(parts.size()) == maxsplit) {
        std::string rest = s.substr(i);
        parts.push_back(py_strip(rest, nullptr, false, true));
        return parts;
      }
      size_t b = i;
      while (i < s.size()) {
        size_t len;
        uint32_t cp = decode_at(s, i, len);
        if (py_isspace(cp)) break;
        i += len;
      }
      parts.push_back(s.substr(b, i - b));
      skip_ws();
    }
    return parts;
  }
  const std::string& sep = need_string(*sep_v, "split");
  if (sep.empty()) fail("split: empty separator");
  size_t start = 0;
  while (true) {
    if (maxsplit >= 0 && int64_t(parts.size()) == maxsplit) break;
    size_t p = s.find(sep, start);
    if (p == std::string::npos) break;
    parts.push_back(s.substr(start, p - start));
    start = p + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (from.empty()) {
    auto offs = char_offsets(s);
    for (size_t k = 0; k <= offs.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (k < offs.size()) out += s.substr(offs[k], (k + 1 < offs.size() ? offs[k + 1] : s.size()) - offs[k]);
      StringLimit::check(out.size());
    }
    return out;
  }
  size_t start = 0;
  while (count < 0 || done < count) {
    size_t p = s.find(from, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += to;
    StringLimit::check(out.size());
    start = p + from.size();
    ++done;
  }
  out.append(s, start);
  return out;
}

// str.format with {} / {0} / {name} fields and {{ }} escapes.
std::string py_format(const std::string& f, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t end = f.find('}', i);
      if (end == std::string::npos) fail("format: single '{{' encountered in format string");
      std::string field = f.substr(i + 1, end - i - 1);
      if (field.find(':') != std::string::npos || field.find('!') != std::string::npos)
        fail("format: format specs are not supported ('{}')", field);
      const Value* v = nullptr;
      if (field.empty()) {
        v = auto_index < args.positional.size() ? &args.positional[auto_index] : nullptr;
        ++auto_index;
      } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
        size_t idx = std::stoul(field);
        v = idx < args.positional.size() ? &args.positional[idx] : nullptr;
      } else {
        v = args.kwarg(field);
      }
      if (!v) fail("format: no value for field '{{{}}}'", field);
      out += v->str();
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}

bool prefix_match(const std::string& s, const Value& arg, bool suffix) {
  auto one = [&](const Value& v) {
    const std::string& p = need_string(v, suffix ? "endswith" : "startswith");
    if (p.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - p.size(), p.size(), p) == 0 : s.compare(0, p.size(), p) == 0;
  };
  if (arg.is_array()) {
    for (const auto& v : arg.as_array())
      if (one(v)) return true;
    return false;
  }
  return one(arg);
}

Value string_method(const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool left = name != "rstrip", right = name != "lstrip";
    return bound([s, left, right](CallArgs& a) { return Value(py_strip(s, a.get(0, "chars"), left, right)); });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    bool suffix = name == "removesuffix";
    return bound([s, suffix](CallArgs& a) {
      if (a.positional.empty()) fail("{}() takes exactly one argument", suffix ? "removesuffix" : "removeprefix");
      const std::string& p = need_string(a.positional[0], "removeprefix");
      if (!p.empty() && p.size() <= s.size() &&
          (suffix ? s.compare(s.size() - p.size(), p.size(), p) == 0 : s.compare(0, p.size(), p) == 0))
        return Value(suffix ? s.substr(0, s.size() - p.size()) : s.substr(p.size()));
      return Value(s);
    });
  }
  if (name == "rsplit") {
    return bound([s](CallArgs& a) {
      const Value* sep = a.get(0, "sep");
      const Value* mx = a.get(1, "maxsplit");
      int64_t maxsplit = mx ? need_int(*mx, "rsplit") : -1;
      Array out;
      if (maxsplit < 0 || !sep || sep->is_none()) {
        if (maxsplit >= 0) fail("rsplit() with maxsplit needs a separator");
        for (auto& p : py_split(s, sep, -1)) out.emplace_back(std::move(p));
        return Value(std::move(out));
      }
      const std::string& d = need_string(*sep, "rsplit");
      if (d.empty()) fail("rsplit: empty separator");
      std::vector<std::string> parts;
      size_t end = s.size();
      while (int64_t(parts.size()) < maxsplit) {
        size_t p = end >= d.size() ? s.rfind(d, end - d.size()) : std::string::npos;
        if (p == std::string::npos) break;
        parts.push_back(s.substr(p + d.size(), end - p - d.size()));
        end = p;
      }
      parts.push_back(s.substr(0, end));
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) out.emplace_back(*it);
      return Value(std::move(out));
    });
  }
  if (name == "split") {
    return bound([s](CallArgs& a) {
      const Value* mx = a.get(1, "maxsplit");
      Array out;
      for (auto& p : py_split(s, a.get(0, "sep"), mx ? need_int(*mx, "split") : -1)) out.emplace_back(std::move(p));
      return Value(std::move(out));
    });
  }
  if (name == "splitlines") {
    return bound([s](CallArgs&) {
      Array out;
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' || s[i] == '\r') {
          out.emplace_back(s.substr(start, i - start));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          start = i + 1;
        }
      }
      if (start < s.size()) out.emplace_back(s.substr(start));
      return Value(std::move(out));
    });
  }
  if (name == "replace") {
    return bound([s](CallArgs& a) {
      const Value* from = a.get(0, "old");
      const Value* to = a.get(1, "new");
      const Value* count = a.get(2, "count");
      if (!from || !to) fail("replace() takes at least 2 arguments");
      return Value(py_replace(s, need_string(*from, "replace"), need_string(*to, "replace"),
                              count ? need_int(*count, "replace") : -1));
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool suffix = name == "endswith";
    return bound([s, suffix](CallArgs& a) {
      if (a.positional.empty()) fail("{}() takes at least 1 argument", suffix ? "endswith" : "startswith");
      return Value(prefix_match(s, a.positional[0], suffix));
    });
  }
  if (name == "upper") return bound([s](CallArgs&) { return Value(utf8_upper(s)); });
  if (name == "lower") return bound([s](CallArgs&) { return Value(utf8_lower(s)); });
  if (name == "title") return bound([s](CallArgs&) { return Value(utf8_title(s, false)); });
  if (name == "capitalize") return bound([s](CallArgs&) { return Value(utf8_capitalize(s)); });
  if (name == "format") return bound([s](CallArgs& a) { return Value(py_format(s, a)); });
  if (name == "join") {
    return bound([s](CallArgs& a) {
      if (a.positional.empty()) fail("join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& v : iterate(a.positional[0])) {
        if (!first) out += s;
        first = false;
        out += need_string(v, "join");
        StringLimit::check(out.size());
      }
      return Value(out);
    });
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    return bound([s, name](CallArgs& a) {
      if (a.positional.empty()) fail("{}() takes at least 1 argument", name);
      const std::string& sub = need_string(a.positional[0], name.c_str());
      if (name == "count") {
        if (sub.empty()) return Value(int64_t(utf8_length(s) + 1));
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value(n);
      }
      size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name == "index") fail("substring not found");
        return Value(int64_t(-1));
      }
      return Value(int64_t(utf8_length(s.substr(0, p))));
    });
  }
  auto predicate = [&](bool (*pred)(unsigned char)) {
    return bound([s, pred](CallArgs&) {
      if (s.empty()) return Value(false);
      for (unsigned char c : s)
        if (!pred(c)) return Value(false);
      return Value(true);
    });
  };
  if (name == "isdigit") return predicate([](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "isalpha") return predicate([](unsigned char c) { return std::isalpha(c) != 0; });
  if (name == "isalnum") return predicate([](unsigned char c) { return std::isalnum(c) != 0; });
  if (name == "isspace") return predicate([](unsigned char c) { return std::isspace(c) != 0; });
  if (name == "islower") {
    return bound([s](CallArgs&) {
      bool cased = false;
      for (unsigned char c : s) {
        if (std::isupper(c)) return Value(false);
        cased |= std::islower(c) != 0;
      }
      return Value(cased);
    });
  }
  if (name == "isupper") {
    return bound([s](CallArgs&) {
      bool cased = false;
      for (unsigned char c : s) {
        if (std::islower(c)) return Value(false);
        cased |= std::isupper(c) != 0;
      }
      return Value(cased);
    });
  }
  return Value::undefined(name);
}

Value dict_method(const Value& obj, const std::string& name) {
  if (name == "items") {
    return bound([obj](CallArgs&) {
      Array out;
      for (const auto& [k, v] : obj.as_object().items) out.emplace_back(Array{Value(k), v});
      return Value(std::move(out));
    });
  }
  if (name == "keys") {
    return bound([obj](CallArgs&) {
      Array out;
      for (const auto& item : obj.as_object().items) out.emplace_back(item.first);
      return Value(std::move(out));
    });
  }
  if (name == "values") {
    return bound([obj](CallArgs&) {
      Array out;
      for (const auto& item : obj.as_object().items) out.push_back(item.second);
      return Value(std::move(out));
    });
  }
  if (name == "get") {
    return bound([obj](CallArgs& a) {
      if (a.positional.empty()) fail("get() takes at least 1 argument");
      Value v = get_item(obj, a.positional[0]);
      if (!v.is_undefined()) return v;
      const Value* def = a.get(1, "default");
      return def ? *def : Value(None{});
    });
  }
  if (name == "pop" || name == "update" || name == "setdefault" || name == "clear" || name == "popitem") {
    return bound([name](CallArgs&) -> Value { fail("access to attribute '{}' of 'dict' object is unsafe", name); });
  }
  return Value::undefined(name);
}

}  // namespace

std::string percent_format(const std::string& f, const Value& args) {
  Array list = args.is_array() ? args.as_array() : Array{args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out += f[i];
      continue;
    }
    size_t j = i + 1;
    while (j < f.size() && std::strchr("-+ #0", f[j])) ++j;
    while (j < f.size() && std::isdigit(static_cast<unsigned char>(f[j]))) ++j;
    if (j < f.size() && f[j] == '.') {
      ++j;
      while (j < f.size() && std::isdigit(static_cast<unsigned char>(f[j]))) ++j;
    }
    if (j >= f.size()) fail("incomplete format");
    char conv = f[j];
    std::string spec = f.substr(i, j - i);  // "%" + flags/width/precision
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= list.size()) fail("not enough arguments for format string");
    const Value& v = list[next++];
    char buf[512];
    if (spec.size() > 20) fail("format spec too long");
    if (conv == 's' || conv == 'r') {
      std::string text = conv == 's' ? v.str() : v.repr();
      if (spec == "%") {
        out += text;
      } else {
        std::snprintf(buf, sizeof buf, (spec + "s").c_str(), text.c_str());
        out += buf;
      }
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!v.is_number() && !v.is_bool()) fail("%{} format: a number is required, not {}", conv, v.type_name());
      long long n = v.is_int() ? v.as_int() : v.is_bool() ? v.as_bool() : (long long)v.as_double();
      std::snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), n);
      out += buf;
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' || conv == 'G') {
      if (!v.is_number() && !v.is_bool()) fail("%{} format: a real number is required, not {}", conv, v.type_name());
      std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v.as_double());
      out += buf;
    } else {
      fail("unsupported format character '{}'", conv);
    }
    StringLimit::check(out.size());
  }
  if (next < list.size() && (args.is_array() || next == 0)) fail("not all arguments converted during string formatting");
  return out;
}

std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<uint32_t> strip_set;
  bool custom = chars && chars->is_string();
  if (custom) {
    const std::string& c = chars->as_string();
    for (size_t i = 0; i < c.size();) {
      size_t len;
      strip_set.push_back(decode_at(c, i, len));
      i += len;
    }
  }
  auto strippable = [&](uint32_t cp) {
    return custom ? std::find(strip_set.begin(), strip_set.end(), cp) != strip_set.end() : py_isspace(cp);
  };
  auto offs = char_offsets(s);
  size_t b = 0, e = offs.size();
  size_t len;
  if (left)
    while (b < e && strippable(decode_at(s, offs[b], len))) ++b;
  if (right)
    while (e > b && strippable(decode_at(s, offs[e - 1], len))) --e;
  size_t from = b < offs.size() ? offs[b] : s.size();
  size_t to = e < offs.size() ? offs[e] : s.size();
  return s.substr(from, to - from);
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) {
    fail("'{}' is undefined", obj.undefined_name().empty() ? name : obj.undefined_name());
  }
  if (obj.is_object()) {
    if (!obj.as_object().is_namespace) {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
    }
    const Value* v = obj.as_object().find(name);
    return v ? *v : Value::undefined(name);
  }
  if (obj.is_string()) return string_method(obj.as_string(), name);
  if (obj.is_array() && (name == "count" || name == "index")) {
    Array items = obj.as_array();
    bool count = name == "count";
    return bound([items, count](CallArgs& a) {
      if (a.positional.empty()) fail("{}() takes exactly one argument", count ? "count" : "index");
      int64_t n = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].equals(a.positional[0])) continue;
        if (!count) return Value(int64_t(i));
        ++n;
      }
      if (!count) fail("{} is not in list", a.positional[0].repr());
      return Value(n);
    });
  }
  if (obj.is_array() && (name == "append" || name == "pop" || name == "extend" || name == "insert" ||
                         name == "remove" || name == "sort" || name == "reverse" || name == "clear")) {
    return bound([name](CallArgs&) -> Value { fail("access to attribute '{}' of 'list' object is unsafe", name); });
  }
  return Value::undefined(name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) {
    fail("'{}' is undefined", obj.undefined_name().empty() ? key.str() : obj.undefined_name());
  }
  if (obj.is_object()) {
    if (key.is_string()) {
      const Value* v = obj.as_object().find(key.as_string());
      if (v) return *v;
      return obj.as_object().is_namespace ? Value::undefined(key.as_string()) : dict_method(obj, key.as_string());
    }
    if (key.is_int() || key.is_bool() || key.is_none()) {
      const Value* v = obj.as_object().find(key.str());
      if (v) return *v;
    }
    return Value::undefined(key.str());
  }
  if (obj.is_array() || obj.is_string()) {
    if (key.is_string()) return get_attr(obj, key.as_string());
    if (!key.is_int() && !key.is_bool()) return Value::undefined(key.str());
    int64_t i = key.is_bool() ? key.as_bool() : key.as_int();
    if (obj.is_array()) {
      int64_t n = int64_t(obj.as_array().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("[" + key.str() + "]");
      return obj.as_array()[size_t(i)];
    }
    const std::string& s = obj.as_string();
    auto offs = char_offsets(s);
    int64_t n = int64_t(offs.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("[" + key.str() + "]");
    size_t end = size_t(i) + 1 < offs.size() ? offs[size_t(i) + 1] : s.size();
    return Value(s.substr(offs[size_t(i)], end - offs[size_t(i)]));
  }
  return Value::undefined(key.str());
}

Value get_slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) fail("'{}' is undefined", obj.undefined_name());
  if (!obj.is_array() && !obj.is_string()) fail("'{}' object is not subscriptable", obj.type_name());
  auto opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    return need_int(v, what);
  };
  std::optional<int64_t> start = opt(start_v, "slice"), stop = opt(stop_v, "slice"), step_o = opt(step_v, "slice");
  int64_t step = step_o.value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  std::vector<size_t> offs;
  int64_t n;
  if (obj.is_array()) {
    n = int64_t(obj.as_array().size());
  } else {
    offs = char_offsets(obj.as_string());
    n = int64_t(offs.size());
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) x += n;
    if (step > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(start, step > 0 ? 0 : n - 1);
  int64_t e = clamp(stop, step > 0 ? n : -1);
  std::vector<int64_t> idx;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) idx.push_back(i);
  if (obj.is_array()) {
    Array out;
    for (int64_t i : idx) out.push_back(obj.as_array()[size_t(i)]);
    return Value(std::move(out));
  }
  const std::string& s = obj.as_string();
  std::string out;
  for (int64_t i : idx) {
    size_t from = offs[size_t(i)];
    size_t to = size_t(i) + 1 < offs.size() ? offs[size_t(i) + 1] : s.size();
    out.append(s, from, to - from);
  }
  return Value(out);
}

Array iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_array()) return v.as_array();
  if (v.is_object()) {
    if (v.as_object().is_namespace) fail("'Namespace' object is not iterable");
    Array keys;
    for (const auto& item : v.as_object().items) keys.emplace_back(item.first);
    return keys;
  }
  if (v.is_string()) {
    Array chars;
    const std::string& s = v.as_string();
    auto offs = char_offsets(s);
    for (size_t k = 0; k < offs.size(); ++k)
      chars.emplace_back(s.substr(offs[k], (k + 1 < offs.size() ? offs[k + 1] : s.size()) - offs[k]));
    return chars;
  }
  fail("'{}' object is not iterable", v.type_name());
}

void add_builtin_globals(Object& globals) {
  globals.set("range", Value(Function([](CallArgs& a) {
    if (a.positional.empty() || a.positional.size() > 3) fail("range expected 1 to 3 arguments");
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) {
      stop = need_int(a.positional[0], "range");
    } else {
      start = need_int(a.positional[0], "range");
      stop = need_int(a.positional[1], "range");
      if (a.positional.size() == 3) step = need_int(a.positional[2], "range");
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    int64_t count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                             : (start > stop ? (start - stop - step - 1) / -step : 0);
    if (count > 1000000) fail("range() too large ({} items, limit 1000000)", count);
    Array out;
    for (int64_t i = 0; i < count; ++i) out.emplace_back(start + i * step);
    return Value(std::move(out));
  })));
  globals.set("namespace", Value(Function([](CallArgs& a) {
    auto ns = make_object();
    ns->is_namespace = true;
    for (const auto& p : a.positional) {
      if (!p.is_object()) fail("namespace() positional argument must be a dict");
      for (const auto& [k, v] : p.as_object().items) ns->set(k, v);
    }
    for (const auto& [k, v] : a.keyword) ns->set(k, v);
    return Value(ns);
  })));
  globals.set("dict", Value(Function([](CallArgs& a) {
    auto d = make_object();
    for (const auto& p : a.positional) {
      if (p.is_object()) {
        for (const auto& [k, v] : p.as_object().items) d->set(k, v);
      } else {
        for (const auto& pair : iterate(p)) {
          if (!pair.is_array() || pair.as_array().size() != 2) fail("dict() sequence elements must be pairs");
          d->set(pair.as_array()[0].str(), pair.as_array()[1]);
        }
      }
    }
    for (const auto& [k, v] : a.keyword) d->set(k, v);
    return Value(d);
  })));
}

}  // namespace ferrum::chat::jinja
