// The monitoring endpoint's HTTP server. The only translation unit of the
// relay that includes Boost.Beast's server side.
#include "metrics/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <set>
#include <string_view>
#include <utility>

#include "base/listen.hpp"

namespace danemta::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct Server::State {
  State(asio::io_context& io, Site s, Limits l) : acceptor(io), site(std::move(s)), limits(l) {}
  tcp::acceptor acceptor;
  Site site;
  Limits limits;
  std::size_t connections = 0;        // accepted and not yet over
  std::set<beast::tcp_stream*> open;  // their streams, for stop()
  bool stopped = false;
};

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using StatePtr = std::shared_ptr<Server::State>;

// What one request gets.
struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  bool allow = false;  // 405: say which methods are allowed
  bool close = false;  // close the connection after it
};

Reply plain(http::status status, std::string body, bool close = false) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  r.close = close;
  return r;
}

asio::awaitable<Reply> answer(StatePtr s, http::verb method, std::string target) {
  const std::string path = target.substr(0, target.find('?'));
  if (path != "/metrics" && path != "/healthz")
    co_return plain(http::status::not_found, "not found\n");
  if (method != http::verb::get && method != http::verb::head) {
    Reply r = plain(http::status::method_not_allowed, "only GET and HEAD\n");
    r.allow = true;
    co_return r;
  }
  if (path == "/healthz") {
    const std::string why = s->site.unhealthy ? s->site.unhealthy() : std::string();
    if (why.empty()) co_return plain(http::status::ok, "ok\n");
    co_return plain(http::status::service_unavailable, why + "\n");
  }
  Reply r;
  if (s->site.metrics) r.body = co_await s->site.metrics();
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  co_return r;
}

// Writes `r`; false when the connection broke.
asio::awaitable<bool> respond(beast::tcp_stream& stream, Reply r, unsigned version, bool keep_alive,
                              bool head) {
  http::response<http::string_body> res{r.status, version};
  res.set(http::field::server, "danemta");
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, "no-store");
  if (r.allow) res.set(http::field::allow, "GET, HEAD");
  res.keep_alive(keep_alive);
  if (head) {
    // RFC 9110 section 9.3.2: the fields GET would send, without content.
    res.content_length(r.body.size());
    http::response<http::empty_body> header_only(std::move(res.base()));
    auto [ec, n] = co_await http::async_write(stream, header_only, use_tuple);
    co_return !ec;
  }
  res.body() = std::move(r.body);
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
  co_return !ec;
}

// After an answer that ends the connection while the client may still be
// sending (an oversized header): stop sending, then read and drop what
// comes, for a bounded time and size, so that closing with unread data does
// not reset the connection before the client has read the answer.
asio::awaitable<void> linger(beast::tcp_stream& stream) {
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.expires_after(std::chrono::seconds(2));
  std::size_t dropped = 0;
  char scratch[4096];
  while (dropped < 256 * 1024) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), use_tuple);
    if (ec) break;
    dropped += n;
  }
}

bool is_http_error(const error_code& ec) {
  static const error_code sample = http::error::bad_method;
  return &ec.category() == &sample.category();
}

asio::awaitable<void> session(StatePtr s, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  s->open.insert(&stream);
  struct Leave {
    Server::State& state;
    beast::tcp_stream* stream;
    ~Leave() {
      state.open.erase(stream);
      --state.connections;
    }
  } leave{*s, &stream};

  const Limits& limits = s->limits;
  beast::flat_buffer buffer(2 * limits.max_header_bytes);
  bool lingering = false;
  for (std::size_t n = 0; n < limits.max_requests && !s->stopped; ++n) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(0);
    stream.expires_after(limits.timeout);
    auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
    // Named before the co_await: g++ 12 destroys a temporary made inside
    // a co_await expression twice (HACKING.md).
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      Reply refusal =
          plain(http::status::request_header_fields_too_large, "request header too large\n", true);
      co_await respond(stream, std::move(refusal), 11, false, false);
      lingering = true;
      break;
    }
    if (ec && is_http_error(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      Reply refusal = plain(http::status::bad_request, "bad request\n", true);
      co_await respond(stream, std::move(refusal), 11, false, false);
      lingering = true;
      break;
    }
    if (ec) break;  // closed, timed out, reset
    const auto& request = parser.get();
    const bool head = request.method() == http::verb::head;
    const std::string target(request.target());
    Reply r = co_await answer(s, request.method(), target);
    const bool keep_alive = request.keep_alive() && !r.close && n + 1 < limits.max_requests;
    stream.expires_after(limits.timeout);
    const bool written =
        co_await respond(stream, std::move(r), request.version(), keep_alive, head);
    if (!written || !keep_alive) break;
  }
  if (lingering && !s->stopped) co_await linger(stream);
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
}

asio::awaitable<void> accept_loop(StatePtr s) {
  for (;;) {
    auto [ec, socket] = co_await s->acceptor.async_accept(use_tuple);
    if (s->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors or the like: wait a little rather than spin.
      asio::steady_timer pause(s->acceptor.get_executor());
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (s->connections >= s->limits.max_connections) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++s->connections;
    asio::co_spawn(s->acceptor.get_executor(), session(s, std::move(socket)), asio::detached);
  }
}

}  // namespace

Result<std::unique_ptr<Server>> Server::start(asio::io_context& io, const std::string& listen,
                                              Site site, Limits limits) {
  auto endpoint = parse_listen_address(listen);
  if (!endpoint) return tl::unexpected(endpoint.error());
  auto state = std::make_shared<State>(io, std::move(site), limits);
  if (auto r = listen_on(state->acceptor, *endpoint, listen); !r) return tl::unexpected(r.error());
  asio::co_spawn(io, accept_loop(state), asio::detached);
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() {
  stop();
}

void Server::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  error_code ignored;
  state_->acceptor.close(ignored);
  const std::set<beast::tcp_stream*> open = state_->open;
  for (beast::tcp_stream* stream : open) stream->close();
}

std::string Server::address() const {
  return listening_address(state_->acceptor);
}

}  // namespace danemta::metrics
