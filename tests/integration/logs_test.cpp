// The relay's log read by the tools Postfix operators use: pflogsumm (Debian
// package pflogsumm) run over a lab relay's log must count what the relay
// did (received, delivered, deferred, bounced, rejected) and list the
// reasons, including danemta's outcome names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <regex>
#include <sstream>
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
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using ::testing::HasSubstr;

constexpr const char* kPflogsumm = "/usr/sbin/pflogsumm";

// A figure of pflogsumm's "Grand Totals" ("      5   received"); -1 if absent.
long grand_total(const std::string& report, const std::string& what) {
  std::smatch m;
  const std::regex line("\\n\\s*(\\d+)\\s+" + what + "\\b");
  if (!std::regex_search(report, m, line)) return -1;
  return std::stol(m[1]);
}

// The part of a pflogsumm report from the line `title` to the next title.
std::string section(const std::string& report, const std::string& title) {
  const auto at = report.find(title);
  if (at == std::string::npos) return "";
  const auto end = report.find("\n\n\n", at);
  return report.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

bool wait_until(const lab::Process& relay, const std::function<bool(const std::string&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(relay.log())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(Logs, PflogsummCountsWhatTheRelayDid) {
  Receivers rx(155);
  auto good = lab::self_signed({"mx.good155.example"});
  auto stale_key = lab::self_signed({"mx.stale155.example"});
  auto busy_chain = lab::self_signed({"mx.busy155.example"});
  auto refusing_chain = lab::self_signed({"mx.refuse155.example"});
  rx.add(10, Receivers::with_chain(good, "mx.good155.example"));
  rx.add(11, Receivers::with_chain(good, "mx.stale155.example"));  // not the published key
  lab::Behaviour busy = Receivers::with_chain(busy_chain, "mx.busy155.example");
  busy.replies[lab::Stage::rcpt] = {450, "4.2.1 mailbox busy, try again later"};
  rx.add(12, busy);
  lab::Behaviour refusing = Receivers::with_chain(refusing_chain, "mx.refuse155.example");
  refusing.rcpt_replies["nobody@refuse155.example"] = {550, "5.1.1 no such user here"};
  rx.add(13, refusing);
  auto zone = [&](const std::string& name, int host, const lab::Cert& leaf) {
    return nlohmann::json{{"name", name},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(host),
                            rx.tlsa_line("mx", lab::tlsa_rdata(leaf, 3, 1, 1))}}};
  };
  lab::World world(
      spec({zone("good155.example", 10, good.leaf), zone("stale155.example", 11, stale_key.leaf),
            zone("busy155.example", 12, busy_chain.leaf),
            zone("refuse155.example", 13, refusing_chain.leaf)}));
  // One retry at most in the test's time; clients other than 127.0.0.1 are refused.
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n"
                   "allow = [\"127.0.0.1/32\"]\nlog_prefix = \"syslog\"\n");
  auto relay = setup.start();

  for (const char* to : {"b@good155.example", "c@good155.example", "x@stale155.example",
                         "y@busy155.example", "nobody@refuse155.example"})
    ASSERT_EQ(setup.swaks("a@good155.example", to).exit_code, 0) << to << "\n" << relay->log();
  lab::CommandResult refused = setup.swaks("a@good155.example", "b@good155.example", "127.0.156.2");
  EXPECT_NE(refused.exit_code, 0) << refused.out;

  // Delivered: b, c and the bounce to a; deferred: x and y; bounced: nobody.
  ASSERT_TRUE(wait_until(*relay, [](const std::string& log) {
    return count(log, "status=sent") >= 3 && count(log, "status=deferred") >= 2 &&
           count(log, "status=bounced") >= 1 && count(log, ": removed") >= 4;
  })) << relay->log();
  EXPECT_EQ(relay->stop(SIGTERM), 0);
  const std::string log = relay->log();

  // Every line carries the syslog-style prefix pflogsumm expects.
  std::istringstream lines(log);
  std::string text;
  const std::regex prefixed(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z relay\.lab\.example danemta/[a-z]+\[\d+\]: .+$)");
  while (std::getline(lines, text)) EXPECT_TRUE(std::regex_match(text, prefixed)) << text;
  EXPECT_THAT(log, HasSubstr("NOQUEUE: reject: CONNECT from unknown[127.0.156.2]: 554 5.7.1"));
  // Each session's last line, as Postfix's smtpd ends one: swaks's five
  // sessions, then the refused client's.
  const std::regex summary(
      R"(danemta/smtpd\[\d+\]: disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 )"
      R"(data=1 quit=1 commands=5\n)");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(log.begin(), log.end(), summary), std::sregex_iterator()),
      5)
      << log;
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(danemta/smtpd\[\d+\]: disconnect from unknown\[127\.0\.156\.2\] )"
                      R"(commands=0/0\n)")))
      << log;
  // And each session's first line: "connect from", refused clients too.
  EXPECT_EQ(count(log, "]: connect from unknown[127.0.0.1]\n"), 5u) << log;
  EXPECT_EQ(count(log, "]: connect from unknown[127.0.156.2]\n"), 1u) << log;
  EXPECT_EQ(count(log, "status=sent"), 3u) << log;
  EXPECT_EQ(count(log, "status=bounced"), 1u) << log;
  EXPECT_EQ(count(log, ": removed"), 4u) << log;  // every message with nothing left to try
  EXPECT_THAT(log, HasSubstr("status=deferred (tlsa-invalid: "));
  EXPECT_THAT(log, HasSubstr("sender non-delivery notification: "));

  const std::string report =
      lab::run_command(std::string(kPflogsumm) + " --syslog-name=danemta " + setup.log_path).out;
  EXPECT_EQ(grand_total(report, "received"), 5) << report;
  EXPECT_EQ(grand_total(report, "delivered"), 3) << report;
  EXPECT_EQ(grand_total(report, "deferred"), 2) << report;
  EXPECT_EQ(grand_total(report, "bounced"), 1) << report;
  EXPECT_EQ(grand_total(report, "rejected"), 1) << report;
  EXPECT_EQ(grand_total(report, "recipient hosts/domains"), 1) << "good155 only: " << report;
  // Sizes come from the qmgr lines: nothing is "without size data".
  EXPECT_EQ(report.find("no size data"), std::string::npos) << report;
  // The reasons, as pflogsumm shortens them...
  const std::string deferrals = section(report, "message deferral detail");
  EXPECT_THAT(deferrals, HasSubstr("mailbox busy")) << report;
  EXPECT_THAT(deferrals, HasSubstr("TLSA")) << report;
  const std::string bounces = section(report, "message bounce detail");
  EXPECT_THAT(bounces, HasSubstr("mx.refuse155.example[" + rx.ip(13) + "]")) << report;
  EXPECT_THAT(bounces, HasSubstr("no such user here")) << report;
  const std::string rejects = section(report, "message reject detail");
  EXPECT_THAT(rejects, HasSubstr("CONNECT")) << report;
  EXPECT_THAT(rejects, HasSubstr("127.0.156.2")) << report;

  // ...and whole, with danemta's outcome name first.
  const std::string verbose =
      lab::run_command(std::string(kPflogsumm) + " --syslog-name=danemta --verbose-msg-detail " +
                       setup.log_path)
          .out;
  EXPECT_THAT(section(verbose, "message deferral detail"),
              HasSubstr("tlsa-invalid: mx.stale155.example[" + rx.ip(11) +
                        "]:" + std::to_string(rx.port())))
      << verbose;
}

// A syslog daemon for one test: a datagram socket at `path` (what syslog(3)
// writes to as /dev/log) that keeps every message.
class SyslogSink {
 public:
  explicit SyslogSink(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    if (bound_) thread_ = std::thread([this] { receive(); });
  }
  ~SyslogSink() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool bound() const { return bound_; }
  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  bool wait_for(const std::function<bool(const std::vector<std::string>&)>& done) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(messages())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  void receive() {
    std::vector<char> buf(65536);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) continue;
      std::string m(buf.data(), static_cast<std::size_t>(n));
      while (!m.empty() && (m.back() == '\n' || m.back() == '\0')) m.pop_back();
      std::lock_guard lock(mutex_);
      messages_.push_back(std::move(m));
    }
  }

  int fd_ = -1;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

// Runs `argv` in a private mount namespace whose /dev is `dev` (a directory
// holding the test's log socket) plus the host's null, zero and random
// devices: syslog(3) in there writes to the test's socket.
std::vector<std::string> with_dev(const std::string& dev, std::vector<std::string> argv) {
  std::vector<std::string> out = {
      "/usr/bin/unshare",
      "--mount",
      "--propagation",
      "private",
      "/bin/sh",
      "-c",
      "set -e; for n in null zero full random urandom; do : > \"$0/$n\"; "
      "mount --bind \"/dev/$n\" \"$0/$n\"; done; mount --rbind \"$0\" /dev; exec \"$@\"",
      dev};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::string shell_line(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& a : argv) {
    std::string quoted = "'";
    for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += (line.empty() ? "" : " ") + quoted + "'";
  }
  return line;
}

struct SyslogRecord {
  int facility = -1;
  int severity = -1;
  std::string timestamp;  // "Dec  1 06:29:42"
  std::string tag;        // "danemta/smtp"
  std::string text;
};

std::optional<SyslogRecord> parse_syslog(const std::string& m) {
  static const std::regex form(
      R"(^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ([a-z/]+)\[\d+\]: (.*)$)");
  std::smatch s;
  if (!std::regex_match(m, s, form)) return std::nullopt;
  const int pri = std::stoi(s[1]);
  return SyslogRecord{pri / 8, pri % 8, s[2], s[3], s[4]};
}

const SyslogRecord* find(const std::vector<SyslogRecord>& records, const std::string& needle) {
  for (const SyslogRecord& r : records)
    if (r.text.find(needle) != std::string::npos) return &r;
  return nullptr;
}

TEST(Logs, SyslogHasFacilityMailTagsAndSeverities) {
  if (geteuid() != 0) GTEST_SKIP() << "a private mount namespace needs root";
  if (lab::run_command("/usr/bin/unshare --mount --propagation private true").exit_code != 0)
    GTEST_SKIP() << "no mount namespaces here";
  Receivers rx(156);
  auto good = lab::self_signed({"mx.good156.example"});
  auto stale_key = lab::self_signed({"mx.stale156.example"});
  auto refusing_chain = lab::self_signed({"mx.refuse156.example"});
  rx.add(10, Receivers::with_chain(good, "mx.good156.example"));
  rx.add(11, Receivers::with_chain(good, "mx.stale156.example"));
  lab::Behaviour refusing = Receivers::with_chain(refusing_chain, "mx.refuse156.example");
  refusing.replies[lab::Stage::rcpt] = {550, "5.1.1 no such user here"};
  rx.add(13, refusing);
  auto zone = [&](const std::string& name, int host, const lab::Cert& leaf) {
    return nlohmann::json{{"name", name},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(host),
                            rx.tlsa_line("mx", lab::tlsa_rdata(leaf, 3, 1, 1))}}};
  };
  lab::World world(
      spec({zone("good156.example", 10, good.leaf), zone("stale156.example", 11, stale_key.leaf),
            zone("refuse156.example", 13, refusing_chain.leaf)}));
  const std::string dev = world.dir() + "/dev";
  std::filesystem::create_directory(dev);
  SyslogSink sink(dev + "/log");
  ASSERT_TRUE(sink.bound()) << dev;
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\nlog = \"syslog\"\n");
  lab::Process relay(with_dev(dev, {DANEMTA_BINARY, "--config", setup.config_path, "relay"}),
                     setup.log_path);
  auto any = [](const std::string& needle) {
    return [needle](const std::vector<std::string>& ms) {
      for (const std::string& m : ms)
        if (m.find(needle) != std::string::npos) return true;
      return false;
    };
  };
  ASSERT_TRUE(sink.wait_for(any("listening on"))) << relay.log();

  for (const char* to : {"b@good156.example", "x@stale156.example", "nobody@refuse156.example"})
    ASSERT_EQ(setup.swaks("a@good156.example", to).exit_code, 0) << to;
  ASSERT_TRUE(sink.wait_for([](const std::vector<std::string>& ms) {
    std::size_t sent = 0, deferred = 0, bounced = 0;
    for (const std::string& m : ms) {
      sent += m.find("status=sent") != std::string::npos;
      deferred += m.find("status=deferred") != std::string::npos;
      bounced += m.find("status=bounced") != std::string::npos;
    }
    return sent >= 2 && deferred >= 1 && bounced >= 1;
  })) << relay.log();

  // The operator deletes the deferred message; the command logs it too.
  std::vector<SyslogRecord> records;
  for (const std::string& m : sink.messages()) {
    auto r = parse_syslog(m);
    ASSERT_TRUE(r) << "not a syslog(3) message: " << m;
    records.push_back(*r);
  }
  const SyslogRecord* deferred = find(records, "to=<x@stale156.example>");
  ASSERT_NE(deferred, nullptr);
  const std::string stale_id = deferred->text.substr(0, deferred->text.find(':'));
  lab::CommandResult deleted = lab::run_command(shell_line(
      with_dev(dev, {DANEMTA_BINARY, "--config", setup.config_path, "queue", "delete", stale_id})));
  EXPECT_EQ(deleted.exit_code, 0) << deleted.out;
  ASSERT_TRUE(sink.wait_for(any("danemta/postsuper"))) << deleted.out;
  relay.stop(SIGTERM);

  records.clear();
  std::string file;  // as rsyslog files them: host after the time
  for (const std::string& m : sink.messages()) {
    auto r = parse_syslog(m);
    ASSERT_TRUE(r) << "not a syslog(3) message: " << m;
    EXPECT_EQ(r->facility, 2) << "LOG_MAIL: " << m;
    EXPECT_EQ(r->tag.rfind("danemta/", 0), 0u) << m;
    records.push_back(*r);
    file += r->timestamp + " relay.lab.example " + m.substr(m.find('>') + 17) + "\n";
  }
  auto expect = [&](const std::string& needle, const std::string& tag, int severity) {
    const SyslogRecord* r = find(records, needle);
    ASSERT_NE(r, nullptr) << needle << "\n" << file;
    EXPECT_EQ(r->tag, tag) << needle;
    EXPECT_EQ(r->severity, severity) << needle;
  };
  expect("client=unknown[127.0.0.1]", "danemta/smtpd", 6);
  expect("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
         "danemta/smtpd", 6);
  expect("nrcpt=1 (queue active)", "danemta/qmgr", 6);
  expect("to=<b@good156.example>", "danemta/smtp", 6);  // LOG_INFO
  expect("mx.stale156.example[" + rx.ip(11) + "]: tlsa-invalid", "danemta/smtp", 4);
  expect("to=<x@stale156.example>", "danemta/smtp", 4);        // LOG_WARNING
  expect("to=<nobody@refuse156.example>", "danemta/smtp", 3);  // LOG_ERR
  expect("sender non-delivery notification", "danemta/bounce", 6);
  expect(": removed", "danemta/qmgr", 6);
  expect(stale_id + ": removed", "danemta/postsuper", 6);
  expect("listening on", "danemta/master", 6);

  // pflogsumm reads the same messages once syslog has filed them.
  const std::string mail_log = world.dir() + "/mail.log";
  std::ofstream(mail_log) << file;
  const std::string report =
      lab::run_command(std::string(kPflogsumm) + " --syslog-name=danemta " + mail_log).out;
  EXPECT_EQ(grand_total(report, "received"), 3) << report;
  EXPECT_EQ(grand_total(report, "delivered"), 2) << report;
  EXPECT_EQ(grand_total(report, "deferred"), 1) << report;
  EXPECT_EQ(grand_total(report, "bounced"), 1) << report;
}

}  // namespace
