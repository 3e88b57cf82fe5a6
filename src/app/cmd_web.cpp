#include "app/cmd_web.hpp"

#include <csignal>
#include <iostream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>

#include "dns/unbound_resolver.hpp"
#include "tls/context.hpp"
#include "web/server.hpp"

namespace danemta::app {

int run_web(const config::Config& cfg) {
  boost::asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) {
    std::cerr << "danemta web: " << resolver.error().message << "\n";
    return 2;
  }
  boost::asio::ssl::context probe_tls(boost::asio::ssl::context::tls_client);
  if (auto ok = tls::configure_client_context(probe_tls.native_handle()); !ok) {
    std::cerr << "danemta web: " << ok.error().message << "\n";
    return 2;
  }
  std::unique_ptr<boost::asio::ssl::context> https;
  if (!cfg.web.tls_cert_file.empty()) {
    https = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
    auto cert = tls::configure_server_context(https->native_handle(), cfg.web.tls_cert_file,
                                              cfg.web.tls_key_file);
    if (!cert) {
      std::cerr << "danemta web: " << cert.error().message << "\n";
      return 2;
    }
  }
  // One line per event, on stdout like the start line (the journal under
  // systemd).
  auto log_line = [](const std::string& line) {
    std::cout << "danemta web: " << line << std::endl;
  };
  auto server = web::Server::start(io, cfg, **resolver, probe_tls, https.get(), log_line);
  if (!server) {
    std::cerr << "danemta web: " << server.error().message << "\n";
    return 2;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    (*server)->stop();
    io.stop();
  });
  std::cout << "danemta web: listening on " << (https ? "https://" : "http://")
            << (*server)->address() << "/"
            << (cfg.web.allow_private_targets ? " (allow_private_targets: a lab)" : "")
            << std::endl;
  io.run();
  return 0;
}

}  // namespace danemta::app
