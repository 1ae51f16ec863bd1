// ChatTemplate loading (tokenizer_config.json string / named list, chat_template.jinja,
// chat_template.json), special tokens, errors, hostile-template limits and the CLI's request
// loader.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <chrono>
#include <thread>

#include "chat/chat_template.h"
#include "core/error.h"

namespace ferrum::chat {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::path(FERRUM_BINARY_DIR) / ("chat_tmp_" + std::to_string(counter()++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
    return (path_ / name).string();
  }
  std::string str() const { return path_.string(); }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  fs::path path_;
};

ChatRequest user_says(const std::string& text) {
  ChatRequest r;
  r.messages = ordered_json::array({{{"role", "user"}, {"content", text}}});
  return r;
}

std::string render_source(const std::string& source, ChatRequest req = user_says("hi")) {
  return ChatTemplate({{"default", source}}, ordered_json::object()).render(req);
}

TEST(ChatTemplate, LoadsStringTemplateAndAddedTokenSpecialTokens) {
  TempDir dir;
  ordered_json cfg = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
                      {"eos_token", "</s>"},
                      {"pad_token", nullptr},
                      {"chat_template", "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{{ eos_token }}{% endfor %}"
                                        "{% if add_generation_prompt %}>{% endif %}"}};
  dir.write("tokenizer_config.json", cfg.dump());
  ChatTemplate t = ChatTemplate::from_model_dir(dir.str());
  EXPECT_EQ(t.render(user_says("hi")), "<s>[hi]</s>>");
  ChatRequest r = user_says("x");
  r.add_generation_prompt = false;
  EXPECT_EQ(t.render(r), "<s>[x]</s>");
  EXPECT_FALSE(t.special_tokens().contains("pad_token"));
}

TEST(ChatTemplate, NamedTemplatesPickToolUseOnlyWithTools) {
  TempDir dir;
  ordered_json cfg = {{"chat_template", ordered_json::array({{{"name", "default"}, {"template", "plain"}},
                                                             {{"name", "tool_use"}, {"template", "tools:{{ tools|length }}"}}})}};
  dir.write("tokenizer_config.json", cfg.dump());
  ChatTemplate t = ChatTemplate::from_model_dir(dir.str());
  ChatRequest r = user_says("hi");
  EXPECT_EQ(t.render(r), "plain");
  r.tools = ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  EXPECT_EQ(t.render(r), "tools:1");
}

TEST(ChatTemplate, JinjaFileBesideConfigWins) {
  TempDir dir;
  dir.write("tokenizer_config.json", ordered_json({{"chat_template", "from config"}, {"eos_token", "E"}}).dump());
  dir.write("chat_template.jinja", "from file {{ eos_token }}\n");
  EXPECT_EQ(ChatTemplate::from_model_dir(dir.str()).render(user_says("x")), "from file E");
}

TEST(ChatTemplate, ChatTemplateJson) {
  TempDir dir;
  dir.write("chat_template.json", ordered_json({{"chat_template", "json {{ messages[0].role }}"}}).dump());
  EXPECT_EQ(ChatTemplate::from_model_dir(dir.str()).render(user_says("x")), "json user");
}

TEST(ChatTemplate, MissingTemplateIsAClearError) {
  TempDir dir;
  dir.write("tokenizer_config.json", "{\"eos_token\": \"</s>\"}");
  try {
    ChatTemplate::from_model_dir(dir.str());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template found"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, KwargsToolsNoneAndStrftime) {
  ChatRequest r = user_says("x");
  r.kwargs = {{"enable_thinking", false}, {"custom", "v"}};
  EXPECT_EQ(render_source("{{ enable_thinking }} {{ custom }} {{ tools is none }} {{ documents is defined }}", r),
            "False v True True");
  ChatTemplate t({{"default", "{{ strftime_now('%Y-%m-%d %b') }}"}}, ordered_json::object());
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 31;
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  t.set_fixed_time(std::mktime(&tm));
  EXPECT_EQ(t.render(user_says("x")), "2025-01-31 Jan");
}

void expect_invalid(const std::string& source, const std::string& fragment, ChatRequest req = user_says("hi")) {
  try {
    std::string out = render_source(source, req);
    ADD_FAILURE() << "expected an error containing '" << fragment << "', rendered " << out.size() << " bytes";
  } catch (const InvalidRequest& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, ErrorsCarryTheTemplatesMessage) {
  expect_invalid("{% if messages %}oops", "syntax error");
  expect_invalid("{{ 'a' ~ }}", "line 1");
  expect_invalid("{% for x in y %}\n{% endif %}", "line 2");
  expect_invalid("{{ raise_exception('Roles must alternate!') }}", "Roles must alternate!");
  expect_invalid("{{ messages[0].content.nosuchmethod() }}", "undefined");
  expect_invalid("{{ undefined_thing.attr }}", "'undefined_thing' is undefined");
  expect_invalid("{% include 'x.jinja' %}", "unsupported tag 'include'");
  expect_invalid("{{ 1 + 'a' }}", "unsupported operand");
  expect_invalid("{{ [1].append(2) }}", "unsafe");
}

TEST(ChatTemplate, HostileTemplatesHitLimitsInsteadOfCrashing) {
  expect_invalid("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion");
  {
    ChatTemplate loops({{"default", "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"}},
                       ordered_json::object());
    jinja::RenderLimits few;
    few.max_loop_iterations = 20000;
    loops.set_limits(few);
    try {
      loops.render(user_says("x"));
      ADD_FAILURE() << "nested loops were not stopped";
    } catch (const InvalidRequest& e) {
      EXPECT_NE(std::string(e.what()).find("loop limit"), std::string::npos) << e.what();
    }
  }
  expect_invalid("{% set ns = namespace(s='xx') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 "too large");
  expect_invalid("{{ 'x' * 100000000000 }}", "too large");
  expect_invalid("{{ range(100000000000) }}", "range() too large");
  expect_invalid("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", "nested too deeply");
  expect_invalid("{{ " + std::string(5000, '[') + " }}", "syntax error");
  std::string deep;
  for (int i = 0; i < 3000; ++i) deep += "{% if true %}";
  expect_invalid(deep, "nested too deeply");
  expect_invalid("{{ 2 ** 64 }}", "overflow");
  expect_invalid("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                 "list too large");
  expect_invalid("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
                 "nested too deeply");
  expect_invalid("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}"
                 "{{ ns.l == ns.l[0] }}",
                 "nested too deeply");
  expect_invalid("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}"
                 "{{ ns.l | tojson }}",
                 "too deep");
  ChatTemplate t({{"default", "{% for i in range(1000) %}0123456789{% endfor %}"}}, ordered_json::object());
  jinja::RenderLimits small;
  small.max_output_bytes = 5000;
  t.set_limits(small);
  EXPECT_THROW(t.render(user_says("x")), InvalidRequest);
}

// Found by fuzz_jinja: an empty string or list repeated a billion times passed the size limit
// and looped for minutes; it is empty at once.
TEST(ChatTemplate, EmptyOperandsRepeatAtOnce) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(render_source("[{{ '' * 888888888 }}{{ ([] * 888888888) | length }}{{ 100000000000 * '' }}]"), "[0]");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
}

// Found by fuzz_jinja: a list of many dicts (messages * 82648) printed as text built all of its
// text before the size limit was checked (12 s under ASan). The limit now stops it as it grows,
// and a list repeated counts the bytes of its strings, which are copied (dicts are shared), and
// a size times a count saturates instead of wrapping. Run under a 1 MB limit so the fixed path
// costs milliseconds even under ASan on a loaded machine, while the text the old code built in
// full would be 30 GB: the time bound only catches that, never a slow runner.
TEST(ChatTemplate, ListTextStopsAtTheSizeLimitAsItGrows) {
  jinja::RenderLimits small;
  small.max_output_bytes = size_t(1) << 20;
  auto expect_too_large = [&](const std::string& source) {
    ChatTemplate t({{"default", source}}, ordered_json::object());
    t.set_limits(small);
    try {
      std::string out = t.render(user_says("hi"));
      ADD_FAILURE() << source << ": expected 'too large', rendered " << out.size() << " bytes";
    } catch (const InvalidRequest& e) {
      EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << source << ": " << e.what();
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  expect_too_large("{% set s = 'x' * 30000 %}{{ [{'k': s}] * 1000000 }}");
  expect_too_large("{% set s = 'x' * 30000 %}{{ ([s] * 1000) | length }}");
  expect_too_large("{% set s = 'x' * 30000 %}{{ ([s] * 20 + [s] * 20) | length }}");
  expect_too_large("{{ ('x' * 600000) * 1099511627776 }}");
  expect_too_large("{{ ('x' * 16) * 1152921504606846977 }}");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST(ChatTemplate, ArgumentsOfTheWrongTypeAreTemplateErrors) {
  // fuzz_jinja: `'8' ~ 8 | round` reached round with a string, and std::bad_variant_access
  // escaped the interpreter.
  expect_invalid("{{ ('8' ~ 8) | round }}", "expected a number, got str");
  expect_invalid("{{ 1.5 | round('x') }}", "expected an integer, got str");
  expect_invalid("{{ [1, 2] | batch('x') | list }}", "expected an integer, got str");
  expect_invalid("{{ 'x' | center(none) }}", "expected an integer, got NoneType");
  expect_invalid("{{ 'x' | indent([2]) }}", "expected an integer, got list");
}

TEST(ChatTemplate, DeeplyNestedValuesAreFreedWithoutRecursing) {
  // 60000 nested lists and a 60000-long chain of namespaces: building them is allowed, and
  // freeing them at the end of the render must not overflow the stack.
  EXPECT_EQ(render_source("{% set ns = namespace(l=[]) %}{% for i in range(60000) %}{% set ns.l = [ns.l] %}{% endfor %}ok"),
            "ok");
  EXPECT_EQ(render_source("{% set head = namespace() %}{% set ns = namespace(cur=head) %}{% for i in range(60000) %}"
                          "{% set n = namespace() %}{% set c = ns.cur %}{% set c.next = n %}{% set ns.cur = n %}{% endfor %}ok"),
            "ok");
}

TEST(ChatTemplate, OrderedKeysAndNonAsciiSurviveTojson) {
  ChatRequest r = user_says("x");
  r.tools = ordered_json::parse(R"([{"z": 1, "a": "日本 \"q\"", "m": [1.5, null, true]}])");
  EXPECT_EQ(render_source("{{ tools[0] | tojson }}", r), R"({"z": 1, "a": "日本 \"q\"", "m": [1.5, null, true]})");
}

TEST(ChatTemplate, NormalizesStringToolCallArguments) {
  ordered_json msgs = ordered_json::parse(
      R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"b\": 1, \"a\": 2}"}},
                                                 {"function": {"name": "g", "arguments": "not json"}}]}])");
  normalize_tool_call_arguments(msgs);
  EXPECT_EQ(msgs[0]["tool_calls"][0]["function"]["arguments"].dump(), R"({"b":1,"a":2})");
  EXPECT_EQ(msgs[0]["tool_calls"][1]["function"]["arguments"], "not json");
}

TEST(ChatTemplate, RendersConcurrentlyFromOneInstance) {
  const ChatTemplate t({{"default", "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                                    "{{ m.content | upper }}{% endfor %}{{ ns.n }}"}},
                       ordered_json::object());
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 200; ++i) ok[size_t(k)] += t.render(user_says("t" + std::to_string(k))) == "T" + std::to_string(k) + "1";
    });
  }
  for (auto& th : threads) th.join();
  for (int n : ok) EXPECT_EQ(n, 200);
}

TEST(ChatTemplate, LongConversationRendersQuickly) {
  // Qwen3's template scans the history backwards and forwards; 4000 turns must stay fast.
  std::ifstream in(std::string(FERRUM_SOURCE_DIR) + "/tests/fixtures/chat_templates/qwen3.jinja");
  std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ChatTemplate t({{"default", source}}, ordered_json{{"eos_token", "<|im_end|>"}});
  ChatRequest r;
  for (int i = 0; i < 2000; ++i) {
    r.messages.push_back({{"role", "user"}, {"content", "question " + std::to_string(i)}});
    r.messages.push_back({{"role", "assistant"}, {"content", "<think>\nhm\n</think>\n\nanswer " + std::to_string(i)}});
  }
  auto start = std::chrono::steady_clock::now();
  std::string out = t.render(r);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(out.find("answer 1999"), std::string::npos);
  EXPECT_LT(seconds, 5.0);  // about 0.05 s in a release build; generous for sanitizers
}

TEST(ChatTemplate, SyntaxErrorIsReportedOnRender) {
  ChatTemplate t({{"default", "{% if %}"}}, ordered_json::object());
  ASSERT_NE(t.syntax_error("default"), nullptr);
  EXPECT_THROW(t.render(user_says("x")), InvalidRequest);
}

TEST(ChatTemplateCli, LoadsRequestFilesAndRejectsBadOnes) {
  TempDir dir;
  std::string msgs = dir.write("m.json", R"([{"role": "user", "content": "hé"}])");
  std::string tools = dir.write("t.json", R"([{"type": "function", "function": {"name": "f"}}])");
  ChatRequest r = load_chat_request(msgs, tools, false, R"({"enable_thinking": false})");
  EXPECT_EQ(r.messages[0]["content"], "hé");
  EXPECT_EQ(r.tools.size(), 1u);
  EXPECT_FALSE(r.add_generation_prompt);
  EXPECT_EQ(r.kwargs["enable_thinking"], false);
  EXPECT_TRUE(load_chat_request(msgs, "", true, "").tools.is_null());
  std::string bad = dir.write("bad.json", "{\"role\": \"user\"}");
  std::string broken = dir.write("broken.json", "[{\"role\": ");
  EXPECT_THROW(load_chat_request(bad, "", true, ""), Error);
  EXPECT_THROW(load_chat_request(broken, "", true, ""), Error);
  EXPECT_THROW(load_chat_request(msgs, bad, true, ""), Error);
  EXPECT_THROW(load_chat_request(msgs, "", true, "[1]"), Error);
  EXPECT_THROW(load_chat_request(dir.str() + "/missing.json", "", true, ""), Error);
}

}  // namespace
}  // namespace ferrum::chat
