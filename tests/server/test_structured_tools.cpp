// tool_choice required / named on ferrum-tiny: sampled at temperature 1 under the tool-call
// grammar, every output parses back (chat::OutputParser, Hermes and Llama 3 JSON) as tool
// calls to the offered tools, with arguments that validate against their parameters.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "chat/output_parser.h"
#include "core/json.h"
#include "engine/engine.h"
#include "models/model.h"
#include "server/structured_request.h"
#include "tokenizer/tokenizer.h"

namespace ferrum {
namespace {

namespace fs = std::filesystem;
const std::string kTiny = std::string(FERRUM_SOURCE_DIR) + "/models/ferrum-tiny";

std::string collect_text(RequestStream& stream, FinishReason& finish) {
  std::string text;
  finish = FinishReason::None;
  while (auto out = stream.next())
    for (auto& d : out->deltas) {
      text += d.text;
      if (d.finish_reason != FinishReason::None) finish = d.finish_reason;
    }
  return text;
}

TEST(StructuredTools, RequiredAndNamedCallsParseAndValidate) {
  auto tok = Tokenizer::from_dir(kTiny);
  EngineOptions o;
  o.max_num_seqs = 8;
  auto engine = Engine::create(std::shared_ptr<Model>(load_model(kTiny, 2)), Tokenizer::from_dir(kTiny), o);
  const ordered_json tools = ordered_json::parse(R"([
    {"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{
      "city":{"type":"string","maxLength":16},"unit":{"enum":["c","f"]}},"required":["city"],"additionalProperties":false}}},
    {"type":"function","function":{"name":"add","parameters":{"type":"object","properties":{
      "a":{"type":"integer","minimum":-100,"maximum":100},"b":{"type":"integer","minimum":-100,"maximum":100}},"required":["a","b"]}}}])");
  const auto prompt = tok->encode("Call a tool:", false);
  const fs::path jsonl = fs::temp_directory_path() / ("ferrum_tools_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream out(jsonl);
  struct Job {
    structured::ToolCallSyntax syntax;
    std::string only;
    bool parallel;
    std::shared_ptr<RequestStream> stream;
  };
  std::vector<Job> jobs;
  for (const auto syntax : {structured::ToolCallSyntax::Hermes, structured::ToolCallSyntax::Llama3Json}) {
    for (const std::string only : {"", "add", "get_weather"}) {
      for (int seed = 0; seed < 3; ++seed) {
        SamplingParams p;
        p.temperature = 1.0f;
        p.seed = 77 + seed;
        p.max_tokens = 1000;  // up to 8 calls of up to ~60 tokens
        p.grammar = server::tool_choice_grammar(syntax, tools, only, /*parallel=*/seed != 2);
        jobs.push_back({syntax, only, seed != 2, engine->submit(prompt, p)});
      }
    }
  }
  int calls = 0;
  for (auto& job : jobs) {
    FinishReason finish;
    const std::string text = collect_text(*job.stream, finish);
    EXPECT_EQ(finish, FinishReason::Stop) << text;
    chat::ParserOptions po;
    po.tools = job.syntax == structured::ToolCallSyntax::Hermes ? chat::ToolCallFormat::Hermes : chat::ToolCallFormat::Llama3Json;
    const auto parsed = chat::OutputParser::parse(text, po);
    EXPECT_EQ(parsed.content, "") << text;
    ASSERT_FALSE(parsed.tool_calls.empty()) << text;
    if (!job.only.empty() || !job.parallel) {
      EXPECT_EQ(parsed.tool_calls.size(), 1u) << text;
    }
    EXPECT_LE(parsed.tool_calls.size(), static_cast<size_t>(structured::kMaxParallelToolCalls)) << text;
    for (const auto& call : parsed.tool_calls) {
      if (!job.only.empty()) {
        EXPECT_EQ(call.name, job.only);
      }
      const ordered_json* params = nullptr;
      for (const auto& t : tools)
        if (t["function"]["name"] == call.name) params = &t["function"]["parameters"];
      ASSERT_NE(params, nullptr) << "a call to an unknown tool: " << call.name;
      out << json{{"schema", json::parse(params->dump())}, {"output", call.arguments}}.dump() << "\n";
      ++calls;
    }
  }
  out.close();
  EXPECT_GE(calls, 18);
  ASSERT_EQ(std::system("python3 -c 'import jsonschema' > /dev/null 2>&1"), 0) << "python3-jsonschema is missing";
  const std::string cmd = "python3 -c 'import json,sys,jsonschema\n"
                          "for l in open(sys.argv[1]):\n"
                          "  r=json.loads(l); jsonschema.validate(json.loads(r[\"output\"]), r[\"schema\"])' " + jsonl.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "python3-jsonschema rejects arguments in " << jsonl;
  fs::remove(jsonl);
}

}  // namespace
}  // namespace ferrum
