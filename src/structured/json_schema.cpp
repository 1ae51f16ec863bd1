#include "structured/json_schema.h"

#include <set>
#include <string>

#include "core/error.h"

namespace ferrum::structured {

namespace {

constexpr int kMaxSchemaDepth = 64;
constexpr int64_t kMaxStringLengthBound = 4096;  // minLength/maxLength unroll into rules
constexpr size_t kMaxRules = 200000;
constexpr int kMaxIntegerDigits = 16;  // bounded digit runs (see build_shared_rules)
constexpr int kMaxFractionDigits = 16;
constexpr int kMaxExponentDigits = 2;

using Sym = Grammar::Symbol;

ByteSet range(int lo, int hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(static_cast<size_t>(b));
  return s;
}

[[noreturn]] void schema_error(const std::string& path, const std::string& what) {
  throw InvalidRequest("json_schema" + (path.empty() ? std::string() : " at '" + path + "'") + ": " + what);
}

class JsonGrammarBuilder {
 public:
  JsonGrammarBuilder() { build_shared_rules(); }

  std::shared_ptr<const Grammar> finish(uint32_t root) {
    g_->set_root(root);
    g_->finalize();
    return g_;
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
    if (s.contains("anyOf")) {
      const auto& a = s["anyOf"];
      if (!a.is_array() || a.empty()) schema_error(path, "'anyOf' must be a non-empty array");
      for (const auto& k : {"type", "properties", "items", "required", "additionalProperties"})
        if (s.contains(k)) schema_error(path, std::string("'anyOf' beside '") + k + "' is not supported yet; move it into each branch");
      const uint32_t r = g_->add_rule();
      for (size_t i = 0; i < a.size(); ++i)
        g_->add_alternative(r, {Grammar::rule(schema(a[i], path + "/anyOf/" + std::to_string(i), depth + 1))});
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
    } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
      types.push_back("array");
    } else if (s.contains("minLength") || s.contains("maxLength")) {
      types.push_back("string");
    } else {
      return value_;
    }
    if (types.size() == 1) return typed(types[0], s, path, depth);
    const uint32_t r = g_->add_rule();
    for (const auto& t : types) g_->add_alternative(r, {Grammar::rule(typed(t, s, path, depth))});
    return r;
  }

 private:
  uint32_t typed(const std::string& t, const ordered_json& s, const std::string& path, int depth) {
    if (t == "object") return object(s, path, depth);
    if (t == "array") return array(s, path, depth);
    if (t == "string") return string(s, path);
    if (t == "number") return number_;
    if (t == "integer") return integer_;
    if (t == "boolean") return boolean_;
    if (t == "null") return null_;
    schema_error(path, "unknown type '" + t + "'");
  }

  static void check_keywords(const ordered_json& s, const std::string& path) {
    static const std::set<std::string> kSupported = {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf",
        "minLength", "maxLength", "minItems", "maxItems", "title", "description", "default", "examples", "$schema", "$id", "$comment"};
    std::string bad;
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!kSupported.count(it.key())) bad += (bad.empty() ? "'" : ", '") + it.key() + "'";
    if (!bad.empty()) schema_error(path, "unsupported keyword(s) " + bad + " (structured output supports type, properties, required, additionalProperties, items, minItems, maxItems, enum, const, anyOf, minLength, maxLength so far)");
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
      g_->add_alternative(r, g_->literal("{}"));
      return r;
    }
    // Members in the listed order: first_[i] = properties from i on with nothing written yet,
    // rest_[i] = the same after at least one member (so each starts with a comma).
    std::vector<uint32_t> kv;
    std::vector<bool> req;
    for (auto it = props.begin(); it != props.end(); ++it) {
      const uint32_t value = schema(it.value(), path + "/properties/" + it.key(), depth + 1);
      auto seq = g_->literal(ordered_json(it.key()).dump() + ":");
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
      auto with_comma = g_->literal(",");
      with_comma.push_back(Grammar::rule(kv[i]));
      with_comma.push_back(Grammar::rule(rest[i + 1]));
      g_->add_alternative(rest[i], std::move(with_comma));
      if (!req[i]) {
        g_->add_alternative(first[i], {Grammar::rule(first[i + 1])});
        g_->add_alternative(rest[i], {Grammar::rule(rest[i + 1])});
      }
    }
    const uint32_t r = g_->add_rule();
    auto seq = g_->literal("{");
    seq.push_back(Grammar::rule(first[0]));
    for (auto sym : g_->literal("}")) seq.push_back(sym);
    g_->add_alternative(r, std::move(seq));
    return r;
  }

  uint32_t array(const ordered_json& s, const std::string& path, int depth) {
    const uint32_t item = s.contains("items") ? schema(s["items"], path + "/items", depth + 1) : value_;
    if (!s.contains("minItems") && !s.contains("maxItems")) return list('[', item, ']');
    const int64_t lo = s.contains("minItems") ? length_bound(s, "minItems", path) : 0;
    const int64_t hi = s.contains("maxItems") ? length_bound(s, "maxItems", path) : -1;
    if (hi >= 0 && hi < lo) schema_error(path, "'maxItems' is below 'minItems'");
    // After the first item: up to (hi - 1) more ",item", at least (lo - 1) of them.
    auto comma_item = [&] {
      auto seq = g_->literal(",");
      seq.push_back(Grammar::rule(item));
      return seq;
    };
    uint32_t tail = g_->add_rule();  // the optional part: (",item"){0, hi - max(lo, 1)} or *
    g_->add_alternative(tail, {});
    if (hi < 0) {
      auto more = comma_item();
      more.push_back(Grammar::rule(tail));
      g_->add_alternative(tail, std::move(more));
    } else {
      for (int64_t i = std::max<int64_t>(lo, 1); i < hi; ++i) {
        const uint32_t r = g_->add_rule();
        g_->add_alternative(r, {});
        auto more = comma_item();
        more.push_back(Grammar::rule(tail));
        g_->add_alternative(r, std::move(more));
        tail = r;
      }
    }
    const uint32_t r = g_->add_rule();
    if (lo == 0) g_->add_alternative(r, g_->literal("[]"));
    if (hi != 0) {
      auto seq = g_->literal("[");
      seq.push_back(Grammar::rule(item));
      for (int64_t i = 1; i < lo; ++i)
        for (auto sym : comma_item()) seq.push_back(sym);
      seq.push_back(Grammar::rule(tail));
      seq.push_back(g_->literal("]")[0]);
      g_->add_alternative(r, std::move(seq));
    }
    return r;
  }

  // open (item ("," item)*)? close
  uint32_t list(char open, uint32_t item, char close) {
    const uint32_t tail = g_->add_rule();
    auto more = g_->literal(",");
    more.push_back(Grammar::rule(item));
    more.push_back(Grammar::rule(tail));
    g_->add_alternative(tail, std::move(more));
    g_->add_alternative(tail, {});
    const uint32_t r = g_->add_rule();
    g_->add_alternative(r, g_->literal(std::string{open, close}));
    auto seq = g_->literal(std::string{open});
    seq.push_back(Grammar::rule(item));
    seq.push_back(Grammar::rule(tail));
    for (auto sym : g_->literal(std::string{close})) seq.push_back(sym);
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
    if (!s.contains("minLength") && !s.contains("maxLength")) return string_;
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
    const uint32_t frac = g.add_rule();
    g.add_alternative(frac, {});
    g.add_alternative(frac, {g.literal(".")[0], digit, Grammar::rule(up_to(kMaxFractionDigits - 1))});
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
    auto m = std::vector<Sym>{Grammar::rule(string_)};
    m.push_back(g.literal(":")[0]);
    m.push_back(Grammar::rule(value_));
    g.add_alternative(member, std::move(m));
    const uint32_t obj = list('{', member, '}');
    g.add_alternative(object_, {Grammar::rule(obj)});
    const uint32_t arr = list('[', value_, ']');
    for (uint32_t r : {object_, arr, string_, number_, boolean_, null_}) g.add_alternative(value_, {Grammar::rule(r)});
  }

  std::shared_ptr<Grammar> g_ = std::make_shared<Grammar>();
  uint32_t value_ = 0, object_ = 0, string_ = 0, char_ = 0, chars_ = 0, number_ = 0, integer_ = 0,
           boolean_ = 0, null_ = 0;
};

}  // namespace

std::shared_ptr<const Grammar> json_object_grammar() {
  JsonGrammarBuilder b;
  return b.finish(b.any_object());
}

std::shared_ptr<const Grammar> compile_json_schema(const ordered_json& schema) {
  JsonGrammarBuilder b;
  const uint32_t root = b.schema(schema, "", 0);
  return b.finish(root);
}

}  // namespace ferrum::structured
