#include "base/listen.hpp"

#include <boost/asio/ip/v6_only.hpp>

#include <charconv>
#include <cstdint>
#include <string_view>

namespace danemta {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<tcp::endpoint> parse_listen_address(const std::string& s) {
  std::string host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return fail("bad listen address " + s, Severity::permanent);
    host = s.substr(1, close - 1);
    port = std::string_view(s).substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return fail("bad listen address " + s, Severity::permanent);
    host = s.substr(0, colon);
    port = std::string_view(s).substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return fail("bad listen address " + s, Severity::permanent);
  boost::system::error_code bad;
  const auto address = asio::ip::make_address(host, bad);
  if (bad) return fail("bad listen address " + s, Severity::permanent);
  return tcp::endpoint(address, static_cast<std::uint16_t>(value));
}

Result<void> listen_on(tcp::acceptor& a, const tcp::endpoint& endpoint, const std::string& what) {
  boost::system::error_code ec;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && endpoint.address().is_v6()) a.set_option(asio::ip::v6_only(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on " + what + ": " + ec.message(), Severity::permanent);
  return {};
}

std::string listening_address(const tcp::acceptor& acceptor) {
  boost::system::error_code ec;
  const tcp::endpoint ep = acceptor.local_endpoint(ec);
  if (ec) return "";
  const std::string host = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

}  // namespace danemta
