// Reading one HTTP request: the parser limits the server applies, and the conversion of a
// parsed Beast message into an HttpRequest. Apart from the server so that the reader can be
// fuzzed without sockets (fuzz/targets/fuzz_http_request.cpp).
#pragma once
// GCC 12 reports a false -Wmaybe-uninitialized inside Beast's parser (a boost::optional).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop

#include "server/http_server.h"

namespace ferrum::server {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// A fresh parser's limits: a larger body is http::error::body_limit (413), larger headers
// http::error::header_limit (431).
void apply_request_limits(RequestParser& parser, size_t max_body_bytes, size_t max_header_bytes);

// The parsed request, its header names lower-cased; the body is moved out of `parser`.
HttpRequest take_request(RequestParser& parser);

}  // namespace ferrum::server
