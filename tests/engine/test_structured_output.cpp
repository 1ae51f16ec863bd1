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

// model_sampling: the engine's device-sampling path (the model's own sampler, here the CPU
// reference of the GPU kernel), which takes the grammar as a bitmask filled in while the
// forward runs; otherwise the host Sampler.
struct TinyEngine {
  explicit TinyEngine(bool model_sampling = false) {
    EngineOptions o;
    o.max_num_seqs = 32;
    o.model_sampling = model_sampling;
    engine = Engine::create(std::shared_ptr<Model>(load_model(kTiny, 2)), Tokenizer::from_dir(kTiny), o);
  }
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(kTiny);
  std::unique_ptr<Engine> engine;
};

class StructuredSampling : public ::testing::TestWithParam<bool> {};

TEST_P(StructuredSampling, CorpusSampledAtTemperatureOneValidates) {
  TinyEngine t(GetParam());
  std::ifstream in(fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/structured/schemas.json");
  const ordered_json corpus = ordered_json::parse(in).at("schemas");
  const auto prompt = t.tok->encode("And the LORD said unto Moses, write it as JSON:", false);
  const int kSeeds = GetParam() ? 1 : 3;
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

TEST_P(StructuredSampling, EachOfNCompletionsHasItsOwnMatcher) {
  TinyEngine t(GetParam());
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
TEST_P(StructuredSampling, JsonObjectIsCompleteOrAValidPrefix) {
  TinyEngine t(GetParam());
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

INSTANTIATE_TEST_SUITE_P(Samplers, StructuredSampling, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("Device") : std::string("Host"); });

// Greedy under a grammar: the device path's bitmask and the host Sampler's mask pick the same
// tokens, alone and in a batch with free-text requests (whose steps may overlap).
TEST(StructuredOutput, DeviceAndHostSamplingAgreeUnderGreedy) {
  TinyEngine host(false), device(true);
  const json schema = json::parse(R"({"type":"object","properties":{"name":{"type":"string","maxLength":20},
      "verses":{"type":"array","items":{"type":"integer","minimum":1,"maximum":50},"maxItems":4},
      "king":{"type":"boolean"}},"required":["name","verses","king"],"additionalProperties":false})");
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 120;
  p.grammar = structured::compile_json_schema(ordered_json::parse(schema.dump()));
  SamplingParams free;
  free.temperature = 1.0f;
  free.seed = 3;
  free.max_tokens = 40;
  free.ignore_eos = true;
  for (const char* text : {"And the LORD said unto Moses", "In the beginning", "Blessed are the meek"}) {
    const auto prompt = host.tok->encode(text, false);
    const auto want = collect(*host.engine->submit(prompt, p)).completions[0];
    EXPECT_EQ(want.finish, FinishReason::Stop) << want.text << want.error;
    EXPECT_EQ(validate_schema(json::parse(want.text), schema), "") << want.text;
    std::vector<std::shared_ptr<RequestStream>> crowd;
    for (int i = 0; i < 3; ++i) crowd.push_back(device.engine->submit(host.tok->encode("For God so loved", false), free));
    const auto got = collect(*device.engine->submit(prompt, p)).completions[0];
    EXPECT_EQ(got.tokens, want.tokens) << text << ": " << got.text << " vs " << want.text << " " << got.error;
    EXPECT_EQ(got.finish, FinishReason::Stop);
    for (auto& s : crowd) EXPECT_EQ(collect(*s).completions[0].finish, FinishReason::Length);
  }
}

}  // namespace
}  // namespace ferrum::testing
