// smtp::listen()/serve() on 127.0.0.1 with an io_context on a thread and an
// Accept that stores messages in memory, driven by swaks and by raw sockets.
#include "smtp/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace danemta::smtp {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kHost = "mx.test.example";

// --- the Accept side -------------------------------------------------------

enum class Mode { store, transient, permanent };

struct Store {
  std::mutex mutex;
  std::vector<ReceivedMessage> messages;
  std::atomic<Mode> mode{Mode::store};
  int next_id = 0;
};

asio::awaitable<Result<std::string>> store_message(std::shared_ptr<Store> store,
                                                   ReceivedMessage message) {
  switch (store->mode.load()) {
    case Mode::store:
      break;
    case Mode::transient:
      co_return fail("spool\r\nfull", Severity::transient);
    case Mode::permanent:
      co_return fail("policy says no", Severity::permanent);
  }
  const std::lock_guard lock(store->mutex);
  store->messages.push_back(std::move(message));
  co_return "Q" + std::to_string(++store->next_id);
}

// --- a raw client ------------------------------------------------------------

class Raw {
 public:
  // Connects to `to`:port from `from` (any loopback address when null).
  explicit Raw(std::uint16_t port, const char* to = "127.0.0.1", const char* from = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (from != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, from, &local.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, to, &addr.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Raw() { close(); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool connected() const { return connected_; }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One complete reply, lines joined by '\n' without CRs; "" on EOF or timeout.
  std::string reply(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::size_t start = 0;
      for (;;) {
        const auto nl = buffer_.find('\n', start);
        if (nl == std::string::npos) break;
        std::string_view line(buffer_.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() <= 3 || line[3] == ' ') {
          std::string text = buffer_.substr(0, nl);
          buffer_.erase(0, nl + 1);
          std::string out;
          for (const char c : text) {
            if (c != '\r') out += c;
          }
          return out;
        }
        start = nl + 1;
      }
      if (!read_more(deadline)) return "";
    }
  }

  std::string cmd(std::string_view line) {
    send(std::string(line) + "\r\n");
    return reply();
  }

  // True when the server closes the connection (EOF or reset) in time, with
  // nothing more to read.
  bool closed_by_server(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_more(deadline)) {
    }
    return eof_ && buffer_.empty();
  }

 private:
  bool read_more(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    std::array<char, 65536> chunk{};
    const ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk.data(), static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

// --- the fixture -------------------------------------------------------------

ServerConfig test_config() {
  ServerConfig c;
  c.hostname = kHost;
  c.max_message_bytes = 1'000'000;
  c.max_recipients = 100;
  c.max_errors = 10;
  c.command_timeout = 10s;
  c.data_timeout = 10s;
  return c;
}

class SmtpServerTest : public ::testing::Test {
 protected:
  void start(ServerConfig config = test_config(), const char* address = "127.0.0.1") {
    acceptor_ =
        std::make_unique<tcp::acceptor>(io_, tcp::endpoint(asio::ip::make_address(address), 0));
    port_ = acceptor_->local_endpoint().port();
    const std::shared_ptr<Store> store = store_;
    Accept accept = [store](ReceivedMessage m) { return store_message(store, std::move(m)); };
    auto allowed = [this](const asio::ip::address& a) { return allow_.load() && a.is_loopback(); };
    asio::co_spawn(io_, listen(*acceptor_, config, std::move(accept), allowed),
                   [this](std::exception_ptr e) {
                     listen_error_ = e;
                     listen_done_ = true;
                   });
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] { acceptor_->close(); });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!listen_done_ && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(listen_done_) << "listen() did not stop when the acceptor was closed";
    io_.stop();
    thread_.join();
    EXPECT_FALSE(listen_error_) << "listen() threw";
  }

  // A ServerConfig::log that keeps the lines in log_lines().
  std::function<void(std::string_view)> logger() {
    return [this](std::string_view line) {
      const std::lock_guard lock(log_mutex_);
      log_.emplace_back(line);
    };
  }

  std::vector<std::string> log_lines() {
    const std::lock_guard lock(log_mutex_);
    return log_;
  }

  // log_lines() once `count` session summaries ("disconnect from ...") are
  // there, or after 5 s: a session the client left is logged when the
  // server notices.
  // Each session's first line, "connect from ...", is left out unless
  // `with_connects`.
  std::vector<std::string> log_lines_after_sessions(std::size_t count = 1,
                                                    bool with_connects = false) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      std::vector<std::string> lines = log_lines();
      std::size_t done = 0;
      for (const std::string& l : lines) done += l.starts_with("disconnect from ") ? 1 : 0;
      if (done >= count || std::chrono::steady_clock::now() > deadline) {
        if (!with_connects)
          std::erase_if(lines, [](const std::string& l) { return l.starts_with("connect from "); });
        return lines;
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  std::vector<ReceivedMessage> messages() {
    const std::lock_guard lock(store_->mutex);
    return store_->messages;
  }

  // Connects, reads the greeting and says EHLO.
  std::unique_ptr<Raw> session() {
    auto raw = std::make_unique<Raw>(port_);
    EXPECT_TRUE(raw->connected());
    EXPECT_THAT(raw->reply(), StartsWith("220 "));
    EXPECT_THAT(raw->cmd("EHLO client.example"), StartsWith("250-"));
    return raw;
  }

  asio::io_context io_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
  std::shared_ptr<Store> store_ = std::make_shared<Store>();
  std::atomic<bool> allow_{true};
  std::atomic<bool> listen_done_{false};
  std::exception_ptr listen_error_;
  std::mutex log_mutex_;
  std::vector<std::string> log_;
  std::thread thread_;
};

bool crlf_only(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

// --- tests ---------------------------------------------------------------------

TEST_F(SmtpServerTest, SwaksDeliversWithPipelining) {
  start();
  char dir_template[] = "/tmp/danemta-smtp-server-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::filesystem::path dir(dir_template);
  const auto file = dir / "message.txt";
  std::ofstream(file) << "Subject: swaks\nFrom: c@d.example\n\nhello\n.leading dot\n"
                         "..two dots\nend";  // swaks adds "\r\n."
  const std::string command = "swaks --server 127.0.0.1:" + std::to_string(port_) +
                              " --to a@b.example --from c@d.example --helo client.example"
                              " --data " +
                              file.string() + " --pipeline 2>&1";
  std::string output;
  FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::array<char, 4096> chunk{};
  while (const std::size_t n = std::fread(chunk.data(), 1, chunk.size(), p)) {
    output.append(chunk.data(), n);
  }
  const int status = ::pclose(p);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_THAT(output, HasSubstr("PIPELINING"));
  EXPECT_THAT(output, HasSubstr("250 2.0.0 Ok: queued as Q1"));

  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].client, "127.0.0.1");
  EXPECT_EQ(stored[0].helo, "client.example");
  EXPECT_EQ(stored[0].mail_from, "c@d.example");
  EXPECT_THAT(stored[0].recipients, ElementsAre("a@b.example"));
  const std::string& data = stored[0].data;
  EXPECT_THAT(data, HasSubstr("Subject: swaks\r\n"));
  EXPECT_THAT(data, HasSubstr("\r\nhello\r\n.leading dot\r\n..two dots\r\nend\r\n"));
  EXPECT_TRUE(data.ends_with("end\r\n")) << data;
  EXPECT_TRUE(crlf_only(data)) << data;
}

TEST_F(SmtpServerTest, GreetingEhloAndSimpleCommands) {
  start();
  Raw raw(port_);
  EXPECT_EQ(raw.reply(), "220 mx.test.example ESMTP danemta");
  EXPECT_EQ(raw.cmd("EHLO client.example"),
            "250-mx.test.example\n250-PIPELINING\n250-SIZE 1000000\n250-8BITMIME\n"
            "250-ENHANCEDSTATUSCODES\n250 SMTPUTF8");
  EXPECT_EQ(raw.cmd("HELO client.example"), "250 mx.test.example");
  EXPECT_THAT(raw.cmd("NOOP"), StartsWith("250 2.0.0"));
  EXPECT_THAT(raw.cmd("noop whatever"), StartsWith("250 2.0.0"));
  EXPECT_THAT(raw.cmd("VRFY someone"), StartsWith("252 2.5.0"));
  EXPECT_THAT(raw.cmd("HELP"), StartsWith("214 "));
  EXPECT_THAT(raw.cmd("RSET"), StartsWith("250 2.0.0"));
  EXPECT_THAT(raw.cmd("QUIT"), StartsWith("221 2.0.0"));
  EXPECT_TRUE(raw.closed_by_server());
}

TEST_F(SmtpServerTest, PipelinedCommandsInOneWrite) {
  start();
  Raw raw(port_);
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  raw.send(
      "EHLO client.example\r\n"
      "MAIL FROM:<s@x.example> BODY=8BITMIME SMTPUTF8 SIZE=100\r\n"
      "RCPT TO:<r1@y.example>\r\n"
      "rcpt to:<r2@y.example>\r\n"
      "DATA\r\n");
  EXPECT_THAT(raw.reply(), StartsWith("250-mx.test.example"));
  EXPECT_EQ(raw.reply(), "250 2.1.0 Ok");
  EXPECT_EQ(raw.reply(), "250 2.1.5 Ok");
  EXPECT_EQ(raw.reply(), "250 2.1.5 Ok");
  EXPECT_THAT(raw.reply(), StartsWith("354 "));
  // The text, its end and the next transaction in one write.
  raw.send(
      "Subject: p\r\n\r\n..dot\r\nbody\r\n.\r\n"
      "MAIL FROM:<>\r\nRCPT TO:<@relay.example:r3@y.example>\r\nDATA\r\n");
  EXPECT_EQ(raw.reply(), "250 2.0.0 Ok: queued as Q1");
  EXPECT_EQ(raw.reply(), "250 2.1.0 Ok");
  EXPECT_EQ(raw.reply(), "250 2.1.5 Ok");
  EXPECT_THAT(raw.reply(), StartsWith("354 "));
  raw.send(".\r\nQUIT\r\n");
  EXPECT_EQ(raw.reply(), "250 2.0.0 Ok: queued as Q2");
  EXPECT_THAT(raw.reply(), StartsWith("221 "));
  EXPECT_TRUE(raw.closed_by_server());

  const auto stored = messages();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].mail_from, "s@x.example");
  EXPECT_THAT(stored[0].recipients, ElementsAre("r1@y.example", "r2@y.example"));
  EXPECT_EQ(stored[0].data, "Subject: p\r\n\r\n.dot\r\nbody\r\n");
  EXPECT_EQ(stored[1].mail_from, "");
  EXPECT_THAT(stored[1].recipients, ElementsAre("r3@y.example"));
  EXPECT_EQ(stored[1].data, "");
}

TEST_F(SmtpServerTest, RsetForgetsTheTransaction) {
  start();
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<old@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RSET"), StartsWith("250 2.0.0"));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw->cmd("MAIL FROM:<b@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<new@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  EXPECT_EQ(raw->cmd("x\r\n."), "250 2.0.0 Ok: queued as Q1");
  // The transaction is over after the reply to the text (RFC 5321 4.1.4).
  EXPECT_THAT(raw->cmd("RCPT TO:<more@y.example>"), StartsWith("503 5.5.1"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].mail_from, "b@x.example");
  EXPECT_THAT(stored[0].recipients, ElementsAre("new@y.example"));
  EXPECT_EQ(stored[0].data, "x\r\n");
}

TEST_F(SmtpServerTest, TooManyRecipients) {
  auto config = test_config();
  config.max_recipients = 2;
  start(config);
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r1@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r2@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r3@y.example>"), StartsWith("452 4.5.3"));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  EXPECT_THAT(raw->cmd("hi\r\n."), StartsWith("250 2.0.0"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_THAT(stored[0].recipients, ElementsAre("r1@y.example", "r2@y.example"));
}

TEST_F(SmtpServerTest, SizeParameter) {
  start();
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example> SIZE=2000000"), StartsWith("552 5.3.4"));
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example> SIZE=99999999999999999999999"),
              StartsWith("501 5.5.4"));
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example> SIZE=12x"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example> BODY=BINARYMIME"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example> size=1000000 body=7bit"), StartsWith("250 2.1.0"));
}

TEST_F(SmtpServerTest, MessageTooBigIsDiscardedAndTheSessionGoesOn) {
  auto config = test_config();
  config.max_message_bytes = 1000;
  start(config);
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  std::string big;
  for (int i = 0; i < 200; ++i) big += "0123456789012345678901234567890123456789\r\n";
  EXPECT_THAT(raw->cmd(big + "."), StartsWith("552 5.3.4"));
  EXPECT_TRUE(messages().empty());
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  EXPECT_THAT(raw->cmd("small\r\n."), StartsWith("250 2.0.0"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].data, "small\r\n");
}

TEST_F(SmtpServerTest, LongDataLinesAreAccepted) {
  start();
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  const std::string line(50'000, 'x');
  EXPECT_THAT(raw->cmd(line + "\r\n."), StartsWith("250 2.0.0"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].data, line + "\r\n");
}

TEST_F(SmtpServerTest, BadSequenceAndSyntax) {
  auto config = test_config();
  config.max_errors = 100;
  start(config);
  Raw raw(port_);
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@x.example>"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("EHLO"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw.cmd("HELO"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@y.example>"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("DATA"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("MAIL FROM:a@x.example"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw.cmd("MAIL TO:<a@x.example>"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@x.example"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<nodomain>"), StartsWith("501 5.1.7"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@bad..example>"), StartsWith("501 5.1.7"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@[192.0.2.1]>"), StartsWith("553 5.1.7"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@x.example> FOO=1"), StartsWith("555 5.5.4"));
  EXPECT_THAT(raw.cmd("MAIL FROM: <a@x.example>"), StartsWith("250 2.1.0"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@x.example>"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("RCPT TO:<nodomain>"), StartsWith("501 5.1.3"));
  EXPECT_THAT(raw.cmd("RCPT TO:<@y.example>"), StartsWith("501 5."));
  EXPECT_THAT(raw.cmd("RCPT TO:<a@b@y.example>"), StartsWith("501 5.1.3"));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@y.example> NOTIFY=NEVER"), StartsWith("555 5.5.4"));
  EXPECT_THAT(raw.cmd("RCPT TO:<Postmaster>"), StartsWith("550 "));
  EXPECT_THAT(raw.cmd("DATA"), StartsWith("554 5.5.1"));
  EXPECT_THAT(raw.cmd("DATA now"), StartsWith("501 5.5.4"));
  EXPECT_THAT(raw.cmd("XYZZY"), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw.cmd(""), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw.cmd("EXPN list"), StartsWith("502 5.5.1"));
  EXPECT_THAT(raw.cmd("STARTTLS"), StartsWith("502 5.5.1"));
  EXPECT_THAT(raw.cmd("RCPT TO:<\"a@b\"@y.example>"), StartsWith("250 2.1.5"));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@[192.0.2.1]>"), StartsWith("553 5.1.2"));
  EXPECT_THAT(raw.cmd("DATA"), StartsWith("354 "));
  EXPECT_THAT(raw.cmd("."), StartsWith("250 2.0.0"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_THAT(stored[0].recipients, ElementsAre("\"a@b\"@y.example"));
}

TEST_F(SmtpServerTest, OverlongCommandLines) {
  start();
  auto raw = session();
  EXPECT_THAT(raw->cmd("NOOP " + std::string(10'000, 'x')), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw->cmd("NOOP"), StartsWith("250 "));
  // Longer than one read: the rest of the line is dropped as it arrives.
  raw->send("MAIL FROM:<" + std::string(100'000, 'y'));
  raw->send("@x.example>\r\nNOOP\r\n");
  EXPECT_THAT(raw->reply(), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw->reply(), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
}

TEST_F(SmtpServerTest, TooManyErrors) {
  auto config = test_config();
  config.max_errors = 3;
  start(config);
  auto raw = session();
  EXPECT_THAT(raw->cmd("FOO"), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw->cmd("BAR"), StartsWith("500 5.5.2"));
  EXPECT_EQ(raw->cmd("BAZ"), "421 4.7.0 mx.test.example too many errors");
  EXPECT_TRUE(raw->closed_by_server());
}

TEST_F(SmtpServerTest, IdleTimeout) {
  auto config = test_config();
  config.command_timeout = 300ms;
  start(config);
  Raw raw(port_);
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(raw.reply(3s), "421 4.4.2 mx.test.example timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 250ms);
  EXPECT_TRUE(raw.closed_by_server());
}

TEST_F(SmtpServerTest, DataTimeoutCoversTheWholeText) {
  auto config = test_config();
  config.command_timeout = 300ms;
  config.data_timeout = 800ms;
  start(config);
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  // A line every 200 ms (under command_timeout) still runs out of data_timeout.
  const auto begin = std::chrono::steady_clock::now();
  std::string reply;
  for (int i = 0; i < 10 && reply.empty(); ++i) {
    raw->send("drip\r\n");
    reply = raw->reply(200ms);
  }
  EXPECT_EQ(reply, "421 4.4.2 mx.test.example timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 700ms);
  EXPECT_TRUE(raw->closed_by_server());
  EXPECT_TRUE(messages().empty());
}

TEST_F(SmtpServerTest, AcceptErrorsBecomeReplies) {
  start();
  auto raw = session();
  store_->mode = Mode::transient;
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  EXPECT_EQ(raw->cmd("hi\r\n."), "451 4.3.0 spool  full");
  store_->mode = Mode::permanent;
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  EXPECT_EQ(raw->cmd("hi\r\n."), "554 5.3.0 policy says no");
  EXPECT_TRUE(messages().empty());
}

TEST_F(SmtpServerTest, DisallowedClientIsRefused) {
  start();
  allow_ = false;
  Raw raw(port_);
  EXPECT_EQ(raw.reply(), "554 5.7.1 mx.test.example relay access denied");
  EXPECT_TRUE(raw.closed_by_server());
  allow_ = true;
  Raw again(port_);
  EXPECT_THAT(again.reply(), StartsWith("220 "));
}

TEST_F(SmtpServerTest, BareLineFeedsAreNormalisedButDoNotEndTheText) {
  start();
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  // Only <CRLF>.<CRLF> ends the text: "<LF>.<CRLF>" and "<CRLF>.<LF>" are
  // lines of it (no SMTP smuggling).
  EXPECT_THAT(raw->cmd("Subject: lf\nline1\n..dotted\na\n.\r\nMAIL FROM:<evil@x.example>\r\n.\n"
                       "end\r\n."),
              StartsWith("250 2.0.0"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].data,
            "Subject: lf\r\nline1\r\n.dotted\r\na\r\n\r\nMAIL FROM:<evil@x.example>\r\n\r\n"
            "end\r\n");
}

TEST_F(SmtpServerTest, EndOfTextSplitAcrossReads) {
  start();
  auto raw = session();
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  for (const std::string_view piece : {"line\r", "\n.", ".x\r", "\n", ".", "\r", "\n"}) {
    raw->send(piece);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_THAT(raw->reply(), StartsWith("250 2.0.0"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].data, "line\r\n.x\r\n");
}

TEST_F(SmtpServerTest, ClientVanishingInDataStoresNothing) {
  start();
  {
    auto raw = session();
    EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
    EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
    EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
    raw->send("Subject: half\r\n\r\nsome text\r\n");
  }
  {
    auto raw = session();
    EXPECT_THAT(raw->cmd("NOOP"), StartsWith("250 "));
    EXPECT_THAT(raw->cmd("QUIT"), StartsWith("221 "));
  }
  EXPECT_TRUE(messages().empty());
}

// --- paths, limits and the log (NETs 111-115) -----------------------------------

TEST_F(SmtpServerTest, PathsAreParsedByTheGrammar) {
  auto config = test_config();
  config.max_errors = 100;
  start(config, "127.0.111.1");
  Raw raw(port_, "127.0.111.1", "127.0.111.2");
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<s@x.example>"), StartsWith("250 "));
  // The quoted "source route" is no A-d-l: refused, nothing reaches the spool.
  EXPECT_THAT(raw.cmd(R"(RCPT TO:<@"a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example>)"),
              StartsWith("501 5.1.3"));
  // Without the leading "@" it is one quoted local part, kept whole.
  EXPECT_THAT(raw.cmd(R"(RCPT TO:<"a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example>)"),
              StartsWith("250 2.1.5"));
  EXPECT_THAT(raw.cmd(R"(RCPT TO:<"a b>c"@d.example>)"), StartsWith("250 2.1.5"));
  EXPECT_THAT(raw.cmd(R"(RCPT TO:<@relay.example,@r2.example:"x\"y"@D.Example>)"),
              StartsWith("250 2.1.5"));
  EXPECT_THAT(raw.cmd("RCPT TO:<j\xC3\xB6rg@b\xC3\xBC\x63her.example>"), StartsWith("250 2.1.5"));
  const std::vector<std::string> bad_paths = {"r@-bad.example",
                                              "r@bad-.example",
                                              "r@bad..example",
                                              "r@.bad.example",
                                              "r@bad.example.",
                                              "r@b_d.example",
                                              "r@" + std::string(64, 'l') + ".example",
                                              "r@",
                                              "r@b\xC3.example",
                                              std::string(65, 'l') + "@x.example"};
  for (const std::string& bad : bad_paths) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(raw.cmd("RCPT TO:<" + bad + ">"), StartsWith("501 5.1.3"));
  }
  EXPECT_EQ(raw.cmd("RCPT TO:<r@[192.0.2.1]>"),
            "553 5.1.2 address literals are not accepted: <r@[192.0.2.1]>");
  EXPECT_THAT(raw.cmd("RCPT TO:<r@[IPv6:2001:db8::1]>"), StartsWith("553 5.1.2"));
  EXPECT_THAT(raw.cmd("DATA"), StartsWith("354 "));
  EXPECT_THAT(raw.cmd("hi\r\n."), StartsWith("250 2.0.0"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<>"), StartsWith("250 2.1.0"));
  EXPECT_THAT(raw.cmd("RCPT TO:<postmaster>"), StartsWith("550 5.1.1"));
  const auto stored = messages();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].client, "127.0.111.2");
  EXPECT_EQ(stored[0].mail_from, "s@x.example");
  EXPECT_THAT(
      stored[0].recipients,
      ElementsAre(R"("a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example)", R"("a b>c"@d.example)",
                  R"("x\"y"@D.Example)", "j\xC3\xB6rg@b\xC3\xBC\x63her.example"));
}

TEST_F(SmtpServerTest, ConnectionLimitInAll) {
  auto config = test_config();
  config.max_connections = 3;
  config.log = logger();
  start(config, "127.0.112.1");
  std::vector<std::unique_ptr<Raw>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<Raw>(port_, "127.0.112.1", "127.0.112.2"));
    EXPECT_THAT(idle.back()->reply(), StartsWith("220 "));
  }
  Raw over(port_, "127.0.112.1", "127.0.112.3");
  EXPECT_EQ(over.reply(), "421 4.7.0 mx.test.example Error: too many connections from 127.0.112.3");
  EXPECT_TRUE(over.closed_by_server());
  EXPECT_THAT(log_lines_after_sessions(),
              ElementsAre("NOQUEUE: reject: CONNECT from unknown[127.0.112.3]: 421 4.7.0 "
                          "mx.test.example Error: too many connections from "
                          "127.0.112.3",
                          "disconnect from unknown[127.0.112.3] commands=0/0"));
  // A session that ends gives its place back.
  EXPECT_THAT(idle[0]->cmd("QUIT"), StartsWith("221 "));
  EXPECT_TRUE(idle[0]->closed_by_server());
  Raw again(port_, "127.0.112.1", "127.0.112.3");
  EXPECT_THAT(again.reply(), StartsWith("220 "));
}

TEST_F(SmtpServerTest, ConnectionLimitPerClient) {
  auto config = test_config();
  config.max_connections = 10;
  config.max_connections_per_client = 2;
  start(config, "127.0.113.1");
  Raw a1(port_, "127.0.113.1", "127.0.113.2");
  Raw a2(port_, "127.0.113.1", "127.0.113.2");
  EXPECT_THAT(a1.reply(), StartsWith("220 "));
  EXPECT_THAT(a2.reply(), StartsWith("220 "));
  Raw a3(port_, "127.0.113.1", "127.0.113.2");
  EXPECT_EQ(a3.reply(), "421 4.7.0 mx.test.example Error: too many connections from 127.0.113.2");
  EXPECT_TRUE(a3.closed_by_server());
  Raw b1(port_, "127.0.113.1", "127.0.113.3");
  EXPECT_THAT(b1.reply(), StartsWith("220 "));
  // A session that ends gives its place back.
  EXPECT_THAT(a1.cmd("QUIT"), StartsWith("221 "));
  EXPECT_TRUE(a1.closed_by_server());
  Raw a4(port_, "127.0.113.1", "127.0.113.2");
  EXPECT_THAT(a4.reply(), StartsWith("220 "));
}

TEST_F(SmtpServerTest, TooManyJunkCommands) {
  auto config = test_config();
  config.log = logger();
  start(config, "127.0.114.1");
  Raw raw(port_, "127.0.114.1", "127.0.114.2");
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += "NOOP\r\n";
  raw.send(batch);
  for (int i = 0; i < 100; ++i) ASSERT_THAT(raw.reply(), StartsWith("250 2.0.0")) << i;
  EXPECT_EQ(raw.cmd("NOOP"), "421 4.7.0 mx.test.example Error: too many junk commands");
  EXPECT_TRUE(raw.closed_by_server());
  EXPECT_THAT(log_lines_after_sessions(),
              ElementsAre("too many junk commands after NOOP from unknown[127.0.114.2]",
                          "disconnect from unknown[127.0.114.2] noop=100/101 commands=100/101"));
}

TEST_F(SmtpServerTest, JunkCountRestartsAfterAMessage) {
  auto config = test_config();
  config.max_junk_commands = 3;
  start(config, "127.0.114.3");
  auto raw = std::make_unique<Raw>(port_, "127.0.114.3", "127.0.114.4");
  EXPECT_THAT(raw->reply(), StartsWith("220 "));
  EXPECT_THAT(raw->cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw->cmd("NOOP"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RSET"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("VRFY x"), StartsWith("252 "));
  EXPECT_THAT(raw->cmd("MAIL FROM:<a@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw->cmd("DATA"), StartsWith("354 "));
  EXPECT_THAT(raw->cmd("hi\r\n."), StartsWith("250 2.0.0"));
  EXPECT_THAT(raw->cmd("HELP"), StartsWith("214 "));
  EXPECT_THAT(raw->cmd("XYZZY"), StartsWith("500 "));
  EXPECT_THAT(raw->cmd("EXPN x"), StartsWith("502 "));
  EXPECT_THAT(raw->cmd("NOOP"), StartsWith("421 4.7.0"));
  EXPECT_TRUE(raw->closed_by_server());
}

TEST_F(SmtpServerTest, RefusalsAreLogged) {
  auto config = test_config();
  config.max_errors = 4;
  config.log = logger();
  start(config, "127.0.115.1");
  allow_ = false;
  {
    Raw denied(port_, "127.0.115.1", "127.0.115.2");
    EXPECT_THAT(denied.reply(), StartsWith("554 5.7.1"));
    EXPECT_TRUE(denied.closed_by_server());
  }
  allow_ = true;
  Raw raw(port_, "127.0.115.1", "127.0.115.2");
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<a@b..example>"), StartsWith("501 5.1.7"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<s@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@[192.0.2.1]>"), StartsWith("553 5.1.2"));
  EXPECT_THAT(raw.cmd(R"(RCPT TO:<@"a:x> NOTIFY=SUCCESS"@cap.example>)"), StartsWith("501 5.1.3"));
  EXPECT_THAT(raw.cmd("FOO"), StartsWith("500 "));
  EXPECT_THAT(raw.cmd("BAR"), StartsWith("421 4.7.0"));
  EXPECT_TRUE(raw.closed_by_server());
  EXPECT_THAT(
      log_lines_after_sessions(2, true),
      ElementsAre(
          "connect from unknown[127.0.115.2]",
          "NOQUEUE: reject: CONNECT from unknown[127.0.115.2]: 554 5.7.1 mx.test.example relay "
          "access denied",
          "disconnect from unknown[127.0.115.2] commands=0/0", "connect from unknown[127.0.115.2]",
          "NOQUEUE: reject: MAIL from unknown[127.0.115.2]: 501 5.1.7 Bad sender address syntax: "
          "empty domain label; from=<a@b..example>",
          "NOQUEUE: reject: RCPT from unknown[127.0.115.2]: 553 5.1.2 address literals are not "
          "accepted: <r@[192.0.2.1]>; from=<s@x.example> to=<r@[192.0.2.1]>",
          "NOQUEUE: reject: RCPT from unknown[127.0.115.2]: 501 5.1.3 Bad recipient address "
          "syntax: "
          "bad source route: empty domain; from=<s@x.example> "
          R"(to=<@"a:x> NOTIFY=SUCCESS"@cap.example>)",
          "too many errors after UNKNOWN from unknown[127.0.115.2]",
          "disconnect from unknown[127.0.115.2] ehlo=1 mail=1/2 rcpt=0/2 unknown=0/2 "
          "commands=2/7"));
}

// --- the session's last log line (NET 194) ----------------------------------------

TEST_F(SmtpServerTest, SummaryOfANormalSession) {
  auto config = test_config();
  config.log = logger();
  start(config, "127.0.194.1");
  Raw raw(port_, "127.0.194.1", "127.0.194.2");
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<s@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@[192.0.2.1]>"), StartsWith("553 5.1.2"));
  EXPECT_THAT(raw.cmd("DATA"), StartsWith("354 "));
  EXPECT_EQ(raw.cmd("Subject: s\r\n\r\nhi\r\n."), "250 2.0.0 Ok: queued as Q1");
  EXPECT_THAT(raw.cmd("QUIT"), StartsWith("221 "));
  EXPECT_TRUE(raw.closed_by_server());
  EXPECT_THAT(log_lines_after_sessions(),
              ElementsAre("NOQUEUE: reject: RCPT from unknown[127.0.194.2]: 553 5.1.2 address "
                          "literals are not accepted: <r@[192.0.2.1]>; from=<s@x.example> "
                          "to=<r@[192.0.2.1]>",
                          "disconnect from unknown[127.0.194.2] ehlo=1 mail=1 rcpt=1/2 data=1 "
                          "quit=1 commands=5/6"));
}

TEST_F(SmtpServerTest, SummaryCountsRefusedCommandsAsFailed) {
  auto config = test_config();
  config.log = logger();
  start(config, "127.0.194.3");
  Raw raw(port_, "127.0.194.3", "127.0.194.4");
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  EXPECT_THAT(raw.cmd("MAIL FROM:<s@x.example>"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@y.example>"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("DATA"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("RCPT TO:<r@y.example>"), StartsWith("503 5.5.1"));
  EXPECT_THAT(raw.cmd("XYZZY"), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw.cmd("NOOP"), StartsWith("250 "));
  EXPECT_THAT(raw.cmd("QUIT"), StartsWith("221 "));
  EXPECT_TRUE(raw.closed_by_server());
  // Refused by their sequence, not by policy: no NOQUEUE lines.
  EXPECT_THAT(log_lines_after_sessions(),
              ElementsAre("disconnect from unknown[127.0.194.4] mail=0/1 ehlo=1 rcpt=0/2 data=0/1 "
                          "unknown=0/1 noop=1 quit=1 commands=3/8"));
}

TEST_F(SmtpServerTest, SummaryAfterTheClientLeftInData) {
  auto config = test_config();
  config.log = logger();
  start(config, "127.0.194.5");
  {
    Raw raw(port_, "127.0.194.5", "127.0.194.6");
    EXPECT_THAT(raw.reply(), StartsWith("220 "));
    EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
    EXPECT_THAT(raw.cmd("MAIL FROM:<s@x.example>"), StartsWith("250 "));
    EXPECT_THAT(raw.cmd("RCPT TO:<r@y.example>"), StartsWith("250 "));
    EXPECT_THAT(raw.cmd("DATA"), StartsWith("354 "));
    raw.send("Subject: half\r\n\r\nsome text\r\n");
  }
  EXPECT_THAT(log_lines_after_sessions(),
              ElementsAre("lost connection after DATA from unknown[127.0.194.6]",
                          "disconnect from unknown[127.0.194.6] ehlo=1 mail=1 rcpt=1 data=0/1 "
                          "commands=3/4"));
  EXPECT_TRUE(messages().empty());
}

TEST_F(SmtpServerTest, SummaryAfterTooManyErrors) {
  auto config = test_config();
  config.max_errors = 3;
  config.log = logger();
  start(config, "127.0.194.7");
  Raw raw(port_, "127.0.194.7", "127.0.194.8");
  EXPECT_THAT(raw.reply(), StartsWith("220 "));
  EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
  EXPECT_THAT(raw.cmd("FOO"), StartsWith("500 5.5.2"));
  EXPECT_THAT(raw.cmd("MAIL FROM:<s@x.example>"), StartsWith("250 "));
  EXPECT_THAT(raw.cmd("RCPT TO:<nodomain>"), StartsWith("501 5.1.3"));
  EXPECT_EQ(raw.cmd("RCPT TO:<r@y..example>"), "421 4.7.0 mx.test.example too many errors");
  EXPECT_TRUE(raw.closed_by_server());
  EXPECT_THAT(
      log_lines_after_sessions(),
      ElementsAre("NOQUEUE: reject: RCPT from unknown[127.0.194.8]: 501 5.1.3 Bad recipient "
                  "address syntax: missing @domain; from=<s@x.example> to=<nodomain>",
                  "NOQUEUE: reject: RCPT from unknown[127.0.194.8]: 501 5.1.3 Bad recipient "
                  "address syntax: empty domain label; from=<s@x.example> to=<r@y..example>",
                  "too many errors after RCPT from unknown[127.0.194.8]",
                  "disconnect from unknown[127.0.194.8] ehlo=1 unknown=0/1 mail=1 rcpt=0/2 "
                  "commands=2/5"));
}

TEST_F(SmtpServerTest, SummaryAfterATimeoutAndOfASilentClient) {
  auto config = test_config();
  config.command_timeout = 300ms;
  config.log = logger();
  start(config, "127.0.194.9");
  {
    Raw raw(port_, "127.0.194.9", "127.0.194.10");
    EXPECT_THAT(raw.reply(), StartsWith("220 "));
    EXPECT_THAT(raw.cmd("EHLO client.example"), StartsWith("250-"));
    EXPECT_EQ(raw.reply(3s), "421 4.4.2 mx.test.example timeout");
    EXPECT_TRUE(raw.closed_by_server());
  }
  {
    Raw silent(port_, "127.0.194.9", "127.0.194.11");
    EXPECT_THAT(silent.reply(), StartsWith("220 "));
  }
  EXPECT_THAT(log_lines_after_sessions(2),
              ElementsAre("timeout after EHLO from unknown[127.0.194.10]",
                          "disconnect from unknown[127.0.194.10] ehlo=1 commands=1",
                          "lost connection after CONNECT from unknown[127.0.194.11]",
                          "disconnect from unknown[127.0.194.11] commands=0/0"));
}

}  // namespace
}  // namespace danemta::smtp
