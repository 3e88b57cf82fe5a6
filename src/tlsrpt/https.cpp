// HTTPS submission of TLS reports (RFC 8460 section 5.4). The only
// translation unit that includes Boost.Beast.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>
#include <string_view>
#include <utility>

#include "tlsrpt/https_url.hpp"
#include "tlsrpt/submit.hpp"

namespace danemta::tlsrpt {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kMaxResponseBody = 64 * 1024;  // the answer is only logged

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

Result<HttpsUrl> parse_https_url(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return fail("https rua \"" + std::string(url) + "\": " + std::string(why), Severity::permanent);
  };
  constexpr std::string_view kScheme = "https://";
  if (url.size() < kScheme.size() || !ascii_iequals(url.substr(0, kScheme.size()), kScheme)) {
    return bad("not an https: URI");
  }
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return bad("control character, space or non-ASCII in URI");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const auto path_start = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_start);
  std::string target =
      path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (target.front() == '?') target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return bad("userinfo is not supported");

  HttpsUrl out;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 literal");
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the IPv6 literal");
      port = after.substr(1);
    }
    error_code ec;
    static_cast<void>(asio::ip::make_address_v6(out.host, ec));
    if (ec) return bad("invalid IPv6 literal");
    out.ip_literal = true;
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    error_code ec;
    static_cast<void>(asio::ip::make_address_v4(out.host, ec));
    out.ip_literal = !ec;
  }
  if (out.host.empty()) return bad("no host");
  if (port.empty()) {
    out.port = "443";
  } else {
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc{} || end != port.data() + port.size() || number == 0 || number > 65535) {
      return bad("invalid port");
    }
    out.port = std::to_string(number);
  }
  out.host_header = out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host;
  if (out.port != "443") out.host_header += ":" + out.port;
  out.target = std::move(target);
  return out;
}

namespace {

// RFC 9110 section 15: 408 and 429 ask to come back later and 5xx is the
// server's trouble; any other 4xx will not change by retrying. Section 5.5
// of RFC 8460 has the retry schedule.
Severity status_severity(unsigned status) {
  if (status >= 400 && status < 500 && status != 408 && status != 429) return Severity::permanent;
  return Severity::transient;
}

std::string io_error(std::string_view stage, const HttpsUrl& u, const error_code& ec,
                     std::chrono::seconds timeout) {
  std::string out = "https " + u.host_header + ": " + std::string(stage) + ": ";
  if (ec == beast::error::timeout) {
    out += "timed out after " + std::to_string(timeout.count()) + "s";
  } else {
    out += ec.message();
  }
  return out;
}

}  // namespace

// The deadline of beast::tcp_stream bounds connect, handshake, request and
// answer together; name resolution is bounded by the system resolver.
asio::awaitable<Result<void>> https_post(std::string url, std::string gzipped_json,
                                         HttpsOptions options) {
  auto parsed = parse_https_url(url);
  if (!parsed) co_return tl::unexpected(std::move(parsed.error()));
  const HttpsUrl u = std::move(*parsed);
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;

  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  ctx.set_verify_mode(ssl::verify_peer);
  error_code ec;
  if (options.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(options.ca_file, ec);
  }
  if (ec) {
    const std::string where = options.ca_file.empty() ? "the default CA paths" : options.ca_file;
    co_return fail("https: cannot load " + where + ": " + ec.message(), Severity::permanent);
  }

  const auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  const auto [rec, endpoints] = co_await resolver.async_resolve(u.host, u.port, use_tuple);
  if (rec) co_return fail("https " + u.host_header + ": cannot resolve: " + rec.message());

  beast::ssl_stream<beast::tcp_stream> stream(executor, ctx);
  // RFC 6066 section 3: no IP literals in server_name.
  if (!u.ip_literal && SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str()) != 1) {
    co_return fail("https " + u.host_header + ": cannot set SNI");
  }
  // Checks the DNS-ID (or the iPAddress for a literal), RFC 9110 section 4.3.4.
  stream.set_verify_callback(ssl::host_name_verification(u.host));
  beast::get_lowest_layer(stream).expires_at(deadline);

  const auto [cec, ep] =
      co_await beast::get_lowest_layer(stream).async_connect(endpoints, use_tuple);
  if (cec) co_return fail(io_error("connect", u, cec, options.timeout));

  const auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, use_tuple);
  if (hec) {
    std::string message = io_error("TLS handshake", u, hec, options.timeout);
    if (const long v = SSL_get_verify_result(stream.native_handle()); v != X509_V_OK) {
      message += " (";
      message += X509_verify_cert_error_string(v);
      message += ")";
    }
    co_return fail(std::move(message));
  }

  http::request<http::string_body> request{http::verb::post, u.target, 11};
  request.set(http::field::host, u.host_header);
  request.set(http::field::user_agent, "danemta");
  request.set(http::field::content_type, "application/tlsrpt+gzip");
  request.set(http::field::connection, "close");
  request.body() = std::move(gzipped_json);
  request.prepare_payload();
  const auto [wec, written] = co_await http::async_write(stream, request, use_tuple);
  if (wec) co_return fail(io_error("sending the report", u, wec, options.timeout));

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  const auto [aec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
  if (aec) co_return fail(io_error("reading the answer", u, aec, options.timeout));

  // RFC 8460 section 5.4: a 2xx answer is a successful submission.
  const unsigned status = parser.get().result_int();
  if (status < 200 || status >= 300) {
    std::string reason(parser.get().reason());
    co_return fail("https " + u.host_header + ": server answered " + std::to_string(status) +
                       (reason.empty() ? "" : " " + reason),
                   status_severity(status));
  }
  // Connection: close; the answer is complete, so no TLS close_notify exchange is needed.
  error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return Result<void>{};
}

}  // namespace danemta::tlsrpt
