#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace ferrum::log {
namespace {
Level initial_level() {
  const char* env = std::getenv("FERRUM_LOG");
  if (!env) return Level::Info;
  std::string_view v(env);
  if (v == "debug") return Level::Debug;
  if (v == "warn") return Level::Warn;
  if (v == "error") return Level::Error;
  if (v == "off") return Level::Off;
  return Level::Info;
}
std::atomic<Level> g_level{initial_level()};
std::mutex g_mutex;
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

void write(Level l, std::string_view msg) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "[%lld.%03lld %s] %.*s\n", static_cast<long long>(ms / 1000),
               static_cast<long long>(ms % 1000), names[static_cast<int>(l)],
               static_cast<int>(msg.size()), msg.data());
}

}  // namespace ferrum::log
