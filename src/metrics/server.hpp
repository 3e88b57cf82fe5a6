// The monitoring endpoint: a small HTTP/1.1 server (Boost.Beast, confined to
// server.cpp) with two pages, for a Prometheus server and for health checks:
//
//   GET /metrics   200, text/plain; version=0.0.4: Site::metrics()
//   GET /healthz   200 "ok", or 503 with the reason Site::unhealthy() gives
//
// HEAD is answered like GET without the body; another method on those paths
// gets 405, any other path 404. It is meant for a trusted network only (it
// has no authentication and tells how much mail goes where), and it bounds
// what a hostile client can make it hold: connections at once (more are
// closed at once), the size of a request's header (431), a request body
// (refused: 400), time per request (the connection is closed) and requests
// per connection.
//
// Runs on the caller's io_context, which must be run by one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "base/result.hpp"

namespace boost::asio {
class io_context;
}

namespace danemta::metrics {

struct Site {
  // The body of /metrics, made when it is asked for.
  std::function<boost::asio::awaitable<std::string>()> metrics;
  // Why the service is not healthy; empty when it is.
  std::function<std::string()> unhealthy;
};

struct Limits {
  std::size_t max_connections = 16;         // at once; one more is closed unanswered
  std::size_t max_header_bytes = 8 * 1024;  // request line and header fields
  std::chrono::seconds timeout{10};  // to read a request and write its response; idle keep-alive
  std::size_t max_requests = 100;    // per connection, then it is closed
};

class Server {
 public:
  // Binds `listen` ("IP:PORT" or "[IPv6]:PORT"; port 0: any free one) and
  // serves until stop() or destruction. Errors name the address.
  static Result<std::unique_ptr<Server>> start(boost::asio::io_context& io,
                                               const std::string& listen, Site site,
                                               Limits limits = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Closes the listener and every open connection.
  void stop();
  // "127.0.0.1:9125", "[::1]:9125": the address bound, with its port.
  std::string address() const;

  struct State;

 private:
  explicit Server(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace danemta::metrics
