// Jinja chat templates: any source either fails to parse or renders a fixed conversation (with
// tools) to a string or a ferrum::Error, within the render limits. Limits are tighter than the
// server's so that one input stays fast; they are the same code paths.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "core/error.h"

namespace {

ferrum::chat::ChatRequest conversation() {
  ferrum::chat::ChatRequest r;
  r.messages = ferrum::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2? <b>ünïcode</b> \u4e2d"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "4"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": [{"type": "text", "text": "and 3+3?"}]}
  ])");
  r.tools = ferrum::ordered_json::parse(R"([{"type": "function", "function": {"name": "add",
    "description": "Adds", "parameters": {"type": "object", "properties": {"a": {"type": "number"}},
    "required": ["a"]}}}])");
  r.kwargs = ferrum::ordered_json{{"enable_thinking", false}};
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ferrum::chat::ChatRequest request = conversation();
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    ferrum::chat::ChatTemplate tmpl({{"default", source}},
                                    ferrum::ordered_json{{"bos_token", "<s>"}, {"eos_token", "</s>"}});
    tmpl.set_fixed_time(0);
    ferrum::chat::jinja::RenderLimits limits;
    limits.max_output_bytes = 1 << 20;
    limits.max_loop_iterations = 100000;
    tmpl.set_limits(limits);
    (void)tmpl.render(request);
  } catch (const ferrum::Error&) {
  }
  return 0;
}
