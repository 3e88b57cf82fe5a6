// Listening sockets, shared by every server danemta runs (the relay's SMTP
// listeners, metrics, web): "IP:PORT" / "[IPv6]:PORT" parsing, the bind, and
// the address as text.
#pragma once

#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "base/result.hpp"

namespace danemta {

// "127.0.0.1:25", "[::1]:25". Errors (permanent) say "bad listen address".
Result<boost::asio::ip::tcp::endpoint> parse_listen_address(const std::string& text);

// Opens, binds (SO_REUSEADDR; an IPv6 address serves IPv6 only) and listens.
// Errors (permanent) say "cannot listen on `what`: <reason>".
Result<void> listen_on(boost::asio::ip::tcp::acceptor& acceptor,
                       const boost::asio::ip::tcp::endpoint& endpoint, const std::string& what);

// The acceptor's local address as "IP:PORT" or "[IPv6]:PORT"; "" if closed.
std::string listening_address(const boost::asio::ip::tcp::acceptor& acceptor);

}  // namespace danemta
