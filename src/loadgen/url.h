// The server address of `ferrum bench serve --url`: http://HOST[:PORT][/PREFIX][/v1][/].
#pragma once
#include <cstdint>
#include <string>

namespace ferrum::loadgen {

struct ServerUrl {
  std::string host;         // without IPv6 brackets
  uint16_t port = 80;
  std::string base_path;    // "" or "/prefix": routes are base_path + "/v1/..."
  std::string host_header;  // what goes in Host:
};

// Throws ferrum::Error naming what is wrong. A missing scheme means http; https is refused
// (the client speaks plain HTTP only); a trailing "/v1" is dropped so that both the server
// root and its OpenAI base URL work.
ServerUrl parse_server_url(const std::string& url);

}  // namespace ferrum::loadgen
