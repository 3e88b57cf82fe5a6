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

namespace danemta::config {
namespace {

TEST(Config, RelaySection) {
  auto cfg = parse(R"(
[relay]
listen = ["127.0.0.1:2525", "[::1]:2525"]
allow = ["127.0.0.0/8", "::1", "192.0.2.0/24"]
spool = "/tmp/q.db"
hostname = "relay.example.net"
queue_lifetime_seconds = 3600
min_backoff_seconds = 10
max_backoff_seconds = 60
max_deliveries = 5
max_per_destination = 2
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const RelayConfig& r = cfg->relay;
  EXPECT_EQ(r.listen.size(), 2u);
  ASSERT_EQ(r.allow.size(), 3u);
  EXPECT_EQ(r.allow[1], (Network{"::1", 128}));
  EXPECT_EQ(r.spool, "/tmp/q.db");
  EXPECT_EQ(r.queue_lifetime, std::chrono::seconds(3600));
  EXPECT_EQ(r.min_backoff, std::chrono::seconds(10));
  EXPECT_EQ(r.max_per_destination, 2u);
  EXPECT_FALSE(r.log_json);
  auto json = parse("[relay]\nlog_format = \"json\"\n");
  ASSERT_TRUE(json);
  EXPECT_TRUE(json->relay.log_json);
}

TEST(Config, RelayDefaultsAreLoopbackOnly) {
  auto cfg = parse("");
  ASSERT_TRUE(cfg);
  for (const Network& n : cfg->relay.allow) {
    EXPECT_TRUE(n.address == "127.0.0.0" || n.address == "::1") << n.address;
  }
  EXPECT_FALSE(contains(cfg->relay.allow[0], "192.0.2.1"));
}

TEST(Config, RelayRejectsBadValues) {
  const char* cases[][2] = {
      {"[relay]\nlisten = [\"127.0.0.1\"]\n", "relay.listen"},
      {"[relay]\nallow = [\"10.0.0.0/33\"]\n", "relay.allow"},
      {"[relay]\nallow = [\"example.org\"]\n", "relay.allow"},
      {"[relay]\nmin_backoff_seconds = 100\nmax_backoff_seconds = 10\n", "min_backoff"},
      {"[relay]\nmax_deliveries = 0\n", "relay.max_deliveries"},
      {"[relay]\nwhatever = 1\n", "relay.whatever"},
      {"[relay]\nlog_format = \"xml\"\n", "relay.log_format"},
  };
  for (const auto& c : cases) {
    auto cfg = parse(c[0]);
    ASSERT_FALSE(cfg) << c[0];
    EXPECT_NE(cfg.error().message.find(c[1]), std::string::npos) << cfg.error().message;
  }
}

TEST(Config, NetworkMatching) {
  auto v4 = parse_network("192.0.2.0/24");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(contains(*v4, "192.0.2.200"));
  EXPECT_FALSE(contains(*v4, "192.0.3.1"));
  EXPECT_TRUE(contains(*v4, "::ffff:192.0.2.9")) << "IPv4-mapped peers match IPv4 networks";
  EXPECT_FALSE(contains(*v4, "2001:db8::1"));
  auto odd = parse_network("10.0.0.0/9");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(contains(*odd, "10.127.255.255"));
  EXPECT_FALSE(contains(*odd, "10.128.0.0"));
  auto v6 = parse_network("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(contains(*v6, "2001:db8:ffff::1"));
  EXPECT_FALSE(contains(*v6, "2001:db9::1"));
  auto host = parse_network("::1");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix, 128);
  EXPECT_FALSE(parse_network("1.2.3.4/x"));
  EXPECT_TRUE(valid_listen("[::1]:25"));
  EXPECT_FALSE(valid_listen("::1:25"));
  EXPECT_FALSE(valid_listen("127.0.0.1:0"));
}

}  // namespace
}  // namespace danemta::config

namespace danemta::config {
namespace {

TEST(Config, TlsRptSection) {
  auto cfg = parse(R"(
[tlsrpt]
enabled = false
store = "/tmp/r.db"
organization_name = "Example Sender"
submitter = "sender.example"
contact_info = "mailto:postmaster@sender.example"
mail_from = "tlsrpt@sender.example"
dkim_domain = "sender.example"
dkim_selector = "rpt"
dkim_key_file = "/etc/danemta/dkim.pem"
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_FALSE(cfg->tlsrpt.enabled);
  EXPECT_EQ(cfg->tlsrpt.submitter, "sender.example");
  EXPECT_EQ(cfg->tlsrpt.dkim_selector, "rpt");
  auto defaults = parse("[relay]\nspool = \"/srv/q/queue.db\"\n");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->tlsrpt_store(), "/srv/q/tlsrpt.db") << "next to the spool";
  EXPECT_EQ(cfg->tlsrpt_store(), "/tmp/r.db");
  auto half = parse("[tlsrpt]\ndkim_domain = \"x.example\"\n");
  ASSERT_FALSE(half);
  EXPECT_NE(half.error().message.find("go together"), std::string::npos);
  auto unknown = parse("[tlsrpt]\nrua = \"x\"\n");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("tlsrpt.rua"), std::string::npos);
}

}  // namespace
}  // namespace danemta::config
