// TLS-RPT core (RFC 8460): the _smtp._tls record, the SQLite store of
// session results (a fresh directory per test), the JSON report, gzip and the
// report file name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---- parse_policy -------------------------------------------------------------

TEST(TlsrptPolicy, OneMailtoUri) {
  auto p = parse_policy({"v=TLSRPTv1; rua=mailto:tlsrpt@example.org"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_THAT(p->rua, ElementsAre("mailto:tlsrpt@example.org"));
}

TEST(TlsrptPolicy, TwoUrisWithSpacesAndTrailingDelimiter) {
  auto p = parse_policy(
      {"v=TLSRPTv1 ;  rua=mailto:a@example.org , https://reports.example.org/v1/tlsrpt ;"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_THAT(p->rua, ElementsAre("mailto:a@example.org", "https://reports.example.org/v1/tlsrpt"));
}

TEST(TlsrptPolicy, NoSpacesAndTabs) {
  auto p = parse_policy({"v=TLSRPTv1;rua=https://r.example.org/,mailto:b@example.org"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_THAT(p->rua, ElementsAre("https://r.example.org/", "mailto:b@example.org"));
  auto q = parse_policy({"v=TLSRPTv1\t;\trua=mailto:c@example.org"});
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_THAT(q->rua, ElementsAre("mailto:c@example.org"));
}

TEST(TlsrptPolicy, ExtensionFieldsIgnored) {
  auto p =
      parse_policy({"v=TLSRPTv1; ext-1=some.value; rua=mailto:a@example.org; x_2=!\"#$%&'()*+"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_THAT(p->rua, ElementsAre("mailto:a@example.org"));
}

TEST(TlsrptPolicy, MailtoSizeLimitDropped) {
  auto p = parse_policy({"v=TLSRPTv1; rua=mailto:a@example.org!10m,MAILTO:b@example.org"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_THAT(p->rua, ElementsAre("mailto:a@example.org", "mailto:b@example.org"));
}

TEST(TlsrptPolicy, OtherTxtRecordsIgnored) {
  auto p = parse_policy({"v=spf1 -all", "google-site-verification=abc",
                         "v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv10; rua=x"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_THAT(p->rua, ElementsAre("mailto:a@example.org"));
}

TEST(TlsrptPolicy, TwoRecordsIsAnError) {
  auto p = parse_policy(
      {"v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1; rua=mailto:b@example.org"});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().severity, Severity::permanent);
  EXPECT_THAT(p.error().message, HasSubstr("2 v=TLSRPTv1"));
}

TEST(TlsrptPolicy, NoRecordIsAnError) {
  EXPECT_FALSE(parse_policy({}));
  auto p = parse_policy({"v=spf1 -all"});
  ASSERT_FALSE(p);
  EXPECT_THAT(p.error().message, HasSubstr("no v=TLSRPTv1"));
}

TEST(TlsrptPolicy, VersionIsCaseSensitive) {
  EXPECT_FALSE(parse_policy({"v=tlsrptv1; rua=mailto:a@example.org"}));
}

TEST(TlsrptPolicy, BadSchemeIsAnError) {
  auto p = parse_policy({"v=TLSRPTv1; rua=http://reports.example.org/"});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().severity, Severity::permanent);
  EXPECT_THAT(p.error().message, HasSubstr("http://reports.example.org/"));
  EXPECT_FALSE(parse_policy({"v=TLSRPTv1; rua=mailto:a@example.org,ftp://x.example.org/"}));
}

TEST(TlsrptPolicy, MissingOrEmptyRuaIsAnError) {
  auto p = parse_policy({"v=TLSRPTv1; ext=1"});
  ASSERT_FALSE(p);
  EXPECT_THAT(p.error().message, HasSubstr("no rua"));
  EXPECT_FALSE(parse_policy({"v=TLSRPTv1"}));
  EXPECT_FALSE(parse_policy({"v=TLSRPTv1; rua="}));
  EXPECT_FALSE(parse_policy({"v=TLSRPTv1; rua=mailto:a@example.org,"}));
  EXPECT_FALSE(parse_policy({"v=TLSRPTv1; rua=mailto:"}));
}

// ---- the store ------------------------------------------------------------------

SessionResult success_at(Time at, std::string domain, std::string mx) {
  SessionResult r;
  r.at = at;
  r.policy_domain = std::move(domain);
  r.policy_type = PolicyType::tlsa;
  r.policy_strings = {"3 1 1 AABB", "2 0 1 CCDD"};
  r.mx_host = mx;
  r.success = true;
  r.sending_mta_ip = "192.0.2.1";
  r.receiving_mx_hostname = mx;
  r.receiving_ip = "198.51.100.7";
  return r;
}

SessionResult failure_at(Time at, std::string domain, std::string mx, std::string type) {
  SessionResult r = success_at(at, std::move(domain), std::move(mx));
  r.success = false;
  r.result_type = std::move(type);
  r.failure_reason_code = "X509_V_ERR_CERT_HAS_EXPIRED";
  return r;
}

void expect_same(const SessionResult& a, const SessionResult& b) {
  EXPECT_EQ(a.at, b.at);
  EXPECT_EQ(a.policy_domain, b.policy_domain);
  EXPECT_EQ(a.policy_type, b.policy_type);
  EXPECT_EQ(a.policy_strings, b.policy_strings);
  EXPECT_EQ(a.mx_host, b.mx_host);
  EXPECT_EQ(a.success, b.success);
  EXPECT_EQ(a.result_type, b.result_type);
  EXPECT_EQ(a.sending_mta_ip, b.sending_mta_ip);
  EXPECT_EQ(a.receiving_mx_hostname, b.receiving_mx_hostname);
  EXPECT_EQ(a.receiving_ip, b.receiving_ip);
  EXPECT_EQ(a.failure_reason_code, b.failure_reason_code);
}

class TlsrptStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path() / "danemta-tlsrpt-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "tlsrpt.db").string();
    reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void reopen() {
    store_.reset();
    auto s = open_sqlite_store(path_);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }

  void record(const SessionResult& r) {
    auto ok = store_->record(r);
    ASSERT_TRUE(ok) << ok.error().message;
  }

  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(TlsrptStoreTest, RoundTripEveryField) {
  SessionResult nopolicy;
  nopolicy.at = 150;
  nopolicy.policy_domain = "b.example";
  nopolicy.policy_type = PolicyType::no_policy_found;
  nopolicy.success = false;
  nopolicy.result_type = "dnssec-invalid";
  nopolicy.sending_mta_ip = "2001:db8::1";
  nopolicy.receiving_mx_hostname = "mx.b.example";
  const SessionResult ok = success_at(100, "a.example", "mx1.a.example");
  const SessionResult bad = failure_at(120, "a.example", "mx2.a.example", "tlsa-invalid");
  record(ok);
  record(nopolicy);
  record(bad);

  auto a = store_->results("a.example", 0, 1000);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_EQ(a->size(), 2u);
  expect_same((*a)[0], ok);
  expect_same((*a)[1], bad);
  auto b = store_->results("b.example", 0, 1000);
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_EQ(b->size(), 1u);
  expect_same((*b)[0], nopolicy);
}

TEST_F(TlsrptStoreTest, DomainsAndResultsByHalfOpenRange) {
  record(success_at(99, "early.example", "mx.early.example"));
  record(success_at(100, "a.example", "mx.a.example"));
  record(success_at(150, "c.example", "mx.c.example"));
  record(failure_at(199, "a.example", "mx.a.example", "tlsa-invalid"));
  record(success_at(200, "late.example", "mx.late.example"));

  auto d = store_->domains(100, 200);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_THAT(*d, ElementsAre("a.example", "c.example"));

  auto r = store_->results("a.example", 100, 200);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].at, 100);
  EXPECT_EQ((*r)[1].at, 199);
  auto none = store_->results("a.example", 0, 100);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(TlsrptStoreTest, ExpireAndReopen) {
  record(success_at(10, "a.example", "mx.a.example"));
  record(success_at(20, "a.example", "mx.a.example"));
  record(success_at(30, "b.example", "mx.b.example"));

  auto n = store_->expire(30);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 2u);
  auto again = store_->expire(30);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);

  reopen();
  auto d = store_->domains(0, 1000);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_THAT(*d, ElementsAre("b.example"));
  record(success_at(40, "c.example", "mx.c.example"));
  auto d2 = store_->domains(0, 1000);
  ASSERT_TRUE(d2);
  EXPECT_THAT(*d2, ElementsAre("b.example", "c.example"));
}

TEST_F(TlsrptStoreTest, ExpireForgetsReportsOfExpiredDays) {
  // Report records go with the days they cover.
  record(success_at(90000, "a.example", "mx.a.example"));
  ASSERT_TRUE(store_->report_id("a.example", 0, "old-id"));
  ASSERT_TRUE(store_->report_id("a.example", 86400, "new-id"));
  RuaState st;
  st.policy_domain = "a.example";
  st.day = 0;
  st.rua = "https://a.example/r";
  st.first_attempt = 10;
  st.next_attempt = 20;
  ASSERT_TRUE(store_->set_rua_state(st));
  ASSERT_TRUE(store_->expire(86400));
  auto old_state = store_->rua_state("a.example", 0, "https://a.example/r");
  ASSERT_TRUE(old_state);
  EXPECT_FALSE(*old_state) << "the record of a report for an expired day is gone";
  auto new_id = store_->report_id("a.example", 86400, "other");
  ASSERT_TRUE(new_id);
  EXPECT_EQ(*new_id, "new-id") << "a report of a day not expired keeps its id";
  auto old_id = store_->report_id("a.example", 0, "fresh");
  ASSERT_TRUE(old_id);
  EXPECT_EQ(*old_id, "fresh");

  auto kept = store_->domains(0, 200000);
  ASSERT_TRUE(kept);
  EXPECT_THAT(*kept, ElementsAre("a.example")) << "a result after the cut is kept";
}

TEST_F(TlsrptStoreTest, OpenFailsInMissingDirectory) {
  auto s = open_sqlite_store((dir_ / "missing" / "tlsrpt.db").string());
  EXPECT_FALSE(s);
}

// ---- the report -------------------------------------------------------------------

constexpr Time kDay = 1795910400;  // 2026-11-29T00:00:00Z

ReportInput mixed_report() {
  ReportInput in;
  in.organization_name = "Sender Org";
  in.contact_info = "mailto:postmaster@sender.example";
  in.report_id = "2026-11-29T00:00:00Z_recipient.example";
  in.begin = kDay;
  in.end = kDay + 86400;
  in.policy_domain = "recipient.example";

  const std::string mx1 = "mx1.recipient.example";
  const std::string mx2 = "mx2.recipient.example";
  for (int i = 0; i < 3; ++i) in.results.push_back(success_at(kDay + i, in.policy_domain, mx1));
  // The same policy strings in another order: the same policy.
  SessionResult swapped = success_at(kDay + 5, in.policy_domain, mx1);
  std::swap(swapped.policy_strings[0], swapped.policy_strings[1]);
  in.results.push_back(swapped);
  for (int i = 0; i < 2; ++i) {
    in.results.push_back(failure_at(kDay + 10 + i, in.policy_domain, mx2, "tlsa-invalid"));
  }
  SessionResult other_ip = failure_at(kDay + 20, in.policy_domain, mx2, "tlsa-invalid");
  other_ip.receiving_ip = "";
  other_ip.failure_reason_code = "";
  in.results.push_back(other_ip);
  in.results.push_back(success_at(kDay + 30, in.policy_domain, mx2));

  SessionResult dnssec;
  dnssec.at = kDay + 40;
  dnssec.policy_domain = in.policy_domain;
  dnssec.policy_type = PolicyType::no_policy_found;
  dnssec.success = false;
  dnssec.result_type = "dnssec-invalid";
  dnssec.sending_mta_ip = "192.0.2.1";
  dnssec.receiving_mx_hostname = mx1;
  in.results.push_back(dnssec);
  // Decided before any session (a bogus MX RRset): no addresses, no host.
  SessionResult bogus_mx = dnssec;
  bogus_mx.at = kDay + 50;
  bogus_mx.sending_mta_ip = "";
  bogus_mx.receiving_mx_hostname = "";
  in.results.push_back(bogus_mx);
  return in;
}

std::set<std::string> keys_of(const nlohmann::json& object) {
  std::set<std::string> keys;
  for (const auto& item : object.items()) keys.insert(item.key());
  return keys;
}

TEST(TlsrptReport, JsonForMixedResults) {
  const ReportInput in = mixed_report();
  const auto j = nlohmann::json::parse(report_json(in));

  EXPECT_EQ(keys_of(j), (std::set<std::string>{"organization-name", "date-range", "contact-info",
                                               "report-id", "policies"}));
  EXPECT_EQ(j["organization-name"], "Sender Org");
  EXPECT_EQ(j["contact-info"], "mailto:postmaster@sender.example");
  EXPECT_EQ(j["report-id"], in.report_id);
  EXPECT_EQ(keys_of(j["date-range"]), (std::set<std::string>{"start-datetime", "end-datetime"}));
  EXPECT_EQ(j["date-range"]["start-datetime"], "2026-11-29T00:00:00Z");
  EXPECT_EQ(j["date-range"]["end-datetime"], "2026-11-29T23:59:59Z");

  const auto& policies = j["policies"];
  ASSERT_TRUE(policies.is_array());
  ASSERT_EQ(policies.size(), 3u);
  for (const auto& p : policies) {
    EXPECT_EQ(keys_of(p), (std::set<std::string>{"policy", "summary", "failure-details"}));
    EXPECT_EQ(keys_of(p["summary"]), (std::set<std::string>{"total-successful-session-count",
                                                            "total-failure-session-count"}));
    EXPECT_EQ(p["policy"]["policy-domain"], "recipient.example");
  }

  // tlsa on mx1: four successes (policy strings in either order), no failures.
  const auto& p0 = policies[0];
  EXPECT_EQ(keys_of(p0["policy"]),
            (std::set<std::string>{"policy-type", "policy-string", "policy-domain", "mx-host"}));
  EXPECT_EQ(p0["policy"]["policy-type"], "tlsa");
  EXPECT_EQ(p0["policy"]["policy-string"], (nlohmann::json{"2 0 1 CCDD", "3 1 1 AABB"}));
  EXPECT_EQ(p0["policy"]["mx-host"], (nlohmann::json{"mx1.recipient.example"}));
  EXPECT_EQ(p0["summary"]["total-successful-session-count"], 4);
  EXPECT_EQ(p0["summary"]["total-failure-session-count"], 0);
  EXPECT_TRUE(p0["failure-details"].empty());

  // tlsa on mx2: one success, three failures in two groups.
  const auto& p1 = policies[1];
  EXPECT_EQ(p1["policy"]["policy-type"], "tlsa");
  EXPECT_EQ(p1["policy"]["mx-host"], (nlohmann::json{"mx2.recipient.example"}));
  EXPECT_EQ(p1["summary"]["total-successful-session-count"], 1);
  EXPECT_EQ(p1["summary"]["total-failure-session-count"], 3);
  const auto& d1 = p1["failure-details"];
  ASSERT_EQ(d1.size(), 2u);
  // Sorted by (result type, sending ip, receiving host, receiving ip, reason): "" first.
  EXPECT_EQ(keys_of(d1[0]),
            (std::set<std::string>{"result-type", "sending-mta-ip", "receiving-mx-hostname",
                                   "failed-session-count"}));
  EXPECT_EQ(d1[0]["result-type"], "tlsa-invalid");
  EXPECT_EQ(d1[0]["failed-session-count"], 1);
  EXPECT_EQ(keys_of(d1[1]),
            (std::set<std::string>{"result-type", "sending-mta-ip", "receiving-mx-hostname",
                                   "receiving-ip", "failed-session-count", "failure-reason-code"}));
  EXPECT_EQ(d1[1]["result-type"], "tlsa-invalid");
  EXPECT_EQ(d1[1]["sending-mta-ip"], "192.0.2.1");
  EXPECT_EQ(d1[1]["receiving-mx-hostname"], "mx2.recipient.example");
  EXPECT_EQ(d1[1]["receiving-ip"], "198.51.100.7");
  EXPECT_EQ(d1[1]["failed-session-count"], 2);
  EXPECT_EQ(d1[1]["failure-reason-code"], "X509_V_ERR_CERT_HAS_EXPIRED");

  // no-policy-found without an mx host: one dnssec-invalid failure.
  const auto& p2 = policies[2];
  EXPECT_EQ(keys_of(p2["policy"]),
            (std::set<std::string>{"policy-type", "policy-string", "policy-domain"}));
  EXPECT_EQ(p2["policy"]["policy-type"], "no-policy-found");
  EXPECT_TRUE(p2["policy"]["policy-string"].is_array());
  EXPECT_TRUE(p2["policy"]["policy-string"].empty());
  EXPECT_EQ(p2["summary"]["total-successful-session-count"], 0);
  EXPECT_EQ(p2["summary"]["total-failure-session-count"], 2);
  ASSERT_EQ(p2["failure-details"].size(), 2u);
  // Unknown fields are left out, not "".
  EXPECT_EQ(keys_of(p2["failure-details"][0]),
            (std::set<std::string>{"result-type", "failed-session-count"}));
  EXPECT_EQ(p2["failure-details"][1]["result-type"], "dnssec-invalid");
  EXPECT_EQ(p2["failure-details"][1]["receiving-mx-hostname"], "mx1.recipient.example");
}

TEST(TlsrptReport, DeterministicWhateverTheInputOrder) {
  ReportInput in = mixed_report();
  const std::string first = report_json(in);
  std::reverse(in.results.begin(), in.results.end());
  EXPECT_EQ(report_json(in), first);
}

TEST(TlsrptReport, EmptyResultsGiveNoPolicies) {
  ReportInput in = mixed_report();
  in.results.clear();
  const auto j = nlohmann::json::parse(report_json(in));
  EXPECT_TRUE(j["policies"].is_array());
  EXPECT_TRUE(j["policies"].empty());
}

TEST(TlsrptReport, InvalidUtf8IsReplaced) {
  ReportInput in = mixed_report();
  in.results.back().failure_reason_code = "bad \xff byte";
  const auto j = nlohmann::json::parse(report_json(in));
  EXPECT_EQ(j["policies"][2]["failure-details"][0]["failure-reason-code"], "bad \xEF\xBF\xBD byte");
}

std::string gunzip(const std::string& data) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  char buffer[4096];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof buffer;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - zs.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(zs.avail_in, 0u);
  inflateEnd(&zs);
  return out;
}

TEST(TlsrptGzip, RoundTripAndMagic) {
  const std::string json = report_json(mixed_report());
  auto gz = gzip(json);
  ASSERT_TRUE(gz) << gz.error().message;
  ASSERT_GE(gz->size(), 18u);
  // RFC 1952 section 2.3.1: ID1 ID2 CM (8 = deflate).
  EXPECT_EQ(static_cast<unsigned char>((*gz)[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[1]), 0x8b);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[2]), 8);
  EXPECT_EQ(gunzip(*gz), json);
}

TEST(TlsrptGzip, EmptyAndLargeInputs) {
  auto empty = gzip("");
  ASSERT_TRUE(empty);
  EXPECT_EQ(gunzip(*empty), "");

  std::string big;
  for (int i = 0; big.size() < 300'000; ++i) big += std::to_string(i * 7919) + ",";
  auto gz = gzip(big);
  ASSERT_TRUE(gz);
  EXPECT_LT(gz->size(), big.size());
  EXPECT_EQ(gunzip(*gz), big);
}

TEST(TlsrptFilename, Section51Format) {
  ReportInput in = mixed_report();
  EXPECT_EQ(report_filename("mail.sender.example", in),
            "mail.sender.example!recipient.example!1795910400!1795996799!"
            "20261129T000000Zrecipientexample.json.gz");
  in.report_id = "a/b c!d";
  EXPECT_EQ(report_filename("s.example", in),
            "s.example!recipient.example!1795910400!1795996799!abcd.json.gz");
  in.report_id = "!!";
  EXPECT_EQ(report_filename("s.example", in),
            "s.example!recipient.example!1795910400!1795996799.json.gz");
}

TEST(TlsrptPolicyType, Names) {
  EXPECT_EQ(to_string(PolicyType::tlsa), "tlsa");
  EXPECT_EQ(to_string(PolicyType::no_policy_found), "no-policy-found");
}

}  // namespace
}  // namespace danemta::tlsrpt
