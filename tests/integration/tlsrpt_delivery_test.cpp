// RFC 8460 section 3: a TLS report reaches a domain whose DANE is broken. The
// relay delivers reports without DANE or TLS enforcement and does not report
// on their delivery, so a stale TLSA record neither blocks the report that
// tells its admin about it nor inflates the next report.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using lab::RelaySetup;
using nlohmann::json;

TEST(TlsRptDelivery, ReportReachesTheDomainWhoseDaneIsBroken) {
  Receivers rx(125);
  auto served = lab::self_signed({"mx.stale125.example"});
  auto published = lab::self_signed({"mx.stale125.example"});  // the old key in DNS
  lab::Receiver& stale = rx.add(10, Receivers::with_chain(served, "mx.stale125.example"));
  lab::World world(
      lab::spec({{{"name", "stale125.example"},
                  {"records",
                   {"@ MX 10 mx", "mx A " + rx.ip(10),
                    rx.tlsa_line("mx", lab::tlsa_rdata(published.leaf, 3, 1, 1)),
                    "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@stale125.example\""}}}}));
  const std::string dir = world.dir();
  ASSERT_EQ(lab::run_command("openssl genrsa -out " + dir + "/dkim.pem 2048").exit_code, 0);
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n\n"
                   "[tlsrpt]\nsubmitter = \"sender125.example\"\n"
                   "organization_name = \"Sender 125\"\n"
                   "dkim_domain = \"sender125.example\"\ndkim_selector = \"rpt\"\n"
                   "dkim_key_file = \"" +
                       dir + "/dkim.pem\"\n");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("s@sender125.example", "b@stale125.example").exit_code, 0);
  ASSERT_TRUE(relay->wait_for_log("status=deferred (tlsa-invalid")) << relay->log();
  EXPECT_EQ(lab::messages(stale), 0u);

  const std::string bin = std::string(DANEMTA_BINARY) + " --config " + setup.config_path;
  lab::CommandResult sent = lab::run_command(bin + " tlsrpt send --date " + lab::utc_today());
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_NE(sent.out.find("queued for <tlsrpt@stale125.example>"), std::string::npos) << sent.out;
  const auto as = sent.out.find(" as ", sent.out.find("queued for <tlsrpt@"));
  const std::string id = sent.out.substr(as + 4, sent.out.find('\n', as) - as - 4);
  ASSERT_EQ(lab::run_command(bin + " queue flush " + id).exit_code, 0) << id;
  ASSERT_TRUE(lab::wait_messages(stale, 1)) << relay->log();
  std::this_thread::sleep_for(std::chrono::seconds(1));

  const std::vector<lab::Session> sessions = stale.sessions();
  ASSERT_EQ(lab::messages(stale), 1u) << "the report only, never the user's message";
  const lab::Message* report = nullptr;
  for (const lab::Session& s : sessions)
    for (const lab::Message& m : s.messages) report = &m;
  ASSERT_NE(report, nullptr);
  EXPECT_EQ(report->rcpt_to, std::vector<std::string>{"tlsrpt@stale125.example"});
  EXPECT_TRUE(report->in_tls) << "opportunistic TLS, still encrypted";
  EXPECT_NE(report->data.find("TLS-Report-Domain: stale125.example"), std::string::npos);
  EXPECT_NE(relay->log().find("to=<tlsrpt@stale125.example>"), std::string::npos);
  EXPECT_NE(relay->log().find("status=sent"), std::string::npos) << relay->log();

  // The report's own delivery is not a session of the next report.
  lab::CommandResult printed =
      lab::run_command(bin + " tlsrpt send --print --date " + lab::utc_today());
  ASSERT_EQ(printed.exit_code, 0) << printed.out;
  json next = json::parse(printed.out.substr(printed.out.find('{')));
  ASSERT_EQ(next["policies"].size(), 1u) << next.dump(2);
  EXPECT_EQ(next["policies"][0]["summary"]["total-failure-session-count"], 1);
  EXPECT_EQ(next["policies"][0]["summary"]["total-successful-session-count"], 0);
  relay->stop(SIGTERM);
}

// RFC 8460 section 4.3.2.1: a receiver that offers STARTTLS but whose
// handshake fails gets the mail in clear (opportunistic TLS, no policy), and
// the report says the negotiation failed, not that STARTTLS is missing.
TEST(TlsRptDelivery, FailedHandshakeIsNotReportedAsMissingStarttls) {
  Receivers rx(158);
  lab::Behaviour broken;
  broken.offer_starttls = true;  // advertised without a certificate: the handshake fails
  lab::Receiver& mx = rx.add(10, broken);
  lab::World world(
      lab::spec({{{"name", "fb158.example"},
                  {"records",
                   {"@ MX 10 mx", "mx A " + rx.ip(10),
                    "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports158.example\""}}}}));
  const std::string dir = world.dir();
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n\n"
                   "[tlsrpt]\nsubmitter = \"sender158.example\"\n"
                   "organization_name = \"Sender 158\"\n");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("s@sender158.example", "b@fb158.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("status=sent")) << relay->log();
  const std::vector<lab::Session> sessions = mx.sessions();
  EXPECT_FALSE(sessions.front().starttls_completed);
  EXPECT_FALSE(sessions.back().messages.back().in_tls) << "delivered in clear";

  lab::CommandResult printed =
      lab::run_command(std::string(DANEMTA_BINARY) + " --config " + setup.config_path +
                       " tlsrpt send --print --date " + lab::utc_today());
  ASSERT_EQ(printed.exit_code, 0) << printed.out;
  json report = json::parse(printed.out.substr(printed.out.find('{')));
  ASSERT_EQ(report["policies"].size(), 1u) << report.dump(2);
  const json& p = report["policies"][0];
  EXPECT_EQ(p["policy"]["policy-type"], "no-policy-found") << report.dump(2);
  EXPECT_EQ(p["summary"]["total-failure-session-count"], 1) << report.dump(2);
  ASSERT_EQ(p["failure-details"].size(), 1u) << report.dump(2);
  EXPECT_EQ(p["failure-details"][0]["result-type"], "validation-failure") << report.dump(2);
  EXPECT_EQ(p["failure-details"][0]["receiving-ip"], rx.ip(10));
  relay->stop(SIGTERM);
}

// No cron: the relay runs `tlsrpt send` itself ([tlsrpt]
// send_interval_seconds) and yesterday's report reaches the rua.
TEST(TlsRptDelivery, RelaySendsYesterdaysReportsItself) {
  Receivers rx(162);
  auto chain = lab::self_signed({"mx.reports162.example"});
  lab::Receiver& reports_mx = rx.add(10, Receivers::with_chain(chain, "mx.reports162.example"));
  lab::World world(
      lab::spec({{{"name", "sent162.example"},
                  {"records",
                   {"@ MX 10 mx", "mx A " + rx.ip(11),
                    "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports162.example\""}}},
                 {{"name", "reports162.example"},
                  {"records",
                   {"@ MX 10 mx", "mx A " + rx.ip(10),
                    rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  const std::string dir = world.dir();
  ASSERT_EQ(lab::run_command("openssl genrsa -out " + dir + "/dkim.pem 2048").exit_code, 0);
  {
    // What the relay saw yesterday: one failed session to sent162.example.
    auto store = tlsrpt::open_sqlite_store(dir + "/tlsrpt.db");
    ASSERT_TRUE(store) << store.error().message;
    tlsrpt::SessionResult r;
    r.at = static_cast<tlsrpt::Time>(std::time(nullptr)) - 86400;
    r.policy_domain = "sent162.example";
    r.mx_host = "mx.sent162.example";
    r.result_type = "starttls-not-supported";
    r.sending_mta_ip = "127.0.0.1";
    r.receiving_ip = rx.ip(11);
    ASSERT_TRUE((*store)->record(r));
  }
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n\n"
                   "[tlsrpt]\nsubmitter = \"sender162.example\"\n"
                   "organization_name = \"Sender 162\"\n"
                   "dkim_domain = \"sender162.example\"\ndkim_selector = \"rpt\"\n"
                   "dkim_key_file = \"" +
                       dir +
                       "/dkim.pem\"\n"
                       "send_interval_seconds = 2\nsend_delay_max_seconds = 0\n");
  auto relay = setup.start();
  ASSERT_TRUE(relay->wait_for_log("queued for <tlsrpt@reports162.example>")) << relay->log();
  ASSERT_TRUE(lab::wait_messages(reports_mx, 1)) << relay->log();
  const std::vector<lab::Session> sessions = reports_mx.sessions();
  const lab::Message& mail = sessions.back().messages.back();
  EXPECT_NE(mail.data.find("TLS-Report-Domain: sent162.example"), std::string::npos);
  // Later runs send nothing again and, being quiet, say nothing.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const std::string log = relay->log();
  std::size_t queued = 0;
  for (std::size_t at = log.find("queued for <tlsrpt@"); at != std::string::npos;
       at = log.find("queued for <tlsrpt@", at + 1))
    ++queued;
  EXPECT_EQ(queued, 1u) << log;
  EXPECT_EQ(log.find("already sent"), std::string::npos) << log;
  EXPECT_EQ(lab::messages(reports_mx), 1u);
  relay->stop(SIGTERM);
}

}  // namespace
