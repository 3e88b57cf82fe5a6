#include "smtp/server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

namespace danemta::smtp {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// RFC 5321 4.5.3.1.4 allows 512 octets per command line; longer lines are
// accepted up to this bound (without the line ending), then refused.
constexpr std::size_t kMaxCommandLine = 4096;
constexpr std::size_t kReadChunk = 16 * 1024;
// Replies are batched (RFC 2920 section 3.2) but written once this much is pending.
constexpr std::size_t kMaxPendingReplies = 64 * 1024;
// Bound for the one write that follows a refusal or a timeout (421, 554).
constexpr Clock::duration kGoodbyeTimeout = std::chrono::seconds(10);
// Pause after an accept() error other than a closed acceptor (EMFILE...).
constexpr Clock::duration kAcceptRetryDelay = std::chrono::milliseconds(100);

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Text from elsewhere (Accept's error message) made safe for one reply line.
std::string reply_text(std::string_view s, std::string_view fallback) {
  constexpr std::size_t kMax = 400;
  std::string out;
  for (const char c : s.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  const std::string_view t = trim(out);
  return t.empty() ? std::string(fallback) : std::string(t);
}

// A reverse- or forward-path (RFC 5321 4.1.2) at the start of `s`: "<...>"
// with the source route dropped (RFC 5321 4.1.1.3, appendix C) and the rest
// of the line (the parameters) after it.
struct Path {
  std::string address;
  std::string_view rest;
};

std::optional<Path> parse_path(std::string_view s) {
  if (s.empty() || s.front() != '<') return std::nullopt;
  bool quoted = false;
  std::size_t i = 1;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\' && i + 1 < s.size()) {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == '>') {
      break;
    } else if (c == ' ' || c == '<') {
      return std::nullopt;
    }
  }
  if (i >= s.size()) return std::nullopt;
  std::string_view address = s.substr(1, i - 1);
  const std::string_view rest = s.substr(i + 1);
  if (!rest.empty() && rest.front() != ' ') return std::nullopt;
  if (has_control(address)) return std::nullopt;
  if (!address.empty() && address.front() == '@') {
    const auto colon = address.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    address.remove_prefix(colon + 1);
  }
  return Path{std::string(address), rest};
}

// A mailbox (RFC 5321 4.1.2) as far as a relay needs to know: one '@'
// outside a quoted local part, with text on both sides.
bool valid_mailbox(std::string_view a) {
  const auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) return false;
  const std::string_view local = a.substr(0, at);
  if (local.front() != '"' && local.find('@') != std::string_view::npos) return false;
  return true;
}

// "KEY[=VALUE]" parameters after a path (RFC 5321 4.1.2 Mail-parameters).
struct Param {
  std::string_view key;
  std::optional<std::string_view> value;
};

std::vector<Param> split_params(std::string_view s) {
  std::vector<Param> params;
  for (;;) {
    s = trim(s);
    if (s.empty()) return params;
    const auto end = std::min(s.find(' '), s.size());
    const std::string_view word = s.substr(0, end);
    s.remove_prefix(end);
    const auto eq = word.find('=');
    if (eq == std::string_view::npos) {
      params.push_back(Param{word, std::nullopt});
    } else {
      params.push_back(Param{word.substr(0, eq), word.substr(eq + 1)});
    }
  }
}

std::optional<std::uint64_t> parse_size(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

// The DATA text decoder (RFC 5321 4.5.2, 2.3.8). The text ends only at
// <CRLF>.<CRLF> (the DATA command's CRLF counts for an empty message); a dot
// after a bare LF or before a bare LF ends nothing (no SMTP smuggling, as
// Postfix's smtpd_forbid_bare_newline = normalize). Bare LF line ends become
// CRLF; a leading dot is removed from every line. Beyond `max` bytes of
// decoded text the rest is read and dropped, and overflow() is true.
class DataDecoder {
 public:
  explicit DataDecoder(std::size_t max) : max_(max) {}

  // Consumes bytes up to and including the end-of-data line; returns how
  // many were consumed (all of `in` unless done()).
  std::size_t feed(std::string_view in) {
    std::size_t i = 0;
    while (i < in.size() && !done_) {
      const char c = in[i];
      switch (state_) {
        case State::bol:
          if (c == '.') {
            state_ = State::bol_dot;
            ++i;
          } else {
            state_ = State::mid;
          }
          continue;
        case State::bol_dot:
          if (c == '\r') {
            state_ = State::bol_dot_cr;
            ++i;
          } else if (c == '\n') {
            end_line(false);
            ++i;
          } else {
            state_ = State::mid;
          }
          continue;
        case State::bol_dot_cr:
          if (c == '\n') {
            ++i;
            if (after_crlf_) {
              done_ = true;
            } else {
              end_line(true);
            }
          } else {
            state_ = State::mid_cr;
          }
          continue;
        case State::mid: {
          const auto stop = std::min(in.find_first_of("\r\n", i), in.size());
          emit(in.substr(i, stop - i));
          i = stop;
          if (i == in.size()) continue;
          if (in[i] == '\r') {
            state_ = State::mid_cr;
          } else {
            end_line(false);
          }
          ++i;
          continue;
        }
        case State::mid_cr:
          if (c == '\n') {
            end_line(true);
            ++i;
            continue;
          }
          emit("\r");  // a bare CR stays text
          if (c == '\r') {
            ++i;
          } else {
            state_ = State::mid;
          }
          continue;
      }
    }
    return i;
  }

  bool done() const { return done_; }
  bool overflow() const { return overflow_; }
  std::string take() { return std::move(data_); }

 private:
  enum class State {
    bol,         // at the start of a line
    bol_dot,     // a line's leading "."
    bol_dot_cr,  // "." CR at the start of a line
    mid,         // inside a line
    mid_cr,      // a CR inside a line
  };

  void end_line(bool crlf) {
    emit("\r\n");
    after_crlf_ = crlf;
    state_ = State::bol;
  }

  void emit(std::string_view s) {
    if (overflow_ || s.empty()) return;
    if (data_.size() + s.size() > max_) {
      overflow_ = true;
      std::string().swap(data_);
      return;
    }
    data_.append(s);
  }

  std::size_t max_;
  State state_ = State::bol;
  bool after_crlf_ = true;
  bool done_ = false;
  bool overflow_ = false;
  std::string data_;
};

enum class Io { ok, timeout, closed };

// What the session does after a command.
enum class Next {
  read,   // read the next command
  data,   // DATA was accepted (354 queued): receive the text
  close,  // send what is pending and hang up (QUIT, 421)
};

struct Line {
  enum class Kind { line, too_long, timeout, closed };
  Kind kind = Kind::closed;
  std::string text;  // without the line ending
};

// One connection. Contract: driven by one coroutine at a time; the socket's
// executor serialises it with the watchdog (a strand, or a one-thread
// io_context). Owned by a shared_ptr in serve()'s frame; the watchdog holds
// a weak_ptr.
struct Session : std::enable_shared_from_this<Session> {
  Session(tcp::socket s, ServerConfig c, Accept a)
      : socket(std::move(s)),
        timer(socket.get_executor()),
        config(std::move(c)),
        accept(std::move(a)) {}

  tcp::socket socket;
  asio::steady_timer timer;
  ServerConfig config;
  Accept accept;
  std::uint64_t watchdog_generation = 0;
  bool watchdog_fired = false;

  std::string in;  // bytes read, not yet consumed from `pos` on
  std::size_t pos = 0;
  std::string out;  // replies not yet written

  std::string client;
  std::string helo;  // empty until EHLO/HELO
  bool in_transaction = false;
  std::string mail_from;
  std::vector<std::string> recipients;
  std::size_t errors = 0;

  // The watchdog bounds one whole operation: at `deadline` it cancels the
  // socket's pending I/O. The generation check makes a late expiry harmless.
  void arm(Clock::time_point deadline) {
    const std::uint64_t generation = ++watchdog_generation;
    watchdog_fired = false;
    timer.expires_at(deadline);
    timer.async_wait([weak = weak_from_this(), generation](const error_code& ec) {
      if (ec) return;
      const auto self = weak.lock();
      if (!self || self->watchdog_generation != generation) return;
      self->watchdog_fired = true;
      error_code ignored;
      self->socket.cancel(ignored);
    });
  }

  void disarm() {
    ++watchdog_generation;
    timer.cancel();
  }

  void close() {
    disarm();
    error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  void reply(std::string_view line) {
    out.append(line);
    out += "\r\n";
  }

  // RFC 5321 4.1.4: the transaction (not the EHLO state) is forgotten.
  void reset_transaction() {
    in_transaction = false;
    mail_from.clear();
    recipients.clear();
  }

  // A refused command that counts towards max_errors. The last one allowed
  // is answered "421 4.7.0" instead, and the connection is closed.
  Next bad(std::string_view line) {
    ++errors;
    if (errors >= config.max_errors) {
      reply("421 4.7.0 " + config.hostname + " too many errors");
      return Next::close;
    }
    reply(line);
    return Next::read;
  }

  asio::awaitable<Io> flush(Clock::duration timeout) {
    if (out.empty()) co_return Io::ok;
    arm(Clock::now() + timeout);
    const auto result = co_await asio::async_write(socket, asio::buffer(out), use_tuple);
    const bool timed_out = watchdog_fired;
    disarm();
    out.clear();
    if (out.capacity() > kMaxPendingReplies) std::string().swap(out);
    if (std::get<0>(result)) co_return timed_out ? Io::timeout : Io::closed;
    co_return Io::ok;
  }

  // Writes pending replies (RFC 2920 3.2: before waiting for input), then
  // appends up to kReadChunk bytes to `in`, by `deadline`.
  asio::awaitable<Io> fill(Clock::time_point deadline) {
    if (const Io w = co_await flush(config.command_timeout); w != Io::ok) co_return Io::closed;
    in.erase(0, pos);
    pos = 0;
    const std::size_t old = in.size();
    in.resize(old + kReadChunk);
    arm(deadline);
    const auto result =
        co_await socket.async_read_some(asio::buffer(in.data() + old, kReadChunk), use_tuple);
    const bool timed_out = watchdog_fired;
    disarm();
    in.resize(old + std::get<1>(result));
    if (std::get<0>(result)) co_return timed_out ? Io::timeout : Io::closed;
    co_return Io::ok;
  }

  // One command line ending in CRLF or a bare LF. A line over
  // kMaxCommandLine is dropped up to its end and reported as too_long.
  asio::awaitable<Line> read_command(Clock::time_point deadline) {
    if (out.size() > kMaxPendingReplies) {
      if (co_await flush(config.command_timeout) != Io::ok) co_return Line{};
    }
    bool discarding = false;
    for (;;) {
      const auto nl = in.find('\n', pos);
      if (nl != std::string::npos) {
        std::size_t end = nl;
        if (end > pos && in[end - 1] == '\r') --end;
        const std::size_t start = pos;
        pos = nl + 1;
        if (discarding || end - start > kMaxCommandLine) co_return Line{Line::Kind::too_long, {}};
        co_return Line{Line::Kind::line, in.substr(start, end - start)};
      }
      if (discarding || in.size() - pos > kMaxCommandLine + 1) {
        discarding = true;
        in.clear();
        pos = 0;
      }
      switch (co_await fill(deadline)) {
        case Io::ok:
          break;
        case Io::timeout:
          co_return Line{Line::Kind::timeout, {}};
        case Io::closed:
          co_return Line{};
      }
    }
  }

  Next ehlo(std::string_view arg, bool extended) {
    if (arg.empty()) {
      return bad(extended ? "501 5.5.4 Syntax: EHLO domain" : "501 5.5.4 Syntax: HELO domain");
    }
    if (has_control(arg)) return bad("501 5.5.4 Invalid domain");
    helo = std::string(arg);
    reset_transaction();  // RFC 5321 4.1.4
    if (!extended) {
      reply("250 " + config.hostname);
      return Next::read;
    }
    // RFC 2920, RFC 1870, RFC 6152, RFC 2034, RFC 6531.
    reply("250-" + config.hostname);
    reply("250-PIPELINING");
    reply("250-SIZE " + std::to_string(config.max_message_bytes));
    reply("250-8BITMIME");
    reply("250-ENHANCEDSTATUSCODES");
    reply("250 SMTPUTF8");
    return Next::read;
  }

  Next mail(std::string_view arg) {
    if (helo.empty()) return bad("503 5.5.1 Error: send HELO/EHLO first");
    if (in_transaction) return bad("503 5.5.1 Error: nested MAIL command");
    if (!istarts_with(arg, "FROM:")) return bad("501 5.5.4 Syntax: MAIL FROM:<address>");
    // Lenient: "MAIL FROM: <a@b>" is common although RFC 5321 4.1.1.2 has no space.
    const auto path = parse_path(trim(arg.substr(5)));
    if (!path) return bad("501 5.5.4 Syntax: MAIL FROM:<address>");
    if (!path->address.empty() && !valid_mailbox(path->address)) {
      return bad("501 5.1.7 Bad sender address syntax");
    }
    for (const Param& p : split_params(path->rest)) {
      if (iequals(p.key, "SIZE")) {  // RFC 1870 section 6
        const auto size = p.value ? parse_size(*p.value) : std::nullopt;
        if (!size) return bad("501 5.5.4 Bad SIZE parameter");
        if (*size > config.max_message_bytes) {
          reply("552 5.3.4 Message size exceeds fixed maximum message size");
          return Next::read;
        }
      } else if (iequals(p.key, "BODY")) {  // RFC 6152 section 3
        if (!p.value || !(iequals(*p.value, "8BITMIME") || iequals(*p.value, "7BIT"))) {
          return bad("501 5.5.4 Bad BODY parameter");
        }
      } else if (iequals(p.key, "SMTPUTF8")) {
        // RFC 6531 section 3.4. Non-ASCII addresses without it are accepted
        // too: the relay's client adds SMTPUTF8 where the addresses need it.
        if (p.value) return bad("501 5.5.4 Bad SMTPUTF8 parameter");
      } else {
        return bad("555 5.5.4 Unsupported MAIL parameter");  // RFC 5321 4.1.1.11
      }
    }
    in_transaction = true;
    mail_from = path->address;
    recipients.clear();
    reply("250 2.1.0 Ok");
    return Next::read;
  }

  Next rcpt(std::string_view arg) {
    if (!in_transaction) return bad("503 5.5.1 Error: need MAIL command");
    if (!istarts_with(arg, "TO:")) return bad("501 5.5.4 Syntax: RCPT TO:<address>");
    const auto path = parse_path(trim(arg.substr(3)));
    if (!path) return bad("501 5.5.4 Syntax: RCPT TO:<address>");
    if (!split_params(path->rest).empty()) return bad("555 5.5.4 Unsupported RCPT parameter");
    if (iequals(path->address, "postmaster")) {
      // RFC 5321 4.5.1 wants <postmaster> accepted; this relay has no local
      // mailboxes yet.
      reply("550 5.1.1 <postmaster>: no local mailboxes here");
      return Next::read;
    }
    if (!valid_mailbox(path->address)) return bad("501 5.1.3 Bad recipient address syntax");
    if (recipients.size() >= config.max_recipients) {
      reply("452 4.5.3 Error: too many recipients");  // RFC 5321 4.5.3.1.10
      return Next::read;
    }
    recipients.push_back(path->address);
    reply("250 2.1.5 Ok");
    return Next::read;
  }

  Next data(std::string_view arg) {
    if (!arg.empty()) return bad("501 5.5.4 Syntax: DATA");
    if (!in_transaction) return bad("503 5.5.1 Error: need MAIL command");
    if (recipients.empty()) {
      reply("554 5.5.1 Error: no valid recipients");  // RFC 2920 3.1
      return Next::read;
    }
    reply("354 End data with <CR><LF>.<CR><LF>");
    return Next::data;
  }

  // RFC 5321 4.1.1 commands and 4.2 reply codes, RFC 3463 status codes.
  Next command(std::string_view line) {
    const auto space = std::min(line.find(' '), line.size());
    const std::string_view verb = line.substr(0, space);
    const std::string_view arg = trim(line.substr(space));
    if (iequals(verb, "EHLO")) return ehlo(arg, true);
    if (iequals(verb, "HELO")) return ehlo(arg, false);
    if (iequals(verb, "MAIL")) return mail(arg);
    if (iequals(verb, "RCPT")) return rcpt(arg);
    if (iequals(verb, "DATA")) return data(arg);
    if (iequals(verb, "RSET")) {
      if (!arg.empty()) return bad("501 5.5.4 Syntax: RSET");
      reset_transaction();
      reply("250 2.0.0 Ok");
      return Next::read;
    }
    if (iequals(verb, "NOOP")) {
      reply("250 2.0.0 Ok");
      return Next::read;
    }
    if (iequals(verb, "QUIT")) {
      reply("221 2.0.0 " + config.hostname + " closing connection");
      return Next::close;
    }
    if (iequals(verb, "VRFY")) {
      if (arg.empty()) return bad("501 5.5.4 Syntax: VRFY address");
      reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
      return Next::read;
    }
    if (iequals(verb, "HELP")) {
      reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
      return Next::read;
    }
    for (const std::string_view known : {"EXPN", "STARTTLS", "AUTH", "BDAT", "ETRN", "TURN"}) {
      if (iequals(verb, known)) return bad("502 5.5.1 Error: command not implemented");
    }
    return bad("500 5.5.2 Error: command not recognized");
  }

  // The DATA text after 354, then the reply to it (RFC 5321 4.1.1.4).
  asio::awaitable<Next> receive_data() {
    const auto deadline = Clock::now() + config.data_timeout;
    if (const Io w = co_await flush(config.command_timeout); w != Io::ok) co_return Next::close;
    DataDecoder decoder(config.max_message_bytes);
    for (;;) {
      pos += decoder.feed(std::string_view(in).substr(pos));
      if (decoder.done()) break;
      switch (co_await fill(deadline)) {
        case Io::ok:
          continue;
        case Io::timeout:
          reply("421 4.4.2 " + config.hostname + " timeout");
          co_return Next::close;
        case Io::closed:
          out.clear();
          co_return Next::close;
      }
    }
    if (in.capacity() > 4 * kReadChunk && in.size() - pos < kReadChunk) {
      in.erase(0, pos);
      pos = 0;
      in.shrink_to_fit();
    }
    if (decoder.overflow()) {
      reset_transaction();
      reply("552 5.3.4 Message size exceeds fixed maximum message size");  // RFC 1870
      co_return Next::read;
    }
    ReceivedMessage message{client, helo, std::move(mail_from), std::move(recipients),
                            decoder.take()};
    reset_transaction();  // RFC 5321 4.1.4: whatever the outcome
    Result<std::string> result = fail("no storage configured");
    if (accept) {
      try {
        auto stored = accept(std::move(message));
        result = co_await std::move(stored);
      } catch (const std::exception& e) {
        const std::string what = e.what();
        result = fail("internal error: " + what);
      }
    }
    if (result) {
      reply("250 2.0.0 Ok: queued as " + reply_text(*result, "?"));
      co_return Next::read;
    }
    switch (result.error().severity) {
      case Severity::transient:
        if (result.error().cause == Cause::storage_full) {
          reply("452 4.3.1 Insufficient system storage");  // RFC 3463 X.3.1
          break;
        }
        reply("451 4.3.0 " + reply_text(result.error().message, "Temporary failure"));
        break;
      case Severity::permanent: {
        // An error that starts with its own enhanced status code (RFC 3463,
        // e.g. "5.4.6 ...") is answered with it; others with 5.3.0.
        const std::string text = reply_text(result.error().message, "Message refused");
        const bool coded = text.size() > 6 && text[0] == '5' && text[1] == '.' &&
                           text.find(' ') != std::string::npos &&
                           text.find_first_not_of("0123456789.") == text.find(' ');
        reply("554 " + (coded ? text : "5.3.0 " + text));
        break;
      }
    }
    co_return Next::read;
  }

  asio::awaitable<void> run() {
    error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    if (ec) {
      close();
      co_return;
    }
    client = peer.address().to_string();
    // Replies are batched, so Nagle's algorithm would only add delay.
    socket.set_option(tcp::no_delay(true), ec);
    reply("220 " + config.hostname + " ESMTP danemta");  // RFC 5321 4.3.1
    for (;;) {
      const auto deadline = Clock::now() + config.command_timeout;
      Line line = co_await read_command(deadline);
      Next next = Next::read;
      switch (line.kind) {
        case Line::Kind::line:
          next = command(line.text);
          break;
        case Line::Kind::too_long:
          next = bad("500 5.5.2 Error: line too long");  // RFC 5321 4.5.3.1.4
          break;
        case Line::Kind::timeout:
          reply("421 4.4.2 " + config.hostname + " timeout");  // RFC 5321 4.5.3.2
          next = Next::close;
          break;
        case Line::Kind::closed:
          close();
          co_return;
      }
      if (next == Next::data) next = co_await receive_data();
      if (next == Next::close) {
        co_await flush(kGoodbyeTimeout);
        close();
        co_return;
      }
    }
  }

  // RFC 5321 3.1: the 554 greeting, then the connection is closed.
  asio::awaitable<void> refuse() {
    reply("554 5.7.1 " + config.hostname + " relay access denied");
    co_await flush(kGoodbyeTimeout);
    close();
  }
};

asio::awaitable<void> deny(tcp::socket socket, ServerConfig config) {
  const auto session = std::make_shared<Session>(std::move(socket), std::move(config), Accept{});
  co_await session->refuse();
}

}  // namespace

asio::awaitable<void> serve(tcp::socket socket, ServerConfig config, Accept accept) {
  const auto session =
      std::make_shared<Session>(std::move(socket), std::move(config), std::move(accept));
  co_await session->run();
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, ServerConfig config, Accept accept,
                             std::function<bool(const asio::ip::address&)> allowed) {
  for (;;) {
    // Each connection gets its own strand: its session and its watchdog
    // never run concurrently, even on a multi-threaded io_context.
    const asio::any_io_executor strand = asio::make_strand(acceptor.get_executor());
    auto [ec, socket] = co_await acceptor.async_accept(strand, use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      asio::steady_timer pause(acceptor.get_executor(), kAcceptRetryDelay);
      co_await pause.async_wait(use_tuple);
      if (!acceptor.is_open()) co_return;
      continue;
    }
    error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    if (peer_ec) continue;  // already gone
    if (!allowed || !allowed(peer.address())) {
      asio::co_spawn(strand, deny(std::move(socket), config), asio::detached);
      continue;
    }
    asio::co_spawn(strand, serve(std::move(socket), config, accept), asio::detached);
  }
}

}  // namespace danemta::smtp
