#include "structured/tool_call_grammar.h"

#include "core/error.h"
#include "structured/json_schema.h"

namespace ferrum::structured {

std::shared_ptr<const Grammar> compile_tool_calls(ToolCallSyntax syntax, const ordered_json& tools, const std::string& only,
                                                  int max_calls) {
  auto g = std::make_shared<Grammar>();
  const bool hermes = syntax == ToolCallSyntax::Hermes;
  const uint32_t call = g->add_rule("tool call");
  bool found = false;
  for (const auto& tool : tools) {
    const ordered_json& fn = tool.at("function");
    const std::string name = fn.at("name").get<std::string>();
    if (!only.empty() && name != only) continue;
    found = true;
    ordered_json params = fn.contains("parameters") && !fn["parameters"].is_null() ? fn["parameters"] : ordered_json{{"type", "object"}};
    uint32_t args = 0;
    try {
      args = add_json_schema(*g, params);
    } catch (const InvalidRequest& e) {
      throw InvalidRequest("tool '" + name + "' parameters: " + e.what());
    }
    std::string head = hermes ? "<tool_call>\n" : "";
    head += "{\"name\": " + ordered_json(name).dump() + (hermes ? ", \"arguments\": " : ", \"parameters\": ");
    auto seq = g->literal(head);
    seq.push_back(Grammar::rule(args));
    for (auto s : g->literal(hermes ? "}\n</tool_call>" : "}")) seq.push_back(s);
    g->add_alternative(call, std::move(seq));
  }
  if (!found) throw InvalidRequest(only.empty() ? "tool_choice needs at least one tool in 'tools'" : "tool_choice names '" + only + "', which is not in 'tools'");
  if (!only.empty()) {
    g->set_root(call);
  } else {  // call (separator call){0, max_calls - 1}
    uint32_t more = g->add_rule();
    g->add_alternative(more, {});
    for (int i = 1; i < max_calls; ++i) {
      const uint32_t longer = g->add_rule();
      g->add_alternative(longer, {});
      auto seq = g->literal(hermes ? "\n" : "; ");
      seq.push_back(Grammar::rule(call));
      seq.push_back(Grammar::rule(more));
      g->add_alternative(longer, std::move(seq));
      more = longer;
    }
    const uint32_t root = g->add_rule();
    g->add_alternative(root, {Grammar::rule(call), Grammar::rule(more)});
    g->set_root(root);
  }
  g->finalize();
  return g;
}

}  // namespace ferrum::structured
