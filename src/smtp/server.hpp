// The SMTP server side (RFC 5321) for local submitters: the relay's listener.
// One coroutine per connection; every resource a client can make the server
// hold is bounded (line length, recipients, message size, time, errors).
//
// The server decides nothing about storage: a complete message is handed to
// `Accept`, and the client gets 250 only when that returns a queue id, which
// the relay returns only once the message is durable.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/result.hpp"

namespace danemta::smtp {

struct ServerConfig {
  using duration = std::chrono::steady_clock::duration;
  std::string hostname = "localhost";                // in the greeting and EHLO reply
  std::size_t max_message_bytes = 50 * 1024 * 1024;  // advertised as SIZE
  std::size_t max_recipients = 1000;
  std::size_t max_errors = 10;  // bad commands before the server hangs up (421)
  // RFC 5321 section 4.5.3.2: the server waits at least 5 minutes for a
  // command and 10 for the end of data; shorter here is allowed for tests.
  duration command_timeout = std::chrono::minutes(5);
  duration data_timeout = std::chrono::minutes(10);
};

struct ReceivedMessage {
  std::string client;                   // "127.0.0.1" (the peer address)
  std::string helo;                     // EHLO/HELO argument
  std::string mail_from;                // without <>; "" for the null sender
  std::vector<std::string> recipients;  // without <>
  std::string data;                     // dot-unstuffed, CRLF line ends, without the final "."
};

// Returns the queue id (reply "250 2.0.0 Ok: queued as ID"), or an error:
// Cause::storage_full -> "452 4.3.1 Insufficient system storage", other
// transient -> "451 4.3.0 ...", permanent -> "554 5.3.0 ..." with the message,
// or "554 <message>" when the message starts with an enhanced code ("5.4.6 ...").
using Accept = std::function<boost::asio::awaitable<Result<std::string>>(ReceivedMessage)>;

// Serves one connection until QUIT, a timeout, too many errors or the
// client goes away. Never throws for client behaviour.
//
// Details of the contract:
// - Command lines end in CRLF or a bare LF; a line over 4096 octets gets
//   "500 5.5.2" and is dropped to its end. The max_errors-th refused command
//   (500, 501, 502, 503, 555, an overlong line) is answered "421 4.7.0" instead, and
//   the connection is closed.
// - command_timeout bounds each command line (and each write of replies);
//   data_timeout bounds the whole text after 354. Either ends in
//   "421 4.4.2 <hostname> timeout".
// - The text ends only at <CRLF>.<CRLF> (RFC 5321 4.1.1.4): a dot line after
//   or before a bare LF is text (no SMTP smuggling). Bare LF line ends become
//   CRLF, leading dots are removed (4.5.2); text beyond max_message_bytes is
//   read and dropped, then "552 5.3.4".
// - An exception thrown by `accept` is answered like a transient error (451).
// - The socket's executor must serialise the session with its timer: a
//   strand, or an io_context run by one thread.
boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket, ServerConfig config,
                                   Accept accept);

// Accepts connections on `acceptor` forever (until it is closed), spawning
// serve() for each on a new strand of the acceptor's executor. `allowed(peer
// address)` false, or `allowed` empty: the client gets "554 5.7.1 ..." and is
// disconnected (no open relay). Returns when the acceptor is closed; `acceptor`
// must outlive the coroutine and be closed on its executor.
boost::asio::awaitable<void> listen(boost::asio::ip::tcp::acceptor& acceptor, ServerConfig config,
                                    Accept accept,
                                    std::function<bool(const boost::asio::ip::address&)> allowed);

}  // namespace danemta::smtp
