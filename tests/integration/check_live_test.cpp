// The live half of `danemta check`: the real binary probing lab receivers
// through the same session code delivery uses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/receivers.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using nlohmann::json;

struct Live {
  int exit_code;
  json j;
  std::string text;
};

Live check(const lab::World& world, const Receivers& rx, const std::string& domain) {
  std::string base = std::string(DANEMTA_BINARY) + " check --resolver " + world.resolver() +
                     " --trust-anchor " + world.trust_anchor_file() + " --timeout 10 --port " +
                     std::to_string(rx.port()) + " " + domain;
  lab::CommandResult js = lab::run_command(base + " --json");
  lab::CommandResult text = lab::run_command(base);
  Live l{js.exit_code, json::object(), text.out};
  EXPECT_EQ(js.exit_code, text.exit_code);
  try {
    l.j = json::parse(js.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what() << "\n" << js.out;
  }
  return l;
}

std::string spec(std::vector<json> zones) {
  return json{{"zones", zones}}.dump();
}

TEST(CheckLive, ValidStaleAndMissingStarttls) {
  Receivers rx(41);
  auto good = lab::self_signed({"mx.good41.example"});
  auto next = lab::self_signed({"mx.good41.example"});
  auto stale_old = lab::self_signed({"mx.stale41.example"});
  auto stale_now = lab::self_signed({"mx.stale41.example"});
  rx.add(10, Receivers::with_chain(good, "mx.good41.example"));
  rx.add(11, Receivers::with_chain(stale_now, "mx.stale41.example"));
  lab::Behaviour nostarttls = Receivers::with_chain(good, "mx.plain41.example");
  nostarttls.offer_starttls = false;
  lab::Receiver& plain = rx.add(12, nostarttls);
  lab::World world(spec({{{"name", "good41.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(good.leaf, 3, 1, 1)),
                            rx.tlsa_line("mx", lab::tlsa_rdata(next.leaf, 3, 1, 1))}}},
                         {{"name", "stale41.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(11),
                            rx.tlsa_line("mx", lab::tlsa_rdata(stale_old.leaf, 3, 1, 1))}}},
                         {{"name", "plain41.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(12),
                            rx.tlsa_line("mx", lab::tlsa_rdata(good.leaf, 3, 1, 1))}}}}));

  Live ok = check(world, rx, "good41.example");
  EXPECT_EQ(ok.exit_code, 0) << ok.text;
  EXPECT_TRUE(ok.j["live"].get<bool>());
  const json& p = ok.j["hosts"][0]["probes"][0];
  EXPECT_EQ(p["address"], rx.ip(10));
  EXPECT_TRUE(p["starttls_offered"].get<bool>());
  EXPECT_EQ(p["authentication"], "dane-verified");
  EXPECT_EQ(p["sni"], "mx.good41.example");
  EXPECT_EQ(p["matched_depth"], 0);
  ASSERT_EQ(p["tlsa_matches"].size(), 2u);
  for (const json& m : p["tlsa_matches"]) {
    // DNS does not keep the RRset's order: find each record by its data.
    if (m["record"] == lab::tlsa_rdata(good.leaf, 3, 1, 1))
      EXPECT_EQ(m["depths"], json::array({0}));
    else
      EXPECT_TRUE(m["depths"].empty()) << "the next key matches nothing yet";
  }
  EXPECT_TRUE(p["rollover_ready"].get<bool>());
  ASSERT_EQ(p["chain"].size(), 1u);
  EXPECT_EQ(p["chain"][0]["dns_names"], json({"mx.good41.example"}));
  EXPECT_EQ(p["chain"][0]["spki_sha256"], lab::tlsa_data_hex(good.leaf, 1, 1));
  EXPECT_NE(ok.text.find("matches depth 0"), std::string::npos) << ok.text;
  EXPECT_NE(ok.text.find("rollover    ready"), std::string::npos) << ok.text;

  Live stale = check(world, rx, "stale41.example");
  EXPECT_EQ(stale.exit_code, 1) << stale.text;
  EXPECT_EQ(stale.j["verdict"]["outcome"]["code"], "4.7.323");
  const json& sp = stale.j["hosts"][0]["probes"][0];
  EXPECT_EQ(sp["outcome"]["name"], "tlsa-invalid");
  EXPECT_TRUE(sp["tlsa_matches"][0]["depths"].empty());
  EXPECT_NE(stale.text.find("matches no certificate"), std::string::npos) << stale.text;
  EXPECT_NE(stale.text.find("FAIL 4.7.323 tlsa-invalid"), std::string::npos) << stale.text;

  Live missing = check(world, rx, "plain41.example");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.j["verdict"]["outcome"]["code"], "4.7.321");
  EXPECT_FALSE(missing.j["hosts"][0]["probes"][0]["starttls_offered"].get<bool>());
  for (const lab::Session& s : plain.sessions())
    for (const lab::Command& c : s.commands) EXPECT_NE(c.line.substr(0, 4), "MAIL");
}

TEST(CheckLive, DaneTaNamesExpiryAndWarnings) {
  Receivers rx(42);
  auto ca = lab::private_ca({"mx.ta42.example"});
  auto wrong = lab::private_ca({"elsewhere.example"});
  auto expired = lab::private_ca({"mx.ee42.example"}, lab::KeyType::ecdsa_p256, true);
  rx.add(10, Receivers::with_chain(ca, "mx.ta42.example"));
  rx.add(11, Receivers::with_chain(wrong, "mx.bad42.example"));
  rx.add(12, Receivers::with_chain(expired, "mx.ee42.example"));
  lab::World world(spec({{{"name", "ta42.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(*ca.issuer(), 2, 1, 1)),
                            rx.tlsa_line("mx", lab::tlsa_rdata(ca.leaf, 3, 1, 1))}}},
                         {{"name", "bad42.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(11),
                            rx.tlsa_line("mx", lab::tlsa_rdata(*wrong.issuer(), 2, 1, 1))}}},
                         {{"name", "ee42.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(12),
                            rx.tlsa_line("mx", lab::tlsa_rdata(expired.leaf, 3, 1, 1))}}}}));

  Live ta = check(world, rx, "ta42.example");
  EXPECT_EQ(ta.exit_code, 0) << ta.text;
  const json& p = ta.j["hosts"][0]["probes"][0];
  EXPECT_EQ(p["names_ok"], true);
  EXPECT_EQ(p["chain"].size(), 2u);
  EXPECT_TRUE(p["rollover_ready"].get<bool>()) << "3 1 1 + 2 1 1 survives a leaf change";

  Live bad = check(world, rx, "bad42.example");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.j["verdict"]["outcome"]["code"], "4.7.325");
  EXPECT_EQ(bad.j["hosts"][0]["probes"][0]["names_ok"], false);

  Live ee = check(world, rx, "ee42.example");
  EXPECT_EQ(ee.exit_code, 0) << "DANE-EE ignores expiry: " << ee.text;
  EXPECT_NE(ee.j["verdict"]["warnings"].dump().find("expired"), std::string::npos)
      << ee.j["verdict"]["warnings"];
}

TEST(CheckLive, StalePreferredMxIsDegraded) {
  Receivers rx(44);
  auto chain1 = lab::self_signed({"mx1.d44.example"});
  auto old_key = lab::self_signed({"mx1.d44.example"});
  auto chain2 = lab::self_signed({"mx2.d44.example"});
  rx.add(10, Receivers::with_chain(chain1, "mx1.d44.example"));
  rx.add(11, Receivers::with_chain(chain2, "mx2.d44.example"));
  lab::World world(
      spec({{{"name", "d44.example"},
             {"records",
              {"@ MX 10 mx1", "@ MX 20 mx2", "mx1 A " + rx.ip(10), "mx2 A " + rx.ip(11),
               rx.tlsa_line("mx1", lab::tlsa_rdata(old_key.leaf, 3, 1, 1)),
               rx.tlsa_line("mx2", lab::tlsa_rdata(chain2.leaf, 3, 1, 1))}}}}));
  Live l = check(world, rx, "d44.example");
  EXPECT_EQ(l.exit_code, 1) << l.text;
  EXPECT_EQ(l.j["verdict"]["status"], "degraded");
  EXPECT_EQ(l.j["verdict"]["outcome"]["code"], "4.7.323");
  EXPECT_NE(l.j["verdict"]["summary"].get<std::string>().find("mx2.d44.example"),
            std::string::npos);
}

TEST(CheckLive, UnreachableMxFallsBackToTheNextOneWithAWarning) {
  Receivers rx(43);
  auto chain = lab::self_signed({"mx2.d43.example"});
  rx.add(11, Receivers::with_chain(chain, "mx2.d43.example"));
  // mx1 points at an address where nothing listens.
  lab::World world(
      spec({{{"name", "d43.example"},
             {"records",
              {"@ MX 10 mx1", "@ MX 20 mx2", "mx1 A " + rx.ip(10), "mx2 A " + rx.ip(11),
               rx.tlsa_line("mx2", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Live l = check(world, rx, "d43.example");
  EXPECT_EQ(l.exit_code, 0) << l.text;
  EXPECT_FALSE(l.j["hosts"][0]["probes"][0]["reachable"].get<bool>());
  EXPECT_NE(l.j["verdict"]["summary"].get<std::string>().find("mx2.d43.example"),
            std::string::npos);
  EXPECT_NE(l.j["verdict"]["warnings"].dump().find("not reachable"), std::string::npos);
}

}  // namespace
