// `danemta check` end to end: the real binary, libunbound validating a signed
// lab world served by NSD on loopback. One world holds every scenario.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "lab/lab.hpp"
#include "lab/run.hpp"

namespace {

using nlohmann::json;

constexpr const char* kHash1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr const char* kHash2 =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

std::string tlsa(const char* owner, const char* params, const char* data) {
  return std::string(owner) + " TLSA " + params + " " + data;
}

std::string spec() {
  json zones = json::array();
  auto zone = [&](json z) { zones.push_back(std::move(z)); };
  zone({{"name", "good.example"},
        {"records",
         {"@ MX 10 mx1", "mx1 A 127.0.0.10", "mx1 AAAA ::1", tlsa("_25._tcp.mx1", "3 1 1", kHash1),
          tlsa("_25._tcp.mx1", "2 1 1", kHash1)}}});
  zone({{"name", "unusable.example"},
        {"records",
         {"@ MX 10 mx", "mx A 127.0.0.10", tlsa("_25._tcp.mx", "0 0 1", kHash1),
          tlsa("_25._tcp.mx", "1 1 1", kHash1), "_25._tcp.mx TLSA 3 1 1 00"}}});
  zone({{"name", "notlsa.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.0.10"}}});
  zone({{"name", "insecure.example"},
        {"ds", false},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.10", tlsa("_25._tcp.mx", "3 1 1", kHash1)}}});
  zone({{"name", "bogustlsa.example"},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.10", tlsa("_25._tcp.mx", "3 1 1", kHash1)}},
        {"tamper", {"_25._tcp.mx TLSA"}}});
  zone({{"name", "bogusmx.example"},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.10"}},
        {"tamper", {"@ MX"}}});
  zone({{"name", "expired.example"},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.10"}},
        {"faults", {"expired"}}});
  zone({{"name", "dsmismatch.example"},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.10"}},
        {"faults", {"ds-mismatch"}}});
  zone({{"name", "lame.example"}, {"served", false}});
  // CNAME'd MX hosts: TLSA at the expanded name, and only at the original name.
  zone({{"name", "cname.example"},
        {"records",
         {"@ MX 10 mx", "mx CNAME smtp.hoster.example.", "orig MX 10 mx2",
          "mx2 CNAME smtp2.hoster.example.", tlsa("_25._tcp.mx2", "3 1 1", kHash1),
          "partial MX 10 mx3", "mx3 CNAME smtp.plain.example.",
          tlsa("_25._tcp.mx3", "3 1 1", kHash1)}}});
  zone({{"name", "hoster.example"},
        {"records",
         {"smtp A 127.0.0.12", tlsa("_25._tcp.smtp", "3 1 2", kHash2), "smtp2 A 127.0.0.13"}}});
  zone({{"name", "plain.example"},
        {"signed", false},
        {"records", {"smtp A 127.0.0.14", tlsa("_25._tcp.smtp", "3 1 1", kHash1)}}});
  // Signed MX pointing into an unsigned zone: insecure addresses, no TLSA lookup.
  zone({{"name", "outsourced.example"}, {"records", {"@ MX 10 smtp.plain.example."}}});
  zone({{"name", "implicit.example"},
        {"records", {"@ A 127.0.0.15", tlsa("_25._tcp", "3 1 1", kHash1)}}});
  zone({{"name", "nullmx.example"}, {"records", {"@ MX 0 ."}}});
  zone({{"name", "twomx.example"},
        {"records",
         {"@ MX 10 a", "@ MX 20 b", "a A 127.0.0.16", "b A 127.0.0.17",
          tlsa("_25._tcp.a", "3 1 1", kHash1)}}});
  // The preferred MX is broken (bogus TLSA); the backup takes the mail.
  zone({{"name", "degraded.example"},
        {"records",
         {"@ MX 10 a", "@ MX 20 b", "a A 127.0.0.21", "b A 127.0.0.22",
          tlsa("_25._tcp.a", "3 1 1", kHash1)}},
        {"tamper", {"_25._tcp.a TLSA"}}});
  zone({{"name", "agility.example"},
        {"records",
         {"@ MX 10 mx", "mx A 127.0.0.18", tlsa("_25._tcp.mx", "3 1 1", kHash1),
          tlsa("_25._tcp.mx", "3 1 2", kHash2)}}});
  zone({{"name", "malformed.example"},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.19", "_25._tcp.mx TYPE52 \\# 3 030101"}}});
  zone({{"name", "port.example"},
        {"records", {"@ MX 10 mx", "mx A 127.0.0.20", tlsa("_2525._tcp.mx", "3 1 1", kHash1)}}});
  return json{{"zones", zones}}.dump();
}

using CliRun = danemta::lab::CommandResult;

class CheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { world_ = std::make_unique<danemta::lab::World>(spec()); }
  static void TearDownTestSuite() { world_.reset(); }

  static CliRun run(const std::string& args) {
    return run_raw("check --resolver " + world_->resolver() + " --trust-anchor " +
                   world_->trust_anchor_file() + " --timeout 10 --no-connect " + args);
  }

  static CliRun run_raw(const std::string& args) {
    return danemta::lab::run_command(std::string(DANEMTA_BINARY) + " " + args);
  }

  static json check_json(const std::string& domain, int expected_exit,
                         const std::string& extra = "") {
    CliRun r = run("--json " + extra + " " + domain);
    EXPECT_EQ(r.exit_code, expected_exit) << r.out;
    try {
      return json::parse(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.out;
      return json::object();
    }
  }

  static std::unique_ptr<danemta::lab::World> world_;
};

std::unique_ptr<danemta::lab::World> CheckTest::world_;

TEST_F(CheckTest, SecureMxWithUsableTlsa) {
  json j = check_json("good.example", 0);
  EXPECT_EQ(j["mx"]["security"], "secure");
  ASSERT_EQ(j["hosts"].size(), 1u);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["name"], "mx1.good.example");
  EXPECT_EQ(h["address_security"], "secure");
  EXPECT_EQ(h["addresses"], json({"127.0.0.10", "::1"}));
  EXPECT_EQ(h["requirement"], "dane");
  EXPECT_EQ(h["authentication"], "dane-verified");
  EXPECT_EQ(h["sni"], "mx1.good.example");
  EXPECT_EQ(h["tlsa"].size(), 2u);
  EXPECT_EQ(h["reference_names"], json({"mx1.good.example", "good.example"}));
  EXPECT_EQ(j["verdict"]["status"], "ok");
  EXPECT_TRUE(j["verdict"]["warnings"].empty()) << j["verdict"]["warnings"];

  CliRun text = run("good.example");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("MX      secure, TTL 300"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3 1 1 " + std::string(kHash1)), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Result  OK"), std::string::npos) << text.out;
}

TEST_F(CheckTest, AllTlsaUnusableMeansMandatoryUnauthenticatedTls) {
  json j = check_json("unusable.example", 0);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["requirement"], "encrypt");
  EXPECT_EQ(h["authentication"], "mandatory-unauthenticated");
  ASSERT_EQ(h["tlsa"].size(), 3u);
  for (const json& r : h["tlsa"]) EXPECT_FALSE(r["usable"].get<bool>()) << r;
  std::string notes = h["tlsa"].dump();
  EXPECT_NE(notes.find("PKIX-TA"), std::string::npos);
  EXPECT_NE(notes.find("must be 32"), std::string::npos);
}

TEST_F(CheckTest, SecurelyDeniedTlsaMeansOpportunisticTls) {
  json j = check_json("notlsa.example", 0);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["requirement"], "opportunistic");
  ASSERT_EQ(h["tlsa_lookups"].size(), 1u);
  EXPECT_EQ(h["tlsa_lookups"][0]["security"], "secure");
  EXPECT_EQ(h["tlsa_lookups"][0]["result"], "no such name");
}

TEST_F(CheckTest, ZoneWithoutDsIsInsecureAndOpportunistic) {
  json j = check_json("insecure.example", 0);
  EXPECT_EQ(j["mx"]["security"], "insecure");
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["address_security"], "insecure");
  EXPECT_EQ(h["requirement"], "opportunistic");
  EXPECT_TRUE(h["tlsa_lookups"].empty()) << "no TLSA lookup for insecure addresses";
}

TEST_F(CheckTest, BogusTlsaDefersWithDnssecInvalid) {
  json j = check_json("bogustlsa.example", 1);
  EXPECT_EQ(j["verdict"]["status"], "deferred");
  EXPECT_EQ(j["verdict"]["outcome"]["code"], "4.7.324");
  EXPECT_EQ(j["verdict"]["outcome"]["final_code"], "5.7.324");
  EXPECT_EQ(j["verdict"]["outcome"]["tlsrpt_result_type"], "dnssec-invalid");
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["tlsa_lookups"][0]["security"], "bogus");
  EXPECT_FALSE(h["tlsa_lookups"][0]["why"].is_null()) << "validator reason shown";

  CliRun text = run("bogustlsa.example");
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.out.find("FAIL 4.7.324 dnssec-invalid"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("reason: "), std::string::npos) << text.out;
}

TEST_F(CheckTest, BogusMxDefersWithoutTouchingHosts) {
  json j = check_json("bogusmx.example", 1);
  EXPECT_EQ(j["mx"]["security"], "bogus");
  EXPECT_TRUE(j["hosts"].empty());
  EXPECT_EQ(j["verdict"]["outcome"]["code"], "4.7.324");
  EXPECT_FALSE(j["mx"]["why"].is_null());
}

TEST_F(CheckTest, ExpiredSignaturesAndDsMismatchAreDnssecInvalid) {
  for (const char* d : {"expired.example", "dsmismatch.example"}) {
    SCOPED_TRACE(d);
    json j = check_json(d, 1);
    EXPECT_EQ(j["mx"]["security"], "bogus");
    EXPECT_EQ(j["verdict"]["outcome"]["name"], "dnssec-invalid");
  }
}

TEST_F(CheckTest, ServfailZoneDefers) {
  json j = check_json("lame.example", 1);
  EXPECT_EQ(j["verdict"]["status"], "deferred");
  EXPECT_TRUE(j["hosts"].empty()) << "never falls back to address records";
  // SERVFAIL carries no validation verdict: 4.4.312, not 4.7.324 (docs/adr/0002).
  EXPECT_EQ(j["mx"]["security"], "indeterminate");
  EXPECT_EQ(j["verdict"]["outcome"]["code"], "4.4.312");
}

TEST_F(CheckTest, CnameMxHostWithTlsaAtExpandedName) {
  json j = check_json("cname.example", 0);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["name"], "mx.cname.example");
  EXPECT_EQ(h["expanded_name"], "smtp.hoster.example");
  EXPECT_EQ(h["tlsa_base_domain"], "smtp.hoster.example");
  EXPECT_EQ(h["sni"], "smtp.hoster.example");
  EXPECT_EQ(h["requirement"], "dane");
}

TEST_F(CheckTest, CnameMxHostWithTlsaAtOriginalName) {
  json j = check_json("orig.cname.example", 0);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["expanded_name"], "smtp2.hoster.example");
  ASSERT_EQ(h["tlsa_lookups"].size(), 2u);
  EXPECT_EQ(h["tlsa_lookups"][0]["owner"], "_25._tcp.smtp2.hoster.example");
  EXPECT_EQ(h["tlsa_lookups"][0]["security"], "secure");
  EXPECT_EQ(h["tlsa_base_domain"], "mx2.cname.example");
  EXPECT_EQ(h["requirement"], "dane");
}

TEST_F(CheckTest, SecureCnameIntoUnsignedZoneKeepsOriginalBaseDomain) {
  json j = check_json("partial.cname.example", 0);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["address_security"], "insecure");
  EXPECT_TRUE(h["cname_first_link_secure"].get<bool>());
  EXPECT_EQ(h["tlsa_base_domain"], "mx3.cname.example");
  EXPECT_EQ(h["requirement"], "dane");
  ASSERT_EQ(h["tlsa_lookups"].size(), 1u) << "the unsigned target is not asked";
}

TEST_F(CheckTest, InsecureAddressRecordsSkipTlsa) {
  json j = check_json("outsourced.example", 0);
  EXPECT_EQ(j["mx"]["security"], "secure");
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["name"], "smtp.plain.example");
  EXPECT_EQ(h["address_security"], "insecure");
  EXPECT_TRUE(h["tlsa_lookups"].empty());
  EXPECT_EQ(h["requirement"], "opportunistic");
}

TEST_F(CheckTest, ImplicitMx) {
  json j = check_json("implicit.example", 0);
  EXPECT_TRUE(j["mx"]["implicit"].get<bool>());
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["name"], "implicit.example");
  EXPECT_EQ(h["requirement"], "dane");
}

TEST_F(CheckTest, NullMxIsRefusedAtOnce) {
  json j = check_json("nullmx.example", 1);
  EXPECT_TRUE(j["mx"]["null"].get<bool>());
  EXPECT_EQ(j["verdict"]["status"], "refused");
  EXPECT_EQ(j["verdict"]["outcome"]["code"], "5.1.10");
}

TEST_F(CheckTest, TwoMxOnlyOneWithTlsaWarns) {
  json j = check_json("twomx.example", 0);
  ASSERT_EQ(j["hosts"].size(), 2u);
  EXPECT_EQ(j["hosts"][0]["requirement"], "dane");
  EXPECT_EQ(j["hosts"][1]["requirement"], "opportunistic");
  EXPECT_NE(j["verdict"]["warnings"].dump().find("only some MX hosts"), std::string::npos);
}

TEST_F(CheckTest, BrokenPreferredMxIsDegradedEvenWithAWorkingBackup) {
  json j = check_json("degraded.example", 1);
  EXPECT_EQ(j["verdict"]["status"], "degraded");
  EXPECT_EQ(j["verdict"]["outcome"]["code"], "4.7.324");
  EXPECT_EQ(j["hosts"][1]["requirement"], "opportunistic");
  CliRun text = run("degraded.example");
  EXPECT_NE(text.out.find("DEGRADED 4.7.324 dnssec-invalid"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("is delivered to b.degraded.example"), std::string::npos) << text.out;
}

TEST_F(CheckTest, DigestAgilityUsesOnlyTheStrongestDigest) {
  json j = check_json("agility.example", 0);
  const json& t = j["hosts"][0]["tlsa"];
  ASSERT_EQ(t.size(), 2u);
  for (const json& r : t) {
    EXPECT_EQ(r["usable"].get<bool>(), r["matching_type"] == 2) << r;
  }
}

// RFC 6698 section 2.1, RFC 7672 section 2.2: a 3-octet TLSA record is an
// unusable record, not a DNS failure; alone it means mandatory TLS.
TEST_F(CheckTest, EmptyTlsaDataIsAnUnusableRecord) {
  json j = check_json("malformed.example", 0);
  const json& h = j["hosts"][0];
  EXPECT_EQ(h["requirement"], "encrypt");
  ASSERT_EQ(h["tlsa"].size(), 1u);
  EXPECT_FALSE(h["tlsa"][0]["usable"].get<bool>());
  EXPECT_EQ(h["tlsa"][0]["note"], "empty certificate association data");
}

TEST_F(CheckTest, PortChangesTheTlsaOwner) {
  json j = check_json("port.example", 0, "--port 2525");
  EXPECT_EQ(j["port"], 2525);
  EXPECT_EQ(j["hosts"][0]["tlsa_lookups"][0]["owner"], "_2525._tcp.mx.port.example");
  EXPECT_EQ(j["hosts"][0]["requirement"], "dane");
}

TEST_F(CheckTest, DaneOnlyPolicyRefusesHostsWithoutTlsa) {
  json j = check_json("notlsa.example", 1, "--policy dane-only");
  EXPECT_EQ(j["verdict"]["outcome"]["code"], "4.7.326");
}

TEST_F(CheckTest, NonexistentDomain) {
  json j = check_json("nowhere.example", 1);
  EXPECT_EQ(j["verdict"]["status"], "refused");
  EXPECT_EQ(j["verdict"]["outcome"]["final_code"], "5.1.2");
}

TEST_F(CheckTest, ResolverOptionJustBeforeTheDomainTakesOneValue) {
  CliRun r = run_raw("check --no-connect --trust-anchor " + world_->trust_anchor_file() +
                     " --resolver " + world_->resolver() + " good.example");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("danemta check good.example"), std::string::npos) << r.out;
}

TEST_F(CheckTest, UsageErrorsExitTwoWithOneLine) {
  CliRun r = run("--port 0 good.example");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = run("'bad domain!'");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("is not a domain name"), std::string::npos) << r.out;
  CliRun missing = run_raw("check --resolver " + world_->resolver() +
                           " --trust-anchor /nonexistent/root.key good.example");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("/nonexistent/root.key"), std::string::npos) << missing.out;
}

}  // namespace
