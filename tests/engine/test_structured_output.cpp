// Structured output end to end on ferrum-tiny: sampling at temperature 1 under each schema of
// the corpus (tests/fixtures/structured/schemas.json), every completion must stop by itself
// and its text must parse and validate: python3-jsonschema with format checks (independent
// of the compiler; it knows $ref, patterns, formats, bounds, prefixItems), and
// schema_validator.h for the core keywords.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/json.h"
#include "engine_test_util.h"
#include "models/model.h"
#include "schema_validator.h"
#include "structured/json_schema.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::testing {
namespace {

namespace fs = std::filesystem;
const std::string kTiny = std::string(FERRUM_SOURCE_DIR) + "/models/ferrum-tiny";

struct TinyEngine {
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(kTiny);
  std::unique_ptr<Engine> engine = [] {
    EngineOptions o;
    o.max_num_seqs = 32;
    return Engine::create(std::shared_ptr<Model>(load_model(kTiny, 2)), Tokenizer::from_dir(kTiny), o);
  }();
};

TEST(StructuredOutput, CorpusSampledAtTemperatureOneValidates) {
  TinyEngine t;
  std::ifstream in(fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/structured/schemas.json");
  const ordered_json corpus = ordered_json::parse(in).at("schemas");
  const auto prompt = t.tok->encode("And the LORD said unto Moses, write it as JSON:", false);
  constexpr int kSeeds = 3;
  struct Job {
    std::string name;
    json schema;
    std::shared_ptr<RequestStream> stream;
  };
  std::vector<Job> jobs;
  for (auto it = corpus.begin(); it != corpus.end(); ++it) {
    for (int seed = 0; seed < kSeeds; ++seed) {
      SamplingParams p;
      p.temperature = 1.0f;
      p.seed = 1000 + seed;
      p.max_tokens = 600;  // recursive schemas (linked lists, trees) may nest a while
      p.grammar = structured::compile_json_schema(it.value());
      jobs.push_back({it.key(), json::parse(it.value().dump()), t.engine->submit(prompt, p)});
    }
  }
  const fs::path jsonl = fs::temp_directory_path() / ("ferrum_structured_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream out(jsonl);
  int valid = 0;
  for (auto& job : jobs) {
    auto c = collect(*job.stream);
    const Completion& comp = c.completions[0];
    EXPECT_EQ(comp.finish, FinishReason::Stop) << job.name << ": " << comp.text << " " << comp.error;
    json value;
    try {
      value = json::parse(comp.text);
    } catch (const std::exception& e) {
      ADD_FAILURE() << job.name << ": does not parse: " << comp.text;
      continue;
    }
    const std::string why = validate_schema(value, job.schema);
    EXPECT_EQ(why, "") << job.name << ": " << comp.text;
    valid += why.empty();
    out << json{{"schema", job.schema}, {"output", comp.text}}.dump() << "\n";
  }
  out.close();
  EXPECT_EQ(valid, static_cast<int>(jobs.size()));
  // The independent validator of record: python3-jsonschema (the draft each schema names, else
  // 2020-12), with format checking. Required: a missing validator fails, it does not skip.
  ASSERT_EQ(std::system("python3 -c 'import jsonschema' > /dev/null 2>&1"), 0)
      << "python3-jsonschema is missing (scripts/install-deps.sh installs it)";
  const std::string cmd = "python3 -c 'import json,sys,jsonschema\n"
                          "for l in open(sys.argv[1]):\n"
                          "  r=json.loads(l); s=r[\"schema\"]\n"
                          "  v=jsonschema.validators.validator_for(s); v(s, format_checker=v.FORMAT_CHECKER).validate(json.loads(r[\"output\"]))' " + jsonl.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "python3-jsonschema rejects an output in " << jsonl;
  fs::remove(jsonl);
}

TEST(StructuredOutput, EachOfNCompletionsHasItsOwnMatcher) {
  TinyEngine t;
  SamplingParams p;
  p.n = 4;
  p.temperature = 1.0f;
  p.seed = 5;
  p.max_tokens = 200;
  const json schema = json::parse(R"({"type":"object","properties":{"who":{"type":"string","maxLength":12},
      "n":{"type":"integer"},"ok":{"type":"boolean"}},"required":["who","n","ok"],"additionalProperties":false})");
  p.grammar = structured::compile_json_schema(ordered_json::parse(schema.dump()));
  auto c = collect(*t.engine->submit(t.tok->encode("In the beginning", false), p), p.n);
  std::set<std::string> distinct;
  for (const auto& comp : c.completions) {
    EXPECT_EQ(comp.finish, FinishReason::Stop) << comp.text;
    EXPECT_EQ(validate_schema(json::parse(comp.text), schema), "") << comp.text;
    distinct.insert(comp.text);
  }
  EXPECT_GT(distinct.size(), 1u);  // four samples, not one shared state
}

// Free-form JSON objects from a model trained on prose rarely close within max_tokens: each
// output is a complete object when it stops and a valid prefix of one when cut by length.
TEST(StructuredOutput, JsonObjectIsCompleteOrAValidPrefix) {
  TinyEngine t;
  SamplingParams p;
  p.n = 4;
  p.temperature = 1.0f;
  p.seed = 9;
  p.max_tokens = 64;
  p.grammar = structured::json_object_grammar();
  auto c = collect(*t.engine->submit(t.tok->encode("In the beginning", false), p), p.n);
  for (const auto& comp : c.completions) {
    ASSERT_FALSE(comp.text.empty());
    EXPECT_EQ(comp.text.front(), '{');
    if (comp.finish == FinishReason::Stop) {
      EXPECT_TRUE(json::parse(comp.text).is_object()) << comp.text;
    } else {
      EXPECT_EQ(comp.finish, FinishReason::Length) << comp.error;
      structured::GrammarMatcher m(p.grammar);
      EXPECT_TRUE(m.advance(comp.text)) << comp.text;
      EXPECT_FALSE(m.accepts());
    }
  }
}

// The device sampler has no token mask yet: a constrained request is refused, not run free.
TEST(StructuredOutput, RefusedWhereTheModelSamplesOnItsDevice) {
  EngineOptions o;
  o.model_sampling = true;  // the model's own sampler (on the CPU, its reference)
  auto engine = Engine::create(std::shared_ptr<Model>(load_model(kTiny, 2)), Tokenizer::from_dir(kTiny), o);
  SamplingParams p;
  p.grammar = structured::json_object_grammar();
  try {
    engine->submit({1, 2, 3}, p);
    ADD_FAILURE() << "a constrained request was accepted";
  } catch (const InvalidRequest& e) {
    EXPECT_NE(std::string(e.what()).find("structured output"), std::string::npos) << e.what();
  }
  p.grammar = nullptr;  // the same engine still serves free text
  const auto free = collect(*engine->submit({1, 2, 3}, p));
  EXPECT_NE(free.completions[0].finish, FinishReason::Error) << free.completions[0].error;
  EXPECT_FALSE(free.completions[0].tokens.empty());
}

}  // namespace
}  // namespace ferrum::testing
