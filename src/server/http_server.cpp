#include "server/http_server.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside Beast's parser (a boost::optional).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/http_request.h"
#include "server/openai_response.h"

namespace ferrum::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

const char* status_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

class Session;

struct HttpServer::Io {
  explicit Io(int threads) : ioc(threads) {}
  net::io_context ioc;
};

// Connections hold this (not the io_context): pending handlers own the connections, so
// destroying the io_context destroys them, with no ownership cycle.
struct HttpServer::State {
  HttpServerOptions options;
  Handler handler;
  net::io_context& ioc;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false};
  std::atomic<size_t> active{0};
  mutable std::mutex sessions_mutex;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  uint64_t next_session_id = 0;
  int bound_port = 0;
  bool stopped = false;

  State(HttpServerOptions o, Handler h, net::io_context& context)
      : options(std::move(o)), handler(std::move(h)), ioc(context) {}
};

namespace {

std::string head_of(int status, const HeaderList& extra, bool keep_alive) {
  std::string h = fmt::format("HTTP/1.1 {} {}\r\n", status, status_reason(status));
  for (auto& [k, v] : extra) h += k + ": " + v + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  return h;
}

std::string serialize(const HttpResponse& r, bool keep_alive) {
  HeaderList extra = r.headers;
  if (!r.content_type.empty()) extra.emplace_back("Content-Type", r.content_type);
  extra.emplace_back("Content-Length", std::to_string(r.body.size()));
  return head_of(r.status, extra, keep_alive) + "\r\n" + r.body;
}

std::string chunk_of(const std::string& data) {
  return fmt::format("{:x}\r\n", data.size()) + data + "\r\n";
}

HttpResponse error_response(int status, const std::string& message) {
  return {status, "application/json", dump_json(error_body(status, message)), {}};
}

}  // namespace

class Exchange;

// One connection. Everything runs on its strand: reading requests, writing responses, and
// a watchdog timer for slow or idle clients.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::State> server)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(std::move(server)) {}

  void start() { net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->do_read(); }); }
  void post_close() { net::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); }); }
  net::any_io_executor executor() { return socket_.get_executor(); }

  // Called on the strand by Exchange.
  void queue(uint64_t exchange_id, std::string data, bool final);
  bool keep_alive() const { return keep_alive_; }
  bool is_open() const { return open_; }

 private:
  void do_read();
  void on_header(beast::error_code ec);
  void on_read(beast::error_code ec);
  void monitor_read();
  void on_monitor(beast::error_code ec, size_t n);
  void do_write();
  void on_write(beast::error_code ec);
  void finish_exchange();
  void answer_and_close(int status, const std::string& message);
  void linger();
  void linger_read();
  void close();
  void arm(std::chrono::milliseconds d);
  void disarm();

  tcp::socket socket_;
  net::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  std::shared_ptr<HttpServer::State> server_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::string pending_, inflight_;
  bool writing_ = false, reading_ = false, closed_ = false;
  bool in_exchange_ = false, response_done_ = false, keep_alive_ = false, lingering_ = false;
  uint64_t exchange_id_ = 0;
  std::shared_ptr<Exchange> exchange_;
  std::atomic<bool> open_{true};  // read by other threads (HttpServer::open_connections)
};

class Exchange : public ResponseWriter {
 public:
  Exchange(std::shared_ptr<Session> s, uint64_t id) : session_(std::move(s)), id_(id) {}

  void send(HttpResponse r) override {
    if (streaming_ || ended_.exchange(true)) return;
    post([r = std::move(r)](Session& s, uint64_t id) { s.queue(id, serialize(r, s.keep_alive()), true); });
  }
  void begin_stream(int status, std::string content_type, HeaderList headers) override {
    if (ended_ || streaming_.exchange(true)) return;
    headers.emplace_back("Content-Type", std::move(content_type));
    headers.emplace_back("Cache-Control", "no-cache");
    headers.emplace_back("X-Accel-Buffering", "no");
    headers.emplace_back("Transfer-Encoding", "chunked");
    post([status, headers = std::move(headers)](Session& s, uint64_t id) {
      s.queue(id, head_of(status, headers, s.keep_alive()) + "\r\n", false);
    });
  }
  void write(std::string data) override {
    if (ended_ || !streaming_ || data.empty()) return;
    post([d = chunk_of(data)](Session& s, uint64_t id) mutable { s.queue(id, std::move(d), false); });
  }
  void end_stream() override {
    if (!streaming_ || ended_.exchange(true)) return;
    post([](Session& s, uint64_t id) { s.queue(id, "0\r\n\r\n", true); });
  }
  bool client_gone() const override { return gone_; }
  void on_disconnect(std::function<void()> cb) override {
    {
      std::lock_guard lock(mutex_);
      if (!gone_) {
        callbacks_.push_back(std::move(cb));
        return;
      }
    }
    cb();
  }
  // From the session's strand when the connection dies before the response ended.
  void mark_gone() {
    std::vector<std::function<void()>> cbs;
    {
      std::lock_guard lock(mutex_);
      if (gone_) return;
      gone_ = true;
      cbs.swap(callbacks_);
    }
    for (auto& cb : cbs) {
      try {
        cb();
      } catch (const std::exception& e) {
        log::error("disconnect callback failed: {}", e.what());
      }
    }
  }

 private:
  template <typename F>
  void post(F f) {
    auto s = session_;
    net::post(s->executor(), [s, id = id_, f = std::move(f)]() mutable { f(*s, id); });
  }
  std::shared_ptr<Session> session_;
  uint64_t id_;
  std::atomic<bool> ended_{false}, streaming_{false}, gone_{false};
  std::mutex mutex_;
  std::vector<std::function<void()>> callbacks_;
};

void Session::arm(std::chrono::milliseconds d) {
  uint64_t gen = ++timer_gen_;
  timer_.expires_after(d);
  timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
    if (!ec && gen == self->timer_gen_) self->close();
  });
}

void Session::disarm() {
  ++timer_gen_;
  timer_.cancel();
}

void Session::do_read() {
  if (closed_) return;
  parser_.emplace();
  apply_request_limits(*parser_, server_->options.max_body_bytes, server_->options.max_header_bytes);
  arm(server_->options.request_timeout);
  reading_ = true;
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

// Clients that send "Expect: 100-continue" (curl, for large bodies) wait for a go-ahead
// before the body; a body over the limit was refused with the header already.
void Session::on_header(beast::error_code ec) {
  if (ec || closed_ || parser_->is_done()) return on_read(ec);
  auto read_body = [self = shared_from_this()] {
    http::async_read(self->socket_, self->buffer_, *self->parser_,
                     [self](beast::error_code ec, size_t) { self->on_read(ec); });
  };
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue), [self = shared_from_this(), read_body](beast::error_code ec, size_t) {
      if (ec) return self->on_read(ec);
      read_body();
    });
    return;
  }
  read_body();
}

void Session::on_read(beast::error_code ec) {
  reading_ = false;
  if (closed_) return;
  if (ec == http::error::body_limit) {
    return answer_and_close(413, fmt::format("The request body exceeds the limit of {} bytes", server_->options.max_body_bytes));
  }
  if (ec == http::error::header_limit) return answer_and_close(431, "The request headers are too large");
  static const auto& http_category = http::make_error_code(http::error::end_of_stream).category();
  if (ec && &ec.category() == &http_category && ec != http::error::end_of_stream &&
      ec != http::error::partial_message) {
    return answer_and_close(400, fmt::format("Malformed HTTP request: {}", ec.message()));
  }
  if (ec) return close();  // the client left, or the timer closed the socket
  disarm();

  HttpRequest req = take_request(*parser_);
  keep_alive_ = parser_->get().keep_alive() && !server_->draining;
  parser_.reset();

  in_exchange_ = true;
  response_done_ = false;
  ++server_->active;
  exchange_ = std::make_shared<Exchange>(shared_from_this(), ++exchange_id_);
  if (server_->draining) {
    exchange_->send(error_response(503, "The server is shutting down"));
  } else {
    try {
      server_->handler(std::move(req), exchange_);
    } catch (const std::exception& e) {
      log::error("request handler failed: {}", e.what());
      exchange_->send(error_response(500, "Internal server error"));
    }
  }
  if (in_exchange_ && !reading_) monitor_read();
}

// While a request is answered, keep reading so that a client that goes away is noticed at
// once (its request is then aborted). Bytes that arrive (pipelining) stay in the buffer.
void Session::monitor_read() {
  if (closed_ || buffer_.size() >= 64 * 1024) return;
  reading_ = true;
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_monitor(ec, n);
  });
}

void Session::on_monitor(beast::error_code ec, size_t n) {
  reading_ = false;
  if (closed_) return;
  if (lingering_) return ec ? close() : linger_read();
  if (ec == net::error::operation_aborted) return in_exchange_ ? monitor_read() : do_read();
  if (ec) return close();
  buffer_.commit(n);
  if (!in_exchange_) return do_read();  // the response ended meanwhile: next request
  monitor_read();
}

void Session::queue(uint64_t exchange_id, std::string data, bool final) {
  if (closed_ || !in_exchange_ || exchange_id != exchange_id_) return;
  pending_ += data;
  if (final) response_done_ = true;
  if (!writing_) do_write();
}

void Session::do_write() {
  inflight_.clear();
  inflight_.swap(pending_);
  writing_ = true;
  arm(server_->options.write_timeout);
  net::async_write(socket_, net::buffer(inflight_),
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_write(ec); });
}

void Session::on_write(beast::error_code ec) {
  writing_ = false;
  if (closed_) return;
  if (ec) return close();
  if (!pending_.empty()) return do_write();
  disarm();
  if (in_exchange_ && response_done_) finish_exchange();
}

void Session::finish_exchange() {
  in_exchange_ = false;
  exchange_.reset();
  --server_->active;
  if (!keep_alive_) {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    return linger();
  }
  if (!reading_) return do_read();
  if (buffer_.size() > 0) {
    // A pipelined request is already buffered: stop the monitor read and parse it.
    beast::error_code ignored;
    socket_.cancel(ignored);
    return;
  }
  arm(server_->options.idle_timeout);  // the monitor read turns into the next request's read
}

// After a connection's last response the client may still be sending (say, a body refused
// with 413). Closing at once would reset the connection, and the reset can destroy the
// response before the client reads it; so read and discard until the client closes, 2 s at most.
void Session::linger() {
  lingering_ = true;
  arm(std::chrono::milliseconds(2000));
  if (!reading_) linger_read();  // else the monitor read in flight continues it (on_monitor)
}

void Session::linger_read() {
  reading_ = true;
  socket_.async_read_some(buffer_.prepare(64 * 1024), [self = shared_from_this()](beast::error_code ec, size_t) {
    self->reading_ = false;
    if (ec || self->closed_) return self->close();
    self->linger_read();
  });
}

void Session::answer_and_close(int status, const std::string& message) {
  keep_alive_ = false;
  in_exchange_ = true;
  response_done_ = false;
  ++server_->active;
  exchange_ = std::make_shared<Exchange>(shared_from_this(), ++exchange_id_);
  exchange_->send(error_response(status, message));
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  open_ = false;
  disarm();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (in_exchange_) {
    in_exchange_ = false;
    auto ex = std::move(exchange_);
    --server_->active;
    ex->mark_gone();
  }
}

namespace {

void do_accept(const std::shared_ptr<HttpServer::State>& st);

void on_accept(const std::shared_ptr<HttpServer::State>& st, beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !st->acceptor || !st->acceptor->is_open()) return;
  if (ec) {
    // Out of descriptors and the like: wait a little instead of spinning.
    log::warn("accept failed: {}", ec.message());
    auto timer = std::make_shared<net::steady_timer>(st->ioc, std::chrono::milliseconds(50));
    timer->async_wait([st, timer](beast::error_code) { do_accept(st); });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto session = std::make_shared<Session>(std::move(socket), st);
  {
    std::lock_guard lock(st->sessions_mutex);
    // Forget sessions that ended, so the map stays the size of the open connections.
    if (st->sessions.size() > 64 && st->next_session_id % 64 == 0) {
      for (auto it = st->sessions.begin(); it != st->sessions.end();)
        it = it->second.expired() ? st->sessions.erase(it) : std::next(it);
    }
    st->sessions[st->next_session_id++] = session;
  }
  session->start();
  do_accept(st);
}

void do_accept(const std::shared_ptr<HttpServer::State>& st) {
  st->acceptor->async_accept(net::make_strand(st->ioc), [st](beast::error_code ec, tcp::socket s) {
    on_accept(st, ec, std::move(s));
  });
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, Handler handler)
    : io_(std::make_unique<Io>(std::max(1, options.io_threads))),
      state_(std::make_shared<State>(std::move(options), std::move(handler), io_->ioc)) {}

HttpServer::~HttpServer() {
  stop();
  io_.reset();  // destroys the pending handlers, and with them the connections
}

void HttpServer::start() {
  auto& st = *state_;
  beast::error_code ec;
  auto address = net::ip::make_address(st.options.host, ec);
  if (ec) fail("invalid --host '{}': give an IP address, e.g. 127.0.0.1 or 0.0.0.0", st.options.host);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(st.options.port));
  st.acceptor.emplace(net::make_strand(st.ioc));
  st.acceptor->open(endpoint.protocol(), ec);
  if (!ec) st.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) st.acceptor->bind(endpoint, ec);
  if (!ec) st.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("cannot listen on {}:{}: {}", st.options.host, st.options.port, ec.message());
  st.bound_port = st.acceptor->local_endpoint().port();
  do_accept(state_);
  for (int i = 0; i < std::max(1, st.options.io_threads); ++i) {
    st.threads.emplace_back([this] {
      try {
        state_->ioc.run();
      } catch (const std::exception& e) {
        log::error("I/O thread stopped: {}", e.what());
      }
    });
  }
}

int HttpServer::port() const { return state_->bound_port; }

void HttpServer::begin_drain() {
  auto st = state_;
  st->draining = true;
  if (!st->acceptor) return;
  net::post(st->acceptor->get_executor(), [st] {
    beast::error_code ignored;
    if (st->acceptor) st->acceptor->close(ignored);
  });
}

size_t HttpServer::active_requests() const { return state_->active; }

size_t HttpServer::open_connections() const {
  std::lock_guard lock(state_->sessions_mutex);
  size_t n = 0;
  for (auto& [id, w] : state_->sessions)
    if (auto s = w.lock()) n += s->is_open();
  return n;
}

void HttpServer::stop() {
  auto& st = *state_;
  if (st.stopped) return;
  st.stopped = true;
  if (st.acceptor) begin_drain();
  {
    std::lock_guard lock(st.sessions_mutex);
    for (auto& [id, w] : st.sessions)
      if (auto s = w.lock()) s->post_close();
  }
  // Give the closes a moment to run, then stop the loop.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (open_connections() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  st.ioc.stop();
  for (auto& t : st.threads)
    if (t.joinable()) t.join();
  st.threads.clear();
  st.acceptor.reset();  // before its io_context goes
}

}  // namespace ferrum::server
