// Standards fidelity end to end (issue 7 items 4-6): TLSA records that are
// unusable rather than DNS failures (RFC 6698 section 2.1, RFC 7672 section
// 3.1), the DSN Diagnostic-Code type (RFC 3464 section 2.3.6), and a local
// resolver that is down reported as the sending relay's problem (DESIGN.md
// section 8). Real binary, lab world, lab receivers; NETs 131-135.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using lab::wait_messages;
using nlohmann::json;

struct Check {
  int exit_code = -1;
  json j;
  std::string text;
};

Check run_check(const std::string& options, const std::string& domain) {
  const std::string base = std::string(DANEMTA_BINARY) + " check " + options + " " + domain;
  lab::CommandResult js = lab::run_command(base + " --json");
  lab::CommandResult text = lab::run_command(base);
  Check c{js.exit_code, json::object(), text.out};
  EXPECT_EQ(js.exit_code, text.exit_code) << text.out;
  try {
    c.j = json::parse(js.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what() << "\n" << js.out;
  }
  return c;
}

std::string lab_check_options(const lab::World& world, const Receivers& rx) {
  return "--resolver " + world.resolver() + " --trust-anchor " + world.trust_anchor_file() +
         " --timeout 10 --port " + std::to_string(rx.port());
}

// The TLSA verdict of the record with this presentation form (DNS does not
// keep the RRset's order).
json tlsa_verdict(const json& host, const std::string& prefix) {
  for (const json& t : host["tlsa"]) {
    const std::string r =
        std::to_string(t["usage"].get<int>()) + " " + std::to_string(t["selector"].get<int>()) +
        " " + std::to_string(t["matching_type"].get<int>()) + " " + t["data"].get<std::string>();
    if (r == prefix) return t;
  }
  ADD_FAILURE() << "no TLSA record " << prefix << " in " << host["tlsa"].dump();
  return json::object();
}

// Item 4: a 3-octet TLSA record beside a good 3 1 1 is an unusable record
// (delivery stays dane-verified); an RRset of only a 3 0 0 record whose data
// is not a certificate gives mandatory unauthenticated TLS, not a deferral.
TEST(TlsaEdgeCases, UnusableRecordsAreRecordsNotFailures) {
  Receivers rx(132);
  auto chain = lab::self_signed({"mx.empty132.example"});
  auto other = lab::self_signed({"mx.notcert132.example"});
  lab::Receiver& empty_mx = rx.add(10, Receivers::with_chain(chain, "mx.empty132.example"));
  lab::Receiver& notcert_mx = rx.add(11, Receivers::with_chain(other, "mx.notcert132.example"));
  lab::Receiver& home = rx.add(12, Receivers::with_chain(chain, "mx.home132.example"));
  const std::string empty_tlsa = "_" + std::to_string(rx.port()) + "._tcp.mx TYPE52 \\# 3 030101";
  lab::World world(
      spec({{{"name", "empty132.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10),
               rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1)), empty_tlsa}}},
            {{"name", "notcert132.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(11), rx.tlsa_line("mx", "3 0 0 0102030405060708")}}},
            {{"name", "home132.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(12)}}}}));

  Check empty = run_check(lab_check_options(world, rx), "empty132.example");
  EXPECT_EQ(empty.exit_code, 0) << empty.text;
  EXPECT_NE(empty.text.find("Result  OK"), std::string::npos) << empty.text;
  EXPECT_NE(empty.text.find("empty certificate association data"), std::string::npos) << empty.text;
  EXPECT_EQ(empty.text.find("fix your name servers"), std::string::npos) << empty.text;
  const json& eh = empty.j["hosts"][0];
  EXPECT_EQ(eh["requirement"], "dane");
  ASSERT_EQ(eh["tlsa"].size(), 2u) << eh.dump();
  json e = tlsa_verdict(eh, "3 1 1 ");  // empty association data
  EXPECT_FALSE(e["usable"].get<bool>()) << e;
  EXPECT_EQ(e["data"], "");
  EXPECT_EQ(e["note"], "empty certificate association data");
  EXPECT_EQ(eh["probes"][0]["authentication"], "dane-verified") << eh.dump();

  Check notcert = run_check(lab_check_options(world, rx), "notcert132.example");
  EXPECT_EQ(notcert.exit_code, 0) << notcert.text;
  EXPECT_NE(notcert.text.find("Result  OK"), std::string::npos) << notcert.text;
  EXPECT_NE(notcert.text.find("full data is not a DER certificate"), std::string::npos)
      << notcert.text;
  const json& nh = notcert.j["hosts"][0];
  EXPECT_EQ(nh["requirement"], "encrypt");
  EXPECT_EQ(nh["probes"][0]["authentication"], "mandatory-unauthenticated") << nh.dump();

  RelaySetup setup(world, rx.port(), "");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("a@home132.example", "b@empty132.example").exit_code, 0);
  ASSERT_EQ(setup.swaks("a@home132.example", "c@notcert132.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(empty_mx, 1)) << relay->log();
  ASSERT_TRUE(wait_messages(notcert_mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("to=<c@notcert132.example>")) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("to=<b@empty132.example>")) << relay->log();
  relay->stop(SIGTERM);
  std::istringstream lines(relay->log());
  std::string line;
  int seen = 0;
  while (std::getline(lines, line)) {
    if (line.find("to=<b@empty132.example>") != std::string::npos) {
      ++seen;
      EXPECT_NE(line.find("status=sent"), std::string::npos) << line;
      EXPECT_NE(line.find("tls=dane-verified"), std::string::npos) << line;
    }
    if (line.find("to=<c@notcert132.example>") != std::string::npos) {
      ++seen;
      EXPECT_NE(line.find("status=sent"), std::string::npos) << line;
      EXPECT_NE(line.find("tls=mandatory-unauthenticated"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(seen, 2) << relay->log();
  EXPECT_EQ(lab::messages(home), 0u) << "no bounce";
  for (const lab::Receiver* r : {&empty_mx, &notcert_mx}) {
    const std::vector<lab::Session> sessions = r->sessions();
    ASSERT_FALSE(sessions.empty());
    EXPECT_TRUE(sessions.back().starttls_completed);
    ASSERT_FALSE(sessions.back().messages.empty());
    EXPECT_TRUE(sessions.back().messages[0].in_tls);
  }
}

// Item 5: a 421 at the greeting is the server's reply (smtp;); a refused
// connection is danemta's own finding (X-danemta;).
TEST(DsnDiagnostic, SmtpOnlyForWhatTheServerSaid) {
  Receivers rx(134);
  auto home_chain = lab::self_signed({"mx.home134.example"});
  lab::Receiver& home = rx.add(10, Receivers::with_chain(home_chain, "mx.home134.example"));
  lab::Behaviour busy_b = Receivers::with_chain(home_chain, "mx.busy134.example");
  busy_b.replies[lab::Stage::greeting] = lab::Reply{421, "4.3.2 busy134 try again later"};
  lab::Receiver& busy = rx.add(11, busy_b);
  // rx.ip(12): nothing listens there, the connection is refused.
  lab::World world(
      spec({{{"name", "home134.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(10)}}},
            {{"name", "busy134.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(11)}}},
            {{"name", "dead134.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(12)}}}}));
  RelaySetup setup(
      world, rx.port(),
      "queue_lifetime_seconds = 2\nmin_backoff_seconds = 1\nmax_backoff_seconds = 1\n");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("alice@home134.example", "bob@busy134.example").exit_code, 0);
  ASSERT_EQ(setup.swaks("alice@home134.example", "carol@dead134.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(home, 2, std::chrono::seconds(30))) << relay->log();
  relay->stop(SIGTERM);
  EXPECT_EQ(lab::messages(busy), 0u);

  std::string to_bob, to_carol;
  for (const lab::Session& s : home.sessions())
    for (const lab::Message& m : s.messages) {
      if (m.data.find("Final-Recipient: rfc822; bob@busy134.example") != std::string::npos)
        to_bob = m.data;
      if (m.data.find("Final-Recipient: rfc822; carol@dead134.example") != std::string::npos)
        to_carol = m.data;
    }
  ASSERT_FALSE(to_bob.empty()) << relay->log();
  ASSERT_FALSE(to_carol.empty()) << relay->log();
  EXPECT_NE(to_bob.find("Diagnostic-Code: smtp; 421 4.3.2 busy134 try again later"),
            std::string::npos)
      << to_bob;
  EXPECT_NE(to_bob.find("The receiving server said:"), std::string::npos) << to_bob;
  EXPECT_NE(to_carol.find("Diagnostic-Code: X-danemta; connection-failed:"), std::string::npos)
      << to_carol;
  EXPECT_EQ(to_carol.find("Diagnostic-Code: smtp;"), std::string::npos) << to_carol;
}

// Item 6: forwarders that do not answer are the sending relay's problem.
TEST(LocalResolver, DownResolverIsReportedAsLocal) {
  const std::string dead =
      "127.0.131.53@" + std::to_string(lab::free_tcp_port());  // nothing listens there

  Check c = run_check("--resolver " + dead + " --timeout 2 --no-connect", "dest131.example");
  EXPECT_EQ(c.exit_code, 1) << c.text;
  EXPECT_NE(c.text.find("local-dns-failed"), std::string::npos) << c.text;
  EXPECT_NE(c.text.find("local DNS resolver not answering"), std::string::npos) << c.text;
  EXPECT_NE(c.text.find("Nothing for the receiving domain"), std::string::npos) << c.text;
  EXPECT_NE(c.text.find("[dns]"), std::string::npos) << c.text;
  EXPECT_EQ(c.text.find("authoritative server"), std::string::npos)
      << "no advice to the receiving domain's name servers: " << c.text;
  EXPECT_EQ(c.j["verdict"]["outcome"]["name"], "local-dns-failed") << c.j.dump();
  EXPECT_EQ(c.j["verdict"]["outcome"]["code"], "4.4.312");
  EXPECT_TRUE(c.j["verdict"]["outcome"]["tlsrpt_result_type"].is_null());

  // The relay: the message is deferred, and the log line says why.
  lab::World world(spec({{{"name", "dest131.example"}, {"records", {"@ MX 10 mx"}}}}));
  RelaySetup setup(world, 25, "");
  {
    std::ifstream in(setup.config_path);
    std::stringstream cfg;
    cfg << in.rdbuf();
    std::string text = cfg.str();
    auto at = text.find(world.resolver());
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, world.resolver().size(), dead);
    at = text.find("timeout_seconds = 10");
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, 20, "timeout_seconds = 2");
    std::ofstream(setup.config_path) << text;
  }
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("a@sender.example", "b@dest131.example").exit_code, 0);
  ASSERT_TRUE(relay->wait_for_log("to=<b@dest131.example>", std::chrono::seconds(30)))
      << relay->log();
  relay->stop(SIGTERM);
  std::istringstream lines(relay->log());
  std::string line;
  bool seen = false;
  while (std::getline(lines, line)) {
    if (line.find("to=<b@dest131.example>") == std::string::npos) continue;
    seen = true;
    EXPECT_NE(line.find("dsn=4.4.312"), std::string::npos) << line;
    EXPECT_NE(line.find("status=deferred (local-dns-failed"), std::string::npos) << line;
    EXPECT_NE(line.find("local DNS resolver not answering"), std::string::npos) << line;
  }
  EXPECT_TRUE(seen) << relay->log();
}

}  // namespace
