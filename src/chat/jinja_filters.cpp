// jinja2's built-in filters and tests (the ones chat templates use).
#include <algorithm>
#include <cctype>
#include <cmath>

#include "chat/jinja_builtins.h"
#include "chat/unicode_case.h"
#include "core/error.h"

namespace ferrum::chat::jinja {
namespace {

// Python < for the values sort/dictsort/min/max compare.
bool less_than(const Value& a, const Value& b, bool case_sensitive) {
  NestingGuard guard;
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) return a.as_double() < b.as_double();
  if (a.is_string() && b.is_string()) {
    if (case_sensitive) return a.as_string() < b.as_string();
    std::string x = a.as_string(), y = b.as_string();
    for (char& c : x) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : y) c = char(std::tolower(static_cast<unsigned char>(c)));
    return x < y;
  }
  if (a.is_array() && b.is_array()) {
    const Array &x = a.as_array(), &y = b.as_array();
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      if (less_than(x[i], y[i], case_sensitive)) return true;
      if (less_than(y[i], x[i], case_sensitive)) return false;
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

// Attribute lookup with dotted paths ("a.b") and integer parts, as jinja2's make_attrgetter.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_undefined()) return cur;
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) cur = get_item(cur, Value(int64_t(std::stoll(part))));
    else cur = get_item(cur, Value(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

const Value* arg(CallArgs& a, size_t i, const char* name) { return a.get(i, name); }

CallArgs rest_args(CallArgs& a, size_t from) {
  CallArgs r;
  for (size_t i = from; i < a.positional.size(); ++i) r.positional.push_back(a.positional[i]);
  r.keyword = a.keyword;
  return r;
}

Value select_like(const Value& input, CallArgs& a, bool by_attr, bool keep) {
  Array out;
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (a.positional.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = a.positional[0].str();
    next = 1;
  }
  std::string test;
  if (a.positional.size() > next) test = a.positional[next].str();
  CallArgs test_args = rest_args(a, next + 1);
  test_args.keyword.clear();
  for (const auto& item : iterate(input)) {
    Value subject = by_attr ? attr_path(item, attr) : item;
    bool ok = test.empty() ? subject.truthy() : apply_test(test, subject, test_args);
    if (ok == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

std::string indent_text(const std::string& s, const Value* width_v, bool first, bool blank) {
  std::string pad = "    ";
  if (width_v) pad = width_v->is_string() ? width_v->as_string() : std::string(size_t(std::max<int64_t>(0, width_v->as_int())), ' ');
  std::string out;
  size_t start = 0;
  bool first_line = true;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    bool add = first_line ? first : (blank || !line.empty());
    if (!first_line) out += '\n';
    if (add && !(first_line && line.empty() && !blank && false)) out += pad;
    out += line;
    first_line = false;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

}  // namespace

Value apply_filter(const std::string& name, const Value& in, CallArgs& a) {
  if (name == "trim") return Value(py_strip(in.str(), arg(a, 0, "chars"), true, true));
  if (name == "tojson") {  // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    JsonStyle st;
    const Value* ensure = arg(a, 0, "ensure_ascii");
    const Value* ind = arg(a, 1, "indent");
    const Value* seps = arg(a, 2, "separators");
    const Value* sort = arg(a, 3, "sort_keys");
    for (const auto& [k, v] : a.keyword)
      if (k != "ensure_ascii" && k != "indent" && k != "separators" && k != "sort_keys")
        fail("tojson got an unexpected keyword argument '{}'", k);
    st.ensure_ascii = ensure && ensure->truthy();
    if (ind && !ind->is_none()) {
      if (!ind->is_int()) fail("tojson: indent must be an integer");
      st.indent = int(std::clamp<int64_t>(ind->as_int(), 0, 64));
    }
    st.sort_keys = sort && sort->truthy();
    if (seps && !seps->is_none()) {
      if (!seps->is_array() || seps->as_array().size() != 2 || !seps->as_array()[0].is_string() || !seps->as_array()[1].is_string())
        fail("tojson: separators must be a pair of strings");
      st.custom_item_separator = true;
      st.item_separator = seps->as_array()[0].as_string();
      st.key_separator = seps->as_array()[1].as_string();
    }
    return Value(dump_json(in, st));
  }
  if (name == "length" || name == "count") return Value(int64_t(in.is_undefined() ? 0 : in.length()));
  if (name == "string") return Value(in.str());
  if (name == "list") return Value(iterate(in));
  if (name == "first" || name == "last") {
    Array items = iterate(in);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value* sep = arg(a, 0, "d");
    const Value* attr = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& v : iterate(in)) {
      if (!first && sep) out += sep->str();
      first = false;
      out += attr ? attr_path(v, attr->str()).str() : v.str();
      StringLimit::check(out.size());
    }
    return Value(out);
  }
  if (name == "default" || name == "d") {
    const Value* def = arg(a, 0, "default_value");
    const Value* boolean = arg(a, 1, "boolean");
    bool use_default = in.is_undefined() || (boolean && boolean->truthy() && !in.truthy());
    return use_default ? (def ? *def : Value(std::string())) : in;
  }
  if (name == "items") {
    if (in.is_undefined()) return Value(Array{});
    if (!in.is_object()) fail("items filter expects a mapping, got {}", in.type_name());
    CallArgs none;
    return get_attr(in, "items").as_function()(none);
  }
  if (name == "dictsort") {
    if (!in.is_object()) fail("dictsort filter expects a mapping, got {}", in.type_name());
    const Value* cs = arg(a, 0, "case_sensitive");
    const Value* by = arg(a, 1, "by");
    const Value* rev = arg(a, 2, "reverse");
    bool by_value = by && by->str() == "value";
    bool case_sensitive = cs && cs->truthy();
    Array items;
    for (const auto& [k, v] : in.as_object().items) items.emplace_back(Array{Value(k), v});
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return less_than(x.as_array()[by_value ? 1 : 0], y.as_array()[by_value ? 1 : 0], case_sensitive);
    });
    if (rev && rev->truthy()) std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "selectattr") return select_like(in, a, true, true);
  if (name == "rejectattr") return select_like(in, a, true, false);
  if (name == "select") return select_like(in, a, false, true);
  if (name == "reject") return select_like(in, a, false, false);
  if (name == "map") {
    Array out;
    const Value* attr = a.kwarg("attribute");
    if (attr) {
      const Value* def = a.kwarg("default");
      for (const auto& v : iterate(in)) {
        Value r = attr_path(v, attr->str());
        out.push_back(r.is_undefined() && def ? *def : r);
      }
      return Value(std::move(out));
    }
    if (a.positional.empty()) fail("map filter needs a filter name or attribute=");
    std::string filter = a.positional[0].str();
    CallArgs fargs = rest_args(a, 1);
    for (const auto& v : iterate(in)) out.push_back(apply_filter(filter, v, fargs));
    return Value(std::move(out));
  }
  if (name == "int") {
    const Value* def = arg(a, 0, "default");
    if (in.is_int()) return in;
    if (in.is_bool()) return Value(int64_t(in.as_bool()));
    if (in.is_float()) return Value(int64_t(in.as_double()));
    if (in.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(in.as_string(), nullptr, true, true);
        long long v = std::stoll(s, &used, 10);
        if (used == s.size()) return Value(int64_t(v));
        double d = std::stod(s, &used);
        if (used == s.size()) return Value(int64_t(d));
      } catch (const std::exception&) {
      }
    }
    return def ? *def : Value(int64_t(0));
  }
  if (name == "float") {
    const Value* def = arg(a, 0, "default");
    if (in.is_number() || in.is_bool()) return Value(in.as_double());
    if (in.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(in.as_string(), nullptr, true, true);
        double d = std::stod(s, &used);
        if (used == s.size()) return Value(d);
      } catch (const std::exception&) {
      }
    }
    return def ? *def : Value(0.0);
  }
  if (name == "title") return Value(utf8_title(in.str(), /*jinja_style=*/true));  // jinja2's do_title
  if (name == "upper" || name == "lower" || name == "capitalize") {
    CallArgs none;
    return get_attr(Value(in.str()), name).as_function()(none);
  }
  if (name == "replace") {
    CallArgs args = a;
    return get_attr(Value(in.str()), "replace").as_function()(args);
  }
  if (name == "unique") {
    Array out;
    for (const auto& v : iterate(in)) {
      bool seen = false;
      for (const auto& o : out) {
        if (o.equals(v) || (v.is_string() && o.is_string() && !(arg(a, 0, "case_sensitive") && arg(a, 0, "case_sensitive")->truthy()) &&
                            !less_than(o, v, false) && !less_than(v, o, false))) {
          seen = true;
          break;
        }
      }
      if (!seen) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "reverse") {
    if (in.is_string()) return get_slice(in, Value(), Value(), Value(int64_t(-1)));
    Array items = iterate(in);
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "sort") {
    const Value* rev = arg(a, 0, "reverse");
    const Value* cs = arg(a, 1, "case_sensitive");
    const Value* attr = arg(a, 2, "attribute");
    Array items = iterate(in);
    bool case_sensitive = cs && cs->truthy();
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return attr ? less_than(attr_path(x, attr->str()), attr_path(y, attr->str()), case_sensitive)
                  : less_than(x, y, case_sensitive);
    });
    if (rev && rev->truthy()) std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "min" || name == "max") {
    Array items = iterate(in);
    if (items.empty()) return Value::undefined(name);
    Value best = items[0];
    for (const auto& v : items)
      if (name == "min" ? less_than(v, best, false) : less_than(best, v, false)) best = v;
    return best;
  }
  if (name == "sum") {
    const Value* attr = a.kwarg("attribute");
    const Value* start = a.kwarg("start");
    Value total = start ? *start : Value(int64_t(0));
    for (const auto& v : iterate(in)) {
      Value x = attr ? attr_path(v, attr->str()) : v;
      if (total.is_int() && (x.is_int() || x.is_bool())) total = Value(total.as_int() + (x.is_bool() ? x.as_bool() : x.as_int()));
      else total = Value(total.as_double() + x.as_double());
    }
    return total;
  }
  if (name == "abs") {
    if (in.is_bool()) return Value(int64_t(in.as_bool()));
    if (in.is_int()) {
      if (in.as_int() == INT64_MIN) fail("integer overflow in abs");
      return Value(in.as_int() < 0 ? -in.as_int() : in.as_int());
    }
    if (!in.is_float()) fail("bad operand type for abs(): '{}'", in.type_name());
    return Value(std::fabs(in.as_double()));
  }
  if (name == "round") {
    const Value* prec = arg(a, 0, "precision");
    if (in.is_int() || in.is_bool()) return in.is_bool() ? Value(int64_t(in.as_bool())) : in;  // round(int) is an int
    double p = std::pow(10.0, prec ? double(prec->as_int()) : 0.0);
    return Value(std::round(in.as_double() * p) / p);
  }
  if (name == "indent") {
    if (!in.is_string()) fail("indent filter expects a string, got {}", in.type_name());
    const Value* first = arg(a, 1, "first");
    const Value* blank = arg(a, 2, "blank");
    return Value(indent_text(in.str(), arg(a, 0, "width"), first && first->truthy(), blank && blank->truthy()));
  }
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return in;
    std::string out;
    for (char c : in.str()) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value(out);
  }
  if (name == "attr") {
    const Value* n = arg(a, 0, "name");
    if (!n) fail("attr filter needs a name");
    return get_attr(in, n->str());
  }
  if (name == "batch") {
    const Value* size = arg(a, 0, "linecount");
    int64_t n = size ? size->as_int() : 1;
    if (n <= 0) fail("batch size must be positive");
    Array out, cur;
    for (const auto& v : iterate(in)) {
      cur.push_back(v);
      if (int64_t(cur.size()) == n) {
        out.emplace_back(std::move(cur));
        cur = Array{};
      }
    }
    if (!cur.empty()) out.emplace_back(std::move(cur));
    return Value(std::move(out));
  }
  if (name == "wordcount") {  // jinja2 counts \w+ runs
    int64_t words = 0;
    bool in_word = false;
    for (unsigned char c : in.str()) {
      bool word_char = std::isalnum(c) || c == '_' || c >= 0x80;
      if (word_char && !in_word) ++words;
      in_word = word_char;
    }
    return Value(words);
  }
  if (name == "center") {
    const Value* w = arg(a, 0, "width");
    std::string s = in.str();
    size_t width = size_t(w ? std::clamp<int64_t>(w->as_int(), 0, 1 << 20) : 80);
    size_t len = utf8_length(s);
    if (len >= width) return Value(s);
    size_t total = width - len, left = total / 2 + (total & width & 1);
    return Value(std::string(left, ' ') + s + std::string(total - left, ' '));
  }
  if (name == "format") {  // jinja2: value % args, or value % kwargs
    if (!a.keyword.empty()) fail("the format filter with keyword arguments is not supported");
    return Value(percent_format(in.str(), Value(a.positional)));
  }
  fail("no filter named '{}'", name);
}

bool apply_test(const std::string& name, const Value& v, CallArgs& a) {
  auto other = [&]() -> const Value& {
    if (a.positional.empty()) fail("test '{}' needs an argument", name);
    return a.positional[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number() || v.is_bool();  // Python's bool is a Number
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "mapping") return v.is_object() && !v.as_object().is_namespace;
  if (name == "sequence") return v.is_array() || v.is_string() || (v.is_object() && !v.as_object().is_namespace);
  if (name == "iterable") return v.is_array() || v.is_string() || (v.is_object() && !v.as_object().is_namespace);
  if (name == "callable") return v.is_function();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return v.equals(other());
  if (name == "ne" || name == "!=") return !v.equals(other());
  if (name == "lt" || name == "lessthan" || name == "<") return less_than(v, other(), true);
  if (name == "gt" || name == "greaterthan" || name == ">") return less_than(other(), v, true);
  if (name == "le" || name == "<=") return !less_than(other(), v, true);
  if (name == "ge" || name == ">=") return !less_than(v, other(), true);
  if (name == "in") {
    const Value& c = other();
    if (c.is_string()) return v.is_string() && c.as_string().find(v.as_string()) != std::string::npos;
    if (c.is_object()) return v.is_string() && c.as_object().find(v.as_string()) != nullptr;
    for (const auto& item : iterate(c))
      if (item.equals(v)) return true;
    return false;
  }
  if (name == "odd" || name == "even") {
    if (v.is_float()) return std::fmod(v.as_double(), 2.0) != 0 ? name == "odd" : name == "even";
    if (!v.is_int() && !v.is_bool()) fail("test '{}' expects a number, got {}", name, v.type_name());
    int64_t x = v.is_bool() ? v.as_bool() : v.as_int();
    return (x % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& dv = other();
    if (!(dv.is_int() || dv.is_bool()) || !(v.is_int() || v.is_bool())) fail("divisibleby expects integers");
    int64_t d = dv.is_bool() ? dv.as_bool() : dv.as_int();
    if (d == 0) fail("integer division or modulo by zero");
    return (v.is_bool() ? v.as_bool() : v.as_int()) % d == 0;
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    CallArgs none;
    return get_attr(v, name == "lower" ? "islower" : "isupper").as_function()(none).truthy();
  }
  fail("no test named '{}'", name);
}

}  // namespace ferrum::chat::jinja
