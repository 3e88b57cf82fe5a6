#include "smtp/client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <tuple>
#include <utility>

#include "smtp/data.hpp"
#include "smtp/watchdog.hpp"

namespace danemta::smtp {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBodyChunk = 64 * 1024;

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// What an OpenSSL call that did not complete asks for: the socket to become
// readable or writable, or nothing (then `ec` holds the error).
enum class Want { read, write, none };

// After SSL_connect/SSL_read_ex/SSL_write_ex returned `rc` (failure). The
// error codes are those asio::ssl uses, so messages and checks stay the same:
// eof for the server's close_notify, stream_truncated for a TCP close
// without one.
Want ssl_want(SSL* ssl, int rc, error_code& ec) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      return Want::read;
    case SSL_ERROR_WANT_WRITE:
      return Want::write;
    case SSL_ERROR_ZERO_RETURN:
      ec = asio::error::eof;
      return Want::none;
    case SSL_ERROR_SYSCALL:
      if (const unsigned long e = ERR_get_error(); e != 0) {
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      } else if (saved_errno != 0) {
        ec = error_code(saved_errno, boost::system::system_category());
      } else {
        ec = asio::ssl::error::stream_truncated;
      }
      return Want::none;
    default: {
      // SSL_ERROR_SSL, or a condition this client never asks for (an X.509
      // lookup, async jobs): a failure in any case, never a success code.
      const unsigned long e = ERR_get_error();
      if (e == 0) {
        ec = boost::system::errc::make_error_code(boost::system::errc::protocol_error);
      } else if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ec = asio::ssl::error::stream_truncated;
      } else {
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      }
      ERR_clear_error();
      return Want::none;
    }
  }
}

tl::unexpected<Failure> failed(FailureKind kind, Stage stage, std::string message,
                               std::optional<Reply> reply = std::nullopt) {
  return tl::unexpected<Failure>(Failure{kind, stage, std::move(reply), std::move(message)});
}

bool is_2xx(const Reply& r) {
  return r.code >= 200 && r.code < 300;
}

// A reply other than the one the command expects: the server's refusal when
// it is 4xx/5xx, a protocol error otherwise (e.g. 354 to RCPT).
tl::unexpected<Failure> refused(Stage stage, Reply reply) {
  if (reply.transient() || reply.permanent()) {
    return failed(FailureKind::rejected, stage, "server refused", std::move(reply));
  }
  return failed(FailureKind::protocol_error, stage, "unexpected reply", std::move(reply));
}

// Text that goes into a command line: no control characters, so that a
// name or address can never inject a command (RFC 5321 2.3.8, 4.1.2).
bool safe_in_command(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// What a message's text holds, learnt in one pass over its pieces: any octet
// over 127 (RFC 6152), and any in the header section, which ends at the
// first empty line (RFC 6532).
struct TextScan {
  bool eight_bit = false;
  bool header_8bit = false;
  bool in_header = true;
  std::size_t line_length = 0;  // octets of the current header line so far

  void feed(std::string_view piece) {
    std::size_t i = 0;
    for (; in_header && i < piece.size(); ++i) {
      const char c = piece[i];
      if (c == '\n') {
        if (line_length == 0) in_header = false;
        line_length = 0;
      } else if (c != '\r') {
        ++line_length;
        if (static_cast<unsigned char>(c) >= 0x80) header_8bit = eight_bit = true;
      }
    }
    if (!eight_bit) eight_bit = !is_ascii(piece.substr(i));
  }
};

// RFC 1870 section 3: the size in octets with CRLF line endings, without
// dot-stuffing or the terminating ".CRLF".
std::uint64_t normalized_size(std::string_view m) {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r' && i + 1 < m.size() && m[i + 1] == '\n') {
      n += 2;
      ++i;
    } else if (m[i] == '\r' || m[i] == '\n') {
      n += 2;
    } else {
      ++n;
    }
  }
  if (!m.empty() && m.back() != '\n' && m.back() != '\r') n += 2;
  return n;
}

std::string one_line(const Reply& r) {
  std::string s = r.to_string();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

std::string_view to_string(Stage s) {
  switch (s) {
    case Stage::connect:
      return "connect";
    case Stage::greeting:
      return "greeting";
    case Stage::ehlo:
      return "ehlo";
    case Stage::helo:
      return "helo";
    case Stage::starttls:
      return "starttls";
    case Stage::tls_handshake:
      return "tls-handshake";
    case Stage::mail:
      return "mail";
    case Stage::rcpt:
      return "rcpt";
    case Stage::data:
      return "data";
    case Stage::body:
      return "body";
    case Stage::dot:
      return "dot";
    case Stage::rset:
      return "rset";
    case Stage::quit:
      return "quit";
  }
  return "unknown";
}

std::string_view to_string(FailureKind k) {
  switch (k) {
    case FailureKind::connect_refused:
      return "connection refused";
    case FailureKind::connect_failed:
      return "connect failed";
    case FailureKind::connect_timeout:
      return "connect timeout";
    case FailureKind::timeout:
      return "timeout";
    case FailureKind::connection_closed:
      return "connection closed";
    case FailureKind::protocol_error:
      return "protocol error";
    case FailureKind::tls_handshake_failed:
      return "TLS handshake failed";
    case FailureKind::tls_prepare_rejected:
      return "TLS setup refused";
    case FailureKind::rejected:
      return "rejected";
    case FailureKind::unsupported:
      return "unsupported";
    case FailureKind::local_error:
      return "local error";
  }
  return "unknown";
}

Severity Failure::severity() const {
  switch (kind) {
    case FailureKind::rejected:
      return reply && reply->permanent() ? Severity::permanent : Severity::transient;
    case FailureKind::unsupported:
      return Severity::permanent;
    case FailureKind::connect_refused:
    case FailureKind::connect_failed:
    case FailureKind::connect_timeout:
    case FailureKind::timeout:
    case FailureKind::connection_closed:
    case FailureKind::protocol_error:
    case FailureKind::tls_handshake_failed:
    case FailureKind::tls_prepare_rejected:
    case FailureKind::local_error:
      return Severity::transient;
  }
  return Severity::transient;
}

std::string Failure::to_string() const {
  std::string s(smtp::to_string(stage));
  s += ": ";
  s += smtp::to_string(kind);
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  if (reply) {
    s += ": ";
    s += one_line(*reply);
  }
  return s;
}

struct Client::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, ClientConfig c)
      : config(std::move(c)),
        socket(io),
        watchdog(socket.get_executor()),
        parser(config.reply_limits) {}

  ClientConfig config;
  tcp::socket socket;  // the connection; after STARTTLS, OpenSSL reads and writes it
  // TLS straight on the socket's descriptor: OpenSSL does the non-blocking
  // reads and writes, the event loop only waits for the socket to be ready.
  // It keeps no buffers of its own (asio::ssl::stream keeps two of 17 KiB
  // and a BIO pair with two more), so an idle session costs OpenSSL's state
  // only: SSL_MODE_RELEASE_BUFFERS frees the record buffers between records.
  SslPtr tls;
  Watchdog watchdog;
  ReplyParser parser;
  std::array<char, 4096> buffer{};
  bool is_connected = false;

  // One mail transaction (Client::send), the text read from `text`.
  asio::awaitable<Outcome<SendResult>> send_text(Envelope envelope, TextSource& text,
                                                 std::size_t size, TextScan scan);
  bool transaction_open = false;  // MAIL accepted, transaction not finished: RSET first
  std::optional<Capabilities> caps;
  std::deque<std::string> log;

  tcp::socket& lowest() { return socket; }

  // Waits until the socket is as OpenSSL asked (`want` is read or write).
  asio::awaitable<error_code> wait_for(Want want) {
    const auto [ec] = co_await socket.async_wait(
        want == Want::read ? tcp::socket::wait_read : tcp::socket::wait_write, use_tuple);
    co_return ec;
  }

  asio::awaitable<error_code> tls_handshake() {
    for (;;) {
      ERR_clear_error();
      errno = 0;  // SSL_ERROR_SYSCALL reads it
      const int rc = SSL_connect(tls.get());
      if (rc == 1) co_return error_code{};
      error_code ec;
      const Want want = ssl_want(tls.get(), rc, ec);
      if (want == Want::none) co_return ec;
      if (ec = co_await wait_for(want); ec) co_return ec;
    }
  }

  asio::awaitable<std::tuple<error_code, std::size_t>> tls_read_some() {
    for (;;) {
      ERR_clear_error();
      errno = 0;  // SSL_ERROR_SYSCALL reads it
      std::size_t n = 0;
      const int rc = SSL_read_ex(tls.get(), buffer.data(), buffer.size(), &n);
      if (rc == 1) co_return std::tuple<error_code, std::size_t>{error_code{}, n};
      error_code ec;
      const Want want = ssl_want(tls.get(), rc, ec);
      if (want == Want::none) co_return std::tuple<error_code, std::size_t>{ec, 0};
      if (ec = co_await wait_for(want); ec) co_return std::tuple<error_code, std::size_t>{ec, 0};
    }
  }

  // Without SSL_MODE_ENABLE_PARTIAL_WRITE a write completes whole or not at
  // all; a retry after WANT_* passes the same arguments, as OpenSSL requires.
  asio::awaitable<error_code> tls_write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      ERR_clear_error();
      errno = 0;  // SSL_ERROR_SYSCALL reads it
      std::size_t n = 0;
      const int rc = SSL_write_ex(tls.get(), bytes.data(), bytes.size(), &n);
      if (rc == 1) {
        bytes.remove_prefix(n);
        continue;
      }
      error_code ec;
      const Want want = ssl_want(tls.get(), rc, ec);
      if (want == Want::none) co_return ec;
      if (ec = co_await wait_for(want); ec) co_return ec;
    }
    co_return error_code{};
  }

  // Bounds one whole operation: at `deadline` the socket's pending I/O is
  // cancelled (smtp/watchdog.hpp).
  void arm(Clock::time_point deadline) {
    watchdog.arm(deadline, weak_from_this(), [this]() {
      error_code ignored;
      lowest().cancel(ignored);
    });
  }
  void disarm() { watchdog.disarm(); }

  void close_connection() {
    disarm();
    error_code ignored;
    lowest().close(ignored);
    tls.reset();
    is_connected = false;
    transaction_open = false;
    caps.reset();
    parser.reset();
  }

  void record(std::string_view prefix, std::string_view text) {
    if (config.transcript_entries == 0) return;
    std::string entry(prefix);
    entry.append(text.substr(0, config.transcript_entry_bytes));
    if (text.size() > config.transcript_entry_bytes) entry += "...";
    if (log.size() >= config.transcript_entries) log.pop_front();
    log.push_back(std::move(entry));
  }

  // Classifies a failed socket/TLS operation and closes the connection.
  Failure io_failure(Stage stage, const error_code& ec, std::string_view doing) {
    const bool timed_out = watchdog.fired();
    close_connection();
    std::string what(doing);
    if (timed_out) return Failure{FailureKind::timeout, stage, std::nullopt, "timed out " + what};
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      return Failure{FailureKind::connection_closed, stage, std::nullopt,
                     "connection closed by the server " + what};
    }
    return Failure{FailureKind::connection_closed, stage, std::nullopt, what + ": " + ec.message()};
  }

  asio::awaitable<std::tuple<error_code, std::size_t>> read_some() {
    if (tls) co_return co_await tls_read_some();
    co_return co_await socket.async_read_some(asio::buffer(buffer), use_tuple);
  }

  asio::awaitable<Outcome<void>> write_all(Stage stage, std::string_view bytes,
                                           Clock::duration timeout) {
    if (!is_connected) {
      co_return failed(FailureKind::connection_closed, stage, "not connected");
    }
    arm(Clock::now() + timeout);
    error_code ec;
    if (tls) {
      ec = co_await tls_write_all(bytes);
    } else {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), use_tuple);
    }
    disarm();
    if (ec) co_return tl::unexpected(io_failure(stage, ec, "while sending"));
    co_return Outcome<void>{};
  }

  // Sends command lines (several when pipelining), each recorded.
  asio::awaitable<Outcome<void>> send_commands(Stage stage, std::vector<std::string> lines,
                                               Clock::duration timeout) {
    std::string wire;
    for (const auto& line : lines) {
      record("C: ", line);
      wire += line;
      wire += "\r\n";
    }
    co_return co_await write_all(stage, wire, timeout);
  }

  // One complete reply within `timeout` (for all its lines together).
  asio::awaitable<Outcome<Reply>> read_reply(Stage stage, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto reply = parser.next()) {
        record("S: ", reply->to_string());
        co_return std::move(*reply);
      }
      if (const auto e = parser.error()) {
        close_connection();
        co_return failed(FailureKind::protocol_error, stage, std::string(smtp::to_string(*e)));
      }
      if (!is_connected) {
        co_return failed(FailureKind::connection_closed, stage, "not connected");
      }
      arm(deadline);
      const auto [ec, n] = co_await read_some();
      disarm();
      if (ec) co_return tl::unexpected(io_failure(stage, ec, "while waiting for the reply"));
      parser.feed(std::string_view(buffer.data(), n));
    }
  }

  asio::awaitable<Outcome<Reply>> command(Stage stage, std::string line, Clock::duration timeout) {
    std::vector<std::string> lines;
    lines.push_back(std::move(line));
    if (auto w = co_await send_commands(stage, std::move(lines), timeout); !w) {
      co_return tl::unexpected(std::move(w.error()));
    }
    co_return co_await read_reply(stage, timeout);
  }

  asio::awaitable<Outcome<void>> do_rset() {
    auto r = co_await command(Stage::rset, "RSET", config.rset);
    if (!r) co_return tl::unexpected(std::move(r.error()));
    if (!is_2xx(*r)) co_return refused(Stage::rset, std::move(*r));
    transaction_open = false;
    co_return Outcome<void>{};
  }

  // Writes the message text (Stage::body), then reads the end-of-data reply.
  // A read error closes the connection before the final "." (RFC 5321
  // 4.1.1.4: the server must then not deliver the partial text).
  asio::awaitable<Outcome<Reply>> send_body(TextSource& text) {
    record("C: ", "<message text, " + std::to_string(text.size()) + " bytes>");
    DataEncoder encoder;
    std::string piece;
    std::string chunk;
    // A small message needs no 64 KiB buffer (dot-stuffing and the final
    // "." add a little).
    chunk.reserve(std::min(kBodyChunk, text.size() + text.size() / 16 + 64) + 8);
    while (!encoder.done()) {
      if (encoder.needs_input()) {
        piece.clear();
        auto n = text.read(piece, kBodyChunk);
        if (!n) {
          close_connection();
          co_return failed(FailureKind::local_error, Stage::body, n.error().message);
        }
        encoder.input(piece, *n == 0);
        continue;
      }
      chunk.clear();
      encoder.fill(chunk, kBodyChunk);
      if (chunk.empty()) continue;
      if (auto w = co_await write_all(Stage::body, chunk, config.data_block); !w) {
        co_return tl::unexpected(std::move(w.error()));
      }
    }
    record("C: ", ".");
    transaction_open = false;
    // The final reply can take minutes (RFC 5321 4.5.3.2.6: 10); a session
    // waiting for it keeps no text buffers.
    std::string().swap(piece);
    std::string().swap(chunk);
    co_return co_await read_reply(Stage::dot, config.dot);
  }

  // RFC 2920 3.1: DATA was accepted although nothing else was; a lone "."
  // ends it. Its reply says nothing about any recipient.
  asio::awaitable<Outcome<void>> abort_data() {
    record("C: ", ".");
    if (auto w = co_await write_all(Stage::dot, ".\r\n", config.data_block); !w) {
      co_return tl::unexpected(std::move(w.error()));
    }
    transaction_open = false;
    auto r = co_await read_reply(Stage::dot, config.dot);
    if (!r) co_return tl::unexpected(std::move(r.error()));
    co_return Outcome<void>{};
  }
};

Client::Client(asio::io_context& io, ClientConfig config)
    : impl_(std::make_shared<Impl>(io, std::move(config))) {}

Client::~Client() {
  impl_->close_connection();
}

bool Client::connected() const {
  return impl_->is_connected;
}
std::string Client::local_address() const {
  boost::system::error_code ec;
  auto ep = impl_->lowest().local_endpoint(ec);
  return ec ? std::string() : ep.address().to_string();
}
bool Client::tls_active() const {
  return impl_->tls != nullptr && impl_->is_connected;
}
SSL* Client::ssl() const {
  return tls_active() ? impl_->tls.get() : nullptr;
}
const std::optional<Capabilities>& Client::capabilities() const {
  return impl_->caps;
}
std::vector<std::string> Client::transcript() const {
  return {impl_->log.begin(), impl_->log.end()};
}
void Client::close() {
  impl_->close_connection();
}

asio::awaitable<Outcome<Reply>> Client::connect(std::string address, std::uint16_t port) {
  const std::shared_ptr<Impl> self = impl_;
  self->close_connection();
  error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec)
    co_return failed(FailureKind::connect_failed, Stage::connect, "not an IP address: " + address);
  self->record("C: ", "connect " + address + " port " + std::to_string(port));
  const std::string& source =
      ip.is_v4() ? self->config.source_address : self->config.source_address6;
  if (!source.empty()) {
    const auto local = asio::ip::make_address(source, ec);
    if (!ec) self->socket.open(ip.is_v4() ? tcp::v4() : tcp::v6(), ec);
    if (!ec) self->socket.bind(tcp::endpoint(local, 0), ec);
    if (ec) {
      self->close_connection();
      co_return failed(FailureKind::connect_failed, Stage::connect,
                       "cannot connect from source address " + source + ": " + ec.message());
    }
  }
  self->arm(Clock::now() + self->config.connect);
  const auto [cec] = co_await self->socket.async_connect(tcp::endpoint(ip, port), use_tuple);
  const bool timed_out = self->watchdog.fired();
  self->disarm();
  if (cec) {
    self->close_connection();
    if (timed_out) co_return failed(FailureKind::connect_timeout, Stage::connect, "no answer");
    if (cec == asio::error::connection_refused) {
      co_return failed(FailureKind::connect_refused, Stage::connect, cec.message());
    }
    co_return failed(FailureKind::connect_failed, Stage::connect, cec.message());
  }
  self->is_connected = true;
  // The last data write and small commands must not wait for delayed ACKs.
  self->socket.set_option(tcp::no_delay(true), ec);
  auto greeting = co_await self->read_reply(Stage::greeting, self->config.greeting);
  if (!greeting) co_return tl::unexpected(std::move(greeting.error()));
  // RFC 5321 3.1: 220 opens the session; 554 (or anything else) refuses it.
  if (greeting->code != 220) co_return refused(Stage::greeting, std::move(*greeting));
  co_return std::move(*greeting);
}

asio::awaitable<Outcome<Capabilities>> Client::ehlo(std::string helo_name) {
  const std::shared_ptr<Impl> self = impl_;
  if (helo_name.empty() || !safe_in_command(helo_name)) {
    co_return failed(FailureKind::unsupported, Stage::ehlo, "invalid EHLO name");
  }
  self->caps.reset();
  auto reply = co_await self->command(Stage::ehlo, "EHLO " + helo_name, self->config.ehlo);
  if (!reply) co_return tl::unexpected(std::move(reply.error()));
  if (is_2xx(*reply)) {
    self->caps = parse_ehlo(*reply);
    co_return *self->caps;
  }
  // RFC 5321 4.1.1.1: a server that does not know EHLO answers 5xx; HELO then.
  if (!reply->permanent()) co_return refused(Stage::ehlo, std::move(*reply));
  auto helo = co_await self->command(Stage::helo, "HELO " + helo_name, self->config.ehlo);
  if (!helo) co_return tl::unexpected(std::move(helo.error()));
  if (!is_2xx(*helo)) co_return refused(Stage::helo, std::move(*helo));
  self->caps = Capabilities{};
  co_return *self->caps;
}

asio::awaitable<Outcome<void>> Client::starttls(asio::ssl::context& context,
                                                std::function<bool(SSL*)> prepare) {
  const std::shared_ptr<Impl> self = impl_;
  if (self->tls) {
    co_return failed(FailureKind::protocol_error, Stage::starttls, "TLS is already active");
  }
  auto reply = co_await self->command(Stage::starttls, "STARTTLS", self->config.starttls);
  if (!reply) co_return tl::unexpected(std::move(reply.error()));
  if (reply->code != 220) co_return refused(Stage::starttls, std::move(*reply));
  // RFC 3207 section 5: nothing may follow the 220 in clear; bytes that do
  // would be read as if they came through TLS (response injection).
  if (self->parser.ready() > 0 || self->parser.partial()) {
    self->close_connection();
    co_return failed(FailureKind::protocol_error, Stage::starttls,
                     "data after the STARTTLS reply, before the TLS handshake");
  }
  // RFC 3207 4.2: what was learnt in clear is discarded.
  self->caps.reset();
  self->transaction_open = false;
  error_code nb;
  self->socket.non_blocking(true, nb);
  self->tls.reset(SSL_new(context.native_handle()));
  if (nb || !self->tls || SSL_set_fd(self->tls.get(), self->socket.native_handle()) != 1) {
    self->close_connection();
    co_return failed(FailureKind::tls_prepare_rejected, Stage::tls_handshake,
                     "cannot set up TLS on the connection" + (nb ? ": " + nb.message() : ""));
  }
  SSL_set_connect_state(self->tls.get());
  // One read() per burst of records instead of two per record (header, then
  // body); the buffer is still released once it is empty.
  SSL_set_read_ahead(self->tls.get(), 1);
  if (prepare && !prepare(self->tls.get())) {
    self->close_connection();
    co_return failed(FailureKind::tls_prepare_rejected, Stage::tls_handshake,
                     "the TLS parameters could not be set");
  }
  self->arm(Clock::now() + self->config.starttls);
  const error_code ec = co_await self->tls_handshake();
  const bool timed_out = self->watchdog.fired();
  self->disarm();
  if (ec) {
    std::string message = ec.message();
    const long verify = SSL_get_verify_result(self->tls.get());
    if (verify != X509_V_OK) {
      message += " (certificate verification: ";
      message += X509_verify_cert_error_string(verify);
      message += ")";
    }
    self->close_connection();
    if (timed_out) {
      co_return failed(FailureKind::timeout, Stage::tls_handshake, "TLS handshake timed out");
    }
    co_return failed(FailureKind::tls_handshake_failed, Stage::tls_handshake, std::move(message));
  }
  self->record("C: ", std::string("<TLS ") + SSL_get_version(self->tls.get()) + " " +
                          SSL_get_cipher_name(self->tls.get()) + ">");
  co_return Outcome<void>{};
}

asio::awaitable<Outcome<SendResult>> Client::send(Envelope envelope, std::string_view message) {
  ViewSource text(message);
  TextScan scan;
  scan.feed(message);
  co_return co_await impl_->send_text(std::move(envelope), text, normalized_size(message), scan);
}

asio::awaitable<Outcome<SendResult>> Client::send(Envelope envelope, TextSource& text) {
  // One pass to learn whether the text is 8-bit (RFC 6152) and whether its
  // header section is (RFC 6532), before MAIL.
  TextScan scan;
  std::string piece;
  for (;;) {
    piece.clear();
    auto n = text.read(piece, kBodyChunk);
    if (!n) co_return failed(FailureKind::local_error, Stage::mail, n.error().message);
    if (*n == 0) break;
    scan.feed(piece);
  }
  if (auto r = text.rewind(); !r)
    co_return failed(FailureKind::local_error, Stage::mail, r.error().message);
  co_return co_await impl_->send_text(std::move(envelope), text, text.size(), scan);
}

asio::awaitable<Outcome<SendResult>> Client::Impl::send_text(Envelope envelope, TextSource& text,
                                                             std::size_t size, TextScan scan) {
  const std::shared_ptr<Impl> self = shared_from_this();
  if (!self->is_connected) {
    co_return failed(FailureKind::connection_closed, Stage::mail, "not connected");
  }
  if (!self->caps) {
    co_return failed(FailureKind::protocol_error, Stage::mail, "send() before ehlo()");
  }
  if (envelope.recipients.empty()) {
    co_return failed(FailureKind::unsupported, Stage::rcpt, "no recipients");
  }
  bool needs_utf8 = !is_ascii(envelope.mail_from);
  if (!safe_in_command(envelope.mail_from)) {
    co_return failed(FailureKind::unsupported, Stage::mail, "control character in the sender");
  }
  for (const auto& rcpt : envelope.recipients) {
    if (rcpt.empty() || !safe_in_command(rcpt)) {
      co_return failed(FailureKind::unsupported, Stage::rcpt, "invalid recipient address");
    }
    needs_utf8 = needs_utf8 || !is_ascii(rcpt);
  }
  const Capabilities offered = *self->caps;
  // RFC 6531 section 3.4: non-ASCII addresses only to an SMTPUTF8 server.
  if (needs_utf8 && !offered.smtputf8) {
    co_return failed(FailureKind::unsupported, Stage::mail,
                     "non-ASCII address and the server does not offer SMTPUTF8 (RFC 6531)");
  }
  // RFC 6532: a message submitted with SMTPUTF8 whose header section is
  // UTF-8 needs an SMTPUTF8 server too (one that is all ASCII goes anyway).
  if (envelope.smtputf8 && scan.header_8bit && !offered.smtputf8) {
    co_return failed(FailureKind::unsupported, Stage::mail,
                     "UTF-8 header fields (SMTPUTF8 message) and the server does not offer "
                     "SMTPUTF8 (RFC 6532)");
  }
  const bool eight_bit = scan.eight_bit || envelope.body_8bitmime;
  const bool send_utf8 = offered.smtputf8 && (needs_utf8 || envelope.smtputf8);
  if (self->transaction_open) {
    if (auto r = co_await self->do_rset(); !r) co_return tl::unexpected(std::move(r.error()));
  }

  std::string mail = "MAIL FROM:<" + envelope.mail_from + ">";
  if (offered.size) mail += " SIZE=" + std::to_string(size);        // RFC 1870
  if (offered.eightbitmime && eight_bit) mail += " BODY=8BITMIME";  // RFC 6152
  if (send_utf8) mail += " SMTPUTF8";
  // Without 8BITMIME the caller converts 8-bit text to 7-bit MIME first
  // (RFC 6152 section 3; delivery does); what arrives here goes as it is.

  SendResult result;
  result.recipients.reserve(envelope.recipients.size());
  std::size_t accepted = 0;
  const auto take_rcpt_reply = [&](std::string address, Reply reply) {
    if (is_2xx(reply)) ++accepted;
    result.recipients.push_back(RecipientResult{std::move(address), Stage::rcpt, std::move(reply)});
  };
  std::optional<Reply> data_reply;

  if (offered.pipelining) {
    // RFC 2920 3.1: MAIL, RCPT... and DATA (last) in one group; every reply is
    // read, in order, whatever the earlier ones said.
    std::vector<std::string> lines;
    lines.reserve(envelope.recipients.size() + 2);
    lines.push_back(mail);
    for (const auto& rcpt : envelope.recipients) lines.push_back("RCPT TO:<" + rcpt + ">");
    lines.emplace_back("DATA");
    if (auto w = co_await self->send_commands(Stage::mail, std::move(lines), self->config.mail);
        !w) {
      co_return tl::unexpected(std::move(w.error()));
    }
    auto mail_reply = co_await self->read_reply(Stage::mail, self->config.mail);
    if (!mail_reply) co_return tl::unexpected(std::move(mail_reply.error()));
    for (auto& rcpt : envelope.recipients) {
      auto r = co_await self->read_reply(Stage::rcpt, self->config.rcpt);
      if (!r) co_return tl::unexpected(std::move(r.error()));
      take_rcpt_reply(std::move(rcpt), std::move(*r));
    }
    auto d = co_await self->read_reply(Stage::data, self->config.data_init);
    if (!d) co_return tl::unexpected(std::move(d.error()));
    const bool mail_ok = is_2xx(*mail_reply);
    if (!mail_ok || accepted == 0) {
      if (d->code == 354) {
        if (auto a = co_await self->abort_data(); !a)
          co_return tl::unexpected(std::move(a.error()));
      } else {
        self->transaction_open = mail_ok;
      }
      if (!mail_ok) co_return refused(Stage::mail, std::move(*mail_reply));
      co_return result;
    }
    self->transaction_open = true;
    data_reply = std::move(*d);
  } else {
    auto mail_reply = co_await self->command(Stage::mail, mail, self->config.mail);
    if (!mail_reply) co_return tl::unexpected(std::move(mail_reply.error()));
    if (!is_2xx(*mail_reply)) co_return refused(Stage::mail, std::move(*mail_reply));
    self->transaction_open = true;
    for (auto& rcpt : envelope.recipients) {
      auto r = co_await self->command(Stage::rcpt, "RCPT TO:<" + rcpt + ">", self->config.rcpt);
      if (!r) co_return tl::unexpected(std::move(r.error()));
      take_rcpt_reply(std::move(rcpt), std::move(*r));
    }
    if (accepted == 0) co_return result;
    auto d = co_await self->command(Stage::data, "DATA", self->config.data_init);
    if (!d) co_return tl::unexpected(std::move(d.error()));
    data_reply = std::move(*d);
  }

  Stage decided_at = Stage::data;
  if (data_reply->code == 354) {
    auto final_reply = co_await self->send_body(text);
    if (!final_reply) co_return tl::unexpected(std::move(final_reply.error()));
    data_reply = std::move(*final_reply);
    decided_at = Stage::dot;
  }
  for (auto& r : result.recipients) {
    if (!is_2xx(r.reply)) continue;
    r.stage = decided_at;
    r.reply = *data_reply;
  }
  result.data_reply = std::move(data_reply);
  co_return result;
}

asio::awaitable<Outcome<void>> Client::rset() {
  const std::shared_ptr<Impl> self = impl_;
  co_return co_await self->do_rset();
}

asio::awaitable<void> Client::quit() {
  const std::shared_ptr<Impl> self = impl_;
  if (self->is_connected) {
    // RFC 5321 4.1.1.10: the reply does not matter to the mail.
    (void)co_await self->command(Stage::quit, "QUIT", self->config.quit);
  }
  self->close_connection();
}

}  // namespace danemta::smtp
