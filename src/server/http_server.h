// Asynchronous HTTP/1.1 server (Boost.Beast over Asio): a few I/O threads serve any number of
// keep-alive connections; each request is handed to one Handler together with a thread-safe
// ResponseWriter, so a handler may answer later, from another thread, and stream (chunked).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferrum::server {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent, with the query
  std::string path;    // without the query
  HeaderList headers;  // names lower-cased
  std::string body;
  // The value of a header (name in lower case), empty when absent.
  std::string header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  HeaderList headers;
};

// One request's answer. Every method is thread-safe and never blocks; calls after the
// response ended (or the client left) are ignored.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual void send(HttpResponse response) = 0;  // a complete response
  virtual void begin_stream(int status, std::string content_type, HeaderList headers = {}) = 0;
  virtual void write(std::string data) = 0;      // one chunk of a stream
  virtual void end_stream() = 0;
  virtual bool client_gone() const = 0;
  // cb runs once, on an I/O thread, if the client disconnects before the response ended
  // (at once if it already has). It must not block.
  virtual void on_disconnect(std::function<void()> cb) = 0;
};

// Called on an I/O thread for every well-formed request; must not block.
using Handler = std::function<void(HttpRequest, std::shared_ptr<ResponseWriter>)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (see HttpServer::port())
  int io_threads = 2;
  size_t max_body_bytes = 16u << 20;
  size_t max_header_bytes = 64u << 10;
  std::chrono::milliseconds request_timeout{30000};  // to receive one whole request
  std::chrono::milliseconds idle_timeout{120000};    // keep-alive connection with no request
  std::chrono::milliseconds write_timeout{60000};    // a client that stops reading
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, Handler handler);
  ~HttpServer();  // stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void start();      // binds and listens (throws ferrum::Error), then runs the I/O threads
  int port() const;  // the bound port
  // Stops accepting connections; requests arriving on open connections get 503 and close.
  void begin_drain();
  size_t active_requests() const;  // requests whose response has not ended
  size_t open_connections() const;
  void stop();  // closes every connection and joins the I/O threads

  struct State;  // shared with the connections
  struct Io;     // the io_context; owned here, so destroying it releases the connections

 private:
  std::unique_ptr<Io> io_;
  std::shared_ptr<State> state_;
};

const char* status_reason(int status);

}  // namespace ferrum::server
