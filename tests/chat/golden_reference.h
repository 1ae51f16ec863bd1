// Runs the @huggingface/jinja reference renderer (tests/js/render_chat_templates.mjs) once per
// test binary and returns its output, so that golden tests compare against a live reference.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "core/json.h"

namespace ferrum::chat::testing {

inline std::string fixtures_dir() { return std::string(FERRUM_SOURCE_DIR) + "/tests/fixtures/chat_templates"; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Returns the reference results, or sets `error` to why they could not be produced.
inline const json& reference_results(std::string& error) {
  static json results;
  static std::string saved_error;
  static bool done = false;
  if (!done) {
    done = true;
    std::string js = std::string(FERRUM_SOURCE_DIR) + "/tests/js";
    if (!std::filesystem::exists(js + "/node_modules/@huggingface/jinja")) {
      saved_error = "tests/js/node_modules/@huggingface/jinja is missing: run `cd tests/js && npm ci` first";
    } else {
      // One file per process: ctest runs each test case as its own process, several at once.
      std::string out = std::string(FERRUM_BINARY_DIR) + "/chat_template_reference." + std::to_string(::getpid()) + ".json";
      std::filesystem::remove(out);
      std::string cmd = "node '" + js + "/render_chat_templates.mjs' '" + fixtures_dir() + "' '" + out + "'";
      int rc = std::system(cmd.c_str());
      if (rc != 0 || !std::filesystem::exists(out)) {
        saved_error = "reference renderer failed (exit " + std::to_string(rc) + "): " + cmd;
      } else {
        results = json::parse(read_file(out));
        std::filesystem::remove(out);
      }
    }
  }
  error = saved_error;
  return results;
}

}  // namespace ferrum::chat::testing
