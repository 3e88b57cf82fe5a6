#include "smtp/server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "smtp/data.hpp"
#include "smtp/path.hpp"
#include "smtp/sasl.hpp"
#include "smtp/tally.hpp"
#include "smtp/watchdog.hpp"

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

enum class Io { ok, timeout, closed };

// What the session does after a command.
enum class Next {
  read,      // read the next command
  data,      // DATA was accepted (354 queued): receive the text
  starttls,  // STARTTLS was accepted (220 queued): the TLS handshake
  auth,      // AUTH was accepted: the SASL exchange
  close,     // send what is pending and hang up (QUIT, 421)
};

// Wipes a string that held a password or its encoding.
void wipe(std::string& s) {
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

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
  Session(tcp::socket s, ServerConfig c, Accept a, bool allowed)
      : socket(std::move(s)),
        watchdog(socket.get_executor()),
        config(std::move(c)),
        accept(std::move(a)),
        trusted(allowed) {}

  tcp::socket socket;  // the connection until STARTTLS moves it into `tls`
  std::optional<asio::ssl::stream<tcp::socket>> tls;
  Watchdog watchdog;
  ServerConfig config;
  Accept accept;

  std::string in;  // bytes read, not yet consumed from `pos` on
  std::size_t pos = 0;
  std::string out;  // replies not yet written

  std::string client;
  std::string helo;  // empty until EHLO/HELO
  bool in_transaction = false;
  std::string mail_from;
  std::vector<std::string> recipients;
  bool body_8bitmime = false;  // this transaction's MAIL parameters
  bool smtputf8 = false;
  std::size_t errors = 0;
  std::size_t junk = 0;      // junk commands since the last accepted message
  bool trusted = true;       // in the listener's allowed networks
  std::string tls_protocol;  // non-empty once TLS is up
  std::string tls_cipher;
  AuthCommand pending_auth;  // the AUTH command being carried out
  std::string sasl_method;   // non-empty once authenticated
  std::string sasl_username;

  // For the log (Postfix smtpd's words): the command being carried out
  // ("rcpt"; empty between commands), what the session was doing last
  // ("CONNECT", "RCPT", "END-OF-MESSAGE") for "lost connection after ...",
  // the first digit of the latest reply (0: none since the command began),
  // the counts for the last line, and whether that line was written.
  std::string current;
  std::string where = "CONNECT";
  char last_reply = 0;
  CommandTally tally;
  bool summarised = false;

  bool in_tls() const { return !tls_protocol.empty(); }
  bool authenticated() const { return !sasl_method.empty(); }
  tcp::socket& lowest() { return tls ? tls->next_layer() : socket; }

  // Bounds one whole operation: at `deadline` the socket's pending I/O is
  // cancelled (smtp/watchdog.hpp).
  void arm(Clock::time_point deadline) {
    watchdog.arm(deadline, weak_from_this(), [this]() {
      error_code ignored;
      lowest().cancel(ignored);
    });
  }
  void disarm() { watchdog.disarm(); }

  void close() {
    disarm();
    error_code ignored;
    lowest().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close(ignored);
  }

  void reply(std::string_view line) {
    out.append(line);
    out += "\r\n";
    last_reply = line.empty() ? '\0' : line.front();
  }

  // A command starts: `name` in lower case, "unknown" for none the server knows.
  void begin(std::string_view name) {
    current = std::string(name);
    where.clear();
    for (const char c : name) where += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    last_reply = '\0';
  }

  // The command ended: it succeeded when its final reply was 2xx.
  void end_command() {
    if (current.empty()) return;
    tally.count(current, last_reply == '2');
    current.clear();
  }

  // The session ends without QUIT or a 421 of ours: "timeout after RCPT
  // from unknown[192.0.2.1]", "lost connection after DATA from ...".
  void ended(std::string_view how) {
    log(std::string(how) + " after " + where + " from unknown[" + client + "]");
  }

  // The session's last line, once, with the command counts (the command
  // being carried out, if any, as failed).
  void summarise() {
    if (summarised || client.empty()) return;
    summarised = true;
    if (!current.empty()) last_reply = '\0';
    end_command();
    log("disconnect from unknown[" + client + "]" + tally.summary());
  }

  // RFC 5321 4.1.4: the transaction (not the EHLO state) is forgotten.
  void reset_transaction() {
    in_transaction = false;
    mail_from.clear();
    recipients.clear();
    body_8bitmime = false;
    smtputf8 = false;
  }

  // A refused command that counts towards max_errors. The last one allowed
  // is answered "421 4.7.0" instead, and the connection is closed.
  Next bad(std::string_view line) {
    ++errors;
    if (errors >= config.max_errors) {
      log("too many errors after " + where + " from unknown[" + client + "]");
      reply("421 4.7.0 " + config.hostname + " too many errors");
      return Next::close;
    }
    reply(line);
    return Next::read;
  }

  asio::awaitable<Io> flush(Clock::duration timeout) {
    if (out.empty()) co_return Io::ok;
    arm(Clock::now() + timeout);
    std::tuple<error_code, std::size_t> result;
    if (tls) {
      result = co_await asio::async_write(*tls, asio::buffer(out), use_tuple);
    } else {
      result = co_await asio::async_write(socket, asio::buffer(out), use_tuple);
    }
    const bool timed_out = watchdog.fired();
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
    const asio::mutable_buffer space = asio::buffer(in.data() + old, kReadChunk);
    std::tuple<error_code, std::size_t> result;
    if (tls) {
      result = co_await tls->async_read_some(space, use_tuple);
    } else {
      result = co_await socket.async_read_some(space, use_tuple);
    }
    const bool timed_out = watchdog.fired();
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
    // RFC 3207, RFC 4954 section 4: AUTH only where the password travels
    // encrypted.
    if (config.tls != Requirement::none && config.tls_context && !in_tls()) reply("250-STARTTLS");
    if (config.auth != Requirement::none && in_tls()) reply("250-AUTH PLAIN LOGIN");
    reply("250 SMTPUTF8");
    return Next::read;
  }

  void log(std::string_view line) const {
    if (config.log) config.log(line);
  }

  // A refused MAIL or RCPT: logged, and counted as an error when
  // `counts` (syntax) rather than policy or a limit.
  // `from` and `to` are "<mailbox>" or the client's text.
  Next reject(std::string_view verb, std::string_view from, std::string_view to, std::string line,
              bool counts) {
    std::string entry = "NOQUEUE: reject: " + std::string(verb) + " from unknown[" + client +
                        "]: " + line + "; from=" + reply_text(from, "<>");
    if (!to.empty()) entry += " to=" + reply_text(to, "<>");
    log(entry);
    if (counts) return bad(line);
    reply(line);
    return Next::read;
  }

  std::string from_log() const { return "<" + mail_from + ">"; }

  static std::string path_refusal(const PathError& e, bool sender) {
    if (e.kind == PathError::Kind::syntax) {
      return sender ? "501 5.5.4 Syntax: MAIL FROM:<address>"
                    : "501 5.5.4 Syntax: RCPT TO:<address>";
    }
    return (sender ? "501 5.1.7 Bad sender address syntax: "
                   : "501 5.1.3 Bad recipient address syntax: ") +
           e.detail;
  }

  Next mail(std::string_view arg) {
    if (helo.empty()) return bad("503 5.5.1 Error: send HELO/EHLO first");
    if (in_transaction) return bad("503 5.5.1 Error: nested MAIL command");
    if (!istarts_with(arg, "FROM:")) return bad("501 5.5.4 Syntax: MAIL FROM:<address>");
    // Lenient: "MAIL FROM: <a@b>" is common although RFC 5321 4.1.1.2 has no space.
    const std::string_view text = trim(arg.substr(5));
    const auto path = parse_path(text, PathKind::reverse);
    const std::string from = path ? "<" + path->mailbox + ">" : std::string(text);
    const auto refuse = [&](std::string line, bool counts) {
      return reject("MAIL", from, {}, std::move(line), counts);
    };
    if (config.tls == Requirement::required && !in_tls())
      return refuse("530 5.7.0 Must issue a STARTTLS command first", true);  // RFC 3207 4
    if (!authenticated() &&
        (config.auth == Requirement::required || (config.auth == Requirement::may && !trusted)))
      return refuse("530 5.7.0 Authentication required", true);  // RFC 4954 6
    if (!path) return refuse(path_refusal(path.error(), true), true);
    if (path->address_literal) {
      // Bounces to it could not be routed by DNS either.
      return refuse("553 5.1.7 address literals are not accepted: <" + path->mailbox + ">", false);
    }
    // An authenticated user sends only as the addresses listed for it.
    if (authenticated() && config.sender_allowed &&
        !config.sender_allowed(sasl_username, path->mailbox)) {
      return refuse("553 5.7.1 <" + path->mailbox +
                        ">: Sender address rejected: not owned by user " +
                        printable_user(sasl_username),
                    false);
    }
    bool eight_bit_body = false;
    bool utf8 = false;
    for (const Param& p : split_params(path->rest)) {
      if (iequals(p.key, "SIZE")) {  // RFC 1870 section 6
        const auto size = p.value ? parse_size(*p.value) : std::nullopt;
        if (!size) return refuse("501 5.5.4 Bad SIZE parameter", true);
        if (*size > config.max_message_bytes) {
          return refuse("552 5.3.4 Message size exceeds fixed maximum message size", false);
        }
      } else if (iequals(p.key, "BODY")) {  // RFC 6152 section 3
        if (!p.value || !(iequals(*p.value, "8BITMIME") || iequals(*p.value, "7BIT"))) {
          return refuse("501 5.5.4 Bad BODY parameter", true);
        }
        eight_bit_body = iequals(*p.value, "8BITMIME");
      } else if (iequals(p.key, "AUTH") && config.auth != Requirement::none) {
        // RFC 4954 section 5: the submitter's identity for the next hop;
        // danemta does not pass it on.
        if (!p.value || p.value->empty()) return refuse("501 5.5.4 Bad AUTH parameter", true);
      } else if (iequals(p.key, "SMTPUTF8")) {
        // RFC 6531 section 3.4. Non-ASCII addresses without it are accepted
        // too: the relay's client adds SMTPUTF8 where the addresses need it.
        if (p.value) return refuse("501 5.5.4 Bad SMTPUTF8 parameter", true);
        utf8 = true;
      } else {
        return refuse("555 5.5.4 Unsupported MAIL parameter", true);  // RFC 5321 4.1.1.11
      }
    }
    in_transaction = true;
    mail_from = path->mailbox;
    recipients.clear();
    body_8bitmime = eight_bit_body;
    smtputf8 = utf8;
    reply("250 2.1.0 Ok");
    return Next::read;
  }

  Next rcpt(std::string_view arg) {
    if (!in_transaction) return bad("503 5.5.1 Error: need MAIL command");
    if (!istarts_with(arg, "TO:")) return bad("501 5.5.4 Syntax: RCPT TO:<address>");
    const std::string_view text = trim(arg.substr(3));
    const auto path = parse_path(text, PathKind::forward);
    if (!path) return reject("RCPT", from_log(), text, path_refusal(path.error(), false), true);
    const std::string to = "<" + path->mailbox + ">";
    if (!split_params(path->rest).empty()) {
      return reject("RCPT", from_log(), to, "555 5.5.4 Unsupported RCPT parameter", true);
    }
    std::string mailbox = path->mailbox;
    if (path->postmaster && !config.postmaster.empty()) {
      mailbox = config.postmaster;
    } else if (path->postmaster) {
      // RFC 5321 4.5.1 wants <postmaster> accepted; this relay has no local
      // mailboxes yet.
      return reject("RCPT", from_log(), to, "550 5.1.1 <postmaster>: no local mailboxes here",
                    false);
    }
    if (path->address_literal) {
      return reject("RCPT", from_log(), to, "553 5.1.2 address literals are not accepted: " + to,
                    false);
    }
    if (recipients.size() >= config.max_recipients) {
      // RFC 5321 4.5.3.1.10
      return reject("RCPT", from_log(), to, "452 4.5.3 Error: too many recipients", false);
    }
    if (config.check_recipient) {
      if (std::string refusal = config.check_recipient(mailbox); !refusal.empty())
        return reject("RCPT", from_log(), to, std::move(refusal), false);
    }
    recipients.push_back(std::move(mailbox));
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

  // RFC 3207 section 4.
  Next starttls(std::string_view arg) {
    if (config.tls == Requirement::none) return bad("502 5.5.1 Error: command not implemented");
    if (!arg.empty()) return bad("501 5.5.4 Syntax: STARTTLS");
    if (in_tls()) return bad("554 5.5.1 Error: TLS already active");
    if (helo.empty()) return bad("503 5.5.1 Error: send HELO/EHLO first");
    if (in_transaction) return bad("503 5.5.1 Error: MAIL transaction in progress");
    if (!config.tls_context) {
      reply("454 4.7.0 TLS not available due to local problem");
      return Next::read;
    }
    reply("220 2.0.0 Ready to start TLS");
    return Next::starttls;
  }

  // RFC 4954 section 4.
  Next auth(std::string_view arg) {
    if (config.auth == Requirement::none) return bad("502 5.5.1 Error: command not implemented");
    if (helo.empty()) return bad("503 5.5.1 Error: send HELO/EHLO first");
    if (!in_tls())
      return bad("538 5.7.11 Encryption required for requested authentication mechanism");
    if (authenticated()) return bad("503 5.5.1 Error: already authenticated");
    if (in_transaction) return bad("503 5.5.1 Error: MAIL transaction in progress");
    AuthCommand c = parse_auth_command(arg);
    switch (c.problem) {
      case AuthCommand::Problem::none:
        break;
      case AuthCommand::Problem::syntax:
        return bad("501 5.5.4 Syntax: AUTH mechanism");
      case AuthCommand::Problem::unsupported:
        return bad("504 5.5.4 Unrecognized authentication type");
    }
    if (!config.authenticate) {
      reply("454 4.7.0 Temporary authentication failure");
      return Next::read;
    }
    pending_auth = std::move(c);
    return Next::auth;
  }

  // RFC 5321 4.1.1 commands and 4.2 reply codes, RFC 3463 status codes.
  Next command(std::string_view line) {
    const auto space = std::min(line.find(' '), line.size());
    const std::string_view verb = line.substr(0, space);
    const std::string_view arg = trim(line.substr(space));
    std::string_view name = "unknown";
    for (const std::string_view known :
         {"ehlo", "helo", "mail", "rcpt", "data", "quit", "starttls", "auth", "rset", "noop",
          "vrfy", "help", "expn", "bdat", "etrn", "turn"}) {
      if (iequals(verb, known)) name = known;
    }
    begin(name);
    if (iequals(verb, "EHLO")) return ehlo(arg, true);
    if (iequals(verb, "HELO")) return ehlo(arg, false);
    if (iequals(verb, "MAIL")) return mail(arg);
    if (iequals(verb, "RCPT")) return rcpt(arg);
    if (iequals(verb, "DATA")) return data(arg);
    if (iequals(verb, "QUIT")) {
      reply("221 2.0.0 " + config.hostname + " closing connection");
      return Next::close;
    }
    if (iequals(verb, "STARTTLS")) return starttls(arg);
    if (iequals(verb, "AUTH")) return auth(arg);
    // Everything below is a junk command.
    if (++junk > config.max_junk_commands) {
      log("too many junk commands after " + where + " from unknown[" + client + "]");
      reply("421 4.7.0 " + config.hostname + " Error: too many junk commands");
      return Next::close;
    }
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
    if (iequals(verb, "VRFY")) {
      if (arg.empty()) return bad("501 5.5.4 Syntax: VRFY address");
      reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
      return Next::read;
    }
    if (iequals(verb, "HELP")) {
      reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
      return Next::read;
    }
    for (const std::string_view known : {"EXPN", "BDAT", "ETRN", "TURN"}) {
      if (iequals(verb, known)) return bad("502 5.5.1 Error: command not implemented");
    }
    return bad("500 5.5.2 Error: command not recognized");
  }

  // The DATA text after 354, then the reply to it (RFC 5321 4.1.1.4).
  asio::awaitable<Next> receive_data() {
    const auto deadline = Clock::now() + config.data_timeout;
    if (const Io w = co_await flush(config.command_timeout); w != Io::ok) {
      ended("lost connection");
      co_return Next::close;
    }
    DataDecoder decoder(config.max_message_bytes);
    ReceivedMessage message;
    message.client = client;
    message.helo = helo;
    message.mail_from = mail_from;
    message.recipients = recipients;
    message.body_8bitmime = body_8bitmime;
    message.smtputf8 = smtputf8;
    message.tls_protocol = tls_protocol;
    message.tls_cipher = tls_cipher;
    message.sasl_method = sasl_method;
    message.sasl_username = sasl_username;
    message.service = config.service;
    if (config.sink) message.text = config.sink(message);
    for (;;) {
      pos += decoder.feed(std::string_view(in).substr(pos));
      if (message.text && decoder.overflow()) message.text.reset();  // discards the text
      if (message.text) {
        const std::string piece = decoder.take();
        if (!piece.empty()) message.text->write(piece);
      }
      if (decoder.done()) break;
      switch (co_await fill(deadline)) {
        case Io::ok:
          continue;
        case Io::timeout:
          ended("timeout");
          reply("421 4.4.2 " + config.hostname + " timeout");
          co_return Next::close;
        case Io::closed:
          ended("lost connection");
          out.clear();
          co_return Next::close;
      }
    }
    where = "END-OF-MESSAGE";
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
    message.size = decoder.size();
    if (!message.text) message.data = decoder.take();
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
      junk = 0;
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

  // The TLS handshake after "220 Ready to start TLS" (RFC 3207 section 4).
  asio::awaitable<Next> start_tls() {
    // Whatever followed the STARTTLS line in clear is dropped: executed
    // after the handshake it would pass for the TLS client's (CVE-2011-0411).
    if (pos < in.size()) {
      log("warning: unknown[" + client + "]: " + std::to_string(in.size() - pos) +
          " octet(s) sent after STARTTLS before the TLS handshake: discarded");
    }
    in.clear();
    pos = 0;
    if (co_await flush(config.command_timeout) != Io::ok) {
      ended("lost connection");
      last_reply = '\0';
      co_return Next::close;
    }
    tls.emplace(std::move(socket), *config.tls_context);
    arm(Clock::now() + config.command_timeout);
    const auto [ec] = co_await tls->async_handshake(asio::ssl::stream_base::server, use_tuple);
    const bool timed_out = watchdog.fired();
    disarm();
    if (ec) {
      // Nothing more can be said to the client: not in clear, not in TLS.
      log("SSL_accept error from unknown[" + client +
          "]: " + (timed_out ? std::string("timed out") : ec.message()));
      last_reply = '\0';
      close();
      co_return Next::close;
    }
    SSL* ssl = tls->native_handle();
    tls_protocol = SSL_get_version(ssl);
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
    tls_cipher = cipher != nullptr ? SSL_CIPHER_get_name(cipher) : "unknown";
    int algorithm_bits = 0;
    const int bits = cipher != nullptr ? SSL_CIPHER_get_bits(cipher, &algorithm_bits) : 0;
    log("Anonymous TLS connection established from unknown[" + client + "]: " + tls_protocol +
        " with cipher " + tls_cipher + " (" + std::to_string(bits) + "/" +
        std::to_string(algorithm_bits) + " bits)");
    // RFC 3207 section 4.2: what was said in clear is forgotten.
    helo.clear();
    reset_transaction();
    co_return Next::read;
  }

  // One client response in a SASL exchange: the line, or what the session
  // does instead (a too long line counts as an error; a timeout or a lost
  // connection ends the session).
  struct Response {
    std::optional<std::string> line;
    Next next = Next::read;
  };

  asio::awaitable<Response> read_response() {
    Line line = co_await read_command(Clock::now() + config.command_timeout);
    switch (line.kind) {
      case Line::Kind::line:
        co_return Response{std::move(line.text), Next::read};
      case Line::Kind::too_long:
        co_return Response{std::nullopt, bad("500 5.5.6 Authentication Exchange line is too long")};
      case Line::Kind::timeout:
        ended("timeout");
        reply("421 4.4.2 " + config.hostname + " timeout");
        co_return Response{std::nullopt, Next::close};
      case Line::Kind::closed:
        ended("lost connection");
        break;
    }
    co_return Response{std::nullopt, Next::close};
  }

  // A failed AUTH: logged in Postfix's words (log watchers know them),
  // with the user name the client gave but never the password.
  Next auth_failed(std::string_view mechanism, std::string_view user, std::string_view reason) {
    log("warning: unknown[" + client + "]: SASL " + std::string(mechanism) +
        " authentication failed: " + std::string(reason) +
        ", sasl_username=" + printable_user(user));
    return bad("535 5.7.8 Error: authentication failed");
  }

  // A client response decoded, or the reply when it is a cancellation or
  // no base64 (RFC 4954 section 4).
  std::optional<std::string> decoded(std::string& line, Next& next) {
    if (response_kind(line) == ResponseKind::cancel) {
      next = bad("501 5.7.0 Authentication aborted");
      return std::nullopt;
    }
    std::optional<std::string> octets = decode_response(line);
    wipe(line);
    if (!octets) next = bad("501 5.5.2 Cannot decode response");
    return octets;
  }

  // The SASL exchange of the AUTH command in `pending_auth`.
  asio::awaitable<Next> sasl_exchange() {
    const Mechanism mechanism = pending_auth.mechanism;
    std::optional<std::string> first = std::move(pending_auth.initial_response);
    pending_auth = AuthCommand{};
    const std::string name = mechanism == Mechanism::plain ? "PLAIN" : "LOGIN";
    Next next = Next::read;
    ParsedCredentials parsed;
    if (!first) {
      // PLAIN: an empty challenge; LOGIN: "Username:".
      reply(mechanism == Mechanism::plain ? "334 " : "334 VXNlcm5hbWU6");
      Response r = co_await read_response();
      if (!r.line) co_return r.next;
      first = std::move(r.line);
    }
    std::optional<std::string> message = decoded(*first, next);
    if (!message) co_return next;
    if (mechanism == Mechanism::plain) {
      parsed = parse_plain(*message);
      wipe(*message);
    } else {
      reply("334 UGFzc3dvcmQ6");  // "Password:"
      Response r = co_await read_response();
      if (!r.line) co_return r.next;
      std::optional<std::string> password = decoded(*r.line, next);
      if (!password) co_return next;
      parsed = check_login(std::move(*message), std::move(*password));
      wipe(*password);
    }
    Credentials& c = parsed.credentials;
    if (parsed.problem != CredentialProblem::none) {
      wipe(c.password);
      co_return auth_failed(name, c.user, to_string(parsed.problem));
    }
    Result<bool> ok = false;
    try {
      auto check = config.authenticate(c.user, c.password);
      ok = co_await std::move(check);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      ok = fail(what);
    }
    wipe(c.password);
    if (!ok) {
      log("warning: unknown[" + client + "]: SASL " + name +
          " authentication not checked: " + reply_text(ok.error().message, "unknown error") +
          ", sasl_username=" + printable_user(c.user));
      reply("454 4.7.0 Temporary authentication failure");
      co_return Next::read;
    }
    if (!*ok) co_return auth_failed(name, c.user, "authentication failure");
    sasl_method = name;
    sasl_username = std::move(c.user);
    reply("235 2.7.0 Authentication successful");
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
    log("connect from unknown[" + client + "]");
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
          begin("unknown");
          next = bad("500 5.5.2 Error: line too long");  // RFC 5321 4.5.3.1.4
          break;
        case Line::Kind::timeout:
          ended("timeout");
          reply("421 4.4.2 " + config.hostname + " timeout");  // RFC 5321 4.5.3.2
          next = Next::close;
          break;
        case Line::Kind::closed:
          ended("lost connection");
          summarise();
          close();
          co_return;
      }
      if (next == Next::data) next = co_await receive_data();
      if (next == Next::starttls) next = co_await start_tls();
      if (next == Next::auth) next = co_await sasl_exchange();
      end_command();
      if (next == Next::close) {
        co_await flush(kGoodbyeTimeout);
        summarise();
        close();
        co_return;
      }
    }
  }

  // RFC 5321 3.1 and 3.8: a 554 or 421 greeting, then the connection is closed.
  // The session's last line says it had no commands.
  asio::awaitable<void> refuse(std::string line) {
    error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    if (!ec) client = peer.address().to_string();
    reply(line);
    co_await flush(kGoodbyeTimeout);
    summarise();
    close();
  }
};

asio::awaitable<void> deny(tcp::socket socket, ServerConfig config, std::string line) {
  const auto session =
      std::make_shared<Session>(std::move(socket), std::move(config), Accept{}, false);
  co_await session->refuse(std::move(line));
}

// The sessions of one listen(), in all and per client address. Shared with
// the sessions' strands, hence the mutex.
struct Connections {
  std::mutex mutex;
  std::size_t total = 0;
  std::map<asio::ip::address, std::size_t> per_client;
};

// One session's place in Connections, given back when it is destroyed (with
// the session's coroutine frame, however the session ends).
class ConnectionSlot {
 public:
  ConnectionSlot(std::shared_ptr<Connections> table, asio::ip::address address)
      : table_(std::move(table)), address_(std::move(address)) {}
  ConnectionSlot(ConnectionSlot&& other) noexcept
      : table_(std::move(other.table_)), address_(other.address_) {}
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (!table_) return;
    const std::lock_guard lock(table_->mutex);
    --table_->total;
    const auto it = table_->per_client.find(address_);
    if (it != table_->per_client.end() && --it->second == 0) table_->per_client.erase(it);
  }

 private:
  std::shared_ptr<Connections> table_;
  asio::ip::address address_;
};

// A place for a session of `address`, or nothing when a limit is reached.
std::optional<ConnectionSlot> take_slot(const std::shared_ptr<Connections>& table,
                                        const asio::ip::address& address,
                                        const ServerConfig& config) {
  const std::lock_guard lock(table->mutex);
  if (config.max_connections != 0 && table->total >= config.max_connections) return std::nullopt;
  std::size_t& mine = table->per_client[address];
  if (config.max_connections_per_client != 0 && mine >= config.max_connections_per_client) {
    if (mine == 0) table->per_client.erase(address);
    return std::nullopt;
  }
  ++mine;
  ++table->total;
  return ConnectionSlot(table, address);
}

asio::awaitable<void> serve_counted(tcp::socket socket, ServerConfig config, Accept accept,
                                    bool allowed, ConnectionSlot slot) {
  const auto session =
      std::make_shared<Session>(std::move(socket), std::move(config), std::move(accept), allowed);
  co_await session->run();
  (void)slot;
}

}  // namespace

asio::awaitable<void> serve(tcp::socket socket, ServerConfig config, Accept accept) {
  const auto session =
      std::make_shared<Session>(std::move(socket), std::move(config), std::move(accept), true);
  co_await session->run();
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, ServerConfig config, Accept accept,
                             std::function<bool(const asio::ip::address&)> allowed) {
  const std::shared_ptr<const ServerConfig> fixed =
      std::make_shared<const ServerConfig>(std::move(config));
  Settings settings = [fixed]() { return fixed; };
  co_await listen(acceptor, std::move(settings), std::move(accept), std::move(allowed));
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, Settings settings, Accept accept,
                             std::function<bool(const asio::ip::address&)> allowed) {
  const auto connections = std::make_shared<Connections>();
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
    const asio::ip::address address = peer.address();
    const std::shared_ptr<const ServerConfig> current = settings();
    const ServerConfig& config = *current;
    // (The socket is a parameter: clang 14 cannot capture structured bindings.)
    const auto refuse = [&](tcp::socket& s, std::string line) {
      if (config.log) {
        config.log("connect from unknown[" + address.to_string() + "]");
        config.log("NOQUEUE: reject: CONNECT from unknown[" + address.to_string() + "]: " + line);
      }
      asio::co_spawn(strand, deny(std::move(s), config, std::move(line)), asio::detached);
    };
    // Where AUTH is offered anyone may connect, to authenticate.
    const bool in_allowed = allowed && allowed(address);
    if (!in_allowed && config.auth == Requirement::none) {
      refuse(socket, "554 5.7.1 " + config.hostname + " relay access denied");
      continue;
    }
    auto slot = take_slot(connections, address, config);
    if (!slot) {
      refuse(socket, "421 4.7.0 " + config.hostname + " Error: too many connections from " +
                         address.to_string());
      continue;
    }
    asio::co_spawn(strand,
                   serve_counted(std::move(socket), config, accept, in_allowed, std::move(*slot)),
                   asio::detached);
  }
}

}  // namespace danemta::smtp
