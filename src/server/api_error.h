// An error the HTTP layer reports to the client in OpenAI's error shape, with its status code.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

#include "core/json.h"

namespace ferrum::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string code = "")
      : std::runtime_error(std::move(message)), status_(status), param_(std::move(param)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_;
  std::string code_;
};

// 400 with the offending parameter named, e.g. bad_request("temperature", "must be in [0, 2]").
template <typename... Args>
[[noreturn]] void bad_request(const std::string& param, fmt::format_string<Args...> f, Args&&... args) {
  throw ApiError(400, fmt::format(f, std::forward<Args>(args)...), param);
}

// The OpenAI error type name for a status code ("invalid_request_error", ...).
inline const char* error_type_for_status(int status) {
  switch (status) {
    case 400: case 404: case 405: case 413: case 422: return "invalid_request_error";
    case 401: return "authentication_error";
    case 429: case 503: return "server_overloaded";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

// {"error": {"message", "type", "param", "code"}}; param/code are null when empty.
inline json error_body(int status, const std::string& message, const std::string& param = "",
                       const std::string& code = "") {
  json e = {{"message", message}, {"type", error_type_for_status(status)}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json{{"error", std::move(e)}};
}

}  // namespace ferrum::server
