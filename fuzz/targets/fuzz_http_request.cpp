// The server's HTTP request reader: bytes from a client go through the same Beast parser with
// the server's limits (small here, to reach them), then become an HttpRequest. Parse errors
// are fine (the server answers 400/413/431); crashes and sanitizer reports are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "server/http_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace http = boost::beast::http;
  size_t pos = 0;
  // Pipelined requests: one parser per request, as the server's session does; the parser
  // always sees everything received so far (the session's buffer).
  while (pos < size) {
    ferrum::server::RequestParser parser;
    ferrum::server::apply_request_limits(parser, 4096, 2048);
    boost::beast::error_code ec;
    while (pos < size && !parser.is_done()) {
      size_t n = parser.put(boost::asio::buffer(data + pos, size - pos), ec);
      pos += n;
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0) break;  // nothing more can be read from what is left
        continue;
      }
      if (ec) return 0;
    }
    if (!parser.is_done()) {
      parser.put_eof(ec);
      if (ec || !parser.is_done()) return 0;
    }
    auto req = ferrum::server::take_request(parser);
    (void)req.header("authorization");
    if (req.path.size() > req.target.size()) __builtin_trap();
  }
  return 0;
}
