// Errors: ferrum reports failures by throwing ferrum::Error with a message meant for users
// (a file name, the offending value, what was expected). The CLI and the server catch it at
// their boundary and turn it into a non-zero exit or an HTTP error; nothing else catches it.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ferrum {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// A request the caller got wrong (bad parameter, prompt too long): the server maps it to 400.
class InvalidRequest : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace ferrum

#define FERRUM_CHECK(cond, ...)              \
  do {                                       \
    if (!(cond)) ::ferrum::fail(__VA_ARGS__); \
  } while (0)
