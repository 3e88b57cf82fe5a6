// [inbound] (config/inbound.cpp): the MX listener, its local domains, the
// route to the mailbox server and the rollover guard's settings.
#include <gtest/gtest.h>

#include "config/config.hpp"

namespace danemta::config {
namespace {

constexpr const char* kInbound = R"(
[relay]
spool = "/var/spool/danemta/queue.db"

[inbound]
listen = ["192.0.2.25:25"]
hostname = "MX1.Example.ORG"
local_domains = ["Example.org", "example.net."]
deliver_to = "[mail.internal]:2525"
deliver_tls = "encrypt"
mx_names = ["mx1.example.org"]
rollover_margin_seconds = 5
check_interval_seconds = 1
expiry_warning_days = 30

[[inbound.certificate]]
cert_file = "/etc/danemta/ec.pem"
key_file = "/etc/danemta/ec.key"
[[inbound.certificate]]
cert_file = "/etc/danemta/rsa.pem"
)";

TEST(InboundConfig, ParsesAndRoutesLocalDomainsToTheMailboxServer) {
  auto cfg = parse(kInbound);
  ASSERT_TRUE(cfg) << cfg.error().message;
  const InboundConfig& in = cfg->inbound;
  EXPECT_TRUE(in.enabled());
  EXPECT_EQ(in.hostname, "mx1.example.org");
  EXPECT_EQ(in.local_domains, (std::vector<std::string>{"example.org", "example.net"}));
  EXPECT_EQ(in.rollover_margin, std::chrono::seconds(5));
  EXPECT_EQ(in.check_interval, std::chrono::seconds(1));
  EXPECT_EQ(in.remind_interval, std::chrono::seconds(3600));
  EXPECT_EQ(in.expiry_warning, std::chrono::seconds(30 * 86400));
  ASSERT_EQ(in.certificates.size(), 2u);
  EXPECT_EQ(in.certificates[1].key(), "/etc/danemta/rsa.pem");
  EXPECT_EQ(cfg->inbound_state_dir(), "/var/spool/danemta/inbound");
  EXPECT_TRUE(cfg->is_local_domain("EXAMPLE.net"));
  EXPECT_FALSE(cfg->is_local_domain("other.example"));
  // deliver_to is the [transport] route of every local domain.
  const Route* route = cfg->route_for("example.org");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->host, "mail.internal");
  EXPECT_EQ(route->port, 2525);
  EXPECT_FALSE(route->mx_lookup);
  EXPECT_EQ(cfg->policy_for(*route), TlsPolicy::encrypt);
  EXPECT_EQ(cfg->route_for("other.example"), nullptr);
  // The submission listener is as it was.
  EXPECT_EQ(cfg->relay.all_listeners().size(), 1u);
}

TEST(InboundConfig, OffWithoutListen) {
  auto cfg = parse("[inbound]\nlocal_domains = [\"example.org\"]\n");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_FALSE(cfg->inbound.enabled());
  EXPECT_TRUE(cfg->routes.empty());
}

std::string refusal(const std::string& text) {
  auto cfg = parse(text);
  return cfg ? std::string("(accepted)") : cfg.error().message;
}

TEST(InboundConfig, RefusesWhatCannotWork) {
  const std::string base = "[inbound]\nlisten = [\"127.0.0.1:25\"]\n";
  const std::string cert = "[[inbound.certificate]]\ncert_file = \"/c.pem\"\n";
  EXPECT_NE(
      refusal(base + "deliver_to = \"[m]:25\"\n" + cert).find("inbound.local_domains: needed"),
      std::string::npos);
  EXPECT_NE(refusal(base + "local_domains = [\"a.example\"]\n" + cert).find("inbound.deliver_to"),
            std::string::npos);
  EXPECT_NE(refusal(base + "local_domains = [\"a.example\"]\ndeliver_to = \"[m]:25\"\n")
                .find("inbound.certificate: needed"),
            std::string::npos);
  EXPECT_NE(refusal(base + "local_domains = [\"a.example\"]\ndeliver_to = \"direct\"\n" + cert)
                .find("loop"),
            std::string::npos);
  EXPECT_NE(refusal("[transport]\n\"a.example\" = \"[x]:25\"\n" + base +
                    "local_domains = [\"a.example\"]\ndeliver_to = \"[m]:25\"\n" + cert)
                .find("also has a [transport] entry"),
            std::string::npos);
  EXPECT_NE(refusal("[relay]\nlisten = [\"127.0.0.1:25\"]\n" + base +
                    "local_domains = [\"a.example\"]\ndeliver_to = \"[m]:25\"\n" + cert)
                .find("also a [relay] listener"),
            std::string::npos);
  EXPECT_NE(refusal(base +
                    "local_domains = [\"a.example\"]\ndeliver_to = \"[m]:25\"\n"
                    "check_interval_seconds = 0\n" +
                    cert)
                .find("inbound.check_interval_seconds"),
            std::string::npos);
  EXPECT_NE(refusal(base + "colour = \"blue\"\n").find("inbound.colour: unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace danemta::config
