// Golden tests: real chat templates x conversations, rendered by ferrum and by
// @huggingface/jinja under node; the outputs must be byte-identical, and a conversation the
// reference rejects (raise_exception) must be rejected by ferrum too. The same cases are also
// checked against Python jinja2 with transformers' settings (jinja2_reference.json, stored by
// tools/gen_chat_template_jinja2_reference.py); on these templates both references agree.
#include <gtest/gtest.h>

#include <ctime>

#include "chat/chat_template.h"
#include "core/error.h"
#include "golden_reference.h"

namespace ferrum::chat {
namespace {

using testing::fixtures_dir;
using testing::read_file;

ordered_json manifest() { return ordered_json::parse(read_file(fixtures_dir() + "/manifest.json")); }
ordered_json conversations() { return ordered_json::parse(read_file(fixtures_dir() + "/conversations.json")); }

std::vector<std::string> template_names() {
  std::vector<std::string> names;
  ordered_json m = manifest();
  for (const auto& t : m["templates"]) names.push_back(t["name"].get<std::string>());
  return names;
}

// The manifest's fixed date at noon local time, as the node side pins `new Date()`.
std::time_t fixed_time() {
  std::string date = manifest()["fixed_date"].get<std::string>();
  std::tm tm{};
  tm.tm_year = std::stoi(date.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(date.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(date.substr(8, 2));
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

class GoldenTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTemplate, MatchesReferenceRenderer) {
  std::string error;
  const json& reference = testing::reference_results(error);
  ASSERT_TRUE(error.empty()) << error;
  const std::string name = GetParam();
  ordered_json entry, m = manifest();
  for (const auto& t : m["templates"])
    if (t["name"] == name) entry = t;
  ordered_json special = ordered_json::object();
  if (!entry["bos_token"].is_null()) special["bos_token"] = entry["bos_token"];
  if (!entry["eos_token"].is_null()) special["eos_token"] = entry["eos_token"];
  ChatTemplate tmpl({{"default", read_file(fixtures_dir() + "/" + name + ".jinja")}}, special);
  tmpl.set_fixed_time(fixed_time());

  json py = json::parse(read_file(fixtures_dir() + "/jinja2_reference.json"))["results"];
  ordered_json convs = conversations();
  int compared = 0;
  for (const auto& c : convs["cases"]) {
    std::string case_name = c["name"].get<std::string>();
    SCOPED_TRACE(name + " / " + case_name);
    ASSERT_TRUE(reference.contains(name) && reference[name].contains(case_name)) << "no reference output";
    const json& ref = reference[name][case_name];
    EXPECT_EQ(ref, py[name][case_name]) << "the references disagree: rerun tools/gen_chat_template_jinja2_reference.py";
    ChatRequest req;
    req.messages = c["messages"];
    if (c.value("use_tools", false)) req.tools = convs["tools"];
    req.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    if (c.contains("kwargs")) req.kwargs = c["kwargs"];
    if (ref.contains("error")) {
      // The reference raised (the template's raise_exception): ferrum must fail with it too.
      try {
        std::string out = tmpl.render(req);
        ADD_FAILURE() << "reference failed with '" << ref["error"].get<std::string>() << "' but ferrum rendered:\n"
                      << out;
      } catch (const InvalidRequest& e) {
        EXPECT_NE(std::string(e.what()).find(ref["error"].get<std::string>()), std::string::npos)
            << "ferrum: " << e.what() << "\nreference: " << ref["error"].get<std::string>();
      }
    } else {
      std::string out;
      try {
        out = tmpl.render(req);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "ferrum failed: " << e.what();
        continue;
      }
      EXPECT_EQ(out, ref["text"].get<std::string>());
    }
    ++compared;
  }
  EXPECT_GE(compared, 8);
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, GoldenTemplate, ::testing::ValuesIn(template_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ferrum::chat
