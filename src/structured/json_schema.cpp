#include "structured/json_schema.h"

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "core/error.h"
#include "structured/number_range.h"
#include "structured/regex.h"
#include "structured/schema_merge.h"

namespace ferrum::structured {

namespace {

constexpr int kMaxSchemaDepth = 64;
constexpr int64_t kMaxStringLengthBound = 4096;  // minLength/maxLength unroll into rules
constexpr size_t kMaxRules = 200000;
constexpr int kMaxIntegerDigits = 16;  // bounded digit runs (see build_shared_rules)
constexpr int kMaxFractionDigits = 16;
constexpr int kMaxExponentDigits = 2;

using Sym = Grammar::Symbol;
using Seq = std::vector<Sym>;

ByteSet range(int lo, int hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(static_cast<size_t>(b));
  return s;
}

// The formats, as regexes over the string's characters (stricter than the RFCs: what a
// validator accepts, never more). Every part is bounded, so that sampling cannot make one
// run forever.
const std::map<std::string, std::string>& formats() {
  static const std::map<std::string, std::string> kFormats = {
      {"date", R"([1-9]\d{3}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8])))"},
      {"time", R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z|[+-]([01]\d|2[0-3]):[0-5]\d))"},
      {"date-time", R"([1-9]\d{3}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z|[+-]([01]\d|2[0-3]):[0-5]\d))"},
      {"uuid", R"([0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})"},
      {"email", R"([a-zA-Z0-9]{1,16}([._+-][a-zA-Z0-9]{1,16}){0,3}@[a-zA-Z0-9]{1,16}(-[a-zA-Z0-9]{1,16}){0,2}(\.[a-zA-Z0-9]{1,16}(-[a-zA-Z0-9]{1,16}){0,2}){0,3}\.[a-zA-Z]{2,8})"},
      {"ipv4", R"(((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))"},
      {"hostname", R"([a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?){0,4})"},
      {"uri", R"(https?://[a-z0-9]{1,16}(-[a-z0-9]{1,16}){0,2}(\.[a-z0-9]{1,16}(-[a-z0-9]{1,16}){0,2}){0,4}(/[a-zA-Z0-9._~-]{0,16}){0,8}(\?[a-zA-Z0-9._~=&-]{0,32})?)"},
  };
  return kFormats;
}

class JsonGrammarBuilder {
 public:
  JsonGrammarBuilder(Grammar& g, const JsonGrammarOptions& o, const ordered_json* root) : g_(&g), opt_(o), root_(root) {
    build_shared_rules();
  }

  uint32_t any_object() const { return object_; }

  uint32_t schema(const ordered_json& s, const std::string& path, int depth) {
    if (depth > kMaxSchemaDepth) schema_error(path, "nested more than " + std::to_string(kMaxSchemaDepth) + " deep");
    if (g_->num_rules() > kMaxRules) schema_error(path, "the schema is too large");
    if (s.is_boolean()) {
      if (!s.get<bool>()) schema_error(path, "'false' accepts nothing");
      return value_;
    }
    if (!s.is_object()) schema_error(path, "a schema must be an object or a boolean");
    check_keywords(s, path);
    if (s.contains("allOf") || (s.contains("$ref") && has_constraints_besides_ref(s)))
      return schema(merge_all_of(*root_, s, path), path, depth + 1);
    if (s.contains("$ref")) return ref(s["$ref"], path, depth);
    if (s.contains("const")) return literal_rule(s["const"], s, path);
    if (s.contains("enum")) {
      const auto& e = s["enum"];
      if (!e.is_array() || e.empty()) schema_error(path, "'enum' must be a non-empty array");
      const uint32_t r = g_->add_rule();
      for (const auto& v : e) {
        check_type(v, s, path);
        g_->add_alternative(r, g_->literal(v.dump()));
      }
      return r;
    }
    if (s.contains("anyOf") || s.contains("oneOf")) {
      if (s.contains("anyOf") && s.contains("oneOf")) schema_error(path, "'anyOf' beside 'oneOf' is not supported; use one of them");
      const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
      const auto& a = s[key];
      if (!a.is_array() || a.empty()) schema_error(path, std::string("'") + key + "' must be a non-empty array");
      for (const auto& k : {"type", "properties", "items", "required", "additionalProperties", "prefixItems"})
        if (s.contains(k)) schema_error(path, std::string("'") + key + "' beside '" + k + "' is not supported yet; move it into each branch");
      const uint32_t r = g_->add_rule();
      for (size_t i = 0; i < a.size(); ++i)
        g_->add_alternative(r, {Grammar::rule(schema(a[i], path + "/" + key + "/" + std::to_string(i), depth + 1))});
      return r;
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const auto& t = s["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      else if (t.is_array() && !t.empty())
        for (const auto& x : t) {
          if (!x.is_string()) schema_error(path, "'type' entries must be strings");
          types.push_back(x.get<std::string>());
        }
      else schema_error(path, "'type' must be a string or a non-empty array of strings");
    } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
      types.push_back("object");
    } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems")) {
      types.push_back("array");
    } else if (s.contains("minLength") || s.contains("maxLength") || s.contains("pattern") || s.contains("format")) {
      types.push_back("string");
    } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum")) {
      types.push_back("number");
    } else {
      return value_;
    }
    if (types.size() == 1) return typed(types[0], s, path, depth);
    const uint32_t r = g_->add_rule();
    for (const auto& t : types) g_->add_alternative(r, {Grammar::rule(typed(t, s, path, depth))});
    return r;
  }

 private:
  static bool has_constraints_besides_ref(const ordered_json& s) {
    for (auto it = s.begin(); it != s.end(); ++it)
      if (it.key() != "$ref" && !is_annotation(it.key())) return true;
    return false;
  }

  // One rule per reference, made before its target is compiled: a recursive schema refers
  // back to the rule being built.
  uint32_t ref(const ordered_json& r, const std::string& path, int depth) {
    if (!r.is_string()) schema_error(path, "'$ref' must be a string");
    const std::string name = r.get<std::string>();
    if (auto it = refs_.find(name); it != refs_.end()) return it->second;
    const ordered_json& target = resolve_ref(*root_, name, path);
    const uint32_t rule = g_->add_rule(name);
    refs_[name] = rule;
    g_->add_alternative(rule, {Grammar::rule(schema(target, name, depth + 1))});
    return rule;
  }

  uint32_t typed(const std::string& t, const ordered_json& s, const std::string& path, int depth) {
    if (t == "object") return object(s, path, depth);
    if (t == "array") return array(s, path, depth);
    if (t == "string") return string(s, path);
    if (t == "number") return number(s, path, false);
    if (t == "integer") return number(s, path, true);
    if (t == "boolean") return boolean_;
    if (t == "null") return null_;
    schema_error(path, "unknown type '" + t + "'");
  }

  static void check_keywords(const ordered_json& s, const std::string& path) {
    static const std::set<std::string> kSupported = {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const", "anyOf", "oneOf",
        "allOf", "$ref", "minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum"};
    std::string bad;
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!kSupported.count(it.key()) && !is_annotation(it.key())) bad += (bad.empty() ? "'" : ", '") + it.key() + "'";
    if (!bad.empty())
      schema_error(path, "unsupported keyword(s) " + bad +
                             " (structured output supports type, properties, required, additionalProperties, items, prefixItems, "
                             "minItems, maxItems, enum, const, anyOf, oneOf, allOf, $ref, minLength, maxLength, pattern, format, "
                             "minimum, maximum, exclusiveMinimum, exclusiveMaximum)");
  }

  // Whether value v is of the schema's declared type (enum/const values must be).
  static void check_type(const ordered_json& v, const ordered_json& s, const std::string& path) {
    if (!s.contains("type")) return;
    std::vector<std::string> types;
    if (s["type"].is_string()) types.push_back(s["type"].get<std::string>());
    else if (s["type"].is_array())
      for (const auto& x : s["type"]) types.push_back(x.is_string() ? x.get<std::string>() : "");
    for (const auto& t : types) {
      if ((t == "object" && v.is_object()) || (t == "array" && v.is_array()) || (t == "string" && v.is_string()) ||
          (t == "number" && v.is_number()) || (t == "integer" && (v.is_number_integer() || v.is_number_unsigned())) ||
          (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null()))
        return;
    }
    schema_error(path, "enum/const value " + v.dump() + " does not match 'type'");
  }

  uint32_t literal_rule(const ordered_json& v, const ordered_json& s, const std::string& path) {
    check_type(v, s, path);
    const uint32_t r = g_->add_rule();
    g_->add_alternative(r, g_->literal(v.dump()));
    return r;
  }

  // Punctuation with the optional white space around it (none when compact).
  Seq open(char c) {
    Seq s = g_->literal(std::string(1, c));
    if (opt_.any_whitespace) s.push_back(Grammar::rule(ws_));
    return s;
  }
  Seq close(char c) {
    Seq s;
    if (opt_.any_whitespace) s.push_back(Grammar::rule(ws_));
    s.push_back(g_->literal(std::string(1, c))[0]);
    return s;
  }
  Seq sep(char c) {
    Seq s = close(c);
    if (opt_.any_whitespace) s.push_back(Grammar::rule(ws_));
    return s;
  }
  static void append(Seq& a, const Seq& b) { a.insert(a.end(), b.begin(), b.end()); }

  uint32_t object(const ordered_json& s, const std::string& path, int depth) {
    bool additional = true;
    if (s.contains("additionalProperties")) {
      const auto& a = s["additionalProperties"];
      if (!a.is_boolean()) schema_error(path, "unsupported keyword(s) 'additionalProperties' as a schema (only true or false so far)");
      additional = a.get<bool>();
    }
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) schema_error(path, "'required' must be an array of strings");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) schema_error(path, "'required' must be an array of strings");
        required.insert(r.get<std::string>());
      }
    }
    const ordered_json props = s.contains("properties") ? s["properties"] : ordered_json::object();
    if (!props.is_object()) schema_error(path, "'properties' must be an object");
    for (const auto& name : required)
      if (!props.contains(name))
        schema_error(path, "required property '" + name + "' has no schema in 'properties' (not supported yet)");
    if (props.empty()) {
      if (additional) return object_;
      const uint32_t r = g_->add_rule();
      Seq seq = open('{');
      append(seq, close('}'));
      g_->add_alternative(r, seq);
      return r;
    }
    // Members in the listed order: first[i] = properties from i on with nothing written yet,
    // rest[i] = the same after at least one member (so each starts with a comma).
    std::vector<uint32_t> kv;
    std::vector<bool> req;
    for (auto it = props.begin(); it != props.end(); ++it) {
      const uint32_t value = schema(it.value(), path + "/properties/" + it.key(), depth + 1);
      auto seq = g_->literal(ordered_json(it.key()).dump());
      append(seq, sep(':'));
      seq.push_back(Grammar::rule(value));
      const uint32_t r = g_->add_rule();
      g_->add_alternative(r, std::move(seq));
      kv.push_back(r);
      req.push_back(required.count(it.key()) > 0);
    }
    const size_t n = kv.size();
    std::vector<uint32_t> first(n + 1), rest(n + 1);
    for (size_t i = 0; i <= n; ++i) {
      first[i] = g_->add_rule();
      rest[i] = g_->add_rule();
    }
    g_->add_alternative(first[n], {});
    g_->add_alternative(rest[n], {});
    for (size_t i = n; i-- > 0;) {
      g_->add_alternative(first[i], {Grammar::rule(kv[i]), Grammar::rule(rest[i + 1])});
      auto with_comma = sep(',');
      with_comma.push_back(Grammar::rule(kv[i]));
      with_comma.push_back(Grammar::rule(rest[i + 1]));
      g_->add_alternative(rest[i], std::move(with_comma));
      if (!req[i]) {
        g_->add_alternative(first[i], {Grammar::rule(first[i + 1])});
        g_->add_alternative(rest[i], {Grammar::rule(rest[i + 1])});
      }
    }
    const uint32_t r = g_->add_rule();
    auto seq = open('{');
    seq.push_back(Grammar::rule(first[0]));
    append(seq, close('}'));
    g_->add_alternative(r, std::move(seq));
    return r;
  }

  uint32_t array(const ordered_json& s, const std::string& path, int depth) {
    if (s.contains("items") && s["items"].is_array())
      schema_error(path, "'items' as an array (draft-4 tuples) is not supported; use 'prefixItems'");
    const bool no_more = s.contains("items") && s["items"].is_boolean() && !s["items"].get<bool>();
    const uint32_t item = s.contains("items") && !no_more ? schema(s["items"], path + "/items", depth + 1) : value_;
    std::vector<uint32_t> prefix;
    if (s.contains("prefixItems")) {
      const auto& p = s["prefixItems"];
      if (!p.is_array()) schema_error(path, "'prefixItems' must be an array of schemas");
      for (size_t i = 0; i < p.size(); ++i) prefix.push_back(schema(p[i], path + "/prefixItems/" + std::to_string(i), depth + 1));
    }
    if (no_more && prefix.empty()) {
      const uint32_t r = g_->add_rule();
      Seq seq = open('[');
      append(seq, close(']'));
      g_->add_alternative(r, seq);
      return r;
    }
    const int64_t lo = s.contains("minItems") ? length_bound(s, "minItems", path) : 0;
    int64_t hi = s.contains("maxItems") ? length_bound(s, "maxItems", path) : -1;
    if (hi >= 0 && hi < lo) schema_error(path, "'maxItems' is below 'minItems'");
    const int64_t np = static_cast<int64_t>(prefix.size());
    if (!prefix.empty()) {
      // All prefix items are written, then (unless items is false) more items.
      if (hi >= 0 && hi < np) schema_error(path, "'maxItems' below the number of 'prefixItems' is not supported");
      if (no_more) {
        if (lo > np) schema_error(path, "'minItems' above the number of 'prefixItems' with 'items' false accepts nothing");
        hi = np;
      }
    }
    // Items counted after the prefix: between extra_lo and extra_hi (-1: unbounded).
    const int64_t extra_lo = std::max<int64_t>(0, lo - np), extra_hi = hi < 0 ? -1 : hi - np;
    const uint32_t r = g_->add_rule();
    if (prefix.empty() && extra_lo == 0) {  // "[]" or "[" item more "]"
      Seq empty = open('[');
      append(empty, close(']'));
      g_->add_alternative(r, empty);
      if (extra_hi != 0) {
        const uint32_t nonempty = repeat_items(item, 1, extra_hi, false);
        Seq seq = open('[');
        seq.push_back(Grammar::rule(nonempty));
        append(seq, close(']'));
        g_->add_alternative(r, seq);
      }
      return r;
    }
    Seq body;  // inside the brackets
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (i > 0) append(body, sep(','));
      body.push_back(Grammar::rule(prefix[i]));
    }
    const uint32_t tail = repeat_items(item, extra_lo, extra_hi, !prefix.empty());
    body.push_back(Grammar::rule(tail));
    Seq seq = open('[');
    append(seq, body);
    append(seq, close(']'));
    g_->add_alternative(r, seq);
    return r;
  }

  // Between lo and hi (-1: any number) items separated by commas; `lead`: each item,
  // including the first, is preceded by a comma (they follow earlier items).
  uint32_t repeat_items(uint32_t item, int64_t lo, int64_t hi, bool lead) {
    auto comma_item = [&] {
      Seq seq = sep(',');
      seq.push_back(Grammar::rule(item));
      return seq;
    };
    uint32_t tail = g_->add_rule();  // optional items after the required ones, all with commas
    g_->add_alternative(tail, {});
    if (hi < 0) {
      auto more = comma_item();
      more.push_back(Grammar::rule(tail));
      g_->add_alternative(tail, std::move(more));
    } else {
      for (int64_t i = lo; i < hi; ++i) {
        const uint32_t r = g_->add_rule();
        g_->add_alternative(r, {});
        auto more = comma_item();
        more.push_back(Grammar::rule(tail));
        g_->add_alternative(r, std::move(more));
        tail = r;
      }
    }
    Seq seq;
    for (int64_t i = 0; i < lo; ++i) {
      if (i > 0 || lead) append(seq, sep(','));
      seq.push_back(Grammar::rule(item));
    }
    const uint32_t r = g_->add_rule();
    if (lo == 0 && !lead) {
      // The first optional item has no comma: item (comma item)* up to hi.
      g_->add_alternative(r, {});
      if (hi != 0) {
        const uint32_t rest = repeat_items(item, 0, hi < 0 ? -1 : hi - 1, true);
        g_->add_alternative(r, {Grammar::rule(item), Grammar::rule(rest)});
      }
      return r;
    }
    seq.push_back(Grammar::rule(tail));
    g_->add_alternative(r, seq);
    return r;
  }

  // open (item ("," item)*)? close
  uint32_t list(char open_c, uint32_t item, char close_c) {
    const uint32_t tail = g_->add_rule();
    auto more = sep(',');
    more.push_back(Grammar::rule(item));
    more.push_back(Grammar::rule(tail));
    g_->add_alternative(tail, std::move(more));
    g_->add_alternative(tail, {});
    const uint32_t r = g_->add_rule();
    Seq empty = open(open_c);
    append(empty, close(close_c));
    g_->add_alternative(r, empty);
    auto seq = open(open_c);
    seq.push_back(Grammar::rule(item));
    seq.push_back(Grammar::rule(tail));
    append(seq, close(close_c));
    g_->add_alternative(r, std::move(seq));
    return r;
  }

  static int64_t length_bound(const ordered_json& s, const char* key, const std::string& path) {
    const auto& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) schema_error(path, std::string("'") + key + "' must be a non-negative integer");
    if (v.get<int64_t>() > kMaxStringLengthBound)
      schema_error(path, std::string("'") + key + "' above " + std::to_string(kMaxStringLengthBound) + " is not supported");
    return v.get<int64_t>();
  }

  uint32_t string(const ordered_json& s, const std::string& path) {
    const bool lengths = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("pattern") || s.contains("format")) {
      if (lengths) schema_error(path, "'pattern' or 'format' together with 'minLength'/'maxLength' is not supported");
      if (s.contains("pattern") && s.contains("format")) schema_error(path, "'pattern' together with 'format' is not supported");
      std::string regex;
      RegexOptions ro;
      ro.json_string = true;
      if (s.contains("pattern")) {
        if (!s["pattern"].is_string()) schema_error(path, "'pattern' must be a string");
        regex = s["pattern"].get<std::string>();
        ro.search = true;  // JSON Schema patterns are not anchored
      } else {
        const auto& f = s["format"];
        if (!f.is_string() || !formats().count(f.get<std::string>()))
          schema_error(path, "unsupported 'format' " + f.dump() + " (supported: date, time, date-time, uuid, email, ipv4, hostname, uri)");
        regex = formats().at(f.get<std::string>());
      }
      uint32_t inner = 0;
      try {
        inner = add_regex(*g_, regex, ro);
      } catch (const InvalidRequest& e) {
        schema_error(path, e.what());
      }
      const Sym quote = g_->literal("\"")[0];
      const uint32_t r = g_->add_rule();
      g_->add_alternative(r, {quote, Grammar::rule(inner), quote});
      return r;
    }
    if (!lengths) return string_;
    const int64_t lo = s.contains("minLength") ? length_bound(s, "minLength", path) : 0;
    const int64_t hi = s.contains("maxLength") ? length_bound(s, "maxLength", path) : -1;
    if (hi >= 0 && hi < lo) schema_error(path, "'maxLength' is below 'minLength'");
    // Tail: up to (hi - lo) more characters, or any number when unbounded.
    uint32_t tail = chars_;
    if (hi >= 0) {
      tail = g_->add_rule();
      g_->add_alternative(tail, {});
      for (int64_t i = 0; i < hi - lo; ++i) {
        const uint32_t r = g_->add_rule();
        g_->add_alternative(r, {});
        g_->add_alternative(r, {Grammar::rule(char_), Grammar::rule(tail)});
        tail = r;
      }
    }
    auto seq = g_->literal("\"");
    for (int64_t i = 0; i < lo; ++i) seq.push_back(Grammar::rule(char_));
    seq.push_back(Grammar::rule(tail));
    seq.push_back(g_->literal("\"")[0]);
    const uint32_t r = g_->add_rule();
    g_->add_alternative(r, std::move(seq));
    return r;
  }

  // Bounds as doubles; draft-4 boolean exclusiveMinimum/exclusiveMaximum modify minimum/maximum.
  struct Bounds {
    double lo = -INFINITY, hi = INFINITY;
    bool lo_strict = false, hi_strict = false;
  };
  static Bounds bounds(const ordered_json& s, const std::string& path) {
    Bounds b;
    auto num = [&](const char* k) {
      if (!s[k].is_number()) schema_error(path, std::string("'") + k + "' must be a number");
      return s[k].get<double>();
    };
    if (s.contains("minimum")) b.lo = num("minimum");
    if (s.contains("maximum")) b.hi = num("maximum");
    for (const auto& [key, is_lo] : {std::pair<const char*, bool>{"exclusiveMinimum", true}, {"exclusiveMaximum", false}}) {
      if (!s.contains(key)) continue;
      if (s[key].is_boolean()) {
        if (s[key].get<bool>()) (is_lo ? b.lo_strict : b.hi_strict) = true;
        continue;
      }
      const double v = num(key);
      if (is_lo && v >= b.lo) b.lo = v, b.lo_strict = true;
      if (!is_lo && v <= b.hi) b.hi = v, b.hi_strict = true;
    }
    return b;
  }

  static int64_t clamp_integer(double v) {
    const double m = static_cast<double>(kMaxWrittenInteger);
    return static_cast<int64_t>(std::max(-m, std::min(m, v)));
  }

  // Numbers with bounds (see json_schema.h for what is written).
  uint32_t number(const ordered_json& s, const std::string& path, bool integer) {
    const bool bounded = s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum");
    if (!bounded) return integer ? integer_ : number_;
    const Bounds b = bounds(s, path);
    // Integers n with lo <(=) n <(=) hi.
    const double ilo = b.lo_strict ? std::floor(b.lo) + 1 : std::ceil(b.lo);
    const double ihi = b.hi_strict ? std::ceil(b.hi) - 1 : std::floor(b.hi);
    const uint32_t r = g_->add_rule();
    bool any = false;
    if (ilo <= ihi && clamp_integer(ilo) <= clamp_integer(ihi)) {
      g_->add_alternative(r, {Grammar::rule(add_integer_range(*g_, clamp_integer(ilo), clamp_integer(ihi)))});
      any = true;
    }
    if (!integer) {
      // Non-negative I.F lies in [I, I+1] (16 fraction digits may round up to I+1).
      const double a = std::max(0.0, b.lo_strict ? std::floor(b.lo) + 1 : std::ceil(b.lo));
      const double z = b.hi_strict ? std::ceil(b.hi) - 2 : std::floor(b.hi) - 1;
      if (a <= z) any |= add_fraction(r, "", clamp_integer(a), clamp_integer(z));
      // -I.F lies in [-(I+1), -I].
      const double na = std::max(0.0, b.hi_strict ? std::floor(-b.hi) + 1 : std::ceil(-b.hi));
      const double nz = b.lo_strict ? std::ceil(-b.lo) - 2 : std::floor(-b.lo) - 1;
      if (na <= nz) any |= add_fraction(r, "-", clamp_integer(na), clamp_integer(nz));
    }
    if (!any) schema_error(path, "no number that ferrum writes lies within the bounds");
    return r;
  }

  bool add_fraction(uint32_t r, const std::string& sign, int64_t lo, int64_t hi) {
    const int64_t whole = add_natural_range(*g_, lo, hi);
    if (whole < 0) return false;
    Seq seq = g_->literal(sign);
    seq.push_back(Grammar::rule(static_cast<uint32_t>(whole)));
    seq.push_back(Grammar::rule(fraction_));
    g_->add_alternative(r, seq);
    return true;
  }

  void build_shared_rules() {
    Grammar& g = *g_;
    value_ = g.add_rule();
    object_ = g.add_rule();
    string_ = g.add_rule();
    char_ = g.add_rule();
    chars_ = g.add_rule();
    number_ = g.add_rule();
    integer_ = g.add_rule();
    boolean_ = g.add_rule();
    null_ = g.add_rule();
    fraction_ = g.add_rule();

    // Bounded white space: ws_k = "" | [ \t\n] ws_(k-1).
    if (opt_.any_whitespace) {
      ByteSet blank;
      for (const char c : std::string(" \t\n")) blank.set(static_cast<uint8_t>(c));
      ws_ = g.add_rule();
      g.add_alternative(ws_, {});
      for (int i = 0; i < kMaxWhitespace; ++i) {
        const uint32_t longer = g.add_rule();
        g.add_alternative(longer, {});
        g.add_alternative(longer, {g.bytes(blank), Grammar::rule(ws_)});
        ws_ = longer;
      }
    }

    // A character of a JSON string: unescaped printable ASCII, an escape, or well-formed UTF-8.
    ByteSet plain = range(0x20, 0x7f);
    plain.reset('"');
    plain.reset('\\');
    const Sym cont = g.bytes(range(0x80, 0xbf));
    g.add_alternative(char_, {g.bytes(plain)});
    g.add_alternative(char_, {g.bytes(range(0xc2, 0xdf)), cont});
    g.add_alternative(char_, {g.bytes(range(0xe0, 0xe0)), g.bytes(range(0xa0, 0xbf)), cont});
    g.add_alternative(char_, {g.bytes(range(0xe1, 0xec) | range(0xee, 0xef)), cont, cont});
    g.add_alternative(char_, {g.bytes(range(0xed, 0xed)), g.bytes(range(0x80, 0x9f)), cont});
    g.add_alternative(char_, {g.bytes(range(0xf0, 0xf0)), g.bytes(range(0x90, 0xbf)), cont, cont});
    g.add_alternative(char_, {g.bytes(range(0xf1, 0xf3)), cont, cont, cont});
    g.add_alternative(char_, {g.bytes(range(0xf4, 0xf4)), g.bytes(range(0x80, 0x8f)), cont, cont});
    ByteSet simple_escape;
    for (const char c : std::string("\"\\/bfnrt")) simple_escape.set(static_cast<uint8_t>(c));
    const Sym backslash = g.literal("\\")[0];
    g.add_alternative(char_, {backslash, g.bytes(simple_escape)});
    const Sym hex = g.bytes(range('0', '9') | range('a', 'f') | range('A', 'F'));
    g.add_alternative(char_, {backslash, g.literal("u")[0], hex, hex, hex, hex});
    g.add_alternative(chars_, {});
    g.add_alternative(chars_, {Grammar::rule(char_), Grammar::rule(chars_)});
    const Sym quote = g.literal("\"")[0];
    g.add_alternative(string_, {quote, Grammar::rule(chars_), quote});

    // Numbers: -?(0|[1-9][0-9]{0,15})(.[0-9]{1,16})?([eE][+-]?[0-9]{1,2})?  Digit runs are
    // bounded so that a model cannot write digits forever and every number fits a double.
    const Sym digit = g.bytes(range('0', '9'));
    auto up_to = [&](int n) {  // [0-9]{0,n}
      uint32_t r = g.add_rule();
      g.add_alternative(r, {});
      for (int i = 0; i < n; ++i) {
        const uint32_t longer = g.add_rule();
        g.add_alternative(longer, {});
        g.add_alternative(longer, {digit, Grammar::rule(r)});
        r = longer;
      }
      return r;
    };
    const uint32_t natural = g.add_rule();
    g.add_alternative(natural, g.literal("0"));
    g.add_alternative(natural, {g.bytes(range('1', '9')), Grammar::rule(up_to(kMaxIntegerDigits - 1))});
    const uint32_t sign = g.add_rule();
    g.add_alternative(sign, {});
    g.add_alternative(sign, g.literal("-"));
    g.add_alternative(integer_, {Grammar::rule(sign), Grammar::rule(natural)});
    g.add_alternative(fraction_, {g.literal(".")[0], digit, Grammar::rule(up_to(kMaxFractionDigits - 1))});
    const uint32_t frac = g.add_rule();
    g.add_alternative(frac, {});
    g.add_alternative(frac, {Grammar::rule(fraction_)});
    ByteSet e;
    e.set('e');
    e.set('E');
    ByteSet pm;
    pm.set('+');
    pm.set('-');
    const uint32_t exp_sign = g.add_rule();
    g.add_alternative(exp_sign, {});
    g.add_alternative(exp_sign, {g.bytes(pm)});
    const uint32_t exp = g.add_rule();
    g.add_alternative(exp, {});
    g.add_alternative(exp, {g.bytes(e), Grammar::rule(exp_sign), digit, Grammar::rule(up_to(kMaxExponentDigits - 1))});
    g.add_alternative(number_, {Grammar::rule(integer_), Grammar::rule(frac), Grammar::rule(exp)});

    g.add_alternative(boolean_, g.literal("true"));
    g.add_alternative(boolean_, g.literal("false"));
    g.add_alternative(null_, g.literal("null"));

    // Any value; objects as "{" (string ":" value ("," string ":" value)*)? "}".
    const uint32_t member = g.add_rule();
    Seq m{Grammar::rule(string_)};
    append(m, sep(':'));
    m.push_back(Grammar::rule(value_));
    g.add_alternative(member, std::move(m));
    const uint32_t obj = list('{', member, '}');
    g.add_alternative(object_, {Grammar::rule(obj)});
    const uint32_t arr = list('[', value_, ']');
    for (uint32_t r : {object_, arr, string_, number_, boolean_, null_}) g.add_alternative(value_, {Grammar::rule(r)});
  }

  Grammar* g_;
  JsonGrammarOptions opt_;
  const ordered_json* root_;
  std::map<std::string, uint32_t> refs_;
  uint32_t value_ = 0, object_ = 0, string_ = 0, char_ = 0, chars_ = 0, number_ = 0, integer_ = 0,
           boolean_ = 0, null_ = 0, fraction_ = 0, ws_ = 0;
};

}  // namespace

std::shared_ptr<const Grammar> json_object_grammar(const JsonGrammarOptions& options) {
  auto g = std::make_shared<Grammar>();
  const ordered_json none;
  JsonGrammarBuilder b(*g, options, &none);
  g->set_root(b.any_object());
  g->finalize();
  return g;
}

uint32_t add_json_schema(Grammar& g, const ordered_json& schema, const JsonGrammarOptions& options) {
  JsonGrammarBuilder b(g, options, &schema);
  return b.schema(schema, "", 0);
}

std::shared_ptr<const Grammar> compile_json_schema(const ordered_json& schema, const JsonGrammarOptions& options) {
  auto g = std::make_shared<Grammar>();
  g->set_root(add_json_schema(*g, schema, options));
  g->finalize();
  return g;
}

}  // namespace ferrum::structured
