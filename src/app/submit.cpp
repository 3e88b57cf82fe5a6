#include "app/submit.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace danemta::app {

namespace asio = boost::asio;

namespace {

asio::awaitable<Submitted> session(std::string host, std::uint16_t port,
                                   std::vector<smtp::Envelope> envelopes,
                                   std::shared_ptr<const std::string> text) {
  auto executor = co_await asio::this_coro::executor;
  auto& io = static_cast<asio::io_context&>(executor.context());
  smtp::ClientConfig cc;
  cc.connect = cc.greeting = cc.ehlo = std::chrono::seconds(30);
  smtp::Client client(io, cc);
  Submitted out;
  auto greeting = co_await client.connect(host, port);
  if (!greeting) {
    out.failure = greeting.error();
    co_return out;
  }
  auto caps = co_await client.ehlo("localhost");
  if (!caps) {
    out.failure = caps.error();
    co_return out;
  }
  for (smtp::Envelope& envelope : envelopes) {
    auto sent = co_await client.send(std::move(envelope), *text);
    if (!sent) {
      out.failure = sent.error();
      co_return out;
    }
    out.results.push_back(std::move(*sent));
  }
  co_await client.quit();
  co_return out;
}

}  // namespace

Submitted submit_to_relay(const std::string& address, std::vector<smtp::Envelope> envelopes,
                          std::shared_ptr<const std::string> text) {
  std::string host;
  std::string port;
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    host = address.substr(0, address.rfind(':'));
    port = address.substr(address.rfind(':') + 1);
  }
  asio::io_context io;
  std::optional<Submitted> result;
  asio::co_spawn(io,
                 session(host, static_cast<std::uint16_t>(std::stoi(port)), std::move(envelopes),
                         std::move(text)),
                 [&result](std::exception_ptr e, Submitted r) {
                   if (!e) result = std::move(r);
                 });
  io.run();
  if (!result) {
    Submitted broken;
    broken.failure = smtp::Failure{smtp::FailureKind::local_error, smtp::Stage::connect,
                                   std::nullopt, "the submission did not complete"};
    return broken;
  }
  return std::move(*result);
}

}  // namespace danemta::app
