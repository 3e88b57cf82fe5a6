// The SMTP server side (RFC 5321) for local submitters: the relay's listener.
// One coroutine per connection; every resource a client can make the server
// hold is bounded (connections, line length, recipients, message size, time,
// errors, junk commands).
//
// The server decides nothing about storage: a complete message is handed to
// `Accept`, and the client gets 250 only when that returns a queue id, which
// the relay returns only once the message is durable.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/result.hpp"

namespace boost::asio::ssl {
class context;
}

namespace danemta::smtp {

// Takes a message's text while it arrives, so that a large message is never
// held whole in memory. Errors (a full disk) are kept by the sink and
// reported by Accept, which gets the sink back in ReceivedMessage::text.
class TextSink {
 public:
  virtual ~TextSink() = default;
  // The decoded text in order: dot-unstuffed, CRLF line ends, in pieces of
  // any size.
  virtual void write(std::string_view text) = 0;
};

struct ReceivedMessage;
// Makes the sink for one message when DATA is accepted; the envelope's data
// is empty. Null (or a null result): the text is collected in
// ReceivedMessage::data instead.
using MakeSink = std::function<std::shared_ptr<TextSink>(const ReceivedMessage& envelope)>;

// What a listener asks of its clients for STARTTLS (RFC 3207) or AUTH
// (RFC 4954).
enum class Requirement {
  none,      // not offered ("502 5.5.1 Error: command not implemented")
  may,       // offered
  required,  // MAIL is refused with 530 5.7.0 until the client has done it
};

// Checks AUTH's user name and password: true when they match. An error
// (the credentials cannot be checked now) is answered "454 4.7.0 Temporary
// authentication failure".
using Authenticate =
    std::function<boost::asio::awaitable<Result<bool>>(std::string user, std::string password)>;

struct ServerConfig {
  using duration = std::chrono::steady_clock::duration;
  std::string hostname = "localhost";                // in the greeting and EHLO reply
  std::size_t max_message_bytes = 50 * 1024 * 1024;  // advertised as SIZE
  std::size_t max_recipients = 1000;
  std::size_t max_errors = 10;  // bad commands before the server hangs up (421)
  // NOOP, RSET, VRFY, HELP and unknown or unimplemented commands in one
  // session (since its last accepted message); the one after the last
  // allowed gets "421 4.7.0" and the connection is closed.
  std::size_t max_junk_commands = 100;
  // listen() only: sessions at once, in all and per client IP address (0: no
  // limit). A client over either gets "421 4.7.0" instead of the greeting.
  std::size_t max_connections = 100;
  std::size_t max_connections_per_client = 20;
  // RFC 5321 section 4.5.3.2: the server waits at least 5 minutes for a
  // command and 10 for the end of data; shorter here is allowed for tests.
  duration command_timeout = std::chrono::minutes(5);
  duration data_timeout = std::chrono::minutes(10);
  // One line per event, without a line ending (may be empty), in Postfix's
  // smtpd words ("unknown": client names are not looked up): a client not
  // allowed or over a connection limit ("NOQUEUE: reject: CONNECT from
  // unknown[192.0.2.1]: 554 5.7.1 ..."), a refused MAIL or RCPT ("NOQUEUE:
  // reject: RCPT from unknown[192.0.2.1]: 553 5.1.2 ...; from=<a@b.example>
  // to=<c@[192.0.2.2]>"), a session cut short, naming the last command
  // ("too many errors after RCPT from unknown[192.0.2.1]", "too many junk
  // commands after NOOP from ...", "timeout after DATA from ...", "lost
  // connection after CONNECT from ..."; END-OF-MESSAGE: after the text's
  // reply), and, as the last line of every session (refused ones
  // included), its commands: "disconnect from unknown[192.0.2.1] ehlo=1
  // mail=1 rcpt=1/2 data=1 quit=1 commands=5/6" (smtp/tally.hpp).
  // Called on the sessions' strands: with a multi-threaded io_context it must
  // be thread-safe.
  std::function<void(std::string_view)> log;
  // Where message text goes as it arrives (see TextSink); null: into
  // ReceivedMessage::data.
  MakeSink sink;
  // STARTTLS with `tls_context` (a server context, tls::configure_server_context).
  // With `tls` other than none but no context, STARTTLS is not advertised
  // and gets "454 4.7.0 TLS not available due to local problem".
  Requirement tls = Requirement::none;
  std::shared_ptr<boost::asio::ssl::context> tls_context;
  // AUTH PLAIN and LOGIN, advertised and accepted only over TLS; `auth` may
  // or required wants `authenticate` (without it AUTH gets 454 4.7.0).
  // Who may send mail: see serve() and listen().
  Requirement auth = Requirement::none;
  Authenticate authenticate;
  // After AUTH: whether the user (first) may use the sender (MAIL FROM's
  // mailbox, "" for the null sender). Refused: "553 5.7.1 <sender>: Sender
  // address rejected: not owned by user USER". Null: any sender.
  std::function<bool(std::string_view user, std::string_view sender)> sender_allowed;
  // Who the listener is for, copied into ReceivedMessage::service ("inbound"
  // for the relay's MX listeners; empty for submission).
  std::string service;
  // Asked for each syntactically good RCPT: an empty string accepts it,
  // anything else is the reply refusing it ("554 5.7.1 <a@b.example>: Relay
  // access denied"), logged like any refused RCPT. Unset: all accepted.
  std::function<std::string(const std::string& mailbox)> check_recipient;
  // Non-empty: "<postmaster>" (RFC 5321 4.5.1) is accepted as this address.
  std::string postmaster;
};

struct ReceivedMessage {
  std::string client;  // "127.0.0.1" (the peer address)
  std::string helo;    // EHLO/HELO argument
  // Paths as Path::mailbox (smtp/path.hpp): without <> and source route,
  // otherwise as the client wrote them.
  std::string mail_from;  // "" for the null sender
  std::vector<std::string> recipients;
  // MAIL parameters that travel with the message to the next hop:
  // BODY=8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531).
  bool body_8bitmime = false;
  bool smtputf8 = false;
  std::string data;  // dot-unstuffed, CRLF line ends, without the final "."
  // The sink that took the text instead of `data` (ServerConfig::sink).
  std::shared_ptr<TextSink> text;
  std::size_t size = 0;  // octets of text, in `data` or written to `text`
  // The session's TLS ("TLSv1.3", "TLS_AES_256_GCM_SHA384"; empty: none)
  // and AUTH ("PLAIN", the user name; empty: none).
  std::string tls_protocol;
  std::string tls_cipher;
  std::string sasl_method;
  std::string sasl_username;
  std::string service;  // ServerConfig::service
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
// - MAIL FROM and RCPT TO paths are parsed by parse_path() (smtp/path.hpp):
//   a bad path gets 501 (5.5.4 when it is no "<...>", else 5.1.7 for the
//   sender, 5.1.3 for a recipient); an address literal gets "553 5.1.7"
//   (sender) or "553 5.1.2" (recipient): danemta routes by DNS only, so that
//   DNSSEC and DANE apply. "<postmaster>" gets 550 (no local mailboxes).
// - The junk command limit: see ServerConfig::max_junk_commands.
// - An exception thrown by `accept` is answered like a transient error (451).
// - STARTTLS (RFC 3207): "220 2.0.0 Ready to start TLS", then the TLS
//   handshake (command_timeout bounds it; a failed one closes the
//   connection). Octets the client sent after the STARTTLS line, before the
//   handshake, are discarded and logged, never executed inside TLS (the
//   CVE-2011-0411 class of command injection). Afterwards the session
//   starts over (section 4.2): EHLO again, no transaction. A second
//   STARTTLS gets "554 5.5.1"; STARTTLS in a transaction "503 5.5.1".
// - AUTH (RFC 4954), PLAIN (RFC 4616, with or without an initial
//   response) and LOGIN; base64 and messages as smtp/sasl.hpp reads them.
//   Before TLS: "538 5.7.11 Encryption required for requested
//   authentication mechanism" (and AUTH is not advertised). Success: "235
//   2.7.0 Authentication successful". Wrong credentials or a malformed
//   message: "535 5.7.8 Error: authentication failed" and a log line
//   "warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: REASON,
//   sasl_username=USER" (never the password); a response that is not base64:
//   "501 5.5.2"; "*": "501 5.7.0 Authentication aborted". Each of these
//   counts towards max_errors. Once per session; not in a transaction.
// - MAIL before TLS on a listener with tls required: "530 5.7.0 Must issue
//   a STARTTLS command first"; without AUTH where auth is required, or
//   where auth is may and the client is not `allowed` (listen()): "530 5.7.0
//   Authentication required". Both are logged and count as errors. The
//   MAIL parameter AUTH= (RFC 4954 section 5) is accepted (and ignored)
//   where AUTH is offered.
// - The socket's executor must serialise the session with its timer: a
//   strand, or an io_context run by one thread.
// A client of serve() counts as allowed.
boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket, ServerConfig config,
                                   Accept accept);

// Accepts connections on `acceptor` forever (until it is closed), spawning
// serve() for each on a new strand of the acceptor's executor. `allowed(peer
// address)` false, or `allowed` empty: on a listener without AUTH the client
// gets "554 5.7.1 ..." and is disconnected (no open relay); on one with AUTH
// it is served, and must authenticate before MAIL. A client over max_connections or
// max_connections_per_client gets "421 4.7.0 <hostname> Error: too many
// connections from <address>" and is disconnected; a session's place is
// freed when it ends, however it ends. Returns when the acceptor is closed;
// `acceptor` must outlive the coroutine and be closed on its executor.
boost::asio::awaitable<void> listen(boost::asio::ip::tcp::acceptor& acceptor, ServerConfig config,
                                    Accept accept,
                                    std::function<bool(const boost::asio::ip::address&)> allowed);

// The same, with the settings asked of `settings` for each new connection
// (a reloaded configuration applies to connections accepted afterwards;
// sessions keep what they started with). `settings` must not return null.
using Settings = std::function<std::shared_ptr<const ServerConfig>()>;
boost::asio::awaitable<void> listen(boost::asio::ip::tcp::acceptor& acceptor, Settings settings,
                                    Accept accept,
                                    std::function<bool(const boost::asio::ip::address&)> allowed);

}  // namespace danemta::smtp
