#include "loadgen/client.h"

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

// GCC 12 reports a false -Wmaybe-uninitialized inside Beast's parser (a boost::optional).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <random>

#include "core/error.h"
#include "loadgen/sse.h"

namespace ferrum::loadgen {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Each stream holds a socket; the default soft limit of 1024 descriptors would cap -c 1024.
void raise_fd_limit(rlim_t wanted) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= wanted) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, rl.rlim_max);
  setrlimit(RLIMIT_NOFILE, &rl);
}

class Run;

// One request: connect (or reuse a kept-alive connection), send, read the event stream.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(Run& run, size_t index, tcp::socket socket, bool reused);
  void start();

 private:
  void connect();
  void write();
  void read_header();
  void read_body();
  void consume(const char* data, size_t n, Clock::time_point t);
  void complete(Clock::time_point t);
  void fail(std::string message, bool connect_failed = false);
  void retry_on_fresh_connection();
  void finish(RequestResult r, bool keep_socket);

  Run& run_;
  size_t index_;
  tcp::socket socket_;
  bool reused_;  // a kept-alive connection the server may have closed meanwhile
  bool ended_ = false;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  net::steady_timer timeout_;
  char chunk_[16384];
  SseParser sse_;
  std::vector<std::string> events_;
  std::string error_body_;  // of a non-200 response
  int status_ = 0;
  Clock::time_point start_, last_text_;
  int64_t text_chunks_ = 0;
  std::optional<int64_t> completion_tokens_, prompt_tokens_;
  RequestResult result_;
};

class Run {
 public:
  Run(const LoadOptions& o, const std::vector<std::string>& bodies)
      : options(o), bodies(bodies), ioc(1), arrival_timer_(ioc), progress_timer_(ioc) {}

  LoadOutcome go() {
    outcome_.results.resize(bodies.size());
    if (bodies.empty()) return outcome_;
    boost::system::error_code ec;
    tcp::resolver resolver(ioc);
    endpoints = resolver.resolve(options.server.host, std::to_string(options.server.port), ec);
    if (ec) fail("cannot resolve host '{}': {}", options.server.host, ec.message());
    const size_t cap = options.max_in_flight > 0 ? static_cast<size_t>(options.max_in_flight) : bodies.size();
    raise_fd_limit(static_cast<rlim_t>(std::min(cap, bodies.size()) + 64));
    t0_ = last_end_ = Clock::now();
    if (std::isinf(options.request_rate)) {
      for (size_t i = 0; i < std::min(cap, bodies.size()); ++i) launch(next_++);
    } else {
      // Poisson process: exponential gaps; the first request goes at once.
      std::mt19937_64 rng(options.seed);
      std::exponential_distribution<double> gap(options.request_rate);
      double t = 0;
      for (size_t i = 0; i < bodies.size(); ++i) {
        arrivals_.push_back(t);
        t += gap(rng);
      }
      schedule_arrivals();
    }
    if (options.on_progress) tick();
    ioc.run();
    outcome_.duration_s = secs(last_end_ - t0_);
    if (options.on_progress) options.on_progress(progress(true));
    return std::move(outcome_);
  }

  void finished(size_t i, RequestResult r, std::optional<tcp::socket> keep) {
    last_end_ = Clock::now();
    (r.ok ? completed_ : failed_) += 1;
    outcome_.results[i] = std::move(r);
    --in_flight_;
    if (keep) idle.push_back(std::move(*keep));
    if (!arrivals_.empty()) {
      if (!waiting_.empty()) {
        const size_t next = waiting_.front();
        waiting_.pop_front();
        launch(next);
      }
    } else if (next_ < bodies.size()) {
      launch(next_++);
    }
    if (completed_ + failed_ == bodies.size()) {  // nothing left: let ioc.run() return
      arrival_timer_.cancel();
      progress_timer_.cancel();
      for (auto& s : idle) s.close();
      idle.clear();
    }
  }

  const LoadOptions& options;
  const std::vector<std::string>& bodies;
  net::io_context ioc;
  tcp::resolver::results_type endpoints;
  std::vector<tcp::socket> idle;  // kept-alive connections, reused before opening new ones

 private:
  void launch(size_t i) {
    ++in_flight_;
    outcome_.peak_in_flight = std::max(outcome_.peak_in_flight, static_cast<int>(in_flight_));
    std::shared_ptr<Exchange> x;
    if (!idle.empty()) {
      x = std::make_shared<Exchange>(*this, i, std::move(idle.back()), true);
      idle.pop_back();
    } else {
      x = std::make_shared<Exchange>(*this, i, tcp::socket(ioc), false);
    }
    x->start();
  }

  void arrive(size_t i) {
    const size_t cap = options.max_in_flight > 0 ? static_cast<size_t>(options.max_in_flight) : bodies.size();
    if (in_flight_ < cap) launch(i);
    else waiting_.push_back(i);  // sent as soon as a request ends
  }

  void schedule_arrivals() {
    const double now = secs(Clock::now() - t0_);
    while (next_ < bodies.size() && arrivals_[next_] <= now) arrive(next_++);
    if (next_ >= bodies.size()) return;
    arrival_timer_.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals_[next_])));
    arrival_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) schedule_arrivals();
    });
  }

  Progress progress(bool final) const {
    return {completed_, failed_, bodies.size(), in_flight_, secs(Clock::now() - t0_), final};
  }

  void tick() {
    progress_timer_.expires_after(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::max(0.01, options.progress_interval_s))));
    progress_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      options.on_progress(progress(false));
      tick();
    });
  }

  LoadOutcome outcome_;
  std::vector<double> arrivals_;  // seconds after t0 (open loop only)
  std::deque<size_t> waiting_;    // arrived while the in-flight cap was reached
  size_t next_ = 0, in_flight_ = 0, completed_ = 0, failed_ = 0;
  Clock::time_point t0_, last_end_;
  net::steady_timer arrival_timer_, progress_timer_;
};

Exchange::Exchange(Run& run, size_t index, tcp::socket socket, bool reused)
    : run_(run), index_(index), socket_(std::move(socket)), reused_(reused), timeout_(run.ioc) {
  const auto& o = run.options;
  request_.method(http::verb::post);
  request_.target(o.server.base_path + o.path);
  request_.version(11);
  request_.set(http::field::host, o.server.host_header);
  request_.set(http::field::user_agent, "ferrum-bench-serve");
  request_.set(http::field::content_type, "application/json");
  request_.set(http::field::accept, "text/event-stream");
  if (!o.api_key.empty()) request_.set(http::field::authorization, "Bearer " + o.api_key);
  request_.body() = run.bodies[index];
  request_.prepare_payload();
}

void Exchange::start() {
  start_ = Clock::now();
  if (run_.options.timeout_s > 0) {
    timeout_.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(run_.options.timeout_s)));
    timeout_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->fail(fmt::format("timed out after {:g} s", self->run_.options.timeout_s));
    });
  }
  if (reused_) write();
  else connect();
}

void Exchange::connect() {
  net::async_connect(socket_, run_.endpoints, [self = shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
    if (self->ended_) return;
    const auto& s = self->run_.options.server;
    if (ec) return self->fail(fmt::format("cannot connect to {}:{}: {}", s.host, s.port, ec.message()), true);
    self->socket_.set_option(tcp::no_delay(true), ec);
    self->write();
  });
}

void Exchange::write() {
  http::async_write(socket_, request_, [self = shared_from_this()](boost::system::error_code ec, size_t) {
    if (self->ended_) return;
    if (ec && self->reused_) return self->retry_on_fresh_connection();
    if (ec) return self->fail("sending the request failed: " + ec.message());
    self->read_header();
  });
}

void Exchange::retry_on_fresh_connection() {
  // The server closed the idle connection before it saw this request: nothing was measured
  // yet, so the request goes again on a new connection (once).
  boost::system::error_code ignored;
  socket_.close(ignored);
  socket_ = tcp::socket(run_.ioc);
  reused_ = false;
  buffer_.consume(buffer_.size());
  connect();
}

void Exchange::read_header() {
  parser_.emplace();
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  http::async_read_header(socket_, buffer_, *parser_, [self = shared_from_this()](boost::system::error_code ec, size_t) {
    if (self->ended_) return;
    if (ec && self->reused_ && self->buffer_.size() == 0) return self->retry_on_fresh_connection();
    if (ec) return self->fail("reading the response failed: " + ec.message());
    self->reused_ = false;
    self->status_ = static_cast<int>(self->parser_->get().result_int());
    if (self->parser_->is_done()) return self->complete(Clock::now());
    self->read_body();
  });
}

void Exchange::read_body() {
  parser_->get().body().data = chunk_;
  parser_->get().body().size = sizeof chunk_;
  http::async_read_some(socket_, buffer_, *parser_, [self = shared_from_this()](boost::system::error_code ec, size_t) {
    const auto t = Clock::now();  // the bytes' arrival, before any parsing
    if (self->ended_) return;
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return self->fail("the connection broke during the response: " + ec.message());
    self->consume(self->chunk_, sizeof self->chunk_ - self->parser_->get().body().size, t);
    if (self->ended_) return;
    if (self->parser_->is_done()) return self->complete(t);
    self->read_body();
  });
}

void Exchange::consume(const char* data, size_t n, Clock::time_point t) {
  if (status_ != 200) {
    if (error_body_.size() < 65536) error_body_.append(data, n);
    return;
  }
  events_.clear();
  sse_.feed(std::string_view(data, n), events_);
  for (const auto& e : events_) {
    StreamChunk c = parse_stream_chunk(e);
    if (c.error) return fail("error in the stream: " + *c.error);
    if (c.completion_tokens) completion_tokens_ = c.completion_tokens;
    if (c.prompt_tokens) prompt_tokens_ = c.prompt_tokens;
    if (c.text.empty()) continue;
    if (text_chunks_ == 0) result_.ttft = secs(t - start_);
    else result_.itl.push_back(secs(t - last_text_));
    last_text_ = t;
    ++text_chunks_;
  }
}

void Exchange::complete(Clock::time_point t) {
  if (status_ != 200) {
    const std::string msg = error_body_.empty() ? "" : ": " + error_message_of(error_body_);
    return fail(fmt::format("HTTP {}{}", status_, msg));
  }
  result_.ok = true;
  result_.latency = secs(t - start_);
  // A stream whose tokens all decoded to empty text still ran; its first token time is unknown,
  // so TTFT is taken as the whole latency rather than dropping the request.
  if (text_chunks_ == 0) result_.ttft = result_.latency;
  result_.output_tokens = completion_tokens_.value_or(text_chunks_);
  result_.prompt_tokens = prompt_tokens_.value_or(-1);
  finish(std::move(result_), parser_->keep_alive());
}

void Exchange::fail(std::string message, bool connect_failed) {
  if (ended_) return;
  RequestResult r;
  r.error = std::move(message);
  r.connect_failed = connect_failed;
  r.latency = secs(Clock::now() - start_);
  finish(std::move(r), false);
}

void Exchange::finish(RequestResult r, bool keep_socket) {
  ended_ = true;
  timeout_.cancel();
  std::optional<tcp::socket> keep;
  if (keep_socket) {
    keep.emplace(std::move(socket_));
  } else {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  run_.finished(index_, std::move(r), std::move(keep));
}

}  // namespace

LoadOutcome run_load(const LoadOptions& options, const std::vector<std::string>& bodies) {
  Run run(options, bodies);
  return run.go();
}

}  // namespace ferrum::loadgen
