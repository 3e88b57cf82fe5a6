// Produced TLS-RPT reports read by a strict receiver: the JSON Schema of
// RFC 8460 section 4.4 (tests/tlsrpt/report.schema.json, python3-jsonschema)
// and tests/tlsrpt/check_report.py's checks beyond it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "relay/reporting.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {
namespace {

constexpr Time kDay = 1795910400;  // 2026-11-29T00:00:00Z

struct Checked {
  int status = -1;
  std::string output;
};

// Runs the checker on `json`; status 0 means accepted.
Checked check(const std::string& json) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                     ("danemta-tlsrpt-" + std::to_string(getpid()) + ".json");
  {
    std::ofstream out(file, std::ios::binary);
    out << json;
  }
  const std::string command =
      "python3 " DANEMTA_TESTS_DIR "/tlsrpt/check_report.py " + file.string() + " 2>&1";
  Checked c;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return c;
  std::array<char, 512> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    c.output.append(buffer.data(), n);
  const int rc = pclose(pipe);
  c.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  std::filesystem::remove(file);
  return c;
}

ReportInput report_of(std::vector<SessionResult> results) {
  ReportInput in;
  in.organization_name = "Sender Org";
  in.contact_info = "postmaster@sender.example";
  in.report_id = "20261129recipientexample0a1b2c3d";
  in.begin = kDay;
  in.end = kDay + 86400;
  in.policy_domain = "recipient.example";
  in.results = std::move(results);
  return in;
}

SessionResult session(bool success, std::string type = "") {
  SessionResult r;
  r.at = kDay + 60;
  r.policy_domain = "recipient.example";
  r.policy_type = PolicyType::tlsa;
  r.policy_strings = {"3 1 1 AABBCCDD"};
  r.mx_host = "mx1.recipient.example";
  r.success = success;
  r.result_type = std::move(type);
  r.sending_mta_ip = "192.0.2.1";
  r.receiving_mx_hostname = "mx1.recipient.example";
  r.receiving_ip = "2001:db8::25";
  if (!success) r.failure_reason_code = "why it failed";
  return r;
}

TEST(TlsrptSchema, CheckerRefusesWhatStrictReceiversRefuse) {
  // The checker itself: a report with the faults this schema exists for.
  const Checked empty_ip = check(
      R"({"organization-name":"o","date-range":{"start-datetime":"2026-11-29T00:00:00Z",)"
      R"("end-datetime":"2026-11-29T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[)"
      R"({"policy":{"policy-type":"tlsa","policy-string":[],"policy-domain":"d.example",)"
      R"("mx-host":"mx.d.example"},"summary":{"total-successful-session-count":0,)"
      R"("total-failure-session-count":1},"failure-details":[{"result-type":"tlsa-invalid",)"
      R"("sending-mta-ip":"","failed-session-count":1}]}]})");
  EXPECT_EQ(empty_ip.status, 1) << empty_ip.output;
  EXPECT_NE(empty_ip.output.find("mx-host"), std::string::npos) << empty_ip.output;
  const Checked local_time = check(
      R"({"organization-name":"o","date-range":{"start-datetime":"2026-11-29T00:00:00+01:00",)"
      R"("end-datetime":"2026-11-29T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[]})");
  EXPECT_EQ(local_time.status, 1) << local_time.output;
}

TEST(TlsrptSchema, SuccessesOnly) {
  const Checked c = check(report_json(report_of({session(true), session(true)})));
  EXPECT_EQ(c.status, 0) << c.output;
}

TEST(TlsrptSchema, EveryFailureTypeDanemtaReports) {
  std::vector<SessionResult> results = {session(true)};
  for (const char* type :
       {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
        "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required"}) {
    results.push_back(session(false, type));
    const Checked c = check(report_json(report_of({session(true), session(false, type)})));
    EXPECT_EQ(c.status, 0) << type << ": " << c.output;
  }
  const Checked all = check(report_json(report_of(results)));
  EXPECT_EQ(all.status, 0) << all.output;
}

TEST(TlsrptSchema, EmptyDayAndUnknownFields) {
  EXPECT_EQ(check(report_json(report_of({}))).status, 0);
  SessionResult bare = session(false, "dnssec-invalid");
  bare.policy_strings.clear();
  bare.mx_host.clear();
  bare.sending_mta_ip.clear();
  bare.receiving_mx_hostname.clear();
  bare.receiving_ip.clear();
  bare.failure_reason_code.clear();
  const Checked c = check(report_json(report_of({bare})));
  EXPECT_EQ(c.status, 0) << c.output;
}

// The relay's results as they go into the store, for a plan that failed as
// a whole (a bogus TLSA RRset on the only MX host) and for a bogus MX RRset.
TEST(TlsrptSchema, PlanFailures) {
  dane::DestinationPlan plan;
  plan.domain = "recipient.example";
  plan.failure = dane::Outcome::dnssec_invalid;
  plan.reason = "TLSA lookup is bogus";
  dane::HostPlan host;
  host.name = "mx1.recipient.example";
  host.requirement = dane::Requirement::unusable;
  host.failure = dane::Outcome::dnssec_invalid;
  host.reason = "_25._tcp.mx1.recipient.example TLSA is bogus";
  plan.hosts = {host};
  std::vector<SessionResult> results = relay::session_results(plan, {}, kDay + 10);
  ASSERT_EQ(results.size(), 1u);
  const std::string json = report_json(report_of(results));
  EXPECT_NE(json.find(R"("mx-host":["mx1.recipient.example"])"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("receiving-mx-hostname":"mx1.recipient.example")"), std::string::npos)
      << json;
  const Checked c = check(json);
  EXPECT_EQ(c.status, 0) << c.output;

  plan.hosts.clear();
  const Checked bogus_mx = check(report_json(report_of(relay::session_results(plan, {}, kDay))));
  EXPECT_EQ(bogus_mx.status, 0) << bogus_mx.output;
}

}  // namespace
}  // namespace danemta::tlsrpt
