// TLS reporting end to end: the relay records what it saw while delivering,
// `danemta tlsrpt send` builds the RFC 8460 report for the day and mails it,
// DKIM-signed, to the rua of the failing domain's _smtp._tls record; the
// relay delivers the report over DANE to the reporting domain's receiver.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using nlohmann::json;

std::size_t count(const lab::Receiver& r) {
  std::size_t n = 0;
  for (const lab::Session& s : r.sessions()) n += s.messages.size();
  return n;
}

TEST(TlsRpt, RelayRecordsAndMailsADkimSignedReport) {
  Receivers rx(81);
  auto good = lab::self_signed({"mx.good81.example"});
  auto old_key = lab::self_signed({"mx.stale81.example"});
  auto reports = lab::self_signed({"mx.reports81.example"});
  lab::Receiver& good_mx = rx.add(10, Receivers::with_chain(good, "mx.good81.example"));
  rx.add(11, Receivers::with_chain(good, "mx.stale81.example"));
  lab::Receiver& reports_mx = rx.add(12, Receivers::with_chain(reports, "mx.reports81.example"));
  lab::World world(
      json{{"zones",
            {{{"name", "good81.example"},
              {"records",
               {"@ MX 10 mx", "mx A " + rx.ip(10),
                rx.tlsa_line("mx", lab::tlsa_rdata(good.leaf, 3, 1, 1))}}},
             {{"name", "stale81.example"},
              {"records",
               {"@ MX 10 mx", "mx A " + rx.ip(11),
                rx.tlsa_line("mx", lab::tlsa_rdata(old_key.leaf, 3, 1, 1)),
                "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports81.example\""}}},
             {{"name", "reports81.example"},
              {"records",
               {"@ MX 10 mx", "mx A " + rx.ip(12),
                rx.tlsa_line("mx", lab::tlsa_rdata(reports.leaf, 3, 1, 1))}}}}}}
          .dump());

  const std::string dir = world.dir();
  ASSERT_EQ(lab::run_command("openssl genrsa -out " + dir + "/dkim.pem 2048").exit_code, 0);
  const std::uint16_t listen = lab::free_tcp_port();
  const std::string config = dir + "/danemta.toml";
  std::ofstream(config) << "[dns]\nforwarders = [\"" << world.resolver()
                        << "\"]\ntrust_anchor_file = \"" << world.trust_anchor_file()
                        << "\"\n\n[delivery]\nport = " << rx.port()
                        << "\n\n[relay]\nlisten = [\"127.0.0.1:" << listen << "\"]\nspool = \""
                        << dir << "/queue.db\"\nhostname = \"relay.sender81.example\"\nuser = \""
                        << lab::current_user()
                        << "\"\n"
                           "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n\n"
                           "[tlsrpt]\nsubmitter = \"sender81.example\"\n"
                           "organization_name = \"Sender 81\"\n"
                           "dkim_domain = \"sender81.example\"\ndkim_selector = \"rpt\"\n"
                           "dkim_key_file = \""
                        << dir << "/dkim.pem\"\n";
  const std::string bin = DANEMTA_BINARY;
  lab::Process relay({bin, "--config", config, "relay"}, dir + "/relay.log");
  ASSERT_TRUE(relay.wait_for_log("listening on")) << relay.log();
  for (const char* to : {"a@good81.example", "b@stale81.example"}) {
    lab::CommandResult r = lab::run_command("swaks --server 127.0.0.1:" + std::to_string(listen) +
                                            " --from s@sender81.example --to " + to);
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  ASSERT_TRUE(relay.wait_for_log("status=sent")) << relay.log();
  ASSERT_TRUE(relay.wait_for_log("status=deferred (tlsa-invalid")) << relay.log();
  EXPECT_EQ(count(good_mx), 1u);

  // The report as JSON, for the stale domain only.
  lab::CommandResult printed = lab::run_command(bin + " --config " + config +
                                                " tlsrpt send --print --date " + lab::utc_today());
  ASSERT_EQ(printed.exit_code, 0) << printed.out;
  json report = json::parse(printed.out.substr(printed.out.find('{')));
  EXPECT_EQ(report["organization-name"], "Sender 81");
  ASSERT_EQ(report["policies"].size(), 1u) << report.dump(2);
  const json& p = report["policies"][0];
  EXPECT_EQ(p["policy"]["policy-type"], "tlsa");
  EXPECT_EQ(p["policy"]["policy-domain"], "stale81.example");
  EXPECT_EQ(p["summary"]["total-failure-session-count"], 1);
  EXPECT_EQ(p["failure-details"][0]["result-type"], "tlsa-invalid");
  EXPECT_EQ(p["failure-details"][0]["receiving-ip"], rx.ip(11));
  EXPECT_EQ(p["failure-details"][0]["sending-mta-ip"], "127.0.0.1");

  // Sent for real: queued into the relay's spool and delivered over DANE.
  lab::CommandResult sent =
      lab::run_command(bin + " --config " + config + " tlsrpt send --date " + lab::utc_today());
  EXPECT_EQ(sent.exit_code, 0) << sent.out;
  EXPECT_NE(sent.out.find("queued for <tlsrpt@reports81.example>"), std::string::npos) << sent.out;
  EXPECT_NE(sent.out.find("good81.example: no report"), std::string::npos)
      << "no _smtp._tls record, no report: " << sent.out;
  // Queued once: a second run finds it sent and queues nothing.
  lab::CommandResult again =
      lab::run_command(bin + " --config " + config + " tlsrpt send --date " + lab::utc_today());
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find("already sent to mailto:tlsrpt@reports81.example"), std::string::npos)
      << again.out;
  EXPECT_EQ(again.out.find("queued for"), std::string::npos) << again.out;
  ASSERT_EQ(lab::run_command(bin + " --config " + config + " queue flush").exit_code, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (count(reports_mx) < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(count(reports_mx), 1u) << relay.log();
  const std::vector<lab::Session> sessions = reports_mx.sessions();
  const lab::Message& mail = sessions[0].messages[0];
  EXPECT_TRUE(mail.in_tls);
  EXPECT_EQ(mail.data.rfind("DKIM-Signature:", 0), 0u) << mail.data.substr(0, 300);
  EXPECT_NE(mail.data.find("TLS-Report-Domain: stale81.example"), std::string::npos);
  EXPECT_NE(mail.data.find("report-type=\"tlsrpt\""), std::string::npos);

  // An independent parser: Python's email, base64 and gzip modules.
  std::ofstream(dir + "/report.eml", std::ios::binary) << mail.data;
  lab::CommandResult decoded = lab::run_command(
      "python3 -c \"import email,gzip,json,sys; m=email.message_from_binary_file(open(sys.argv[1],"
      "'rb')); p=[x for x in m.walk() if x.get_content_type()=='application/tlsrpt+gzip'][0]; "
      "print(p.get_filename()); print(json.dumps(json.loads(gzip.decompress(p.get_payload(decode="
      "True)))))\" " +
      dir + "/report.eml");
  ASSERT_EQ(decoded.exit_code, 0) << decoded.out;
  EXPECT_NE(decoded.out.find("sender81.example!stale81.example!"), std::string::npos)
      << decoded.out;
  EXPECT_NE(decoded.out.find("\"result-type\": \"tlsa-invalid\""), std::string::npos)
      << decoded.out;
  std::ofstream(dir + "/report.json") << decoded.out.substr(decoded.out.find('{'));
  lab::CommandResult checked = lab::run_command(
      "python3 " DANEMTA_TESTS_DIR "/tlsrpt/check_report.py " + dir + "/report.json");
  EXPECT_EQ(checked.exit_code, 0) << checked.out;
  relay.stop(SIGTERM);
}

}  // namespace
