#include "server/structured_request.h"

#include <functional>
#include <set>
#include <vector>

#include "core/error.h"
#include "server/api_error.h"
#include "structured/gbnf.h"
#include "structured/grammar_cache.h"
#include "structured/json_schema.h"
#include "structured/regex.h"

namespace ferrum::server {
namespace {

using structured::Grammar;
using structured::GrammarCache;

// Compiles through the cache; a compile error becomes a 400 naming `param`.
std::shared_ptr<const Grammar> cached(const std::string& param, const std::string& key,
                                      const std::function<std::shared_ptr<const Grammar>()>& compile) {
  try {
    return GrammarCache::shared().get_or_compile(key, compile);
  } catch (const InvalidRequest& e) {
    bad_request(param, "{}", e.what());
  }
}

std::shared_ptr<const Grammar> json_schema(const std::string& param, const ordered_json& schema, bool ws) {
  structured::JsonGrammarOptions o;
  o.any_whitespace = ws;
  return cached(param, std::string("json_schema\n") + (ws ? "ws\n" : "\n") + schema.dump(),
                [&] { return structured::compile_json_schema(schema, o); });
}

std::shared_ptr<const Grammar> json_object(bool ws) {
  structured::JsonGrammarOptions o;
  o.any_whitespace = ws;
  return cached("response_format", ws ? "json_object\nws" : "json_object\n", [&] { return structured::json_object_grammar(o); });
}

std::shared_ptr<const Grammar> regex(const std::string& param, const ordered_json& v) {
  if (!v.is_string()) bad_request(param, "'{}' must be a string (a regular expression)", param);
  const std::string text = v.get<std::string>();
  return cached(param, "regex\n" + text, [&] { return structured::compile_regex(text); });
}

std::shared_ptr<const Grammar> gbnf(const std::string& param, const ordered_json& v) {
  if (!v.is_string()) bad_request(param, "'{}' must be a string (a GBNF grammar)", param);
  const std::string text = v.get<std::string>();
  return cached(param, "gbnf\n" + text, [&] { return structured::compile_gbnf(text); });
}

// The output is exactly one of the strings.
std::shared_ptr<const Grammar> choice(const std::string& param, const ordered_json& v) {
  if (!v.is_array() || v.empty()) bad_request(param, "'{}' must be a non-empty list of strings", param);
  for (const auto& c : v)
    if (!c.is_string() || c.get<std::string>().empty()) bad_request(param, "'{}' must be a list of non-empty strings", param);
  return cached(param, "choice\n" + v.dump(), [&] {
    auto g = std::make_shared<Grammar>();
    const uint32_t r = g->add_rule();
    for (const auto& c : v) g->add_alternative(r, g->literal(c.get<std::string>()));
    g->set_root(r);
    g->finalize();
    return std::shared_ptr<const Grammar>(g);
  });
}

ordered_json schema_value(const std::string& param, const ordered_json& v) {
  if (v.is_object() || v.is_boolean()) return v;
  if (v.is_string()) {
    ordered_json parsed = ordered_json::parse(v.get<std::string>(), nullptr, false);
    if (!parsed.is_discarded() && (parsed.is_object() || parsed.is_boolean())) return parsed;
  }
  bad_request(param, "'{}' must be a JSON Schema (an object, or its JSON text)", param);
}

const ordered_json* field(const ordered_json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool flag(const ordered_json& v, const char* key) {
  if (!v.is_boolean()) bad_request(key, "'{}' must be a boolean", key);
  return v.get<bool>();
}

std::shared_ptr<const Grammar> response_format(const ordered_json& rf, bool ws) {
  if (!rf.is_object()) bad_request("response_format", "'response_format' must be an object");
  auto* type = field(rf, "type");
  if (!type || !type->is_string()) bad_request("response_format", "'response_format.type' must be a string");
  const auto t = type->get<std::string>();
  if (t == "text") return nullptr;
  if (t == "json_object") return json_object(ws);
  if (t != "json_schema")
    bad_request("response_format", "response_format type '{}' is not supported; use 'text', 'json_object' or 'json_schema'", t);
  auto* js = field(rf, "json_schema");
  if (!js || !js->is_object()) bad_request("response_format", "'response_format.json_schema' must be an object");
  for (auto it = js->begin(); it != js->end(); ++it)
    if (it.key() != "name" && it.key() != "schema" && it.key() != "strict" && it.key() != "description")
      bad_request("response_format", "unknown key '{}' in response_format.json_schema", it.key());
  auto* schema = field(*js, "schema");
  if (!schema) bad_request("response_format", "'response_format.json_schema.schema' is required");
  return json_schema("response_format", *schema, ws);
}

std::shared_ptr<const Grammar> structured_outputs(const ordered_json& so, bool& ws) {
  if (!so.is_object()) bad_request("structured_outputs", "'structured_outputs' must be an object");
  static const std::set<std::string> kKeys = {"json", "regex", "choice", "grammar", "json_object", "any_whitespace", "disable_any_whitespace"};
  for (auto it = so.begin(); it != so.end(); ++it)
    if (!kKeys.count(it.key()))
      bad_request("structured_outputs", "structured_outputs.{} is not supported (supported: json, regex, choice, grammar, json_object, any_whitespace, disable_any_whitespace)", it.key());
  if (auto* v = field(so, "any_whitespace")) ws = flag(*v, "structured_outputs.any_whitespace");
  if (auto* v = field(so, "disable_any_whitespace")) ws = !flag(*v, "structured_outputs.disable_any_whitespace");
  std::shared_ptr<const Grammar> out;
  int given = 0;
  if (auto* v = field(so, "json")) ++given, out = json_schema("structured_outputs", schema_value("structured_outputs.json", *v), ws);
  if (auto* v = field(so, "regex")) ++given, out = regex("structured_outputs.regex", *v);
  if (auto* v = field(so, "choice")) ++given, out = choice("structured_outputs.choice", *v);
  if (auto* v = field(so, "grammar")) ++given, out = gbnf("structured_outputs.grammar", *v);
  if (auto* v = field(so, "json_object"); v && flag(*v, "structured_outputs.json_object")) ++given, out = json_object(ws);
  if (given != 1) bad_request("structured_outputs", "'structured_outputs' needs exactly one of json, regex, choice, grammar, json_object");
  return out;
}

}  // namespace

void parse_structured_output(const ordered_json& body, SamplingParams& p) {
  bool ws = false;
  if (auto* v = field(body, "any_whitespace")) ws = flag(*v, "any_whitespace");
  std::vector<std::string> given;
  std::shared_ptr<const Grammar> g;
  auto take = [&](const char* key, std::shared_ptr<const Grammar> grammar) {
    given.push_back(key);
    if (grammar) g = std::move(grammar);
  };
  // structured_outputs first: it may set the white-space option.
  if (auto* v = field(body, "structured_outputs")) take("structured_outputs", structured_outputs(*v, ws));
  if (auto* v = field(body, "response_format")) {
    auto grammar = response_format(*v, ws);
    if (grammar) take("response_format", grammar);
  }
  if (auto* v = field(body, "guided_json")) take("guided_json", json_schema("guided_json", schema_value("guided_json", *v), ws));
  if (auto* v = field(body, "guided_regex")) take("guided_regex", regex("guided_regex", *v));
  if (auto* v = field(body, "guided_choice")) take("guided_choice", choice("guided_choice", *v));
  if (auto* v = field(body, "guided_grammar")) take("guided_grammar", gbnf("guided_grammar", *v));
  if (given.size() > 1) bad_request(given[1], "'{}' and '{}' both constrain the output; give only one", given[0], given[1]);
  p.grammar = g;
}

std::shared_ptr<const Grammar> tool_choice_grammar(structured::ToolCallSyntax syntax, const ordered_json& tools, const std::string& only,
                                                   bool parallel) {
  const int max_calls = parallel ? structured::kMaxParallelToolCalls : 1;
  const std::string key = std::string("tools\n") + (syntax == structured::ToolCallSyntax::Hermes ? "hermes\n" : "llama3\n") +
                          std::to_string(max_calls) + "\n" + only + "\n" + tools.dump();
  return cached("tool_choice", key, [&] { return structured::compile_tool_calls(syntax, tools, only, max_calls); });
}

}  // namespace ferrum::server
