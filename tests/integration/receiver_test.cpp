// The lab's test PKI and SMTP receiver, proven with independent real clients
// (openssl s_client, swaks) and a raw socket client. Loopback only.
#include "lab/receiver.hpp"
#include "lab/certs.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

namespace lab = danemta::lab;
using namespace std::chrono_literals;

namespace {

struct RunResult {
  int status = -1;     // exit code, or -1 when it did not exit normally
  std::string output;  // stdout and stderr
};

// Runs `cmd` with /bin/sh, stdin from /dev/null, killed after 15 s.
RunResult run(const std::string& cmd) {
  RunResult r;
  const std::string full = "timeout 15 sh -c '" + cmd + "' </dev/null 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(full.c_str(), "r"), pclose);
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe.get()))
    r.output.append(buf.data(), n);
  int status = pclose(pipe.release());
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "danemta-recv-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

std::string port_of(const lab::Receiver& r) {
  return std::to_string(r.port());
}

// A minimal blocking-with-timeout SMTP client over a raw socket.
class RawClient {
 public:
  RawClient(const std::string& address, std::uint16_t port) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      len = sizeof *v4;
    } else {
      inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr);
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
      len = sizeof *v6;
    }
    fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      throw std::runtime_error("connect failed");
    }
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void send(const std::string& s) {
    ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  // Reads until `pred(buffer)` holds or the timeout/EOF; returns what was read.
  template <typename Pred>
  std::string read_until(Pred pred, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred(buf_)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      std::array<char, 65536> chunk{};
      ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
      if (n <= 0) {
        last_errno_ = n < 0 ? errno : 0;
        eof_ = true;
        break;
      }
      buf_.append(chunk.data(), static_cast<std::size_t>(n));
    }
    return std::exchange(buf_, {});
  }
  // One complete SMTP reply (possibly multi-line).
  std::string reply() {
    std::string got = read_until([](const std::string& b) { return complete_reply(b) > 0; });
    std::size_t end = complete_reply(got);
    if (end > 0 && end < got.size()) {
      buf_ = got.substr(end) + buf_;
      got.resize(end);
    }
    return got;
  }
  // `n` replies.
  std::vector<std::string> replies(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(reply());
    return out;
  }
  bool eof() const { return eof_; }
  int last_errno() const { return last_errno_; }
  int fd() const { return fd_; }

 private:
  // Length of the first complete reply in `b`, or 0.
  static std::size_t complete_reply(const std::string& b) {
    std::size_t pos = 0;
    while (true) {
      auto nl = b.find("\r\n", pos);
      if (nl == std::string::npos) return 0;
      if (nl - pos >= 4 && b[pos + 3] == ' ') return nl + 2;
      if (nl - pos == 3) return nl + 2;
      pos = nl + 2;
    }
  }

  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  int last_errno_ = 0;
};

lab::Behaviour with_chain(lab::Chain chain, const std::string& address = "127.0.0.10") {
  lab::Behaviour b;
  b.address = address;
  b.hostname = "mx1.good.example";
  b.chain = std::move(chain);
  return b;
}

}  // namespace

// ---------------------------------------------------------------- certificates

TEST(LabCerts, TlsaRdataMatchesOpensslCommandLine) {
  TempDir dir;
  const lab::Chain chain = lab::self_signed({"mx1.good.example"}, lab::KeyType::ecdsa_p256);
  const auto files = lab::write_chain_files(chain, dir.path());
  const std::string pem = files.leaf.string();

  auto spki = run("openssl x509 -in " + pem +
                  " -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum");
  ASSERT_EQ(spki.status, 0) << spki.output;
  EXPECT_EQ(lab::tlsa_rdata(chain.leaf, 3, 1, 1), "3 1 1 " + spki.output.substr(0, 64));

  auto spki512 = run("openssl x509 -in " + pem +
                     " -noout -pubkey | openssl pkey -pubin -outform DER | sha512sum");
  ASSERT_EQ(spki512.status, 0) << spki512.output;
  EXPECT_EQ(lab::tlsa_rdata(chain.leaf, 3, 1, 2), "3 1 2 " + spki512.output.substr(0, 128));

  auto full = run("openssl x509 -in " + pem + " -outform DER | sha256sum");
  ASSERT_EQ(full.status, 0) << full.output;
  EXPECT_EQ(lab::tlsa_rdata(chain.leaf, 3, 0, 1), "3 0 1 " + full.output.substr(0, 64));

  auto raw = run("openssl x509 -in " + pem +
                 " -noout -pubkey | openssl pkey -pubin -outform DER | od -An -v -tx1 | tr -d "
                 "\"  \\n\"");
  ASSERT_EQ(raw.status, 0) << raw.output;
  EXPECT_EQ(lab::tlsa_rdata(chain.leaf, 2, 1, 0), "2 1 0 " + raw.output);

  EXPECT_THROW(lab::tlsa_rdata(chain.leaf, 3, 2, 1), std::invalid_argument);
  EXPECT_THROW(lab::tlsa_rdata(chain.leaf, 3, 1, 3), std::invalid_argument);
}

TEST(LabCerts, PrivateCaChainVerifiesAndExpiryIsReal) {
  TempDir dir;
  const lab::Chain good = lab::private_ca({"mx1.good.example", "good.example"});
  ASSERT_EQ(good.intermediates.size(), 1u);
  ASSERT_TRUE(good.root.has_value());
  EXPECT_EQ(good.leaf.subject_cn(), "mx1.good.example");
  EXPECT_EQ(good.presented().size(), 2u);
  const auto files = lab::write_chain_files(good, dir.path(), "good");
  ASSERT_TRUE(files.ca.has_value());
  lab::write_file(dir.path() / "inter.pem", good.intermediates[0].cert_pem());

  auto ok = run("openssl verify -CAfile " + files.ca->string() + " -untrusted " +
                (dir.path() / "inter.pem").string() + " -verify_hostname good.example " +
                files.leaf.string());
  EXPECT_EQ(ok.status, 0) << ok.output;

  const lab::Chain expired = lab::private_ca({"mx1.good.example"}, lab::KeyType::ecdsa_p256, true);
  const auto efiles = lab::write_chain_files(expired, dir.path(), "expired");
  lab::write_file(dir.path() / "einter.pem", expired.intermediates[0].cert_pem());
  auto bad = run("openssl verify -CAfile " + efiles.ca->string() + " -untrusted " +
                 (dir.path() / "einter.pem").string() + " " + efiles.leaf.string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("certificate has expired"), std::string::npos) << bad.output;

  auto key = run("openssl pkey -in " + files.key.string() + " -noout -text | head -1");
  EXPECT_NE(key.output.find("Private-Key: (256 bit"), std::string::npos) << key.output;
}

// ---------------------------------------------------------------- TLS with s_client

TEST(LabReceiver, StartTlsPresentsChainRecordsSniAndVerifiesAgainstCa) {
  TempDir dir;
  lab::Receiver rx(with_chain(lab::private_ca({"mx1.good.example"})));
  const auto files = lab::write_chain_files(*rx.behaviour().chain, dir.path());

  auto r = run("openssl s_client -starttls smtp -connect 127.0.0.10:" + port_of(rx) +
               " -servername mx1.good.example -showcerts -verify_return_error -CAfile " +
               files.ca->string() + " -verify_hostname mx1.good.example");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Verify return code: 0 (ok)"), std::string::npos) << r.output;
  EXPECT_EQ(count(r.output, "-----BEGIN CERTIFICATE-----"), 2u) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_TRUE(s.starttls_completed) << s.tls_error;
  EXPECT_EQ(s.sni, "mx1.good.example");
  EXPECT_EQ(s.tls_version, "TLSv1.3");
  EXPECT_FALSE(s.cipher.empty());
  ASSERT_GE(s.commands.size(), 2u);
  EXPECT_EQ(s.commands[0].line.substr(0, 5), "EHLO ");
  EXPECT_EQ(s.commands[1].line, "STARTTLS");
  EXPECT_FALSE(s.commands[1].in_tls);
}

TEST(LabReceiver, ExpiredLeafFailsVerification) {
  TempDir dir;
  lab::Receiver rx(
      with_chain(lab::private_ca({"mx1.good.example"}, lab::KeyType::ecdsa_p256, true)));
  const auto files = lab::write_chain_files(*rx.behaviour().chain, dir.path());

  auto r = run("openssl s_client -starttls smtp -connect 127.0.0.10:" + port_of(rx) +
               " -servername mx1.good.example -verify_return_error -CAfile " + files.ca->string());
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("certificate has expired"), std::string::npos) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_FALSE(s.starttls_completed);
  EXPECT_FALSE(s.tls_error.empty());
  EXPECT_EQ(s.sni, "mx1.good.example");  // recorded even though the client aborted
}

TEST(LabReceiver, RsaSelfSignedWithTls12Cap) {
  lab::Behaviour b = with_chain(lab::self_signed({"mx1.good.example"}, lab::KeyType::rsa2048));
  b.max_tls_version = TLS1_2_VERSION;
  lab::Receiver rx(std::move(b));

  auto r = run("openssl s_client -starttls smtp -connect 127.0.0.10:" + port_of(rx) +
               " -servername mx1.good.example");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Server public key is 2048 bit"), std::string::npos) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_TRUE(s.starttls_completed) << s.tls_error;
  EXPECT_EQ(s.tls_version, "TLSv1.2");
}

TEST(LabReceiver, TlsAbortClosesAfter220) {
  lab::Behaviour b = with_chain(lab::self_signed({"mx1.good.example"}));
  b.tls_abort = true;
  lab::Receiver rx(std::move(b));

  auto r = run("openssl s_client -starttls smtp -connect 127.0.0.10:" + port_of(rx));
  EXPECT_NE(r.status, 0) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_FALSE(s.starttls_completed);
  ASSERT_FALSE(s.commands.empty());
  EXPECT_EQ(s.commands.back().line, "STARTTLS");
}

// ---------------------------------------------------------------- SMTP with swaks

TEST(LabReceiver, SwaksOverTlsRecordsMessageIntact) {
  TempDir dir;
  lab::Receiver rx(with_chain(lab::self_signed({"mx1.good.example"})));
  lab::write_file(dir.path() / "body.txt",
                  "Subject: lab\n\nfirst line\n.starts with a dot\n..two dots\n.\nlast\n");

  auto r = run("swaks --to a@b.example --from sender@good.example --server 127.0.0.10 --port " +
               port_of(rx) + " --tls --data " + (dir.path() / "body.txt").string());
  EXPECT_EQ(r.status, 0) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_TRUE(s.starttls_completed);
  EXPECT_FALSE(s.verb_in_clear("MAIL"));
  EXPECT_FALSE(s.verb_in_clear("RCPT"));
  EXPECT_TRUE(s.verb_in_clear("EHLO"));
  ASSERT_EQ(s.messages.size(), 1u);
  const auto& m = s.messages[0];
  EXPECT_TRUE(m.in_tls);
  EXPECT_EQ(m.mail_from, "sender@good.example");
  EXPECT_EQ(m.rcpt_to, std::vector<std::string>{"a@b.example"});
  EXPECT_EQ(m.reply_code, 250);
  EXPECT_EQ(m.data.rfind("Subject: lab\r\n\r\nfirst line\r\n.starts with a dot\r\n..two dots\r\n"
                         ".\r\nlast\r\n",
                         0),
            0u)
      << m.data;
  // swaks dot-stuffed the lines; the receiver must have removed exactly one dot.
  EXPECT_NE(r.output.find("...two dots"), std::string::npos) << r.output;
}

TEST(LabReceiver, SwaksPlainIsRecordedAsCleartext) {
  lab::Behaviour b;
  b.address = "127.0.0.10";
  lab::Receiver rx(std::move(b));

  auto r = run("swaks --to a@b.example --from s@good.example --server 127.0.0.10 --port " +
               port_of(rx) + " --body hello");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("STARTTLS"), std::string::npos) << r.output;  // not offered

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_FALSE(s.starttls_completed);
  EXPECT_TRUE(s.verb_in_clear("MAIL"));
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_FALSE(s.messages[0].in_tls);
  EXPECT_NE(s.messages[0].data.find("\r\n\r\nhello\r\n"), std::string::npos);
}

// keep_data = false (benchmarks): the message is counted and answered, its body
// not kept.
TEST(LabReceiver, KeepDataOffCountsWithoutTheBody) {
  lab::Behaviour b;
  b.address = "127.0.0.10";
  b.keep_data = false;
  std::size_t seen = 0;
  b.on_message = [&seen](const lab::Session&, std::size_t) { ++seen; };
  lab::Receiver rx(std::move(b));

  auto r = run("swaks --to a@b.example --from s@good.example --server 127.0.0.10 --port " +
               port_of(rx) + " --body hello");
  EXPECT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages[0].reply_code, 250);
  EXPECT_EQ(s.messages[0].rcpt_to, std::vector<std::string>{"a@b.example"});
  EXPECT_TRUE(s.messages[0].data.empty());
  EXPECT_EQ(seen, 1u);
}

TEST(LabReceiver, RcptRejectedPerRecipient) {
  lab::Behaviour b;
  b.rcpt_replies["Nobody@b.example"] = {550, "5.1.1 no such user\nreally"};
  lab::Receiver rx(std::move(b));

  auto r = run("swaks --to nobody@b.example --from s@good.example --server 127.0.0.10 --port " +
               port_of(rx) + " --body hello");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("550-5.1.1 no such user"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("550 really"), std::string::npos) << r.output;

  auto ok = run("swaks --to a@b.example --from s@good.example --server 127.0.0.10 --port " +
                port_of(rx) + " --body hello");
  EXPECT_EQ(ok.status, 0) << ok.output;

  ASSERT_TRUE(rx.wait_closed(2));
  const auto sessions = rx.sessions();
  EXPECT_TRUE(sessions[0].messages.empty());
  ASSERT_EQ(sessions[1].messages.size(), 1u);
  EXPECT_EQ(sessions[1].messages[0].rcpt_to, std::vector<std::string>{"a@b.example"});
}

TEST(LabReceiver, DropAfterMailClosesWithoutReply) {
  lab::Behaviour b;
  b.drop_after = lab::Stage::mail;
  lab::Receiver rx(std::move(b));

  auto r = run("swaks --to a@b.example --from s@good.example --server 127.0.0.10 --port " +
               port_of(rx) + " --body hello");
  EXPECT_NE(r.status, 0) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  ASSERT_FALSE(s.commands.empty());
  EXPECT_EQ(s.commands.back().line, "MAIL FROM:<s@good.example>");
  EXPECT_TRUE(s.messages.empty());
}

TEST(LabReceiver, Ipv6LoopbackWithSwaksTls) {
  lab::Receiver rx(with_chain(lab::self_signed({"mx1.good.example"}), "::1"));

  auto r = run("swaks -6 --to a@b.example --from s@good.example --server ::1 --port " +
               port_of(rx) + " --tls --body hello");
  EXPECT_EQ(r.status, 0) << r.output;

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_EQ(s.peer.rfind("::1 ", 0), 0u) << s.peer;
  EXPECT_TRUE(s.starttls_completed);
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_TRUE(s.messages[0].in_tls);
}

// ---------------------------------------------------------------- raw protocol checks

TEST(LabReceiver, PipelinedCommandsAnsweredInOrder) {
  lab::Behaviour b;
  b.replies[lab::Stage::mail] = {250, "2.1.0 sender fine"};
  lab::Receiver rx(std::move(b));
  RawClient c("127.0.0.10", rx.port());
  EXPECT_EQ(c.reply().substr(0, 4), "220 ");
  c.send("EHLO client.example\r\n");
  const std::string ehlo = c.reply();
  EXPECT_NE(ehlo.find("250-PIPELINING\r\n"), std::string::npos) << ehlo;
  EXPECT_NE(ehlo.find("250 SMTPUTF8\r\n"), std::string::npos) << ehlo;
  EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos) << ehlo;

  c.send("MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nBOGUS\r\nDATA\r\n");
  auto r = c.replies(4);
  EXPECT_EQ(r[0], "250 2.1.0 sender fine\r\n");
  EXPECT_EQ(r[1].substr(0, 4), "250 ");
  EXPECT_EQ(r[2].substr(0, 4), "500 ");
  EXPECT_EQ(r[3].substr(0, 4), "354 ");
  c.send("line\r\n..x\r\n.\r\nQUIT\r\n");
  r = c.replies(2);
  EXPECT_EQ(r[0].substr(0, 4), "250 ");
  EXPECT_EQ(r[1].substr(0, 4), "221 ");

  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages[0].data, "line\r\n.x\r\n");
  ASSERT_EQ(s.commands.size(), 6u);
  EXPECT_EQ(s.commands[3].line, "BOGUS");
}

TEST(LabReceiver, CommandsPipelinedAfterStarttlsAreRecordedNotExecuted) {
  lab::Receiver rx(with_chain(lab::self_signed({"mx1.good.example"})));
  {
    RawClient c("127.0.0.10", rx.port());
    c.reply();
    c.send("EHLO c.example\r\n");
    EXPECT_NE(c.reply().find("250 STARTTLS\r\n"), std::string::npos);
    c.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n");
    EXPECT_EQ(c.reply().substr(0, 4), "220 ");
  }
  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_EQ(s.pipelined_after_starttls, "MAIL FROM:<evil@x.example>\r\n");
  EXPECT_FALSE(s.verb_in_clear("MAIL"));
  EXPECT_FALSE(s.starttls_completed);
}

TEST(LabReceiver, OverlongLineRejectedAndStateRules) {
  lab::Receiver rx(lab::Behaviour{});
  RawClient c("127.0.0.10", rx.port());
  c.reply();
  c.send("MAIL FROM:<a@x.example>\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "503 ");  // EHLO first
  c.send("HELO c.example\r\n");
  EXPECT_EQ(c.reply(), "250 mx1.example\r\n");
  c.send("NOOP " + std::string(2000, 'a') + "\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "500 ");
  c.send("RCPT TO:<b@y.example>\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "503 ");
  c.send("STARTTLS\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "502 ");
  c.send("RSET\r\nQUIT\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "221 ");
}

TEST(LabReceiver, DroppedAndIdleClientsDoNotWedgeTheReceiver) {
  lab::Receiver rx(lab::Behaviour{});
  auto idle = std::make_unique<RawClient>("127.0.0.10", rx.port());  // never speaks
  {
    RawClient dropped("127.0.0.10", rx.port());
    dropped.reply();
    dropped.send("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npartial");
  }
  auto r =
      run("swaks --to a@b.example --server 127.0.0.10 --port " + port_of(rx) + " --body hello");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(rx.wait_closed(2));
  EXPECT_EQ(rx.sessions().size(), 3u);
  // The destructor must not wait for the idle client's timeout.
  const auto start = std::chrono::steady_clock::now();
  {
    std::unique_ptr<RawClient> open;  // outlives `other`: still connected at its destruction
    lab::Receiver other(lab::Behaviour{});
    open = std::make_unique<RawClient>("127.0.0.10", other.port());
    open->reply();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

// ---------------------------------------------------------------- hostile modes

TEST(LabReceiver, HostileGreetingModes) {
  {
    lab::Behaviour b;
    b.greeting_line_bytes = 1 << 20;
    lab::Receiver rx(std::move(b));
    RawClient c("127.0.0.10", rx.port());
    std::string got = c.read_until([](const std::string& s) { return s.size() >= (1u << 20); });
    EXPECT_EQ(got.size(), 1u << 20);
    EXPECT_EQ(got.substr(0, 4), "220 ");
    EXPECT_EQ(got.find('\n'), std::string::npos);
  }
  {
    lab::Behaviour b;
    b.garbage_greeting = true;
    lab::Receiver rx(std::move(b));
    RawClient c("127.0.0.10", rx.port());
    std::string got = c.read_until([](const std::string& s) { return s.size() >= 4096; });
    EXPECT_EQ(got.size(), 4096u);
  }
  {
    lab::Behaviour b;
    b.reset_after_greeting = true;
    lab::Receiver rx(std::move(b));
    RawClient c("127.0.0.10", rx.port());
    std::string got = c.read_until([](const std::string&) { return false; }, 2s);
    EXPECT_EQ(got.substr(0, 4), "220 ");
    EXPECT_TRUE(c.eof());
    EXPECT_EQ(c.last_errno(), ECONNRESET);
  }
  {
    lab::Behaviour b;
    b.slow_drip_ms = 5;
    b.hostname = "m";
    lab::Receiver rx(std::move(b));
    RawClient c("127.0.0.10", rx.port());
    const auto start = std::chrono::steady_clock::now();
    std::string greeting = c.reply();
    EXPECT_EQ(greeting, "220 m ESMTP danemta-lab\r\n");
    EXPECT_GE(std::chrono::steady_clock::now() - start,
              std::chrono::milliseconds(5 * (greeting.size() - 1)));
  }
}

TEST(LabReceiver, EndlessMultilineUntilClientCloses) {
  lab::Behaviour b;
  b.endless_multiline = true;
  lab::Receiver rx(std::move(b));
  {
    RawClient c("127.0.0.10", rx.port());
    c.reply();
    c.send("EHLO c.example\r\n");
    std::string got = c.read_until([](const std::string& s) { return s.size() >= (2u << 20); });
    EXPECT_GE(got.size(), 2u << 20);
    EXPECT_EQ(got.substr(0, 4), "250-");
    EXPECT_EQ(got.find("250 "), std::string::npos);
  }
  ASSERT_TRUE(rx.wait_closed(1));
}

TEST(LabReceiver, PeerVanishingDuringTlsWritesEndsOnlyThatSession) {
  lab::Behaviour b = with_chain(lab::self_signed({"mx1.good.example"}));
  b.endless_multiline = true;
  lab::Receiver rx(std::move(b));
  {
    RawClient c("127.0.0.10", rx.port());
    c.reply();
    c.send("STARTTLS\r\n");
    ASSERT_EQ(c.reply().substr(0, 4), "220 ");
    std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_client_method()),
                                                     SSL_CTX_free);
    std::unique_ptr<SSL, void (*)(SSL*)> ssl(SSL_new(ctx.get()), SSL_free);
    SSL_set_fd(ssl.get(), c.fd());
    SSL_set_tlsext_host_name(ssl.get(), "mx1.good.example");
    ASSERT_EQ(SSL_connect(ssl.get()), 1);
    const std::string ehlo = "EHLO c.example\r\n";
    ASSERT_EQ(SSL_write(ssl.get(), ehlo.data(), static_cast<int>(ehlo.size())),
              static_cast<int>(ehlo.size()));
    std::array<char, 16384> buf{};
    std::size_t total = 0;
    while (total < (1u << 20)) {
      int n = SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()));
      ASSERT_GT(n, 0);
      total += static_cast<std::size_t>(n);
    }
    EXPECT_EQ(std::string(buf.data(), 4), "250-");
  }  // closed without close_notify while the server is writing
  ASSERT_TRUE(rx.wait_closed(1));
  const auto s = rx.sessions().at(0);
  EXPECT_TRUE(s.starttls_completed);
  EXPECT_EQ(s.sni, "mx1.good.example");
  ASSERT_EQ(s.commands.size(), 2u);
  EXPECT_TRUE(s.commands[1].in_tls);
}
