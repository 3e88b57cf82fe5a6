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

TEST(Config, TransportRoutesConcurrencyAndSourceAddresses) {
  auto cfg = parse(R"(
[delivery]
source_address = "192.0.2.10"
source_address6 = "2001:db8::10"

[policy]
"relay.example.net" = "encrypt"

[transport]
"*" = { nexthop = "[smarthost.example.net]:587", tls = "dane-only", concurrency = 4 }
".corp.example" = "relay.example.net"
"Example.ORG" = "[192.0.2.25]"
"local.corp.example" = "direct"
"v6.example" = { nexthop = "[2001:db8::25]:2525", tls = "may" }

[concurrency]
"big.example" = 50
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->source_address, "192.0.2.10");
  EXPECT_EQ(cfg->source_address6, "2001:db8::10");
  EXPECT_TRUE(cfg->deliver_ipv4);
  EXPECT_TRUE(cfg->deliver_ipv6);
  auto v4 = parse("[delivery]\ninet_protocols = \"ipv4\"\n[dns]\ncache_mib = 256\n");
  ASSERT_TRUE(v4) << v4.error().message;
  EXPECT_TRUE(v4->deliver_ipv4);
  EXPECT_FALSE(v4->deliver_ipv6);
  EXPECT_EQ(v4->dns.cache_mib, 256u);
  EXPECT_EQ(cfg->dns.cache_mib, 64u);
  EXPECT_EQ(cfg->dns.answer_cache_entries, 100000u);
  EXPECT_EQ(cfg->dns.answer_cache_max_ttl, std::chrono::seconds(3600));
  auto cache = parse("[dns]\nanswer_cache_entries = 0\nanswer_cache_max_ttl_seconds = 60\n");
  ASSERT_TRUE(cache) << cache.error().message;
  EXPECT_EQ(cache->dns.answer_cache_entries, 0u);
  EXPECT_EQ(cache->dns.answer_cache_max_ttl, std::chrono::seconds(60));

  const Route* star = cfg->route_for("anything.example");
  ASSERT_NE(star, nullptr);
  EXPECT_EQ(star->host, "smarthost.example.net");
  EXPECT_EQ(star->port, 587);
  EXPECT_FALSE(star->mx_lookup);
  EXPECT_EQ(star->concurrency, 4u);
  EXPECT_EQ(cfg->policy_for(*star), TlsPolicy::dane_only);

  // ".corp.example" covers subdomains, not corp.example itself ("*" does).
  const Route* sub = cfg->route_for("a.b.CORP.example.");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->host, "relay.example.net");
  EXPECT_TRUE(sub->mx_lookup);
  EXPECT_EQ(sub->port, 0) << "[delivery] port applies";
  EXPECT_EQ(cfg->policy_for(*sub), TlsPolicy::encrypt) << "[policy] of the next hop";
  EXPECT_EQ(cfg->route_for("corp.example"), star);
  EXPECT_EQ(cfg->route_for("notcorp.example"), star);

  const Route* literal = cfg->route_for("example.org");
  ASSERT_NE(literal, nullptr);
  EXPECT_TRUE(literal->address_literal);
  EXPECT_EQ(literal->host, "192.0.2.25");
  EXPECT_EQ(cfg->policy_for(*literal), TlsPolicy::dane);
  EXPECT_EQ(cfg->route_for("sub.example.org"), star) << "no parent match without a dot key";

  EXPECT_EQ(cfg->route_for("local.corp.example"), nullptr) << "direct: the domain's own MX";
  const Route* v6 = cfg->route_for("v6.example");
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->host, "2001:db8::25");
  EXPECT_EQ(v6->port, 2525);
  EXPECT_EQ(cfg->policy_for(*v6), TlsPolicy::may);

  EXPECT_EQ(cfg->concurrency_for("BIG.example"), 50u);
  EXPECT_EQ(cfg->concurrency_for("small.example"), 20u) << "[relay] max_per_destination";

  auto none = parse("");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->route_for("example.org"), nullptr);
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
      {"[delivery]\nsource_address = \"::1\"\n", "delivery.source_address"},
      {"[delivery]\nsource_address6 = \"127.0.0.1\"\n", "delivery.source_address6"},
      {"[transport]\n\"a..b\" = \"[relay.example.net]\"\n", "transport.\"a..b\""},
      {"[transport]\n\"example.org\" = \"relay.example.net:0\"\n", "transport"},
      {"[transport]\n\"example.org\" = \"[relay.example.net\"\n", "no closing"},
      {"[transport]\n\"example.org\" = \"192.0.2.1\"\n", "in brackets"},
      {"[transport]\n\"example.org\" = \"bad host!\"\n", "transport"},
      {"[transport]\n\"example.org\" = 5\n", "transport"},
      {"[transport]\n\"example.org\" = { nexthop = \"[192.0.2.1]\", tls = \"dane-only\" }\n",
       "dane-only can never be met"},
      {"[transport]\n\"example.org\" = { nexthop = \"[relay.example.net]\", tls = \"x\" }\n",
       "tls"},
      {"[transport]\n\"example.org\" = { nexthop = \"[relay.example.net]\", concurrency = 0 }\n",
       "concurrency"},
      {"[transport]\n\"example.org\" = { nexthop = \"[relay.example.net]\", port = 2 }\n",
       "unknown key"},
      {"[transport]\n\"example.org\" = { nexthop = \"direct\", tls = \"may\" }\n", "direct"},
      {"[concurrency]\n\"example.org\" = 0\n", "concurrency.\"example.org\""},
      {"[concurrency]\n\"example.org\" = \"5\"\n", "concurrency.\"example.org\""},
      {"[concurrency]\n\"*\" = 5\n", "concurrency.\"*\""},
      {"[delivery]\ninet_protocols = \"ipv5\"\n", "delivery.inet_protocols"},
      {"[dns]\ncache_mib = 1\n", "dns.cache_mib"},
      {"[dns]\nanswer_cache_entries = -1\n", "dns.answer_cache_entries"},
      {"[dns]\nanswer_cache_entries = 20000000\n", "dns.answer_cache_entries"},
      {"[dns]\nanswer_cache_max_ttl_seconds = 0\n", "dns.answer_cache_max_ttl_seconds"},
      {"[dns]\nanswer_cache_max_ttl_seconds = 86401\n", "dns.answer_cache_max_ttl_seconds"},
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
finished_retention_seconds = 0
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
  EXPECT_EQ(r.finished_retention, std::chrono::seconds(0));
  EXPECT_EQ(RelayConfig{}.finished_retention, std::chrono::seconds(86400)) << "a day by default";
  for (const char* bad : {"-1", "31536001", "1.5", "\"1d\""}) {
    auto refused = parse(std::string("[relay]\nfinished_retention_seconds = ") + bad + "\n");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("relay.finished_retention_seconds: must be"),
              std::string::npos)
        << refused.error().message;
  }
  EXPECT_EQ(r.min_backoff, std::chrono::seconds(10));
  EXPECT_EQ(r.max_per_destination, 2u);
  EXPECT_FALSE(r.log_json);
  auto json = parse("[relay]\nlog_format = \"json\"\n");
  ASSERT_TRUE(json);
  EXPECT_TRUE(json->relay.log_json);
  EXPECT_EQ(r.log, RelayConfig::LogTo::standard_output);
  EXPECT_EQ(r.log_prefix, RelayConfig::LogPrefix::automatic);
  auto sys = parse("[relay]\nlog = \"syslog\"\nlog_prefix = \"none\"\n");
  ASSERT_TRUE(sys) << sys.error().message;
  EXPECT_EQ(sys->relay.log, RelayConfig::LogTo::syslog);
  EXPECT_EQ(sys->relay.log_prefix, RelayConfig::LogPrefix::none);
  auto prefixed = parse("[relay]\nlog_prefix = \"syslog\"\n");
  ASSERT_TRUE(prefixed);
  EXPECT_EQ(prefixed->relay.log_prefix, RelayConfig::LogPrefix::syslog);
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
      {"[relay]\nuser = \"\"\n", "relay.user"},
      {"[relay]\nuser = 0\n", "relay.user"},
      {"[relay]\nuser = \"1000\"\n", "relay.user"},
      {"[relay]\nuser = \"-x\"\n", "relay.user"},
      {"[relay]\nuser = \"mail relay\"\n", "relay.user"},
      {"[relay]\nuser = \"danemta:danemta\"\n", "relay.user"},
      {"[relay]\nlog = \"/var/log/danemta.log\"\n", "relay.log"},
      {"[relay]\nlog_prefix = \"iso\"\n", "relay.log_prefix"},
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

namespace danemta::config {
namespace {

TEST(Config, NewRelayLimitsHaveDefaults) {
  auto cfg = parse("");
  ASSERT_TRUE(cfg);
  const RelayConfig& r = cfg->relay;
  EXPECT_EQ(r.max_connections, 100u);
  EXPECT_EQ(r.max_connections_per_client, 20u);
  EXPECT_EQ(r.max_junk_commands, 100u);
  EXPECT_EQ(r.max_received_headers, 50u);
  EXPECT_EQ(r.max_recipients, 1000u);
  EXPECT_EQ(r.storage_retry, std::chrono::seconds(10));
  EXPECT_FALSE(r.open_relay);
}

TEST(Config, NewRelayLimitsAreRead) {
  auto cfg = parse(R"(
[relay]
max_connections = 7
max_connections_per_client = 3
max_junk_commands = 9
max_received_headers = 30
max_recipients = 2
storage_retry_seconds = 60
open_relay = false
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const RelayConfig& r = cfg->relay;
  EXPECT_EQ(r.max_connections, 7u);
  EXPECT_EQ(r.max_connections_per_client, 3u);
  EXPECT_EQ(r.max_junk_commands, 9u);
  EXPECT_EQ(r.max_received_headers, 30u);
  EXPECT_EQ(r.max_recipients, 2u);
  EXPECT_EQ(r.storage_retry, std::chrono::seconds(60));
  EXPECT_FALSE(r.open_relay);
}

// Every integer key refuses floats, strings, booleans, negative numbers and
// values beyond its range, and the error names the key.
TEST(Config, EveryIntegerKeyChecksTypeAndRange) {
  struct Key {
    const char* section;
    const char* key;
    const char* too_big;
  } keys[] = {
      {"dns", "timeout_seconds", "601"},
      {"delivery", "port", "65536"},
      {"delivery.timeouts", "connect", "3601"},
      {"delivery.timeouts", "greeting", "3601"},
      {"delivery.timeouts", "ehlo", "3601"},
      {"delivery.timeouts", "starttls", "3601"},
      {"delivery.timeouts", "mail", "3601"},
      {"delivery.timeouts", "rcpt", "3601"},
      {"delivery.timeouts", "data_init", "3601"},
      {"delivery.timeouts", "data_block", "3601"},
      {"delivery.timeouts", "dot", "3601"},
      {"relay", "queue_lifetime_seconds", "2592001"},
      {"relay", "min_backoff_seconds", "86401"},
      {"relay", "max_backoff_seconds", "86401"},
      {"relay", "max_deliveries", "100001"},
      {"relay", "max_per_destination", "100001"},
      {"relay", "max_message_bytes", "2147483649"},
      {"relay", "max_connections", "100001"},
      {"relay", "max_connections_per_client", "100001"},
      {"relay", "max_junk_commands", "100001"},
      {"relay", "max_received_headers", "1001"},
      {"relay", "max_recipients", "100001"},
      {"relay", "storage_retry_seconds", "3601"},
  };
  for (const Key& k : keys) {
    const std::string name = std::string(k.section) + "." + k.key;
    for (const char* value : {"1.5", "10.0", "\"10\"", "true", "-1", "0", k.too_big}) {
      const std::string text = "[" + std::string(k.section) + "]\n" + k.key + " = " + value + "\n";
      auto cfg = parse(text);
      ASSERT_FALSE(cfg) << text;
      EXPECT_NE(cfg.error().message.find("config: " + name + ": must be"), std::string::npos)
          << cfg.error().message;
      EXPECT_EQ(cfg.error().severity, Severity::permanent);
    }
  }
  auto f = parse("[dns]\ntimeout_seconds = 5.0\n");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().message,
            "config: dns.timeout_seconds: must be an integer 1..600 seconds, not a float");
  auto r = parse("[relay]\nmax_recipients = 0\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "config: relay.max_recipients: must be 1..100000, not 0");
}

TEST(Config, BooleanKeysTakeOnlyBooleans) {
  for (const char* text : {"[relay]\nopen_relay = 1\n", "[relay]\nopen_relay = \"yes\"\n",
                           "[tlsrpt]\nenabled = 0\n", "[relay]\nreceived_auth_user = \"no\"\n"}) {
    auto cfg = parse(text);
    ASSERT_FALSE(cfg) << text;
    EXPECT_NE(cfg.error().message.find("must be true or false"), std::string::npos)
        << cfg.error().message;
  }
}

TEST(Config, NetworkPrefixOutOfRange) {
  EXPECT_FALSE(parse_network("10.0.0.0/-1"));
  EXPECT_FALSE(parse_network("10.0.0.0/+8"));
  EXPECT_FALSE(parse_network("10.0.0.0/"));
  EXPECT_FALSE(parse_network("10.0.0.0/33"));
  EXPECT_FALSE(parse_network("2001:db8::/129"));
  EXPECT_FALSE(parse_network("2001:db8::/1000"));
  ASSERT_TRUE(parse_network("2001:db8::/128"));
  ASSERT_TRUE(parse_network("10.0.0.0/0"));
  EXPECT_EQ(parse_network("10.0.0.0/0")->prefix, 0);
  const char* cases[][2] = {
      {"10.0.0.0/-1", "\"10.0.0.0/-1\": the prefix length is not a number"},
      {"10.0.0.0/33", "\"10.0.0.0/33\": the prefix length must be 0..32"},
      {"::1/129", "\"::1/129\": the prefix length must be 0..128"},
      {"host.example", "\"host.example\" is not an IPv4 or IPv6 address"},
  };
  for (const auto& c : cases) {
    auto cfg = parse(std::string("[relay]\nallow = [\"") + c[0] + "\"]\n");
    ASSERT_FALSE(cfg) << c[0];
    EXPECT_NE(cfg.error().message.find(std::string("config: relay.allow: ") + c[1]),
              std::string::npos)
        << cfg.error().message;
  }
}

TEST(Config, EveryClientNeedsOpenRelay) {
  for (const char* net : {"0.0.0.0/0", "::/0", "192.0.2.0/0"}) {
    auto refused = parse(std::string("[relay]\nallow = [\"127.0.0.1\", \"") + net + "\"]\n");
    ASSERT_FALSE(refused) << net;
    EXPECT_NE(refused.error().message.find("relay.allow"), std::string::npos);
    EXPECT_NE(refused.error().message.find("open relay"), std::string::npos);
    EXPECT_NE(refused.error().message.find("open_relay = true"), std::string::npos);
    auto explicit_false =
        parse(std::string("[relay]\nopen_relay = false\nallow = [\"") + net + "\"]\n");
    EXPECT_FALSE(explicit_false) << net;
    auto allowed = parse(std::string("[relay]\nopen_relay = true\nallow = [\"") + net + "\"]\n");
    ASSERT_TRUE(allowed) << allowed.error().message;
    EXPECT_TRUE(allowed->relay.open_relay);
    EXPECT_TRUE(contains(allowed->relay.allow[0], net[0] == ':' ? "2001:db8::1" : "203.0.113.9"));
  }
  EXPECT_TRUE(parse("[relay]\nopen_relay = true\n")) << "the key alone changes nothing";
}

TEST(Config, RelayUser) {
  auto none = parse("");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->relay.user, "") << "no user by default: the relay then refuses to run as root";
  for (const char* name : {"danemta", "nobody", "root", "mail-relay", "_danemta", "svc.mail"}) {
    auto cfg = parse(std::string("[relay]\nuser = \"") + name + "\"\n");
    ASSERT_TRUE(cfg) << name << ": " << cfg.error().message;
    EXPECT_EQ(cfg->relay.user, name);
  }
  EXPECT_TRUE(valid_user_name("machine$"));
  EXPECT_FALSE(valid_user_name("a$b"));
  EXPECT_FALSE(valid_user_name(std::string(33, 'a')));
  EXPECT_TRUE(valid_user_name(std::string(32, 'a')));
}

// The file the package installs as /etc/danemta/danemta.toml parses, and its
// values are the conservative ones the operations guide describes.
TEST(Config, PackagedExampleConfig) {
  auto cfg = load(std::string(DANEMTA_TESTS_DIR) + "/../packaging/danemta.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->relay.user, "danemta");
  EXPECT_EQ(cfg->relay.spool, "/var/spool/danemta/queue.db");
  EXPECT_EQ(cfg->tlsrpt_store(), "/var/lib/danemta/tlsrpt.db");
  EXPECT_EQ(cfg->relay.listen, (std::vector<std::string>{"127.0.0.1:10025"}));
  ASSERT_EQ(cfg->relay.allow.size(), 2u);
  EXPECT_EQ(cfg->relay.allow[0], (Network{"127.0.0.0", 8}));
  EXPECT_EQ(cfg->relay.allow[1], (Network{"::1", 128}));
  EXPECT_FALSE(cfg->relay.open_relay);
  EXPECT_TRUE(cfg->dns.forwarders.empty()) << "full recursion, validated locally";
  EXPECT_TRUE(cfg->dns.trust_anchor_file.empty()) << "the built-in root KSKs";
  EXPECT_TRUE(cfg->policies.empty());
  EXPECT_EQ(cfg->smtp_port, 25);
}

TEST(Config, DirectoryIsAClearError) {
  auto cfg = load("/tmp");
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().message, "config /tmp: is a directory");
  EXPECT_EQ(cfg.error().severity, Severity::permanent);
}

TEST(Config, SendmailSection) {
  auto cfg = parse("[sendmail]\ndomain = \"Example.NET.\"\nsubmit = \"[::1]:2525\"\n");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->sendmail.domain, "example.net");
  EXPECT_EQ(cfg->sendmail_domain("host.example"), "example.net");
  EXPECT_EQ(cfg->sendmail_submit(), "[::1]:2525");

  // Defaults: [relay] hostname, else the host's name; the first listen
  // address, a wildcard meaning loopback.
  cfg = parse("");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->sendmail_domain("Host.Example"), "host.example");
  EXPECT_EQ(cfg->sendmail_submit(), "127.0.0.1:10025");
  cfg = parse("[relay]\nhostname = \"relay.example\"\nlisten = [\"0.0.0.0:25\", \"[::1]:26\"]\n");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->sendmail_domain("host.example"), "relay.example");
  EXPECT_EQ(cfg->sendmail_submit(), "127.0.0.1:25");
  cfg = parse("[relay]\nlisten = [\"[::]:587\"]\n");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->sendmail_submit(), "[::1]:587");
}

TEST(Config, SendmailRejectsBadValues) {
  for (const char* text :
       {"[sendmail]\ndomain = \"\"\n", "[sendmail]\ndomain = \"a..b\"\n",
        "[sendmail]\ndomain = \"-a.example\"\n", "[sendmail]\ndomain = \"a b.example\"\n",
        "[sendmail]\ndomain = \"user@example.net\"\n", "[sendmail]\ndomain = 3\n"}) {
    auto cfg = parse(text);
    ASSERT_FALSE(cfg) << text;
    EXPECT_NE(cfg.error().message.find("sendmail.domain"), std::string::npos)
        << cfg.error().message;
  }
  auto cfg = parse("[sendmail]\nsubmit = \"localhost:25\"\n");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("sendmail.submit"), std::string::npos);
  cfg = parse("[sendmail]\nmyorigin = \"x.example\"\n");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("sendmail.myorigin: unknown key"), std::string::npos);
  cfg = parse("sendmail = 1\n");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("sendmail: must be a table"), std::string::npos);
}

TEST(Config, ListenersWithTlsAndAuth) {
  auto cfg = parse(R"(
[relay]
listen = ["127.0.0.1:10025"]
tls_cert_file = "/etc/danemta/tls/fullchain.pem"
credentials_file = "/etc/danemta/credentials"
received_auth_user = true

[[relay.listener]]
address = "0.0.0.0:587"
tls = "required"
auth = "required"

[[relay.listener]]
address = "[::]:2525"
tls = "may"
auth = "may"
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const RelayConfig& r = cfg->relay;
  EXPECT_EQ(r.tls_key(), "/etc/danemta/tls/fullchain.pem") << "the key in the certificate file";
  EXPECT_EQ(r.credentials_file, "/etc/danemta/credentials");
  EXPECT_TRUE(r.received_auth_user);
  const std::vector<Listener> all = r.all_listeners();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], (Listener{"127.0.0.1:10025", Requirement::none, Requirement::none}));
  EXPECT_EQ(all[1], (Listener{"0.0.0.0:587", Requirement::required, Requirement::required}));
  EXPECT_EQ(all[2], (Listener{"[::]:2525", Requirement::may, Requirement::may}));
  EXPECT_EQ(cfg->sendmail_submit(), "127.0.0.1:10025") << "the listener without AUTH";
  // The whole array is one setting, so a reload logs a changed listener.
  EXPECT_EQ(cfg->settings.count("relay.listener"), 1u);

  // Only listener tables: no default listen address besides them; sendmail
  // takes the first listener that needs neither TLS nor AUTH.
  cfg = parse(R"(
[relay]
tls_cert_file = "/c.pem"
tls_key_file = "/k.pem"
[[relay.listener]]
address = "127.0.0.1:587"
tls = "may"
[[relay.listener]]
address = "127.0.0.1:26"
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_TRUE(cfg->relay.listen.empty());
  EXPECT_EQ(cfg->relay.tls_key(), "/k.pem");
  ASSERT_EQ(cfg->relay.all_listeners().size(), 2u);
  EXPECT_EQ(cfg->relay.all_listeners()[1].tls, Requirement::none) << "the default";
  EXPECT_EQ(cfg->sendmail_submit(), "127.0.0.1:587");
}

TEST(Config, ListenerMistakesAreNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {"[relay]\nlistener = \"0.0.0.0:587\"\n", "relay.listener: must be [[relay.listener]]"},
      {"[[relay.listener]]\ntls = \"none\"\n", "relay.listener[0]: needs an address"},
      {"[[relay.listener]]\naddress = \"host:587\"\n", "relay.listener[0].address: must be"},
      {"[[relay.listener]]\naddress = \"127.0.0.1:587\"\ntls = \"yes\"\n",
       "relay.listener[0].tls: must be \"none\", \"may\" or \"required\""},
      {"[[relay.listener]]\naddress = \"127.0.0.1:587\"\nport = 587\n",
       "relay.listener[0].port: unknown key"},
      {"[relay]\ncredentials_file = \"/c\"\n[[relay.listener]]\naddress = "
       "\"127.0.0.1:587\"\nauth = \"required\"\n",
       "relay.listener[0].auth: AUTH is offered only over TLS"},
      {"[[relay.listener]]\naddress = \"127.0.0.1:587\"\ntls = \"may\"\n",
       "relay.tls_cert_file: needed: the listener on 127.0.0.1:587 offers STARTTLS"},
      {"[relay]\ntls_cert_file = \"/c\"\n[[relay.listener]]\naddress = \"127.0.0.1:587\"\ntls = "
       "\"may\"\nauth = \"may\"\n",
       "relay.credentials_file: needed: the listener on 127.0.0.1:587 offers AUTH"},
      {"[relay]\nlisten = [\"127.0.0.1:587\"]\n[[relay.listener]]\naddress = \"127.0.0.1:587\"\n",
       "127.0.0.1:587 is given twice"},
      {"[relay]\ntls_cert_file = \"\"\n", "relay.tls_cert_file: must be a file path"},
  };
  for (const auto& [text, expected] : cases) {
    auto cfg = parse(text);
    ASSERT_FALSE(cfg) << text;
    EXPECT_NE(cfg.error().message.find(expected), std::string::npos) << text << "\n"
                                                                     << cfg.error().message;
  }
}

}  // namespace
}  // namespace danemta::config
