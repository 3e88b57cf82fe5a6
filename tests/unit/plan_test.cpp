// Table-driven tests of dane::plan over hand-made answers (no DNS here).
#include "dane/plan.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>
#include <set>
#include <stdexcept>

#include "base/idna.hpp"
#include "base/text.hpp"

namespace danemta::dane {
namespace {

using dns::Answer;
using dns::RrType;
using dns::Security;
using dns::TlsaRecord;

constexpr Security S = Security::secure;
constexpr Security I = Security::insecure;
constexpr Security B = Security::bogus;
constexpr Security X = Security::indeterminate;

// A DER certificate and its SubjectPublicKeyInfo, for full-data (matching
// type 0) records, which must parse to be usable.
struct Der {
  std::vector<std::uint8_t> cert;
  std::vector<std::uint8_t> spki;
};

Der make_der() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  if (!key || !x) throw std::runtime_error("OpenSSL: cannot make a test certificate");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mx.example.org"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  if (X509_sign(x.get(), key.get(), EVP_sha256()) <= 0)
    throw std::runtime_error("OpenSSL: cannot sign a test certificate");
  Der d;
  unsigned char* out = nullptr;
  int n = i2d_X509(x.get(), &out);
  d.cert.assign(out, out + n);
  OPENSSL_free(out);
  out = nullptr;
  n = i2d_PUBKEY(key.get(), &out);
  d.spki.assign(out, out + n);
  OPENSSL_free(out);
  return d;
}

const Der& der() {
  static const Der d = make_der();
  return d;
}

// Digests of the right length filled with `fill`; full data (matching type
// 0) is a real certificate or key unless `len` is given.
TlsaRecord tlsa(std::uint8_t u, std::uint8_t s, std::uint8_t m, std::size_t len = 0,
                std::uint8_t fill = 0xab) {
  if (len == 0 && m == 0 && s <= 1) return TlsaRecord{u, s, m, s == 0 ? der().cert : der().spki};
  if (len == 0) len = m == 1 ? 32 : m == 2 ? 64 : 100;
  return TlsaRecord{u, s, m, std::vector<std::uint8_t>(len, fill)};
}

// A fake DNS world: answers by (name, type); every query plan() asks is
// recorded, and a query with no prepared answer fails the test.
class World {
 public:
  Answer& put(const std::string& name, RrType type, Security sec) {
    Answer a;
    a.qname = name;
    a.qtype = type;
    a.security = sec;
    a.canonical_name = name;
    a.rcode = sec == X ? 2 : 0;
    if (sec == B) a.why = "signature expired";
    if (sec == X) a.why = "SERVFAIL from upstream";
    answers_.push_back(a);
    return answers_.back();
  }
  void mx(const std::string& domain, Security sec,
          std::vector<std::pair<std::uint16_t, std::string>> hosts) {
    Answer& a = put(domain, RrType::MX, sec);
    for (auto& [pref, host] : hosts) a.mx.push_back(dns::MxRecord{pref, host});
    a.havedata = !a.mx.empty();
  }
  void addr(const std::string& host, Security sec, std::vector<std::string> v4,
            std::vector<std::string> v6 = {}, const std::string& canonical = "") {
    for (auto [type, list] : {std::pair{RrType::A, v4}, std::pair{RrType::AAAA, v6}}) {
      Answer& a = put(host, type, sec);
      a.addresses = list;
      a.havedata = !list.empty();
      if (!canonical.empty()) {
        a.canonical_name = canonical;
        a.cname_chain.push_back(dns::CnameLink{host, canonical});
      }
    }
  }
  void tlsa_set(const std::string& owner, Security sec, std::vector<TlsaRecord> records) {
    Answer& a = put(owner, RrType::TLSA, sec);
    a.tlsa = std::move(records);
    a.havedata = !a.tlsa.empty();
  }
  void nodata(const std::string& name, RrType type, Security sec) { put(name, type, sec); }
  void nxdomain(const std::string& name, RrType type, Security sec) {
    Answer& a = put(name, type, sec);
    a.nxdomain = true;
    a.rcode = 3;
  }

  DestinationPlan run(const std::string& domain, config::TlsPolicy policy = config::TlsPolicy::dane,
                      std::uint16_t port = 25) {
    return run(domain, PlanOptions{policy, port});
  }
  DestinationPlan run(const std::string& domain, const PlanOptions& options) {
    AnswerSet set;
    for (int round = 0; round < 10; ++round) {
      PlanStep step = plan(domain, set, options);
      if (step.complete()) return step.plan;
      for (const dns::Query& q : step.missing) {
        asked.insert(q.name + "/" + std::string(dns::to_string(q.type)));
        auto it = std::find_if(answers_.begin(), answers_.end(), [&](const Answer& a) {
          return a.qname == q.name && a.qtype == q.type;
        });
        if (it == answers_.end()) {
          ADD_FAILURE() << "unexpected query " << q.name << " " << dns::to_string(q.type);
          Answer a;
          a.qname = q.name;
          a.qtype = q.type;
          a.security = X;
          set.add(a);
        } else {
          set.add(*it);
        }
      }
    }
    ADD_FAILURE() << "plan did not converge";
    return {};
  }

  bool was_asked(const std::string& name, RrType type) const {
    return asked.count(name + "/" + std::string(dns::to_string(type))) > 0;
  }

  std::set<std::string> asked;

 private:
  std::vector<Answer> answers_;
};

TEST(Plan, SecureMxWithUsableTlsaRequiresDane) {
  World w;
  w.mx("example.org", S, {{10, "mx1.example.org"}});
  w.addr("mx1.example.org", S, {"192.0.2.1"}, {"2001:db8::1"});
  w.tlsa_set("_25._tcp.mx1.example.org", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run("Example.ORG.");
  EXPECT_EQ(d.domain, "example.org");
  EXPECT_FALSE(d.failure);
  ASSERT_EQ(d.hosts.size(), 1u);
  const HostPlan& h = d.hosts[0];
  EXPECT_EQ(h.requirement, Requirement::dane);
  EXPECT_TRUE(h.mx_secure);
  EXPECT_EQ(h.addresses, (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(h.tlsa_base_domain, "mx1.example.org");
  EXPECT_EQ(h.sni(), "mx1.example.org");
  EXPECT_EQ(h.usable_tlsa.size(), 1u);
  EXPECT_EQ(h.reference_names, (std::vector<std::string>{"mx1.example.org", "example.org"}));
}

// RFC 5891: DNS is asked in A-labels; the certificate's names are A-labels too.
TEST(Plan, InternationalizedDomainIsLookedUpInALabels) {
  World w;
  w.mx("xn--bcher-kva.example", S, {{10, "mx.xn--bcher-kva.example"}});
  w.addr("mx.xn--bcher-kva.example", S, {"192.0.2.1"});
  w.tlsa_set("_25._tcp.mx.xn--bcher-kva.example", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run(
      "B\xc3\x9c"
      "cher.example");
  EXPECT_FALSE(d.failure) << d.reason;
  EXPECT_EQ(d.domain, "xn--bcher-kva.example");
  ASSERT_EQ(d.hosts.size(), 1u);
  EXPECT_EQ(d.hosts[0].requirement, Requirement::dane);
  EXPECT_EQ(d.hosts[0].reference_names,
            (std::vector<std::string>{"mx.xn--bcher-kva.example", "xn--bcher-kva.example"}));
  EXPECT_TRUE(std::any_of(d.notes.begin(), d.notes.end(), [](const std::string& n) {
    return n.find("looked up as xn--bcher-kva.example") != std::string::npos;
  }));
  for (const std::string& q : w.asked) EXPECT_FALSE(has_non_ascii(q)) << q;
}

TEST(Plan, InvalidInternationalizedDomainFailsWithoutLookups) {
  World w;
  DestinationPlan d = w.run("a\xff.example");
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(*d.failure, Outcome::domain_not_found);
  EXPECT_NE(d.reason.find("not a valid internationalized domain name"), std::string::npos)
      << d.reason;
  EXPECT_TRUE(w.asked.empty());
}

TEST(Plan, MxFailuresDeferTheDestinationWithoutAddressFallback) {
  struct Case {
    Security sec;
    Outcome outcome;
  } cases[] = {{B, Outcome::dnssec_invalid}, {X, Outcome::dns_failed}};
  for (const Case& c : cases) {
    World w;
    w.mx("example.org", c.sec, {});
    DestinationPlan d = w.run("example.org");
    ASSERT_TRUE(d.failure);
    EXPECT_EQ(*d.failure, c.outcome);
    EXPECT_TRUE(d.hosts.empty());
    EXPECT_FALSE(w.was_asked("example.org", RrType::A));
    EXPECT_NE(d.reason.find("MX lookup for example.org"), std::string::npos) << d.reason;
  }
}

// DESIGN.md section 8: an answer the resolver marked as its own failure is
// local-dns-failed wherever it stops the plan (MX, addresses, TLSA).
TEST(Plan, LocalResolverFailureIsLocalDnsFailed) {
  {
    World w;
    w.put("example.org", RrType::MX, X).local_failure = true;
    DestinationPlan d = w.run("example.org");
    ASSERT_TRUE(d.failure);
    EXPECT_EQ(*d.failure, Outcome::local_dns_failed);
    EXPECT_FALSE(w.was_asked("example.org", RrType::A));
  }
  {
    World w;
    w.mx("example.org", S, {{10, "mx.example.org"}});
    w.addr("mx.example.org", S, {"192.0.2.1"});
    w.put("_25._tcp.mx.example.org", RrType::TLSA, X).local_failure = true;
    DestinationPlan d = w.run("example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].failure, Outcome::local_dns_failed);
    EXPECT_EQ(d.failure, Outcome::local_dns_failed);
  }
}

TEST(Plan, NxdomainIsDomainNotFound) {
  World w;
  w.nxdomain("nowhere.example", RrType::MX, S);
  DestinationPlan d = w.run("nowhere.example");
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(*d.failure, Outcome::domain_not_found);
  EXPECT_FALSE(info(*d.failure).retry);
}

TEST(Plan, NoMxRecordsMakeTheDomainItsImplicitMx) {
  World w;
  w.nodata("example.org", RrType::MX, S);
  w.addr("example.org", S, {"192.0.2.7"});
  w.tlsa_set("_25._tcp.example.org", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run("example.org");
  EXPECT_TRUE(d.implicit_mx);
  ASSERT_EQ(d.hosts.size(), 1u);
  EXPECT_EQ(d.hosts[0].name, "example.org");
  EXPECT_EQ(d.hosts[0].requirement, Requirement::dane);
  EXPECT_EQ(d.hosts[0].reference_names, (std::vector<std::string>{"example.org"}));
}

TEST(Plan, NullMxFailsPermanentlyWithoutFurtherLookups) {
  World w;
  w.mx("example.org", S, {{0, ""}});
  DestinationPlan d = w.run("example.org");
  EXPECT_TRUE(d.null_mx);
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(*d.failure, Outcome::null_mx);
  EXPECT_EQ(code(*d.failure, false), "5.1.10");
  EXPECT_EQ(w.asked.size(), 1u);
}

TEST(Plan, NullMxMixedWithRealMxIsIgnoredWithANote) {
  World w;
  w.mx("example.org", S, {{0, ""}, {10, "mx.example.org"}});
  w.addr("mx.example.org", S, {"192.0.2.1"});
  w.nodata("_25._tcp.mx.example.org", RrType::TLSA, S);
  DestinationPlan d = w.run("example.org");
  EXPECT_FALSE(d.null_mx);
  EXPECT_FALSE(d.failure);
  ASSERT_EQ(d.hosts.size(), 1u);
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_NE(d.notes[0].find("null MX"), std::string::npos);
}

TEST(Plan, InsecureMxStillUsesSecureTlsaButOnlyTrustsIt) {
  World w;
  w.mx("example.org", I, {{10, "mx.hoster.example"}});
  w.addr("mx.hoster.example", S, {"192.0.2.1"});
  w.tlsa_set("_25._tcp.mx.hoster.example", S, {tlsa(2, 1, 1)});
  DestinationPlan d = w.run("example.org");
  ASSERT_EQ(d.hosts.size(), 1u);
  const HostPlan& h = d.hosts[0];
  EXPECT_EQ(h.requirement, Requirement::dane);
  EXPECT_FALSE(h.mx_secure);
  // RFC 7672 section 3.2.2: no next-hop domain when the MX is insecure.
  EXPECT_EQ(h.reference_names, (std::vector<std::string>{"mx.hoster.example"}));
  EXPECT_NE(h.reason.find("dane-trusted"), std::string::npos);
}

TEST(Plan, MxOrderIsKeptDuplicatesDroppedAndTlsaDoesNotReorder) {
  World w;
  w.mx(
      "example.org", S,
      {{20, "b.example.org"}, {10, "a.example.org"}, {20, "c.example.org"}, {30, "A.example.org"}});
  w.addr("a.example.org", S, {"192.0.2.1"});
  w.addr("b.example.org", S, {"192.0.2.2"});
  w.addr("c.example.org", S, {"192.0.2.3"});
  w.nodata("_25._tcp.a.example.org", RrType::TLSA, S);
  w.tlsa_set("_25._tcp.b.example.org", S, {tlsa(3, 1, 1)});
  w.nodata("_25._tcp.c.example.org", RrType::TLSA, S);
  DestinationPlan d = w.run("example.org");
  ASSERT_EQ(d.hosts.size(), 3u);
  EXPECT_EQ(d.hosts[0].name, "a.example.org");
  EXPECT_EQ(d.hosts[0].requirement, Requirement::opportunistic);
  EXPECT_EQ(d.hosts[1].name, "b.example.org");
  EXPECT_EQ(d.hosts[1].requirement, Requirement::dane);
  EXPECT_EQ(d.hosts[2].name, "c.example.org");
}

TEST(Plan, AddressVerdictsPerHost) {
  struct Case {
    const char* label;
    Security a_sec;
    Security aaaa_sec;
    Requirement requirement;
    std::optional<Outcome> failure;
    bool tlsa_asked;
  } cases[] = {
      {"both secure", S, S, Requirement::dane, std::nullopt, true},
      {"A bogus", B, S, Requirement::unusable, Outcome::dnssec_invalid, false},
      {"AAAA bogus", S, B, Requirement::unusable, Outcome::dnssec_invalid, false},
      {"both indeterminate", X, X, Requirement::unusable, Outcome::dns_failed, false},
      {"AAAA indeterminate", S, X, Requirement::dane, std::nullopt, true},
      {"insecure", I, I, Requirement::opportunistic, std::nullopt, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    World w;
    w.mx("example.org", S, {{10, "mx.example.org"}});
    Answer& a = w.put("mx.example.org", RrType::A, c.a_sec);
    a.addresses = {"192.0.2.1"};
    a.havedata = true;
    Answer& aaaa = w.put("mx.example.org", RrType::AAAA, c.aaaa_sec);
    aaaa.addresses = {"2001:db8::1"};
    aaaa.havedata = true;
    w.tlsa_set("_25._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
    DestinationPlan d = w.run("example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].requirement, c.requirement) << d.hosts[0].reason;
    EXPECT_EQ(d.hosts[0].failure, c.failure);
    EXPECT_EQ(w.was_asked("_25._tcp.mx.example.org", RrType::TLSA), c.tlsa_asked);
    if (c.failure) {
      EXPECT_EQ(d.failure, c.failure) << "a single unusable host fails the destination";
    }
  }
}

// [delivery] inet_protocols: the other family is neither asked nor used,
// and its failures cannot spoil the plan.
TEST(Plan, OnlyTheConfiguredAddressFamiliesAreLookedUp) {
  for (bool v4 : {true, false}) {
    SCOPED_TRACE(v4 ? "ipv4" : "ipv6");
    World w;
    w.mx("example.org", S, {{10, "mx.example.org"}});
    Answer& a = w.put("mx.example.org", v4 ? RrType::A : RrType::AAAA, S);
    a.addresses = {v4 ? "192.0.2.1" : "2001:db8::1"};
    a.havedata = true;
    w.put("mx.example.org", v4 ? RrType::AAAA : RrType::A, B);  // never asked
    w.tlsa_set("_25._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
    PlanOptions o;
    o.ipv4 = v4;
    o.ipv6 = !v4;
    DestinationPlan d = w.run("example.org", o);
    EXPECT_FALSE(w.was_asked("mx.example.org", v4 ? RrType::AAAA : RrType::A));
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].requirement, Requirement::dane) << d.hosts[0].reason;
    EXPECT_EQ(d.hosts[0].addresses, std::vector<std::string>{v4 ? "192.0.2.1" : "2001:db8::1"});

    // A host with addresses of the other family only has none to use.
    World other;
    other.mx("example.org", S, {{10, "mx.example.org"}});
    Answer& b = other.put("mx.example.org", v4 ? RrType::A : RrType::AAAA, S);
    b.havedata = false;
    DestinationPlan none = other.run("example.org", o);
    EXPECT_EQ(none.failure, Outcome::no_address);
  }
}

TEST(Plan, IndeterminateAddressFamilyIsNoted) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  Answer& a = w.put("mx.example.org", RrType::A, S);
  a.addresses = {"192.0.2.1"};
  a.havedata = true;
  w.put("mx.example.org", RrType::AAAA, X);
  w.nodata("_25._tcp.mx.example.org", RrType::TLSA, S);
  DestinationPlan d = w.run("example.org");
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_NE(d.notes[0].find("AAAA lookup for mx.example.org is indeterminate"), std::string::npos)
      << d.notes[0];
  EXPECT_EQ(d.hosts[0].addresses, (std::vector<std::string>{"192.0.2.1"}));
}

TEST(Plan, HostWithoutAddressesIsSkipped) {
  World w;
  w.mx("example.org", S, {{10, "gone.example.org"}, {20, "mx.example.org"}});
  w.put("gone.example.org", RrType::A, S).nxdomain = true;
  w.put("gone.example.org", RrType::AAAA, S).nxdomain = true;
  w.addr("mx.example.org", S, {"192.0.2.1"});
  w.tlsa_set("_25._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run("example.org");
  ASSERT_EQ(d.hosts.size(), 2u);
  EXPECT_EQ(d.hosts[0].failure, Outcome::no_address);
  EXPECT_NE(d.hosts[0].reason.find("does not exist"), std::string::npos);
  EXPECT_EQ(d.hosts[1].requirement, Requirement::dane);
  EXPECT_FALSE(d.failure);
}

TEST(Plan, AllHostsUnusableFailsWithTheMostPreferredHostsOutcome) {
  World w;
  w.mx("example.org", S, {{10, "a.example.org"}, {20, "b.example.org"}});
  w.addr("a.example.org", S, {"192.0.2.1"});
  w.addr("b.example.org", S, {"192.0.2.2"});
  w.tlsa_set("_25._tcp.a.example.org", B, {});
  w.tlsa_set("_25._tcp.b.example.org", X, {});
  DestinationPlan d = w.run("example.org");
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(*d.failure, Outcome::dnssec_invalid);
  EXPECT_NE(d.reason.find("a.example.org"), std::string::npos) << d.reason;
  EXPECT_EQ(d.hosts[1].failure, Outcome::dns_failed);
}

TEST(Plan, TlsaVerdicts) {
  struct Case {
    const char* label;
    Security sec;
    std::vector<TlsaRecord> records;
    Requirement requirement;
    std::optional<Outcome> failure;
  } cases[] = {
      {"usable 3 1 1", S, {tlsa(3, 1, 1)}, Requirement::dane, std::nullopt},
      {"usable 2 0 2", S, {tlsa(2, 0, 2)}, Requirement::dane, std::nullopt},
      {"usable 3 0 0", S, {tlsa(3, 0, 0)}, Requirement::dane, std::nullopt},
      {"usable 2 1 0", S, {tlsa(2, 1, 0)}, Requirement::dane, std::nullopt},
      // RFC 6698 section 2.1: 3 octets of RDATA is an unusable record.
      {"empty data beside a good 3 1 1",
       S,
       {TlsaRecord{3, 1, 1, {}}, tlsa(3, 1, 1)},
       Requirement::dane,
       std::nullopt},
      // RFC 7672 section 2.2: all unusable: TLS mandatory, not authenticated.
      {"only 3 0 0 with data that is not a certificate",
       S,
       {tlsa(3, 0, 0, 100)},
       Requirement::encrypt,
       std::nullopt},
      {"only empty data", S, {TlsaRecord{3, 1, 1, {}}}, Requirement::encrypt, std::nullopt},
      {"only PKIX usages", S, {tlsa(0, 0, 1), tlsa(1, 1, 1)}, Requirement::encrypt, std::nullopt},
      {"bad digest length", S, {tlsa(3, 1, 1, 31)}, Requirement::encrypt, std::nullopt},
      {"unknown selector and mtype",
       S,
       {tlsa(3, 2, 1), tlsa(3, 1, 7)},
       Requirement::encrypt,
       std::nullopt},
      {"secure denial", S, {}, Requirement::opportunistic, std::nullopt},
      {"insecure TLSA", I, {tlsa(3, 1, 1)}, Requirement::opportunistic, std::nullopt},
      {"bogus TLSA", B, {}, Requirement::unusable, Outcome::dnssec_invalid},
      {"indeterminate TLSA", X, {}, Requirement::unusable, Outcome::dns_failed},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    World w;
    w.mx("example.org", S, {{10, "mx.example.org"}});
    w.addr("mx.example.org", S, {"192.0.2.1"});
    w.tlsa_set("_25._tcp.mx.example.org", c.sec, c.records);
    DestinationPlan d = w.run("example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].requirement, c.requirement) << d.hosts[0].reason;
    EXPECT_EQ(d.hosts[0].failure, c.failure);
  }
}

TEST(Plan, SecureCnameChainTriesExpandedThenOriginal) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  w.addr("mx.example.org", S, {"192.0.2.1"}, {}, "smtp.hoster.example");
  w.nodata("_25._tcp.smtp.hoster.example", RrType::TLSA, S);
  w.tlsa_set("_25._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run("example.org");
  const HostPlan& h = d.hosts[0];
  EXPECT_EQ(h.expanded_name, "smtp.hoster.example");
  EXPECT_EQ(h.tlsa_candidates, (std::vector<std::string>{"smtp.hoster.example", "mx.example.org"}));
  EXPECT_EQ(h.tlsa_base_domain, "mx.example.org");
  EXPECT_EQ(h.sni(), "mx.example.org");
  EXPECT_EQ(h.requirement, Requirement::dane);
}

TEST(Plan, SecureCnameChainUsesExpandedNameFirst) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  w.addr("mx.example.org", S, {"192.0.2.1"}, {}, "smtp.hoster.example");
  w.tlsa_set("_25._tcp.smtp.hoster.example", S, {tlsa(2, 1, 1)});
  DestinationPlan d = w.run("example.org");
  const HostPlan& h = d.hosts[0];
  EXPECT_EQ(h.tlsa_base_domain, "smtp.hoster.example");
  EXPECT_EQ(h.sni(), "smtp.hoster.example");
  EXPECT_FALSE(w.was_asked("_25._tcp.mx.example.org", RrType::TLSA));
  EXPECT_EQ(h.reference_names,
            (std::vector<std::string>{"smtp.hoster.example", "mx.example.org", "example.org"}));
}

TEST(Plan, FailureAtExpandedNameDoesNotFallBackToOriginal) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  w.addr("mx.example.org", S, {"192.0.2.1"}, {}, "smtp.hoster.example");
  w.tlsa_set("_25._tcp.smtp.hoster.example", B, {});
  DestinationPlan d = w.run("example.org");
  EXPECT_EQ(d.hosts[0].failure, Outcome::dnssec_invalid);
  EXPECT_FALSE(w.was_asked("_25._tcp.mx.example.org", RrType::TLSA));
}

TEST(Plan, InsecureCnameTargetKeepsSecureOriginalAsBaseDomain) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  w.addr("mx.example.org", I, {"192.0.2.1"}, {}, "smtp.unsigned.example");
  Answer& c = w.put("mx.example.org", RrType::CNAME, S);
  c.havedata = true;
  w.tlsa_set("_25._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run("example.org");
  const HostPlan& h = d.hosts[0];
  EXPECT_TRUE(h.cname_first_link_secure);
  EXPECT_EQ(h.tlsa_candidates, (std::vector<std::string>{"mx.example.org"}));
  EXPECT_EQ(h.requirement, Requirement::dane);
  EXPECT_FALSE(w.was_asked("_25._tcp.smtp.unsigned.example", RrType::TLSA));
}

TEST(Plan, InsecureCnameFirstLinkMeansOpportunistic) {
  for (Security first : {I, B, X}) {
    World w;
    w.mx("example.org", S, {{10, "mx.example.org"}});
    w.addr("mx.example.org", I, {"192.0.2.1"}, {}, "smtp.unsigned.example");
    Answer& c = w.put("mx.example.org", RrType::CNAME, first);
    c.havedata = first == I;
    DestinationPlan d = w.run("example.org");
    const HostPlan& h = d.hosts[0];
    EXPECT_FALSE(w.was_asked("_25._tcp.mx.example.org", RrType::TLSA));
    if (first == I) {
      EXPECT_EQ(h.requirement, Requirement::opportunistic);
    } else {
      EXPECT_EQ(h.failure, first == B ? Outcome::dnssec_invalid : Outcome::dns_failed);
    }
  }
}

TEST(Plan, Policies) {
  struct Case {
    const char* label;
    config::TlsPolicy policy;
    bool publish_tlsa;
    Requirement requirement;
    std::optional<Outcome> failure;
    bool tlsa_asked;
  } cases[] = {
      {"dane with TLSA", config::TlsPolicy::dane, true, Requirement::dane, std::nullopt, true},
      {"dane without", config::TlsPolicy::dane, false, Requirement::opportunistic, std::nullopt,
       true},
      {"dane-only with TLSA", config::TlsPolicy::dane_only, true, Requirement::dane, std::nullopt,
       true},
      {"dane-only without", config::TlsPolicy::dane_only, false, Requirement::unusable,
       Outcome::dane_required, true},
      {"encrypt with TLSA", config::TlsPolicy::encrypt, true, Requirement::dane, std::nullopt,
       true},
      {"encrypt without", config::TlsPolicy::encrypt, false, Requirement::encrypt, std::nullopt,
       true},
      {"may with TLSA", config::TlsPolicy::may, true, Requirement::opportunistic, std::nullopt,
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    World w;
    w.mx("example.org", S, {{10, "mx.example.org"}});
    w.addr("mx.example.org", S, {"192.0.2.1"});
    if (c.publish_tlsa)
      w.tlsa_set("_25._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
    else
      w.nodata("_25._tcp.mx.example.org", RrType::TLSA, S);
    DestinationPlan d = w.run("example.org", c.policy);
    EXPECT_EQ(d.hosts[0].requirement, c.requirement) << d.hosts[0].reason;
    EXPECT_EQ(d.hosts[0].failure, c.failure);
    EXPECT_EQ(w.was_asked("_25._tcp.mx.example.org", RrType::TLSA), c.tlsa_asked);
  }
}

TEST(Plan, DaneOnlyRejectsInsecureHosts) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  w.addr("mx.example.org", I, {"192.0.2.1"});
  DestinationPlan d = w.run("example.org", config::TlsPolicy::dane_only);
  EXPECT_EQ(d.failure, Outcome::dane_required);
  EXPECT_EQ(code(*d.failure, true), "5.7.326");
}

TEST(Plan, TlsaOwnerFollowsThePort) {
  World w;
  w.mx("example.org", S, {{10, "mx.example.org"}});
  w.addr("mx.example.org", S, {"192.0.2.1"});
  w.tlsa_set("_2525._tcp.mx.example.org", S, {tlsa(3, 1, 1)});
  DestinationPlan d = w.run("example.org", config::TlsPolicy::dane, 2525);
  EXPECT_EQ(d.hosts[0].tlsa_owner, "_2525._tcp.mx.example.org");
  EXPECT_EQ(d.hosts[0].requirement, Requirement::dane);
}

// [transport] "[relay.example.net]:587": no MX lookup; the configured name
// stands where a secure MX name would, so a DANE match is dane-verified.
TEST(Plan, ConfiguredNextHopSkipsTheMxLookup) {
  World w;
  w.addr("relay.example.net", S, {"192.0.2.7"});
  w.tlsa_set("_587._tcp.relay.example.net", S, {tlsa(3, 1, 1)});
  PlanOptions o{config::TlsPolicy::dane, 587};
  o.mx_lookup = false;
  DestinationPlan d = w.run("relay.example.net", o);
  EXPECT_FALSE(w.was_asked("relay.example.net", RrType::MX));
  EXPECT_FALSE(d.failure);
  ASSERT_EQ(d.hosts.size(), 1u);
  EXPECT_EQ(d.hosts[0].name, "relay.example.net");
  EXPECT_EQ(d.hosts[0].requirement, Requirement::dane);
  EXPECT_TRUE(d.hosts[0].mx_secure);
  EXPECT_EQ(d.hosts[0].tlsa_owner, "_587._tcp.relay.example.net");
  EXPECT_FALSE(d.implicit_mx);

  // Its DNS failures are the next hop's, and defer as they would for an MX host.
  World bogus;
  bogus.addr("relay.example.net", B, {"192.0.2.7"});
  DestinationPlan b = bogus.run("relay.example.net", o);
  EXPECT_EQ(b.failure, Outcome::dnssec_invalid);

  // Insecure addresses: no TLSA lookup; dane-only refuses, encrypt demands TLS.
  World insecure;
  insecure.addr("relay.example.net", I, {"192.0.2.7"});
  EXPECT_EQ(insecure.run("relay.example.net", o).hosts[0].requirement, Requirement::opportunistic);
  o.policy = config::TlsPolicy::encrypt;
  EXPECT_EQ(insecure.run("relay.example.net", o).hosts[0].requirement, Requirement::encrypt);
  o.policy = config::TlsPolicy::dane_only;
  EXPECT_EQ(insecure.run("relay.example.net", o).failure, Outcome::dane_required);
  EXPECT_FALSE(insecure.was_asked("_587._tcp.relay.example.net", RrType::TLSA));
}

// [transport] "[192.0.2.7]": no DNS at all, and never DANE.
TEST(Plan, AddressLiteralNextHopAsksNothing) {
  World w;
  PlanOptions o{config::TlsPolicy::dane, 25};
  o.mx_lookup = false;
  o.address_literal = true;
  DestinationPlan d = w.run("192.0.2.7", o);
  EXPECT_TRUE(w.asked.empty());
  ASSERT_EQ(d.hosts.size(), 1u);
  EXPECT_EQ(d.hosts[0].addresses, std::vector<std::string>{"192.0.2.7"});
  EXPECT_EQ(d.hosts[0].requirement, Requirement::opportunistic);
  o.policy = config::TlsPolicy::encrypt;
  EXPECT_EQ(w.run("192.0.2.7", o).hosts[0].requirement, Requirement::encrypt);
  o.policy = config::TlsPolicy::dane_only;
  DestinationPlan refused = w.run("192.0.2.7", o);
  EXPECT_EQ(refused.failure, Outcome::dane_required);
  EXPECT_EQ(refused.hosts[0].requirement, Requirement::unusable);
}

TEST(JudgeTlsa, DigestAgilityKeepsOnlyTheStrongestDigestPerUsageAndSelector) {
  auto v = judge_tlsa({tlsa(3, 1, 1), tlsa(3, 1, 2), tlsa(2, 1, 1), tlsa(3, 0, 0)});
  ASSERT_EQ(v.size(), 4u);
  EXPECT_FALSE(v[0].usable);
  EXPECT_NE(v[0].note.find("digest agility"), std::string::npos) << v[0].note;
  EXPECT_TRUE(v[1].usable);
  EXPECT_TRUE(v[2].usable) << "2 1 1 is a different usage: not superseded by 3 1 2";
  EXPECT_TRUE(v[3].usable) << "full data is not a digest";
}

TEST(JudgeTlsa, MalformedStrongerDigestDoesNotDisableTheWeakerOne) {
  auto v = judge_tlsa({tlsa(3, 1, 1), tlsa(3, 1, 2, 20)});
  EXPECT_TRUE(v[0].usable);
  EXPECT_FALSE(v[1].usable);
  EXPECT_NE(v[1].note.find("must be 64"), std::string::npos);
}

TEST(JudgeTlsa, EmptyAssociationDataIsAnUnusableRecord) {
  auto v = judge_tlsa(
      {TlsaRecord{3, 1, 1, {}}, TlsaRecord{3, 0, 0, {}}, TlsaRecord{2, 1, 2, {}}, tlsa(3, 1, 1)});
  ASSERT_EQ(v.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(v[i].usable);
    EXPECT_EQ(v[i].note, "empty certificate association data");
  }
  EXPECT_TRUE(v[3].usable) << v[3].note;
}

TEST(JudgeTlsa, FullDataMustParseAsOpenSslRequires) {
  std::vector<std::uint8_t> trailing = der().cert;
  trailing.push_back(0);
  auto v = judge_tlsa({tlsa(3, 0, 0, 100), tlsa(2, 1, 0, 100), TlsaRecord{3, 0, 0, trailing},
                       TlsaRecord{3, 1, 0, der().cert}, tlsa(3, 0, 0), tlsa(3, 1, 0)});
  ASSERT_EQ(v.size(), 6u);
  EXPECT_FALSE(v[0].usable);
  EXPECT_EQ(v[0].note, "full data is not a DER certificate");
  EXPECT_FALSE(v[1].usable);
  EXPECT_EQ(v[1].note, "full data is not a DER SubjectPublicKeyInfo");
  EXPECT_FALSE(v[2].usable);
  EXPECT_EQ(v[2].note, "full data has bytes after the DER certificate");
  EXPECT_FALSE(v[3].usable) << "a certificate is not a SubjectPublicKeyInfo";
  EXPECT_TRUE(v[4].usable) << v[4].note;
  EXPECT_TRUE(v[5].usable) << v[5].note;
}

TEST(JudgeTlsa, UnusableUsagesAreExplained) {
  auto v = judge_tlsa({tlsa(0, 0, 1), tlsa(1, 1, 1), tlsa(4, 1, 1)});
  for (const auto& r : v) EXPECT_FALSE(r.usable);
  EXPECT_NE(v[0].note.find("PKIX-TA"), std::string::npos);
  EXPECT_NE(v[1].note.find("PKIX-EE"), std::string::npos);
  EXPECT_NE(v[2].note.find("unknown usage"), std::string::npos);
}

TEST(Outcome, TableMatchesTheDesign) {
  struct Row {
    Outcome o;
    const char* rpt;
    const char* soft;
    const char* hard;
  } rows[] = {
      {Outcome::dnssec_invalid, "dnssec-invalid", "4.7.324", "5.7.324"},
      {Outcome::dns_failed, "", "4.4.312", "5.4.312"},
      {Outcome::local_dns_failed, "", "4.4.312", "5.4.312"},
      {Outcome::starttls_not_supported, "starttls-not-supported", "4.7.321", "5.7.321"},
      {Outcome::certificate_expired, "certificate-expired", "4.7.322", "5.7.322"},
      {Outcome::tlsa_invalid, "tlsa-invalid", "4.7.323", "5.7.323"},
      {Outcome::certificate_host_mismatch, "certificate-host-mismatch", "4.7.325", "5.7.325"},
      {Outcome::dane_required, "dane-required", "4.7.326", "5.7.326"},
      {Outcome::validation_failure, "validation-failure", "4.7.5", "5.7.5"},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(info(r.o).tlsrpt_result, r.rpt);
    EXPECT_EQ(code(r.o, false), r.soft);
    EXPECT_EQ(code(r.o, true), r.hard);
    EXPECT_TRUE(info(r.o).retry);
    EXPECT_FALSE(info(r.o).fix.empty());
  }
  EXPECT_FALSE(info(Outcome::null_mx).retry);
  EXPECT_EQ(code(Outcome::null_mx, false), "5.1.10");
  // DESIGN.md section 8: a local resolver failure is not the receiver's.
  EXPECT_FALSE(policy_failure(Outcome::local_dns_failed));
  EXPECT_NE(info(Outcome::local_dns_failed).fix.find("Nothing for the receiving domain"),
            std::string::npos);
  EXPECT_NE(info(Outcome::local_dns_failed).fix.find("[dns]"), std::string::npos);
}

}  // namespace
}  // namespace danemta::dane

namespace danemta::dane {
namespace {

TEST(Outcome, NamesRoundTrip) {
  for (Outcome o : {Outcome::dnssec_invalid, Outcome::tlsa_invalid, Outcome::null_mx,
                    Outcome::connection_failed, Outcome::local_dns_failed})
    EXPECT_EQ(outcome_named(info(o).name), o);
  EXPECT_FALSE(outcome_named("no-such-outcome"));
}

}  // namespace
}  // namespace danemta::dane
