// smtp::Client against a scripted SMTP server on 127.0.0.1: a thread with a
// plain POSIX socket that plays canned replies and records what it received.
#include "smtp/client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace danemta::smtp {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// --- OpenSSL helpers -------------------------------------------------------

struct SslFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
};
template <class T>
using Ssl = std::unique_ptr<T, SslFree>;

// A server SSL_CTX with a fresh self-signed P-256 certificate for mx.example.org.
Ssl<SSL_CTX> make_server_context() {
  Ssl<EVP_PKEY> key(EVP_EC_gen("P-256"));
  Ssl<X509> cert(X509_new());
  if (!key || !cert) return nullptr;
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mx.example.org"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return nullptr;
  Ssl<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx || SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1) {
    return nullptr;
  }
  return ctx;
}

// --- the scripted server ---------------------------------------------------

struct Step {
  enum class Op {
    send,           // text
    expect,         // read one line, which must start with text
    expect_batch,   // read `count` lines without answering in between (PIPELINING)
    read_data,      // read the DATA text up to and including CRLF.CRLF
    drip,           // send text one byte every `delay`
    flood,          // send `count` bytes of 'x' without a line end
    endless_lines,  // send "250-x" lines until `count` or the client goes away
    sleep,
    close,
    reset,             // RST instead of FIN
    tls,               // server side of the TLS handshake
    tls_close_notify,  // TLS close_notify, then close
  };
  Op op;
  std::string text{};
  std::size_t count = 0;
  std::chrono::milliseconds delay{0};
};

Step send(std::string t) {
  return {Step::Op::send, std::move(t)};
}
Step expect(std::string t) {
  return {Step::Op::expect, std::move(t)};
}
Step expect_batch(std::size_t n) {
  return {Step::Op::expect_batch, {}, n};
}
Step read_data() {
  return {Step::Op::read_data};
}
Step drip(std::string t, std::chrono::milliseconds d) {
  return {Step::Op::drip, std::move(t), 0, d};
}
Step flood(std::size_t n) {
  return {Step::Op::flood, {}, n};
}
Step endless_lines(std::size_t n) {
  return {Step::Op::endless_lines, {}, n};
}
Step pause(std::chrono::milliseconds d) {
  return {Step::Op::sleep, {}, 0, d};
}
Step close_conn() {
  return {Step::Op::close};
}
Step reset_conn() {
  return {Step::Op::reset};
}
Step tls() {
  return {Step::Op::tls};
}
Step tls_close_notify() {
  return {Step::Op::tls_close_notify};
}

class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<Step> script, SSL_CTX* tls_ctx = nullptr)
      : script_(std::move(script)), tls_ctx_(tls_ctx) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 4) != 0) {
      throw std::runtime_error("listen failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedServer() {
    join();
    ::close(listener_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  std::uint16_t port() const { return port_; }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Valid after join().
  std::vector<std::string> lines;    // command lines received, without CRLF
  std::vector<bool> lines_over_tls;  // per line
  std::vector<std::string> data;     // each DATA text, terminator included
  std::string sni;                   // server name the client sent in TLS
  std::string error;                 // what went wrong in the script

 private:
  bool write_all(std::string_view s) {
    while (!s.empty()) {
      const long n = ssl_ ? SSL_write(ssl_.get(), s.data(), static_cast<int>(s.size()))
                          : ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  bool fill() {
    char buf[4096];
    const long n = ssl_ ? SSL_read(ssl_.get(), buf, sizeof buf) : ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  bool read_line(std::string& line) {
    for (;;) {
      const auto pos = in_.find("\r\n");
      if (pos != std::string::npos) {
        line = in_.substr(0, pos);
        in_.erase(0, pos + 2);
        lines.push_back(line);
        lines_over_tls.push_back(ssl_ != nullptr);
        return true;
      }
      if (!fill()) return false;
    }
  }
  bool step(const Step& s) {
    switch (s.op) {
      case Step::Op::send:
        return write_all(s.text) || (error = "send failed", false);
      case Step::Op::expect: {
        std::string line;
        if (!read_line(line)) return error = "no line, expected " + s.text, false;
        if (line.rfind(s.text, 0) != 0)
          return error = "got " + line + ", expected " + s.text, false;
        return true;
      }
      case Step::Op::expect_batch: {
        std::string line;
        for (std::size_t i = 0; i < s.count; ++i) {
          if (!read_line(line)) return error = "batch incomplete", false;
        }
        return true;
      }
      case Step::Op::read_data: {
        for (;;) {
          std::size_t end = std::string::npos;
          if (in_.rfind(".\r\n", 0) == 0) {
            end = 3;
          } else if (const auto p = in_.find("\r\n.\r\n"); p != std::string::npos) {
            end = p + 5;
          }
          if (end != std::string::npos) {
            data.push_back(in_.substr(0, end));
            in_.erase(0, end);
            return true;
          }
          if (!fill()) return error = "data incomplete", false;
        }
      }
      case Step::Op::drip:
        for (const char c : s.text) {
          if (!write_all(std::string_view(&c, 1))) return true;  // the client gave up
          std::this_thread::sleep_for(s.delay);
        }
        return true;
      case Step::Op::flood: {
        const std::string chunk(64 * 1024, 'x');
        for (std::size_t sent = 0; sent < s.count; sent += chunk.size()) {
          if (!write_all(chunk)) return true;  // the client gave up: expected
        }
        return true;
      }
      case Step::Op::endless_lines: {
        std::string chunk;
        for (int i = 0; i < 1000; ++i) chunk += "250-x\r\n";
        for (std::size_t sent = 0; sent < s.count; sent += 1000) {
          if (!write_all(chunk)) return true;
        }
        return true;
      }
      case Step::Op::sleep:
        std::this_thread::sleep_for(s.delay);
        return true;
      case Step::Op::close:
        ssl_.reset();
        ::close(fd_);
        fd_ = -1;
        return true;
      case Step::Op::reset: {
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        ssl_.reset();
        ::close(fd_);
        fd_ = -1;
        return true;
      }
      case Step::Op::tls_close_notify:
        if (ssl_) SSL_shutdown(ssl_.get());
        ssl_.reset();
        ::close(fd_);
        fd_ = -1;
        return true;
      case Step::Op::tls: {
        if (!in_.empty()) return error = "bytes before the TLS handshake", false;
        ssl_.reset(SSL_new(tls_ctx_));
        SSL_set_fd(ssl_.get(), fd_);
        if (SSL_accept(ssl_.get()) != 1) return error = "TLS accept failed", false;
        if (const char* n = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name)) sni = n;
        return true;
      }
    }
    return false;
  }
  void run() {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) {
      error = "no connection";
      return;
    }
    fd_ = ::accept(listener_, nullptr, nullptr);
    timeval tv{5, 0};  // no step waits forever
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (const Step& s : script_) {
      if (fd_ < 0 || !step(s)) break;
    }
    ssl_.reset();
    if (fd_ >= 0) ::close(fd_);
  }

  std::vector<Step> script_;
  SSL_CTX* tls_ctx_;
  int listener_ = -1;
  int fd_ = -1;
  Ssl<SSL> ssl_;
  std::string in_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// --- running the client's coroutines to completion ---------------------------

template <class T>
T run(asio::io_context& io, asio::awaitable<T> op) {
  std::optional<T> out;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(op), [&](std::exception_ptr e, T value) {
    error = e;
    out.emplace(std::move(value));
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}

void run(asio::io_context& io, asio::awaitable<void> op) {
  std::exception_ptr error;
  asio::co_spawn(io, std::move(op), [&](std::exception_ptr e) { error = e; });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
}

ClientConfig fast_config() {
  ClientConfig c;
  c.connect = c.greeting = c.ehlo = c.starttls = c.mail = c.rcpt = c.data_init = c.data_block =
      c.dot = c.rset = c.quit = 3s;
  return c;
}

const char* const kGreeting = "220 mx.example.org ESMTP test\r\n";
const char* const kEhloPipelining =
    "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 "
    "ENHANCEDSTATUSCODES\r\n";
const char* const kEhloPlain = "250-mx.example.org\r\n250-8BITMIME\r\n250 SIZE\r\n";

class SmtpClient : public ::testing::Test {
 protected:
  asio::io_context io;

  // connect + EHLO against `server`, asserting success.
  void open(Client& c, ScriptedServer& server) {
    auto g = run(io, c.connect("127.0.0.1", server.port()));
    ASSERT_TRUE(g) << g.error().to_string();
    auto caps = run(io, c.ehlo("client.example.net"));
    ASSERT_TRUE(caps) << caps.error().to_string();
  }
};

TEST_F(SmtpClient, PipelinedTransactionDotStuffingAndCrlf) {
  ScriptedServer server({send(kGreeting), expect("EHLO client.example.net"), send(kEhloPipelining),
                         expect_batch(4),  // MAIL, RCPT, RCPT, DATA with no reply in between
                         send("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
                         read_data(), send("250 2.0.0 queued as ABC\r\n"), expect("QUIT"),
                         send("221 2.0.0 bye\r\n")});
  Client c(io, fast_config());
  open(c, server);
  ASSERT_TRUE(c.capabilities()->pipelining);
  const std::string message = "Subject: t\n\n.leading dot\nbare cr\rline\r\n..two\nlast";
  auto r = run(io, c.send(Envelope{"a@example.net", {"b@example.org", "c@example.org"}}, message));
  ASSERT_TRUE(r) << r.error().to_string();
  run(io, c.quit());
  EXPECT_FALSE(c.connected());
  server.join();
  ASSERT_EQ(server.error, "");
  ASSERT_EQ(r->recipients.size(), 2u);
  for (const auto& rcpt : r->recipients) {
    EXPECT_TRUE(rcpt.delivered());
    EXPECT_EQ(rcpt.stage, Stage::dot);
    EXPECT_EQ(rcpt.reply.enhanced, "2.0.0");
  }
  EXPECT_EQ(r->recipients[1].address, "c@example.org");
  ASSERT_TRUE(r->data_reply);
  EXPECT_EQ(r->data_reply->code, 250);
  // SIZE = CRLF-normalised length without stuffing (RFC 1870).
  const std::string normalised =
      "Subject: t\r\n\r\n.leading dot\r\nbare cr\r\nline\r\n..two\r\nlast\r\n";
  ASSERT_GE(server.lines.size(), 5u);
  EXPECT_EQ(server.lines[1], "MAIL FROM:<a@example.net> SIZE=" + std::to_string(normalised.size()));
  EXPECT_EQ(server.lines[2], "RCPT TO:<b@example.org>");
  EXPECT_EQ(server.lines[3], "RCPT TO:<c@example.org>");
  EXPECT_EQ(server.lines[4], "DATA");
  ASSERT_EQ(server.data.size(), 1u);
  EXPECT_EQ(server.data[0],
            "Subject: t\r\n\r\n..leading dot\r\nbare cr\r\nline\r\n...two\r\nlast\r\n.\r\n");
  const auto t = c.transcript();
  EXPECT_NE(std::find(t.begin(), t.end(), "S: 250 2.0.0 queued as ABC"), t.end());
}

TEST_F(SmtpClient, WithoutPipeliningOneCommandAtATime) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPlain), expect("MAIL FROM:<>"),
                         send("250 ok\r\n"), expect("RCPT TO:<b@example.org>"), send("250 ok\r\n"),
                         expect("DATA"), send("354 go\r\n"), read_data(), send("250 ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  // 8-bit text: BODY=8BITMIME (RFC 6152); empty sender: null reverse-path.
  const std::string message = "Subject: caf\xc3\xa9\r\n\r\n.\r\n";
  auto r = run(io, c.send(Envelope{"", {"b@example.org"}}, message));
  ASSERT_TRUE(r) << r.error().to_string();
  server.join();
  ASSERT_EQ(server.error, "");
  EXPECT_TRUE(r->recipients[0].delivered());
  EXPECT_EQ(server.lines[1],
            "MAIL FROM:<> SIZE=" + std::to_string(message.size()) + " BODY=8BITMIME");
  EXPECT_EQ(server.data[0], "Subject: caf\xc3\xa9\r\n\r\n..\r\n.\r\n");
}

TEST_F(SmtpClient, EmptyMessageIsJustTheTerminator) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250 mx\r\n"), expect("MAIL"),
                         send("250 ok\r\n"), expect("RCPT"), send("250 ok\r\n"), expect("DATA"),
                         send("354 go\r\n"), read_data(), send("250 ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, ""));
  ASSERT_TRUE(r) << r.error().to_string();
  server.join();
  ASSERT_EQ(server.data.size(), 1u);
  EXPECT_EQ(server.data[0], ".\r\n");
  EXPECT_EQ(server.lines[1], "MAIL FROM:<a@x>");  // no SIZE offered
}

// The text goes out in 64 KiB writes: stuffing and line endings must not
// depend on where a write ends.
TEST_F(SmtpClient, LargeMessageAcrossWrites) {
  std::string message;
  std::string expected;
  for (int i = 0; i < 30000; ++i) {
    const std::string line =
        (i % 3 == 0 ? "." : "") + std::string(static_cast<std::size_t>(i % 7), 'a');
    message += line + (i % 2 == 0 ? "\n" : "\r\n");
    expected += (i % 3 == 0 ? "." : "") + line + "\r\n";
  }
  message += std::string(100000, 'b');  // one line longer than a write
  expected += std::string(100000, 'b') + "\r\n.\r\n";
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect_batch(3),
                         send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), send("250 Ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, message));
  ASSERT_TRUE(r) << r.error().to_string();
  server.join();
  ASSERT_EQ(server.error, "");
  ASSERT_EQ(server.data.size(), 1u);
  EXPECT_EQ(server.data[0].size(), expected.size());
  EXPECT_TRUE(server.data[0] == expected);
}

TEST_F(SmtpClient, HeloFallbackAfter5xxToEhlo) {
  ScriptedServer server({send(kGreeting), expect("EHLO client.example.net"),
                         send("500 5.5.1 what?\r\n"), expect("HELO client.example.net"),
                         send("250 mx.example.org\r\n"), expect("MAIL FROM:<a@x>"),
                         send("250 ok\r\n"), expect("RCPT"), send("250 ok\r\n"), expect("DATA"),
                         send("354 go\r\n"), read_data(), send("250 ok\r\n")});
  Client c(io, fast_config());
  auto g = run(io, c.connect("127.0.0.1", server.port()));
  ASSERT_TRUE(g);
  auto caps = run(io, c.ehlo("client.example.net"));
  ASSERT_TRUE(caps) << caps.error().to_string();
  EXPECT_FALSE(caps->pipelining);
  EXPECT_FALSE(caps->starttls);
  EXPECT_FALSE(caps->size);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "hi\r\n"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->recipients[0].delivered());
  server.join();
  EXPECT_EQ(server.error, "");
}

TEST_F(SmtpClient, EhloTransientIsNotAFallback) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("421 4.3.2 busy\r\n")});
  Client c(io, fast_config());
  ASSERT_TRUE(run(io, c.connect("127.0.0.1", server.port())));
  auto caps = run(io, c.ehlo("client.example.net"));
  ASSERT_FALSE(caps);
  EXPECT_EQ(caps.error().kind, FailureKind::rejected);
  EXPECT_EQ(caps.error().stage, Stage::ehlo);
  EXPECT_FALSE(caps.error().permanent());
}

TEST_F(SmtpClient, OneOfTwoRecipientsRejected) {
  ScriptedServer server(
      {send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect_batch(4),
       send(
           "250 2.1.0 Ok\r\n550 5.1.1 <b@example.org>: no such user\r\n250 2.1.5 Ok\r\n354 go\r\n"),
       read_data(), send("250 2.0.0 Ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@example.org", "c@example.org"}}, "x\r\n"));
  ASSERT_TRUE(r) << r.error().to_string();
  server.join();
  EXPECT_EQ(server.error, "");
  const auto& bad = r->recipients[0];
  EXPECT_FALSE(bad.delivered());
  EXPECT_EQ(bad.stage, Stage::rcpt);
  EXPECT_EQ(bad.reply.code, 550);
  EXPECT_EQ(bad.reply.enhanced, "5.1.1");
  EXPECT_TRUE(bad.reply.permanent());
  EXPECT_TRUE(r->recipients[1].delivered());
}

TEST_F(SmtpClient, NoRecipientAcceptedPipelinedThenRsetAndReuse) {
  // RFC 2920 3.1: DATA accepted with no valid recipient gets a lone "."; a
  // second transaction on the same connection works.
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect_batch(3),
                         send("250 Ok\r\n550 5.1.1 no\r\n354 go\r\n"), expect("."),
                         send("554 5.5.1 no valid recipients\r\n"), expect_batch(3),
                         send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), send("250 Ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r1 = run(io, c.send(Envelope{"a@x", {"b@y"}}, "one\r\n"));
  ASSERT_TRUE(r1) << r1.error().to_string();
  EXPECT_FALSE(r1->recipients[0].delivered());
  EXPECT_FALSE(r1->data_reply);
  auto r2 = run(io, c.send(Envelope{"a@x", {"c@y"}}, "two\r\n"));
  ASSERT_TRUE(r2) << r2.error().to_string();
  EXPECT_TRUE(r2->recipients[0].delivered());
  server.join();
  EXPECT_EQ(server.error, "");
  EXPECT_EQ(server.data.size(), 1u);
}

TEST_F(SmtpClient, NoRecipientAcceptedThenRsetBeforeNextMail) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPlain), expect("MAIL"),
                         send("250 ok\r\n"), expect("RCPT"), send("450 4.2.1 later\r\n"),
                         expect("RSET"), send("250 ok\r\n"), expect("MAIL"), send("250 ok\r\n"),
                         expect("RCPT"), send("250 ok\r\n"), expect("DATA"), send("354 go\r\n"),
                         read_data(), send("250 ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r1 = run(io, c.send(Envelope{"a@x", {"b@y"}}, "one\r\n"));
  ASSERT_TRUE(r1);
  EXPECT_TRUE(r1->recipients[0].reply.transient());
  auto r2 = run(io, c.send(Envelope{"a@x", {"b@y"}}, "two\r\n"));
  ASSERT_TRUE(r2) << r2.error().to_string();
  EXPECT_TRUE(r2->recipients[0].delivered());
  server.join();
  EXPECT_EQ(server.error, "");
}

TEST_F(SmtpClient, TransientAtMail) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPlain), expect("MAIL"),
                         send("451 4.3.0 try later\r\n"), expect("QUIT"), send("221 bye\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::rejected);
  EXPECT_EQ(r.error().stage, Stage::mail);
  ASSERT_TRUE(r.error().reply);
  EXPECT_EQ(r.error().reply->code, 451);
  EXPECT_FALSE(r.error().permanent());
  EXPECT_EQ(r.error().to_string(), "mail: rejected: server refused: 451 4.3.0 try later");
  EXPECT_TRUE(c.connected());
  run(io, c.quit());
  server.join();
  EXPECT_EQ(server.error, "");
}

TEST_F(SmtpClient, PipelinedMailRejectionConsumesEveryReply) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect_batch(3),
                         send("550 5.7.1 go away\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no RCPT\r\n"),
                         expect("QUIT"), send("221 bye\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::rejected);
  EXPECT_EQ(r.error().stage, Stage::mail);
  EXPECT_TRUE(r.error().permanent());
  run(io, c.quit());
  server.join();
  EXPECT_EQ(server.error, "");
}

TEST_F(SmtpClient, DropAfterData) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect_batch(3),
                         send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), close_conn()});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "x\r\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::connection_closed);
  EXPECT_EQ(r.error().stage, Stage::dot);
  EXPECT_FALSE(r.error().permanent());
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClient, GreetingOfOneMegabyteWithoutCrlf) {
  ScriptedServer server({flood(1024 * 1024)});
  Client c(io, fast_config());
  const auto start = std::chrono::steady_clock::now();
  auto g = run(io, c.connect("127.0.0.1", server.port()));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind, FailureKind::protocol_error);
  EXPECT_EQ(g.error().stage, Stage::greeting);
  EXPECT_EQ(g.error().message, "reply line too long");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClient, EndlessMultiLineReply) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), endless_lines(1000000)});
  Client c(io, fast_config());
  ASSERT_TRUE(run(io, c.connect("127.0.0.1", server.port())));
  auto caps = run(io, c.ehlo("client.example.net"));
  ASSERT_FALSE(caps);
  EXPECT_EQ(caps.error().kind, FailureKind::protocol_error);
  EXPECT_EQ(caps.error().stage, Stage::ehlo);
  EXPECT_EQ(caps.error().message, "too many lines in one reply");
}

TEST_F(SmtpClient, GarbageGreeting) {
  ScriptedServer server({send("SSH-2.0-OpenSSH_9.2\r\n")});
  Client c(io, fast_config());
  auto g = run(io, c.connect("127.0.0.1", server.port()));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind, FailureKind::protocol_error);
}

TEST_F(SmtpClient, SlowDripTimesOutForTheWholeReply) {
  ScriptedServer server({drip("220 mx.example.org slowly but surely\r\n", 50ms)});
  ClientConfig config = fast_config();
  config.greeting = 400ms;
  Client c(io, config);
  const auto start = std::chrono::steady_clock::now();
  auto g = run(io, c.connect("127.0.0.1", server.port()));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind, FailureKind::timeout);
  EXPECT_EQ(g.error().stage, Stage::greeting);
  EXPECT_GE(elapsed, 350ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(SmtpClient, SilentServerTimesOutAtDot) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect_batch(3),
                         send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), pause(1500ms)});
  ClientConfig config = fast_config();
  config.dot = 300ms;
  Client c(io, config);
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "x\r\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::timeout);
  EXPECT_EQ(r.error().stage, Stage::dot);
}

TEST_F(SmtpClient, ConnectionRefused) {
  // A port that was free a moment ago.
  std::uint16_t port = 0;
  {
    ScriptedServer probe({});
    port = probe.port();
    Client c(io, fast_config());
    (void)run(io, c.connect("127.0.0.1", port));  // lets the probe finish
  }
  Client c(io, fast_config());
  auto g = run(io, c.connect("127.0.0.1", port));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind, FailureKind::connect_refused);
  EXPECT_EQ(g.error().stage, Stage::connect);
  EXPECT_FALSE(g.error().permanent());
}

TEST_F(SmtpClient, NotAnAddressLiteral) {
  Client c(io, fast_config());
  auto g = run(io, c.connect("mx.example.org", 25));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind, FailureKind::connect_failed);
}

TEST_F(SmtpClient, ConnectionReset) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), reset_conn()});
  Client c(io, fast_config());
  ASSERT_TRUE(run(io, c.connect("127.0.0.1", server.port())));
  auto caps = run(io, c.ehlo("client.example.net"));
  ASSERT_FALSE(caps);
  EXPECT_EQ(caps.error().kind, FailureKind::connection_closed);
  EXPECT_EQ(caps.error().stage, Stage::ehlo);
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClient, Greeting554IsPermanent) {
  ScriptedServer server({send("554 5.3.2 no service\r\n"), expect("QUIT"), send("221 bye\r\n")});
  Client c(io, fast_config());
  auto g = run(io, c.connect("127.0.0.1", server.port()));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind, FailureKind::rejected);
  EXPECT_EQ(g.error().stage, Stage::greeting);
  EXPECT_TRUE(g.error().permanent());
  run(io, c.quit());
  server.join();
  EXPECT_EQ(server.error, "");
}

TEST_F(SmtpClient, NonAsciiAddressNeedsSmtputf8) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send(kEhloPipelining), expect("QUIT"),
                         send("221 bye\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"j\xc3\xb6rg@example.org"}}, "x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::unsupported);
  EXPECT_TRUE(r.error().permanent());
  // Command injection through an address is refused before anything is sent.
  auto inj = run(io, c.send(Envelope{"a@x", {"b@y>\r\nRCPT TO:<evil@z"}}, "x"));
  ASSERT_FALSE(inj);
  EXPECT_EQ(inj.error().kind, FailureKind::unsupported);
  run(io, c.quit());
  server.join();
  EXPECT_EQ(server.error, "");
  EXPECT_EQ(server.lines.size(), 2u);  // EHLO, QUIT
}

TEST_F(SmtpClient, Smtputf8WhenOffered) {
  ScriptedServer server({send(kGreeting), expect("EHLO"),
                         send("250-mx\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n"),
                         expect("MAIL FROM:<a@x> BODY=8BITMIME SMTPUTF8"), send("250 ok\r\n"),
                         expect("RCPT TO:<j\xc3\xb6rg@example.org>"), send("250 ok\r\n"),
                         expect("DATA"), send("354 go\r\n"), read_data(), send("250 ok\r\n")});
  Client c(io, fast_config());
  open(c, server);
  auto r = run(io, c.send(Envelope{"a@x", {"j\xc3\xb6rg@example.org"}}, "To: j\xc3\xb6rg\r\n"));
  ASSERT_TRUE(r) << r.error().to_string();
  server.join();
  EXPECT_EQ(server.error, "");
}

class SmtpClientTls : public SmtpClient {
 protected:
  Ssl<SSL_CTX> server_ctx = make_server_context();
  asio::ssl::context client_ctx{asio::ssl::context::tls_client};
  void SetUp() override {
    ASSERT_TRUE(server_ctx);
    client_ctx.set_verify_mode(asio::ssl::verify_none);
  }
};

TEST_F(SmtpClientTls, StarttlsThenSecondEhlo) {
  ScriptedServer server(
      {send(kGreeting), expect("EHLO"),
       send("250-mx.example.org\r\n250-STARTTLS\r\n250 PIPELINING\r\n"), expect("STARTTLS"),
       send("220 2.0.0 ready\r\n"), tls(), expect("EHLO client.example.net"),
       send("250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 100\r\n"), expect_batch(3),
       send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), send("250 Ok\r\n"), expect("QUIT"),
       send("221 bye\r\n")},
      server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  ASSERT_TRUE(c.capabilities()->starttls);
  EXPECT_FALSE(c.tls_active());
  EXPECT_EQ(c.ssl(), nullptr);
  bool prepared = false;
  auto t = run(io, c.starttls(client_ctx, [&prepared](SSL* ssl) {
    prepared = true;
    return SSL_set_tlsext_host_name(ssl, "mx.example.org") == 1;
  }));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_TRUE(prepared);
  EXPECT_TRUE(c.tls_active());
  ASSERT_NE(c.ssl(), nullptr);
  EXPECT_NE(SSL_get_version(c.ssl()), nullptr);
  EXPECT_FALSE(c.capabilities().has_value());  // RFC 3207 4.2: forgotten
  auto caps = run(io, c.ehlo("client.example.net"));
  ASSERT_TRUE(caps) << caps.error().to_string();
  EXPECT_FALSE(caps->starttls);
  EXPECT_EQ(caps->size_limit, 100u);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "secret\r\n"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->recipients[0].delivered());
  run(io, c.quit());
  server.join();
  ASSERT_EQ(server.error, "");
  EXPECT_EQ(server.sni, "mx.example.org");
  ASSERT_GE(server.lines.size(), 3u);
  EXPECT_EQ(server.lines[1], "STARTTLS");
  EXPECT_FALSE(server.lines_over_tls[1]);
  EXPECT_EQ(server.lines[2], "EHLO client.example.net");
  EXPECT_TRUE(server.lines_over_tls[2]);
  EXPECT_EQ(server.data.at(0), "secret\r\n.\r\n");
}

TEST_F(SmtpClientTls, ResponseInjectionAfter220) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("220 ready\r\n250 injected\r\n")},
                        server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  auto t = run(io, c.starttls(client_ctx, nullptr));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, FailureKind::protocol_error);
  EXPECT_EQ(t.error().stage, Stage::starttls);
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClientTls, PrepareRejected) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("220 ready\r\n")},
                        server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  auto t = run(io, c.starttls(client_ctx, [](SSL*) { return false; }));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, FailureKind::tls_prepare_rejected);
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClientTls, HandshakeWithAPlaintextPeerFails) {
  ScriptedServer server(
      {send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"), expect("STARTTLS"),
       send("220 ready\r\n"), pause(100ms), send("this is not TLS\r\n")},
      server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  auto t = run(io, c.starttls(client_ctx, nullptr));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, FailureKind::tls_handshake_failed);
  EXPECT_EQ(t.error().stage, Stage::tls_handshake);
}

TEST_F(SmtpClientTls, StarttlsRefused) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("454 4.7.0 TLS not available\r\n")},
                        server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  auto t = run(io, c.starttls(client_ctx, nullptr));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, FailureKind::rejected);
  EXPECT_EQ(t.error().stage, Stage::starttls);
  EXPECT_TRUE(c.connected());
  EXPECT_FALSE(c.tls_active());
}

// The client's TLS runs OpenSSL on the non-blocking socket itself: these
// cover its waits for readiness and its end-of-stream cases.

// Starts TLS on an open session against a script that has just said 220.
#define START_TLS(c)                                           \
  do {                                                         \
    auto started = run(io, (c).starttls(client_ctx, nullptr)); \
    ASSERT_TRUE(started) << started.error().to_string();       \
    auto again = run(io, (c).ehlo("client.example.net"));      \
    ASSERT_TRUE(again) << again.error().to_string();           \
  } while (0)

TEST_F(SmtpClientTls, LargeMessageWhileTheServerIsNotReading) {
  // 8 MiB is more than loopback's socket buffers hold, so the client's
  // writes wait for the socket to become writable again and again.
  std::string text;
  const std::string line(998, 'a');
  while (text.size() < 8u * 1024 * 1024) text += line + "\r\n";
  ScriptedServer server(
      {send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"), expect("STARTTLS"),
       send("220 ready\r\n"), tls(), expect("EHLO"), send("250 mx\r\n"), expect("MAIL"),
       send("250 Ok\r\n"), expect("RCPT"), send("250 Ok\r\n"), expect("DATA"), send("354 go\r\n"),
       pause(500ms), read_data(), send("250 Ok\r\n")},
      server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  START_TLS(c);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, text));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->recipients[0].delivered());
  server.join();
  ASSERT_EQ(server.error, "");
  ASSERT_EQ(server.data.size(), 1u);
  EXPECT_EQ(server.data[0], text + ".\r\n");
}

TEST_F(SmtpClientTls, ReplyInOneRecordPerByte) {
  // Each byte is its own TLS record: the reply is put together across them.
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("220 ready\r\n"), tls(), expect("EHLO"),
                         drip("250-mx.example.org\r\n250 PIPELINING\r\n", 1ms)},
                        server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  START_TLS(c);
  ASSERT_TRUE(c.capabilities().has_value());
  EXPECT_TRUE(c.capabilities()->pipelining);
}

TEST_F(SmtpClientTls, ServerClosesWithoutCloseNotify) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("220 ready\r\n"), tls(), expect("EHLO"),
                         send("250 mx\r\n"), expect("MAIL"), close_conn()},
                        server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  START_TLS(c);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "text\r\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::connection_closed);
  EXPECT_EQ(r.error().stage, Stage::mail);
  EXPECT_EQ(r.error().message, "connection closed by the server while waiting for the reply");
  EXPECT_FALSE(c.connected());
  EXPECT_FALSE(c.tls_active());
}

TEST_F(SmtpClientTls, ServerSendsCloseNotify) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("220 ready\r\n"), tls(), expect("EHLO"),
                         send("250 mx\r\n"), expect("MAIL"), tls_close_notify()},
                        server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  START_TLS(c);
  auto r = run(io, c.send(Envelope{"a@x", {"b@y"}}, "text\r\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FailureKind::connection_closed);
  EXPECT_EQ(r.error().message, "connection closed by the server while waiting for the reply");
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClientTls, ServerSilentDuringTheHandshakeTimesOut) {
  ScriptedServer server({send(kGreeting), expect("EHLO"), send("250-mx\r\n250 STARTTLS\r\n"),
                         expect("STARTTLS"), send("220 ready\r\n"), pause(1500ms)},
                        server_ctx.get());
  ClientConfig config = fast_config();
  config.starttls = 300ms;
  Client c(io, config);
  open(c, server);
  auto t = run(io, c.starttls(client_ctx, nullptr));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, FailureKind::timeout);
  EXPECT_EQ(t.error().stage, Stage::tls_handshake);
  EXPECT_FALSE(c.connected());
}

TEST_F(SmtpClientTls, SessionCarriesSeveralMessagesOverTls) {
  ScriptedServer server(
      {send(kGreeting), expect("EHLO"), send("250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
       expect("STARTTLS"), send("220 ready\r\n"), tls(), expect("EHLO"),
       send("250-mx\r\n250 PIPELINING\r\n"), expect_batch(3),
       send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), send("250 first\r\n"), expect_batch(3),
       send("250 Ok\r\n250 Ok\r\n354 go\r\n"), read_data(), send("250 second\r\n"), expect("QUIT"),
       send("221 bye\r\n")},
      server_ctx.get());
  Client c(io, fast_config());
  open(c, server);
  START_TLS(c);
  auto first = run(io, c.send(Envelope{"a@x", {"b@y"}}, "one\r\n"));
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->data_reply->lines.at(0), "first");
  auto second = run(io, c.send(Envelope{"a@x", {"c@y"}}, "two\r\n"));
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(second->data_reply->lines.at(0), "second");
  run(io, c.quit());
  server.join();
  ASSERT_EQ(server.error, "");
  ASSERT_EQ(server.data.size(), 2u);
  EXPECT_EQ(server.data[1], "two\r\n.\r\n");
}

#undef START_TLS

}  // namespace
}  // namespace danemta::smtp
