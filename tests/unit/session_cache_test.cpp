// The connection cache's key: any change in what a session had to prove
// gives another key, so a parked session is never handed to a plan it was
// not authenticated under.
#include "delivery/session_cache.hpp"

#include <gtest/gtest.h>

namespace danemta::delivery {
namespace {

struct Fixture {
  dane::DestinationPlan plan;
  Fixture() {
    plan.domain = "example.org";
    plan.port = 25;
    plan.policy = config::TlsPolicy::dane;
    dane::HostPlan h;
    h.name = "mx.example.org";
    h.requirement = dane::Requirement::dane;
    h.mx_secure = true;
    h.tlsa_base_domain = "mx.example.org";
    h.usable_tlsa = {dns::TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(32, 0xab)},
                     dns::TlsaRecord{2, 1, 1, std::vector<std::uint8_t>(32, 0xcd)}};
    h.reference_names = {"mx.example.org", "example.org"};
    plan.hosts.push_back(h);
  }
  std::string key(const std::string& address = "192.0.2.1") const {
    return session_key(plan, plan.hosts[0], address, "relay.example.net");
  }
};

TEST(SessionKey, EqualPlansGiveEqualKeysWhateverTheRecordOrder) {
  Fixture a;
  Fixture b;
  std::swap(b.plan.hosts[0].usable_tlsa[0], b.plan.hosts[0].usable_tlsa[1]);
  std::swap(b.plan.hosts[0].reference_names[0], b.plan.hosts[0].reference_names[1]);
  EXPECT_EQ(a.key(), b.key());
}

TEST(SessionKey, EveryFieldThatDecidesAuthenticationChangesTheKey) {
  const Fixture base;
  const std::string k = base.key();
  EXPECT_NE(k, base.key("192.0.2.2")) << "address";
  EXPECT_NE(k, session_key(base.plan, base.plan.hosts[0], "192.0.2.1", "other.example.net"))
      << "EHLO name";
  auto changed = [&](auto change) {
    Fixture f;
    change(f.plan, f.plan.hosts[0]);
    return f.key();
  };
  using P = dane::DestinationPlan;
  using H = dane::HostPlan;
  EXPECT_NE(k, changed([](P& p, H&) { p.domain = "example.com"; })) << "destination";
  EXPECT_NE(k, changed([](P& p, H&) { p.port = 587; })) << "port";
  EXPECT_NE(k, changed([](P& p, H&) { p.policy = config::TlsPolicy::encrypt; })) << "policy";
  EXPECT_NE(k, changed([](P&, H& h) { h.name = "mx2.example.org"; })) << "host";
  EXPECT_NE(k, changed([](P&, H& h) { h.requirement = dane::Requirement::encrypt; }))
      << "requirement";
  EXPECT_NE(k, changed([](P&, H& h) { h.tlsa_base_domain = "alias.example.net"; })) << "SNI";
  EXPECT_NE(k, changed([](P&, H& h) { h.mx_secure = false; })) << "dane-verified vs trusted";
  EXPECT_NE(k, changed([](P&, H& h) { h.usable_tlsa[0].data[5] = 0; })) << "TLSA data";
  EXPECT_NE(k, changed([](P&, H& h) { h.usable_tlsa.pop_back(); })) << "TLSA record removed";
  EXPECT_NE(k, changed([](P&, H& h) { h.usable_tlsa[0].mtype = 2; })) << "TLSA matching type";
  EXPECT_NE(k, changed([](P&, H& h) { h.reference_names.pop_back(); })) << "reference names";
  // No field's text can run into the next one's.
  EXPECT_NE(changed([](P& p, H&) { p.domain = "a;b"; }), changed([](P& p, H& h) {
              p.domain = "a";
              h.name = "b;" + h.name;
            }));
}

}  // namespace
}  // namespace danemta::delivery
