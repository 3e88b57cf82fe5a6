// A scriptable SMTP server for tests (RFC 5321, STARTTLS per RFC 3207), written with
// POSIX sockets and plain OpenSSL so that it shares no code with the client under test.
// It listens on one loopback address, serves each connection on its own thread, and
// records everything a test needs to prove what the client did (in particular that no
// MAIL command travelled in clear where TLS was mandatory).
#pragma once

#include "lab/certs.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace danemta::lab {

struct Session;

// The points where a Behaviour can override the server's reply or drop the connection.
enum class Stage { greeting, ehlo, helo, starttls, mail, rcpt, data, dot, rset, noop, quit };

// An SMTP reply. `text` may hold several lines separated by '\n'; each is sent as
// "code-line" except the last, "code line" (RFC 5321 4.2.1). Empty text sends "code".
struct Reply {
  int code = 250;
  std::string text;
};

struct Behaviour {
  std::string address = "127.0.0.10";    // IPv4 or IPv6 literal to bind
  std::uint16_t port = 0;                // 0: the kernel picks; see Receiver::port()
  std::string hostname = "mx1.example";  // in the greeting and the EHLO reply

  // No chain: STARTTLS is neither offered nor accepted (502).
  std::optional<Chain> chain;
  // Advertise STARTTLS in EHLO. Unset: advertised iff a chain is set. Advertising it
  // without a chain makes the handshake fail (the server has no certificate).
  std::optional<bool> offer_starttls;
  // Answer STARTTLS with 220, then close the TCP connection without handshaking.
  bool tls_abort = false;
  // TLS protocol bounds (TLS1_2_VERSION, TLS1_3_VERSION, ...); 0 = OpenSSL's default.
  int min_tls_version = 0;
  int max_tls_version = 0;

  // Reply overrides per stage (replacing the normal reply entirely; an EHLO override
  // replaces the extension list too). A non-2xx MAIL/RCPT, a non-354 DATA or a non-220
  // STARTTLS has its usual effect (no transaction, recipient not accepted, ...).
  std::map<Stage, Reply> replies;
  // RCPT reply per recipient address (the path between '<' and '>', compared
  // case-insensitively); takes precedence over replies[Stage::rcpt].
  std::map<std::string, Reply> rcpt_replies;
  // Close the connection as soon as this stage's command arrived (for Stage::dot: the
  // end-of-data line), without replying. Stage::greeting: close before the greeting.
  std::optional<Stage> drop_after;

  // EHLO keywords after the first line; STARTTLS is appended when offered (and not in TLS).
  std::vector<std::string> advertise = {"PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8"};

  // Hostile modes. Each replaces the normal dialogue from the point named, then the
  // connection is only drained (input discarded) until the client closes it or
  // idle_timeout passes.
  std::size_t greeting_line_bytes = 0;  // greeting "220 xxxx..." of this many bytes, no CRLF
  bool endless_multiline = false;       // answer EHLO with "250-..." lines forever
  bool garbage_greeting = false;        // 4 KiB of random bytes instead of a greeting
  bool reset_after_greeting = false;    // greeting, then close with RST (SO_LINGER 0)
  // Every byte of every reply sent separately, this many ms apart (normal dialogue).
  int slow_drip_ms = 0;

  // A connection with no input for this long is closed.
  std::chrono::milliseconds idle_timeout{15000};

  // false: Message::data stays empty (the size limit still applies). For
  // benchmarks, which count messages and need not keep thousands of bodies.
  bool keep_data = true;

  // Called on the connection's thread after each end-of-data (with the index of the
  // message in session.messages), before the reply is sent. Must not call back into
  // the Receiver.
  std::function<void(const Session&, std::size_t)> on_message;
};

struct Command {
  std::string line;  // verbatim, without the line terminator
  bool in_tls = false;
};

struct Message {
  std::string mail_from;             // reverse-path, without '<' '>'
  std::vector<std::string> rcpt_to;  // forward-paths that got a 2xx, in order
  // The content between DATA's 354 and the end-of-data line, byte for byte, with the
  // leading dot of each dot-stuffed line removed (RFC 5321 4.5.2).
  std::string data;
  bool in_tls = false;
  int reply_code = 0;  // what the server answered to the end-of-data line
};

// One TCP connection.
struct Session {
  std::string peer;  // "address port" of the client
  std::vector<Command> commands;
  bool starttls_completed = false;  // a TLS handshake after STARTTLS succeeded
  std::string tls_error;            // why the handshake failed, if it did
  std::string sni;                  // server_name the client sent ("" if none)
  std::string tls_version;          // e.g. "TLSv1.3", after a handshake
  std::string cipher;               // e.g. "TLS_AES_256_GCM_SHA384"
  // Bytes that followed STARTTLS in the same read, before the handshake (RFC 3207 5:
  // a protocol violation; discarded, never executed).
  std::string pipelined_after_starttls;
  std::vector<Message> messages;
  bool closed = false;  // the connection is over

  // True when some command with this verb (case-insensitive, e.g. "MAIL") arrived
  // before TLS.
  bool verb_in_clear(const std::string& verb) const;
};

class Receiver {
 public:
  // Binds and listens (throws std::system_error on failure), then serves in a
  // background thread until destroyed.
  explicit Receiver(Behaviour behaviour);
  // Stops accepting, interrupts every connection and joins all threads.
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  const std::string& address() const { return behaviour_.address; }
  std::uint16_t port() const { return port_; }
  const Behaviour& behaviour() const { return behaviour_; }

  // A snapshot of every connection so far, in accept order (open ones included).
  std::vector<Session> sessions() const;
  // Waits until at least `n` connections have been accepted and closed; false on timeout.
  bool wait_closed(std::size_t n,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  struct Impl;
  void accept_loop();
  void serve(int fd, std::size_t index);
  void publish(std::size_t index, const Session& s);

  Behaviour behaviour_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Impl> impl_;  // sockets, SSL_CTX, connection threads
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Session> sessions_;
  std::thread thread_;
};

}  // namespace danemta::lab
