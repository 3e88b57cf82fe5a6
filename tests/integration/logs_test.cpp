// The relay's log read by the tools Postfix operators use: pflogsumm (Debian
// package pflogsumm) run over a lab relay's log must count what the relay
// did (received, delivered, deferred, bounced, rejected) and list the
// reasons, including danemta's outcome names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

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

}  // namespace
