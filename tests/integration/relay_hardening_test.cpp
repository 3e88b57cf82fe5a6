// The relay on an operator's worst day, end to end through the daemon: a full
// spool file system while mail is due, kill -9 in the middle of delivery.
// Whatever happens, an accepted message is neither lost nor sent many times.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::count;
using lab::messages;
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using lab::wait_messages;

// A number from the environment, for longer runs by hand.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

// A small tmpfs mounted for the test's lifetime (needs root: CI runs as root).
class Tmpfs {
 public:
  Tmpfs(std::string dir, const std::string& size) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

  // Writes a file until the file system is full.
  void fill() {
    int fd = open((dir_ + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::string block(64 * 1024, 'x');
    while (write(fd, block.data(), block.size()) > 0) {
    }
    std::string byte = "x";
    while (write(fd, byte.data(), 1) > 0) {
    }
    fsync(fd);
    close(fd);
  }
  void free_space() { std::filesystem::remove(dir_ + "/filler"); }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// The lab MX for `domain` on rx's host 10, down while the test queues mail:
// its port is fixed by a first receiver that is then taken away.
struct DownMx {
  lab::Chain chain;
  std::uint16_t port = 0;
  std::string address;

  DownMx(Receivers& rx, const std::string& host) : chain(lab::self_signed({host})) {
    lab::Behaviour b = Receivers::with_chain(chain, host);
    b.address = rx.ip(10);
    address = b.address;
    lab::Receiver probe(b);
    port = probe.port();
  }
  std::vector<std::string> records() const {
    return {"@ MX 10 mx", "mx A " + address,
            "_" + std::to_string(port) + "._tcp.mx TLSA " + lab::tlsa_rdata(chain.leaf, 3, 1, 1)};
  }
  lab::Behaviour up(const std::string& host) const {
    lab::Behaviour b = Receivers::with_chain(chain, host);
    b.address = address;
    b.port = port;
    return b;
  }
};

// A blocking SMTP submitter for many messages over one connection.
class Submitter {
 public:
  explicit Submitter(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && reply() == 220;
    ok_ = ok_ && command("EHLO submitter.example") == 250;
  }
  ~Submitter() {
    if (ok_) command("QUIT");
    close(fd_);
  }
  // The reply code to the end of data (0: connection trouble).
  int send(const std::string& from, const std::string& to, const std::string& subject) {
    return send_text(from, to, "Subject: " + subject + "\r\n\r\nbody of " + subject + "\r\n");
  }
  // `text`: CRLF lines, ending in CRLF, no line starting with a dot.
  int send_text(const std::string& from, const std::string& to, const std::string& text) {
    if (!ok_) return 0;
    if (command("MAIL FROM:<" + from + ">") != 250) return 0;
    if (command("RCPT TO:<" + to + ">") != 250) return 0;
    if (command("DATA") != 354) return 0;
    return command(text + ".");
  }

 private:
  int command(const std::string& line) {
    std::string out = line + "\r\n";
    if (::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
      return 0;
    return reply();
  }
  // Reads one (possibly multi-line) reply; returns its code.
  int reply() {
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.size() >= 4 && line[3] == '-') continue;
        return line.size() >= 3 ? std::atoi(line.substr(0, 3).c_str()) : 0;
      }
      char chunk[4096];
      ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return 0;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int fd_ = -1;
  bool ok_ = false;
  std::string buffer_;
};

// Subject -> how many times the receiver got it.
std::map<std::string, int> subjects(const lab::Receiver& r) {
  std::map<std::string, int> seen;
  for (const lab::Session& s : r.sessions())
    for (const lab::Message& m : s.messages) {
      auto at = m.data.find("Subject: ");
      if (at == std::string::npos) continue;
      ++seen[m.data.substr(at + 9, m.data.find('\r', at) - at - 9)];
    }
  return seen;
}

TEST(RelayHardening, FullSpoolNeitherMultipliesMailNorFloodsTheLog) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  Receivers rx(121);
  DownMx down(rx, "mx.full121.example");
  lab::World world(spec({{{"name", "full121.example"}, {"records", down.records()}}}));
  Tmpfs spool(world.dir() + "/spool", "4m");
  ASSERT_TRUE(spool.mounted());
  RelaySetup setup(world, down.port,
                   "min_backoff_seconds = 1\nmax_backoff_seconds = 1\nstorage_retry_seconds = 1\n",
                   world.dir() + "/spool");
  auto relay = setup.start();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(
        setup.swaks("a@sender.example", "r" + std::to_string(i) + "@full121.example").exit_code, 0);
  // Every message deferred once, so all five are due together when the MX
  // comes back (one that was never tried could go first and alone).
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(relay->wait_for_log("to=<r" + std::to_string(i) + "@full121.example>"))
        << relay->log();

  // The MX comes back and fills the spool's file system as the first message
  // arrives: the "delivered" state of every message cannot be written.
  std::once_flag filled;
  lab::Behaviour b = down.up("mx.full121.example");
  b.on_message = [&](const lab::Session&, std::size_t) {
    std::call_once(filled, [&] { spool.fill(); });
  };
  lab::Receiver mx(b);
  ASSERT_TRUE(wait_messages(mx, 5, std::chrono::seconds(20))) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("cannot write delivery results")) << relay->log();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(messages(mx), 5u) << "each message exactly once while the spool is full";
  std::map<std::string, int> per_recipient;
  for (const lab::Session& s : mx.sessions())
    for (const lab::Message& m : s.messages)
      for (const std::string& to : m.rcpt_to) ++per_recipient[to];
  EXPECT_EQ(per_recipient.size(), 5u);
  for (const auto& [to, n] : per_recipient) EXPECT_EQ(n, 1) << to;
  const std::string during = relay->log();
  std::cout << "full spool: " << messages(mx) << " deliveries of 5 messages, "
            << count(during, "cannot write delivery results") << " warning line(s), "
            << count(during, "\n") << " log lines in all\n";
  EXPECT_LE(count(during, "cannot write delivery results"), 8u) << during;
  EXPECT_LE(count(during, "\n"), 60u) << "no log flood: " << during;

  lab::CommandResult refused = setup.swaks("a@sender.example", "late@full121.example");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.out.find("452 4.3.1 Insufficient system storage"), std::string::npos)
      << refused.out;
  EXPECT_EQ(refused.out.find(setup.spool_path), std::string::npos)
      << "the client is not told the spool's path: " << refused.out;

  spool.free_space();
  ASSERT_TRUE(relay->wait_for_log("spool writable again")) << relay->log();
  lab::CommandResult list = setup.queue("list --all");
  EXPECT_EQ(list.exit_code, 0) << list.out;
  EXPECT_EQ(count(list.out, "delivered"), 5u) << list.out;
  EXPECT_NE(list.out.find("5 message(s), 0 with pending recipients"), std::string::npos)
      << list.out;

  ASSERT_EQ(setup.swaks("a@sender.example", "after@full121.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(mx, 6)) << relay->log();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(messages(mx), 6u) << relay->log();
  relay->stop(SIGTERM);
}

TEST(RelayHardening, KillNineDuringDeliveryRepeatsAtMostOneMessagePerSession) {
  // DANEMTA_KILL_MESSAGES=3000 for the figures in the issue; 400 in CI.
  const int kMessages = env_int("DANEMTA_KILL_MESSAGES", 400);
  constexpr int kSessions = 4;  // max_per_destination
  Receivers rx(122);
  DownMx down(rx, "mx.kill122.example");
  lab::World world(spec({{{"name", "kill122.example"}, {"records", down.records()}}}));
  RelaySetup setup(world, down.port,
                   "min_backoff_seconds = 1\nmax_backoff_seconds = 1\nmax_per_destination = " +
                       std::to_string(kSessions) + "\n");
  auto relay = setup.start();
  {
    Submitter submitter(setup.listen_port);
    for (int i = 0; i < kMessages; ++i)
      ASSERT_EQ(submitter.send("a@sender.example", "r@kill122.example", "m" + std::to_string(i)),
                250);
  }

  // The MX returns; when a third of the mail has arrived the relay is killed
  // (before that message's 250 goes out).
  std::atomic<pid_t> victim = relay->pid();
  std::atomic<int> arrived = 0;
  lab::Behaviour b = down.up("mx.kill122.example");
  b.on_message = [&](const lab::Session&, std::size_t) {
    if (++arrived == kMessages / 3) kill(victim.exchange(0), SIGKILL);
  };
  lab::Receiver mx(b);
  ASSERT_TRUE(wait_messages(mx, static_cast<std::size_t>(kMessages / 3), std::chrono::seconds(30)))
      << relay->log();
  relay->stop(SIGKILL);
  const std::size_t before = messages(mx);
  std::cout << "kill -9 after " << before << " of " << kMessages << " messages\n";

  auto again = setup.start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (subjects(mx).size() < static_cast<std::size_t>(kMessages) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const std::map<std::string, int> seen = subjects(mx);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages)) << "no message lost";
  int duplicates = 0;
  for (const auto& [subject, n] : seen) duplicates += n - 1;
  std::cout << "duplicates after kill -9: " << duplicates << " (" << kSessions
            << " sessions open)\n";
  EXPECT_LE(duplicates, kSessions) << "received before the kill: " << before;
  again->stop(SIGTERM);
}

TEST(RelayHardening, MailLoopBouncesWithRoutingLoopCode) {
  // loop123.example's MX is the relay itself: every hop adds a Received: field
  // until the relay refuses the message and the previous hop bounces it.
  Receivers rx(123);
  lab::World world(
      spec({{{"name", "loop123.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.0.1"}}},
            {{"name", "home123.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(10)}}}}));
  RelaySetup setup(world, 0, "min_backoff_seconds = 1\nmax_backoff_seconds = 1\n");
  lab::Behaviour b;
  b.hostname = "mx.home123.example";
  b.address = rx.ip(10);
  b.port = setup.listen_port;
  lab::Receiver home(b);
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("alice@home123.example", "bob@loop123.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(home, 1, std::chrono::seconds(60))) << relay->log();
  const std::vector<lab::Session> sessions = home.sessions();
  const lab::Message& bounce = sessions[0].messages[0];
  EXPECT_EQ(bounce.mail_from, "");
  EXPECT_NE(bounce.data.find("Status: 5.4.6"), std::string::npos) << bounce.data;
  EXPECT_NE(bounce.data.find("Too many hops"), std::string::npos) << bounce.data;
  const std::string log = relay->log();
  EXPECT_NE(log.find("NOQUEUE: reject: DATA from unknown[127.0.0.1]: 554 5.4.6 Too many hops (51 "
                     "Received: header fields): mail forwarding loop; from=<"),
            std::string::npos)
      << log;
  lab::CommandResult list = setup.queue("list --all");
  EXPECT_LE(count(list.out, "\n<"), 60u) << "the loop ended after about 50 hops: " << list.out;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(messages(home), 1u);
  relay->stop(SIGTERM);
}

// Peak resident memory of a process (VmHWM), in bytes.
std::size_t peak_rss(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  return 0;
}

TEST(RelayHardening, LargeMessagesStreamThroughBoundedMemory) {
  // Several 45 MiB messages in parallel, received, stored and delivered: the
  // relay holds none of them whole (bodies stream to and from the spool).
  const auto kParallel = static_cast<std::size_t>(env_int("DANEMTA_BIG_PARALLEL", 6));
  constexpr std::size_t kSize = 45 * 1024 * 1024;
  Receivers rx(124);
  auto chain = lab::self_signed({"mx.big124.example"});
  lab::Behaviour b = Receivers::with_chain(chain, "mx.big124.example");
  b.advertise = {"PIPELINING", "SIZE 104857600", "8BITMIME"};
  lab::Receiver& mx = rx.add(10, b);
  lab::World world(spec({{{"name", "big124.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "");
  // Freed memory goes back at once: ASan's quarantine would otherwise count.
  setenv("ASAN_OPTIONS", "quarantine_size_mb=1:thread_local_quarantine_size_kb=64", 1);
  auto relay = setup.start();
  unsetenv("ASAN_OPTIONS");
  const std::size_t idle = peak_rss(relay->pid());

  std::string line(998, 'x');
  line += "\r\n";
  std::string body;
  while (body.size() < kSize) body += line;
  std::vector<std::thread> senders;
  std::atomic<int> accepted = 0;
  for (std::size_t i = 0; i < kParallel; ++i)
    senders.emplace_back([&, i] {
      Submitter submitter(setup.listen_port);
      if (submitter.send_text("a@sender.example", "r" + std::to_string(i) + "@big124.example",
                              "Subject: big " + std::to_string(i) + "\r\n\r\n" + body) == 250)
        ++accepted;
    });
  for (std::thread& t : senders) t.join();
  EXPECT_EQ(accepted, static_cast<int>(kParallel));
  ASSERT_TRUE(wait_messages(mx, kParallel, std::chrono::seconds(120))) << relay->log();
  const std::size_t peak = peak_rss(relay->pid());
  for (const lab::Session& s : mx.sessions())
    for (const lab::Message& m : s.messages) EXPECT_GE(m.data.size(), kSize);
  std::cout << "relay peak RSS: idle " << idle / (1024 * 1024) << " MiB, after " << kParallel
            << " x " << kSize / (1024 * 1024) << " MiB: " << peak / (1024 * 1024) << " MiB\n";
  EXPECT_LT(peak, idle + 64u * 1024 * 1024)
      << "peak " << peak / (1024 * 1024) << " MiB, idle " << idle / (1024 * 1024) << " MiB";
  relay->stop(SIGTERM);
}

TEST(RelayHardening, IdleConnectionsUnderALowFdLimitDoNotStopTheRelay) {
  // The relay runs with 64 file descriptors; 100 clients connect and sit
  // idle. It must neither crash nor spin, answer 421 to those over
  // max_connections, and take mail again once they are gone.
  lab::World world(
      lab::spec({{{"name", "fd126.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.126.10"}}}}));
  RelaySetup setup(world, 25,
                   "max_connections = 40\nmin_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  lab::Process relay({"/usr/bin/prlimit", "--nofile=64:64", DANEMTA_BINARY, "--config",
                      setup.config_path, "relay"},
                     setup.log_path);
  ASSERT_TRUE(relay.wait_for_log("listening on")) << relay.log();
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(setup.listen_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) idle.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_NE(relay.log().find("too many connections"), std::string::npos) << relay.log();
  for (int fd : idle) close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  lab::CommandResult sent = setup.swaks("a@sender.example", "b@fd126.example");
  EXPECT_EQ(sent.exit_code, 0) << sent.out << relay.log();
  EXPECT_EQ(relay.stop(SIGTERM), 0) << relay.log();
  // No log flood: each of the 101 sessions logs at most its refusal or how
  // it ended, and its "disconnect from" line; a few lines more for the rest.
  const std::string log = relay.log();
  EXPECT_LE(count(log, "disconnect from"), 101u) << log;
  EXPECT_LT(count(log, "\n"), 3u * 101 + 50) << "no log flood";
}

}  // namespace
