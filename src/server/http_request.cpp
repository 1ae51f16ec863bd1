#include "server/http_request.h"

#include <algorithm>
#include <cctype>

namespace ferrum::server {

std::string HttpRequest::header(std::string_view lower_name) const {
  for (auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

void apply_request_limits(RequestParser& parser, size_t max_body_bytes, size_t max_header_bytes) {
  parser.body_limit(max_body_bytes);
  parser.header_limit(static_cast<uint32_t>(std::min<size_t>(max_header_bytes, UINT32_MAX)));
}

HttpRequest take_request(RequestParser& parser) {
  auto& msg = parser.get();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.path = req.target.substr(0, req.target.find('?'));
  for (auto& f : msg) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    req.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req.body = std::move(msg.body());
  return req;
}

}  // namespace ferrum::server
