// The load generator: sends prepared JSON bodies as streaming POSTs to one server and times
// every response as its bytes arrive. All requests run on one thread (an Asio io_context), so
// a thousand concurrent streams cost a thousand sockets, not a thousand threads.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "loadgen/stats.h"
#include "loadgen/url.h"

namespace ferrum::loadgen {

struct Progress {
  size_t completed = 0, failed = 0, total = 0, in_flight = 0;
  double elapsed_s = 0;
  bool final = false;  // the last report, once every request has ended
};

struct LoadOptions {
  ServerUrl server;
  std::string path = "/v1/completions";  // appended to server.base_path
  std::string api_key;                   // sent as Authorization: Bearer when not empty
  // At most this many requests in flight (0 = no cap). With an infinite rate this is a closed
  // loop: each finished request is replaced at once.
  int max_in_flight = 1;
  // Poisson arrivals at this many requests per second; infinity = closed loop.
  double request_rate = std::numeric_limits<double>::infinity();
  uint64_t seed = 0;     // of the arrival times
  double timeout_s = 0;  // per request, from its send to its last byte; 0 = none
  double progress_interval_s = 1;
  std::function<void(const Progress&)> on_progress;  // called on the I/O thread
};

struct LoadOutcome {
  std::vector<RequestResult> results;  // one per body, in the order of `bodies`
  double duration_s = 0;               // first send to last response
  int peak_in_flight = 0;
};

// Sends every body once. Request failures are recorded in the results, never thrown; throws
// ferrum::Error only when the run cannot start (the host does not resolve).
LoadOutcome run_load(const LoadOptions& options, const std::vector<std::string>& bodies);

}  // namespace ferrum::loadgen
