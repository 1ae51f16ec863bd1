// A parsed Jinja template and its renderer, matching jinja2 as transformers configures it
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols).
#pragma once
#include <cstdint>
#include <string>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace ferrum::chat::jinja {

// Bounds that keep a hostile template from exhausting memory, stack or time.
struct RenderLimits {
  size_t max_output_bytes = size_t(64) << 20;   // also bounds every intermediate string
  int max_call_depth = 64;                      // nested macro / caller calls
  uint64_t max_loop_iterations = 1000000;       // summed over all loops of one render
};

class Template {
 public:
  // Parses the source; throws ferrum::Error("template syntax error: ... (line N)").
  explicit Template(const std::string& source);

  // Renders with `context` (a dict of variables) layered over the built-in globals.
  // Throws ferrum::Error with the template's message on runtime errors and raise_exception.
  std::string render(const Value& context, const RenderLimits& limits = {}) const;

 private:
  Body body_;
};

}  // namespace ferrum::chat::jinja
