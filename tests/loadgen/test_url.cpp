// --url forms `ferrum bench serve` accepts, and the ones it refuses.
#include <gtest/gtest.h>

#include "core/error.h"
#include "loadgen/url.h"

namespace ferrum::loadgen {
namespace {

TEST(ServerUrl, HostPortAndBase) {
  ServerUrl u = parse_server_url("http://127.0.0.1:8000");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.base_path, "");
  EXPECT_EQ(u.host_header, "127.0.0.1:8000");
}

TEST(ServerUrl, TrailingV1AndSlashesAreDropped) {
  EXPECT_EQ(parse_server_url("http://localhost:8000/v1/").base_path, "");
  EXPECT_EQ(parse_server_url("http://localhost:8000/v1").base_path, "");
  EXPECT_EQ(parse_server_url("http://localhost:8000/").base_path, "");
  EXPECT_EQ(parse_server_url("http://example.com/proxy/v1").base_path, "/proxy");
  EXPECT_EQ(parse_server_url("http://example.com/proxy/v1").port, 80);
}

TEST(ServerUrl, NoSchemeMeansHttp) {
  ServerUrl u = parse_server_url("localhost:9");
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 9);
}

TEST(ServerUrl, Ipv6) {
  ServerUrl u = parse_server_url("http://[::1]:8080/");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.host_header, "[::1]:8080");
}

TEST(ServerUrl, Refused) {
  for (const char* bad : {"https://api.openai.com/v1", "ftp://h", "http://:80", "http://h:0", "http://h:99999",
                          "http://h:abc", "http://h:", "", "http://u:p@h:1", "http://h:1/x?y=1", "http://[::1"})
    EXPECT_THROW(parse_server_url(bad), Error) << bad;
}

TEST(ServerUrl, HttpsSaysWhy) {
  try {
    parse_server_url("https://h");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("https is not supported"), std::string::npos);
  }
}

}  // namespace
}  // namespace ferrum::loadgen
