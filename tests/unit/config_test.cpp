#include "config/config.hpp"

#include <gtest/gtest.h>

namespace danemta::config {
namespace {

TEST(Config, EmptyDocumentGivesDefaults) {
  auto cfg = parse("");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_TRUE(cfg->dns.forwarders.empty());
  EXPECT_TRUE(cfg->dns.trust_anchor_file.empty());
  EXPECT_EQ(cfg->smtp_port, 25);
  EXPECT_EQ(cfg->policy_for("example.org"), TlsPolicy::dane);
}

TEST(Config, ParsesDnsDeliveryAndPolicies) {
  auto cfg = parse(R"(
[dns]
forwarders = ["127.0.0.1@5353", "::1"]
trust_anchor_file = "/etc/danemta/root.key"
timeout_seconds = 5

[delivery]
port = 2525
helo_name = "relay.example.net"

[delivery.timeouts]
connect = 10
dot = 900

[policy]
"Bank.Example." = "dane-only"
"legacy.example" = "may"
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->dns.forwarders.size(), 2u);
  EXPECT_EQ(cfg->dns.trust_anchor_file, "/etc/danemta/root.key");
  EXPECT_EQ(cfg->dns.timeout, std::chrono::seconds(5));
  EXPECT_EQ(cfg->smtp_port, 2525);
  EXPECT_EQ(cfg->helo_name, "relay.example.net");
  EXPECT_EQ(cfg->timeouts.connect, std::chrono::seconds(10));
  EXPECT_EQ(cfg->timeouts.dot, std::chrono::seconds(900));
  EXPECT_EQ(cfg->timeouts.rcpt, std::chrono::seconds(300)) << "RFC 5321 default kept";
  EXPECT_EQ(cfg->policy_for("bank.example"), TlsPolicy::dane_only);
  EXPECT_EQ(cfg->policy_for("LEGACY.example."), TlsPolicy::may);
  EXPECT_EQ(cfg->policy_for("other.example"), TlsPolicy::dane);
}

TEST(Config, RejectsBadInputWithTheKeyNamed) {
  struct Case {
    const char* text;
    const char* key;
  } cases[] = {
      {"[dns]\nforwarders = [\"not-an-ip\"]\n", "dns.forwarders"},
      {"[dns]\nforwarders = \"127.0.0.1\"\n", "dns.forwarders"},
      {"[dns]\ntimeout_seconds = 0\n", "dns.timeout_seconds"},
      {"[dns]\nbogus_key = 1\n", "dns.bogus_key"},
      {"[delivery]\nport = 70000\n", "delivery.port"},
      {"[delivery]\nhelo_name = \"a b\"\n", "delivery.helo_name"},
      {"[delivery.timeouts]\nrcpt = 0\n", "delivery.timeouts.rcpt"},
      {"[delivery.timeouts]\nbogus = 5\n", "delivery.timeouts.bogus"},
      {"[policy]\n\"example.org\" = \"sometimes\"\n", "policy"},
      {"[nonsense]\n", "nonsense"},
      {"[dns\n", "config:"},
  };
  for (const auto& c : cases) {
    auto cfg = parse(c.text);
    ASSERT_FALSE(cfg) << c.text;
    EXPECT_NE(cfg.error().message.find(c.key), std::string::npos) << cfg.error().message;
    EXPECT_EQ(cfg.error().severity, Severity::permanent);
  }
}

TEST(Config, ForwarderSyntax) {
  EXPECT_TRUE(valid_forwarder("127.0.0.1"));
  EXPECT_TRUE(valid_forwarder("127.0.0.1@53"));
  EXPECT_TRUE(valid_forwarder("::1@5353"));
  EXPECT_FALSE(valid_forwarder("127.0.0.1@0"));
  EXPECT_FALSE(valid_forwarder("127.0.0.1@x"));
  EXPECT_FALSE(valid_forwarder("localhost"));
}

TEST(Config, MissingFileIsAClearError) {
  auto cfg = load("/nonexistent/danemta.toml");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("/nonexistent/danemta.toml"), std::string::npos);
}

}  // namespace
}  // namespace danemta::config
