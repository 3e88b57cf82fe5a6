// `danemta web`: the validation test as a web page and a JSON API, on a
// small HTTP/1.1 server (Boost.Beast; HTTPS when a certificate is given).
//
//   GET /                       the form
//   GET /check?domain=D[&port=P] the page for one check (shareable URL); its
//                               script follows /events and shows the report
//   GET /events?domain=D[&port=P] server-sent events: "step" (one line per
//                               DNS answer and per probe), then "result" (the
//                               report as HTML), or "refused" / "failed"
//   GET /api/check?domain=D[&port=P] the report as JSON, the same document
//                               `danemta check --json` prints (docs/web.md)
//   GET /style.css, /app.js     the page's only resources
//
// Checks run on the server's io_context (one thread), with the resolver
// and the probes' TLS context the caller gives. What it refuses: input that
// is not a domain name in ASCII (400), a port outside [web] allowed_ports
// (400), a client over [web] client_checks per client_window (429), a check
// while max_concurrent run (503); and it probes only the addresses of the
// domain's own MX hosts, public ones unless allow_private_targets, each SMTP
// step bounded by probe_timeout and the check by check_timeout. No mail is
// sent: a probe stops after STARTTLS and the certificate check. A check
// whose visitor leaves (closes the /events stream or the /api/check
// connection) is abandoned: its slot is free at once, no further address is
// probed, and it logs one line when it ends.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/result.hpp"
#include "config/config.hpp"

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace danemta::dns {
class Resolver;
}

namespace danemta::web {

class Server {
 public:
  // Binds cfg.web.listen and serves until stop() or destruction. `https`:
  // a server context with the certificate, or nullptr for plain HTTP.
  // `resolver`, `probe_tls` and `https` must outlive the server. `logger`
  // (optional) gets the server's log lines, without a prefix: "check of
  // example.org for 192.0.2.1 abandoned: the visitor left; 2 of 3
  // addresses not probed".
  static Result<std::unique_ptr<Server>> start(boost::asio::io_context& io,
                                               const config::Config& cfg, dns::Resolver& resolver,
                                               boost::asio::ssl::context& probe_tls,
                                               boost::asio::ssl::context* https,
                                               std::function<void(const std::string&)> logger = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void stop();
  // "127.0.0.1:8025": the address bound, with its port.
  std::string address() const;

  struct State;

 private:
  explicit Server(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace danemta::web
