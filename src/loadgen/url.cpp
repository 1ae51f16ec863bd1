#include "loadgen/url.h"

#include <cctype>

#include "core/error.h"

namespace ferrum::loadgen {

ServerUrl parse_server_url(const std::string& url) {
  std::string rest = url;
  if (const size_t p = rest.find("://"); p != std::string::npos) {
    std::string scheme = rest.substr(0, p);
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "https")
      fail("--url {}: https is not supported (plain HTTP only); use http:// or a local TLS-terminating proxy", url);
    if (scheme != "http") fail("--url {}: unsupported scheme '{}' (expected http://HOST:PORT)", url, scheme);
    rest = rest.substr(p + 3);
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string::npos) fail("--url {}: user info in the URL is not supported (use --api-key)", url);
  if (path.find_first_of("?#") != std::string::npos) fail("--url {}: a query or fragment is not allowed", url);

  ServerUrl u;
  std::string port;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos) fail("--url {}: unterminated IPv6 address", url);
    u.host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') fail("--url {}: expected ':PORT' after the IPv6 address", url);
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (u.host.empty()) fail("--url {}: no host (expected http://HOST:PORT)", url);
  if (has_port) {
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
      fail("--url {}: bad port '{}'", url, port);
    const int p = std::stoi(port);
    if (p < 1 || p > 65535) fail("--url {}: port {} is out of range", url, p);
    u.port = static_cast<uint16_t>(p);
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) path.resize(path.size() - 3);
  while (!path.empty() && path.back() == '/') path.pop_back();
  u.base_path = path;
  u.host_header = authority;
  return u;
}

}  // namespace ferrum::loadgen
