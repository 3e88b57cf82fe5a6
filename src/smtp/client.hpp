// The SMTP client session (RFC 5321, STARTTLS RFC 3207, PIPELINING RFC 2920):
// one object = one connection, which can carry several transactions.
//
// Cheap to include: only <boost/asio/awaitable.hpp>; sockets, TLS streams and
// timers live in client.cpp behind a pimpl.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

#include "base/result.hpp"
#include "base/text_source.hpp"
#include "smtp/reply.hpp"

struct ssl_st;
typedef struct ssl_st SSL;  // as OpenSSL declares it (openssl/types.h)

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace danemta::smtp {

// Where in the session something happened.
enum class Stage {
  connect,
  greeting,
  ehlo,
  helo,
  starttls,       // the STARTTLS command and its reply
  tls_handshake,  // prepare() and the TLS handshake
  mail,
  rcpt,
  data,  // the DATA command (354 expected)
  body,  // sending the message text
  dot,   // the reply to the final "."
  rset,
  quit,
};

std::string_view to_string(Stage s);

enum class FailureKind {
  connect_refused,       // ECONNREFUSED
  connect_failed,        // other connect errors (unreachable, bad address literal)
  connect_timeout,       //
  timeout,               // a command's reply (or a write) did not complete in time
  connection_closed,     // EOF or reset by the peer, or not connected
  protocol_error,        // unparseable reply, limits exceeded, unexpected reply or data
  tls_handshake_failed,  //
  tls_prepare_rejected,  // the caller's prepare() returned false
  rejected,              // the server answered 4xx/5xx (kept in `reply`)
  unsupported,           // the message cannot be sent as asked on this session (permanent)
  local_error,           // the message text could not be read here (transient)
};

std::string_view to_string(FailureKind k);

// A classified failure. Only a 5xx reply and `unsupported` are permanent:
// unknown means transient (DESIGN.md section 6).
struct Failure {
  FailureKind kind = FailureKind::connection_closed;
  Stage stage = Stage::connect;
  std::optional<Reply> reply;  // the server's reply, when there was one
  std::string message;         // human-readable detail

  Severity severity() const;
  bool permanent() const { return severity() == Severity::permanent; }
  // "rcpt: rejected: 550 5.1.1 no such user" - one line.
  std::string to_string() const;
};

template <class T>
using Outcome = tl::expected<T, Failure>;

// RFC 5321 section 4.5.3.2 timeouts as defaults, plus resource bounds. A
// timeout covers a whole reply (all its lines), not each read: a server that
// drips one byte at a time still runs out of time.
struct ClientConfig {
  using duration = std::chrono::steady_clock::duration;
  duration connect = std::chrono::seconds(30);  // not in RFC 5321; Postfix's default
  duration greeting = std::chrono::minutes(5);
  duration ehlo = std::chrono::minutes(5);
  duration starttls = std::chrono::minutes(2);  // the reply and the handshake, each
  duration mail = std::chrono::minutes(5);
  duration rcpt = std::chrono::minutes(5);
  duration data_init = std::chrono::minutes(2);
  duration data_block = std::chrono::minutes(3);  // each write of the message text
  duration dot = std::chrono::minutes(10);
  duration rset = std::chrono::minutes(2);
  duration quit = std::chrono::seconds(30);
  ReplyLimits reply_limits{};
  // The local address connections are made from, per family of the server's
  // address (IP literals; empty: the kernel chooses).
  std::string source_address;
  std::string source_address6;
  std::size_t transcript_entries = 32;       // commands and replies kept
  std::size_t transcript_entry_bytes = 512;  // each entry is truncated to this
};

struct Envelope {
  std::string mail_from;  // without <>; empty = null reverse-path (bounces)
  std::vector<std::string> recipients;
  // The submitter declared BODY=8BITMIME (RFC 6152): sent as such where
  // 8BITMIME is offered, whatever the text holds.
  bool body_8bitmime = false;
  // The submitter asked for SMTPUTF8 (RFC 6531): sent where offered; where
  // not, the message goes only if neither its addresses nor its header
  // section hold non-ASCII text (else FailureKind::unsupported, 5.6.7).
  bool smtputf8 = false;
};

// The fate of one recipient in one transaction.
struct RecipientResult {
  std::string address;
  // Where it was decided: rcpt (RCPT refused), data (DATA refused), dot (the
  // end-of-data reply, which applies to every accepted recipient).
  Stage stage = Stage::rcpt;
  Reply reply;  // the deciding reply
  bool delivered() const { return stage == Stage::dot && reply.code >= 200 && reply.code < 300; }
};

struct SendResult {
  std::vector<RecipientResult> recipients;  // same order as Envelope::recipients
  // The end-of-data reply (or the DATA command's refusal); absent when no
  // recipient was accepted and DATA was therefore not used.
  std::optional<Reply> data_reply;
};

// Contract: one Client is driven by one coroutine at a time, on an io_context
// run by a single thread, and outlives the operation it is awaiting. Every
// expected failure comes back as a Failure value; after a Failure whose kind
// is not `rejected` or `unsupported`, the connection is closed.
class Client {
 public:
  explicit Client(boost::asio::io_context& io, ClientConfig config = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to an IPv4/IPv6 address literal (DNS is the caller's business:
  // it must be DNSSEC-validated) and reads the greeting (RFC 5321 3.1: 220
  // expected; 554 or anything else is `rejected`). Returns the greeting.
  boost::asio::awaitable<Outcome<Reply>> connect(std::string address, std::uint16_t port);

  // EHLO, falling back to HELO when EHLO gets a 5xx (RFC 5321 4.1.1.1); the
  // HELO path has no extensions. Call again after starttls().
  boost::asio::awaitable<Outcome<Capabilities>> ehlo(std::string helo_name);

  // STARTTLS (RFC 3207): expects 220, then calls prepare(ssl) so the caller
  // can set SNI, DANE TLSA records and verification on the SSL* (false =
  // abort, `tls_prepare_rejected`), then runs the client handshake. Bytes the
  // server sent after the 220 in clear are a protocol_error (RFC 3207 section
  // 5, response injection). Afterwards everything learnt before is void
  // (RFC 3207 4.2): the caller must ehlo() again before send().
  // `context` must outlive the connection.
  boost::asio::awaitable<Outcome<void>> starttls(boost::asio::ssl::context& context,
                                                 std::function<bool(SSL*)> prepare);

  // One mail transaction: MAIL FROM (SIZE= when SIZE is offered, BODY=8BITMIME
  // for 8-bit text or Envelope::body_8bitmime when 8BITMIME is offered,
  // SMTPUTF8 for non-ASCII addresses or Envelope::smtputf8 when offered - else
  // `unsupported` where the addresses or header section need it), RCPT TO for each recipient, DATA,
  // the text dot-stuffed and CRLF-normalised (RFC 5321 4.5.2, 2.3.8) and ended by CRLF.CRLF. With
  // PIPELINING, MAIL, all RCPTs and DATA go in one write and the replies are read in order (RFC
  // 2920). A Failure means the whole message failed here (MAIL refused, unsupported, or the session
  // broke); otherwise each recipient's fate is in the result. `message` must stay valid until the
  // operation completes. An RSET is sent first when an earlier transaction was left open.
  boost::asio::awaitable<Outcome<SendResult>> send(Envelope envelope, std::string_view message);
  // The same with the text read in pieces (never held whole). It is read
  // once before MAIL FROM to learn whether it is 8-bit, then rewound; SIZE=
  // is text.size(). A read error before MAIL is `local_error` and leaves the
  // session usable; one while sending the text closes the connection without
  // the final "." (the server then discards the message), also `local_error`.
  // `text` must stay valid until the operation completes.
  boost::asio::awaitable<Outcome<SendResult>> send(Envelope envelope, TextSource& text);

  // RSET (RFC 5321 4.1.1.5).
  boost::asio::awaitable<Outcome<void>> rset();
  // QUIT (errors ignored: the mail is already delivered or not), then close().
  boost::asio::awaitable<void> quit();
  // Closes the connection at once. Idempotent.
  void close();

  bool connected() const;
  bool tls_active() const;
  // This side's address of the connection ("" when not connected): the
  // sending-mta-ip of TLS reports (RFC 8460 section 4.3).
  std::string local_address() const;
  // The TLS connection after a successful starttls() (for the DANE result,
  // SSL_get0_dane_authority etc.); nullptr before.
  SSL* ssl() const;
  // The capabilities of the last successful ehlo() since connect/starttls.
  const std::optional<Capabilities>& capabilities() const;
  // The last commands and replies, oldest first ("C: MAIL FROM:<a@b>",
  // "S: 250 2.1.0 Ok"); the message text is summarised by its size.
  std::vector<std::string> transcript() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the timeout watchdog's handler
};

}  // namespace danemta::smtp
