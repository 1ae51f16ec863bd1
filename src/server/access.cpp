#include "server/access.h"

#include <boost/asio/ip/address.hpp>

namespace ferrum::server {

bool same_secret(std::string_view given, std::string_view key) {
  // Every byte of the key is compared; a length mismatch only sets the result.
  unsigned diff = given.size() != key.size();
  for (size_t i = 0; i < key.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(key[i]);
  }
  return diff == 0;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(std::string(host), ec);
  return !ec && addr.is_loopback();
}

}  // namespace ferrum::server
