#include "tokenizer/post_processor.h"

#include "core/error.h"
#include "core/json_integer.h"

namespace ferrum::tok {
namespace {

void append_template(const json& spec, SpecialTokenFrame& frame) {
  const json& special = spec.value("special_tokens", json::object());
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const auto& item : spec.at("single")) {
    if (item.contains("Sequence")) {
      if (item.at("Sequence").value("id", "A") != "A") fail("tokenizer: single template refers to sequence B");
      seen_sequence = true;
    } else if (item.contains("SpecialToken")) {
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      if (!special.contains(name)) fail("tokenizer: template special token '{}' is not defined", name);
      auto& dst = seen_sequence ? after : before;
      for (const auto& id : special.at(name).at("ids")) dst.push_back(json_integer_or_fail<int32_t>(id, "tokenizer: special token id"));
    } else {
      fail("tokenizer: unsupported template item {}", item.dump());
    }
  }
  // A later processor wraps the output of the earlier ones.
  frame.prefix.insert(frame.prefix.begin(), before.begin(), before.end());
  frame.suffix.insert(frame.suffix.end(), after.begin(), after.end());
  frame.has_template = true;
}

// Roberta / Bert store ["token", id].
int32_t pair_id(const json& pair) { return json_integer_or_fail<int32_t>(pair.at(1), "tokenizer: special token id"); }

void append_step(const json& spec, SpecialTokenFrame& frame) {
  if (spec.is_null()) return;
  const std::string type = spec.value("type", "");
  if (type == "ByteLevel") return;  // only touches offsets
  if (type == "TemplateProcessing") return append_template(spec, frame);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    frame.prefix.insert(frame.prefix.begin(), pair_id(spec.at("cls")));
    frame.suffix.push_back(pair_id(spec.at("sep")));
    frame.has_template = true;
    return;
  }
  if (type == "Sequence") {
    for (const auto& s : spec.at("processors")) append_step(s, frame);
    return;
  }
  fail("tokenizer: post-processor type '{}' is not supported", type);
}

}  // namespace

SpecialTokenFrame make_special_token_frame(const json& spec) {
  SpecialTokenFrame frame;
  append_step(spec, frame);
  return frame;
}

}  // namespace ferrum::tok
