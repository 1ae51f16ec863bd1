#include "loadgen/server_metrics.h"

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <sstream>

namespace ferrum::loadgen {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

std::optional<std::string> fetch_metrics(const ServerUrl& server, const std::string& api_key, double timeout_s) {
  try {
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    tcp::resolver resolver(ioc);
    stream.connect(resolver.resolve(server.host, std::to_string(server.port)));
    http::request<http::empty_body> req{http::verb::get, server.base_path + "/metrics", 11};
    req.set(http::field::host, server.host_header);
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    if (res.result() != http::status::ok) return std::nullopt;
    return res.body();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<SpecDecodeCounters> parse_spec_decode_counters(const std::string& text) {
  SpecDecodeCounters c;
  bool found = false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    std::string name = line.substr(0, line.find_first_of("{ "));
    bool ours = false;
    for (const std::string prefix : {"ferrum_spec_decode_", "vllm:spec_decode_"})
      if (name.rfind(prefix, 0) == 0) {
        name = name.substr(prefix.size());
        ours = true;
      }
    if (!ours) continue;
    if (name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0) name.resize(name.size() - 6);
    double* field = name == "num_drafts" ? &c.drafts
                    : name == "num_draft_tokens" ? &c.draft_tokens
                    : name == "num_accepted_tokens" ? &c.accepted_tokens : nullptr;
    if (!field) continue;
    try {
      *field += std::stod(line.substr(space + 1));  // labelled series (vLLM's per engine) add up
      found = true;
    } catch (const std::exception&) {
    }
  }
  if (!found) return std::nullopt;
  return c;
}

}  // namespace ferrum::loadgen
