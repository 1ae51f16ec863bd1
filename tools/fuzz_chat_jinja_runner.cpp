// Runner for tools/fuzz_chat_jinja.py: renders each generated case with ferrum and reports the
// ones whose output (or failure) differs from jinja2's.
#include "chat/jinja_template.h"
#include <fstream>
#include <iostream>
#include <sstream>
using namespace ferrum::chat::jinja;
int main(int, char** argv) {
  std::ifstream in(argv[1]); std::stringstream ss; ss << in.rdbuf();
  auto cases = ferrum::ordered_json::parse(ss.str());
  int bad = 0, n = 0;
  for (auto& c : cases) {
    ++n;
    std::string out; bool err = false; std::string msg;
    try { out = Template(c["template"].get<std::string>()).render(Value::from_json(c["context"])); }
    catch (const std::exception& e) { err = true; msg = e.what(); }
    auto& py = c["py"];
    bool ok = py.contains("error") ? err : (!err && out == py["text"].get<std::string>());
    if (!ok) {
      if (++bad <= 25) std::cout << c["template"].get<std::string>() << "\n  py:  " << py.dump() << "\n  us:  " << (err ? "ERR " + msg : ferrum::json(out).dump()) << "\n";
    }
  }
  std::cout << bad << " mismatches of " << n << "\n";
}
