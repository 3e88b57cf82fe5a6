// `danemta web`'s pure parts: input validation, the target policy, the
// rate limiter, query parsing, HTML escaping and the [web] section.
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "web/guard.hpp"
#include "web/html.hpp"

namespace {

using namespace danemta;

TEST(WebGuard, Domains) {
  EXPECT_EQ(web::validate_domain(" Example.ORG. ").value(), "example.org");
  EXPECT_EQ(web::validate_domain("xn--bcher-kva.example").value(), "xn--bcher-kva.example");
  EXPECT_EQ(web::validate_domain("a-b.c9.example").value(), "a-b.c9.example");
  for (const std::string& bad : std::vector<std::string>{
           "", "nodot", "-a.example", "a-.example", "a..example", ".example", "a_b.example",
           "a b.example", "ab--cd.example", "xn--.example", "<x>.example", "a.example/x",
           "a\xff.example", std::string(64, 'a') + ".example", std::string(250, 'a') + ".example"})
    EXPECT_FALSE(web::validate_domain(bad)) << bad;
  // Unicode input is checked and returned as IDNA A-labels.
  EXPECT_EQ(web::validate_domain(" B\xc3\x9c"
                                 "cher.Example ")
                .value(),
            "xn--bcher-kva.example");
  EXPECT_EQ(web::validate_domain("a\xff.example").error().message,
            "That is not a valid internationalized domain name: string encoding error.");
}

TEST(WebGuard, Ports) {
  const std::vector<std::uint16_t> allowed{25, 2525};
  EXPECT_EQ(web::validate_port("", allowed).value(), 25);
  EXPECT_EQ(web::validate_port("2525", allowed).value(), 2525);
  for (const char* bad : {"26", "0", "65536", "25x", "-25", " 25", "99999999999"})
    EXPECT_FALSE(web::validate_port(bad, allowed)) << bad;
  EXPECT_NE(web::validate_port("26", allowed).error().message.find("25, 2525"), std::string::npos);
}

TEST(WebGuard, PrivateTargets) {
  for (const char* a : {"127.0.0.1",   "10.1.2.3",         "172.16.0.1",      "172.31.255.255",
                        "192.168.1.1", "169.254.1.1",      "100.64.0.1",      "0.0.0.0",
                        "224.0.0.1",   "255.255.255.255",  "192.0.2.1",       "::1",
                        "::",          "fe80::1",          "fc00::1",         "fd12::1",
                        "ff02::1",     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001:db8::1",
                        "not-an-ip"})
    EXPECT_NE(web::private_target(a), "") << a;
  for (const char* a : {"8.8.8.8", "172.32.0.1", "193.0.6.139", "2a00:1450:4001::1",
                        "2001:4860::8888", "::ffff:8.8.8.8"})
    EXPECT_EQ(web::private_target(a), "") << a;
  EXPECT_EQ(web::private_target("127.0.185.10"), "a loopback address");
}

TEST(WebGuard, RateLimitPerClientAndWindow) {
  web::RateLimiter limiter(2, std::chrono::seconds(60));
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  EXPECT_TRUE(limiter.take("a", t0));
  EXPECT_FALSE(limiter.limited("a", t0));
  EXPECT_TRUE(limiter.take("a", t0 + std::chrono::seconds(10)));
  EXPECT_TRUE(limiter.limited("a", t0 + std::chrono::seconds(11)));
  EXPECT_FALSE(limiter.take("a", t0 + std::chrono::seconds(11)));
  EXPECT_EQ(limiter.retry_after("a", t0 + std::chrono::seconds(11)), 49);
  EXPECT_TRUE(limiter.take("b", t0 + std::chrono::seconds(11))) << "another client";
  EXPECT_TRUE(limiter.take("a", t0 + std::chrono::seconds(60))) << "the first one left the window";
  EXPECT_EQ(web::client_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(web::client_key("2001:db8:1:2:ff::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(web::client_key("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(web::client_key("192.0.2.7"), "192.0.2.7");
}

TEST(WebGuard, QueryAndEscaping) {
  EXPECT_EQ(web::query_value("/check?domain=a.example&port=25", "domain"), "a.example");
  EXPECT_EQ(web::query_value("/check?domain=a.example&port=25", "port"), "25");
  EXPECT_EQ(web::query_value("/check?xdomain=b&domain=c%2Ed+e", "domain"), "c.d e");
  EXPECT_EQ(web::query_value("/check?domain=%zz%4", "domain"), "%zz%4");
  EXPECT_EQ(web::query_value("/check", "domain"), "");
  EXPECT_EQ(web::escape("<a href=\"x\">'&'</a>\r"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;&#xfffd;");
  const std::string page = web::form_page("bad <input>", "\"><script>", "25");
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_NE(page.find("bad &lt;input&gt;"), std::string::npos);
}

TEST(WebGuard, ForwardedClientTrustsOnlyConfiguredProxies) {
  const std::vector<config::Network> proxies{{"127.0.0.1", 32}, {"10.0.0.0", 8}};
  // No trusted proxy configured, or a peer that is not one: the header is ignored.
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "198.51.100.7", {}), "127.0.0.1");
  EXPECT_EQ(web::forwarded_client("203.0.113.5", "198.51.100.7", proxies), "203.0.113.5");
  // One proxy: the address it saw.
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "198.51.100.7", proxies), "198.51.100.7");
  // Two proxies in a row; what the client wrote itself (on the left) is not read.
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "1.2.3.4, 198.51.100.7 , 10.1.2.3", proxies),
            "198.51.100.7");
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "2001:db8::1", proxies), "2001:db8::1");
  // Missing or malformed: the last trusted hop is the client.
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "", proxies), "127.0.0.1");
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "unknown", proxies), "127.0.0.1");
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "198.51.100.7, junk", proxies), "127.0.0.1");
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "198.51.100.7, 10.0.0.9, junk", proxies),
            "127.0.0.1");
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "junk, 10.0.0.9", proxies), "10.0.0.9");
  // A chain of only trusted proxies ends at the leftmost.
  EXPECT_EQ(web::forwarded_client("127.0.0.1", "10.0.0.1,10.0.0.2", proxies), "10.0.0.1");
}

TEST(WebGuard, ConfigSection) {
  auto cfg = config::parse(R"(
[web]
listen = "[::1]:8443"
allowed_ports = [25, 2525]
allow_private_targets = true
max_concurrent = 2
client_checks = 3
client_window_seconds = 600
check_timeout_seconds = 90
probe_timeout_seconds = 5
trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->web.listen, "[::1]:8443");
  EXPECT_EQ(cfg->web.allowed_ports, (std::vector<std::uint16_t>{25, 2525}));
  EXPECT_TRUE(cfg->web.allow_private_targets);
  EXPECT_EQ(cfg->web.max_concurrent, 2u);
  EXPECT_EQ(cfg->web.client_checks, 3u);
  EXPECT_EQ(cfg->web.client_window, std::chrono::seconds(600));
  EXPECT_EQ(cfg->web.check_timeout, std::chrono::seconds(90));
  EXPECT_EQ(cfg->web.probe_timeout, std::chrono::seconds(5));
  EXPECT_EQ(cfg->web.trusted_proxies,
            (std::vector<config::Network>{{"127.0.0.1", 32}, {"10.0.0.0", 8}}));
  config::Config defaults;
  EXPECT_TRUE(defaults.web.trusted_proxies.empty());
  EXPECT_EQ(defaults.web.allowed_ports, (std::vector<std::uint16_t>{25}));
  EXPECT_FALSE(defaults.web.allow_private_targets);
  for (const char* bad :
       {"[web]\nallowed_ports = []", "[web]\nallowed_ports = [0]", "[web]\nlisten = \"x\"",
        "[web]\nmax_concurrent = 0", "[web]\ntls_cert_file = \"/a.pem\"", "[web]\nnope = 1",
        "[web]\nallow_private_targets = \"yes\"", "web = 1",
        "[web]\ntrusted_proxies = \"127.0.0.1\"", "[web]\ntrusted_proxies = [\"proxy\"]",
        "[web]\ntrusted_proxies = [\"10.0.0.0/33\"]"}) {
    auto r = config::parse(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find("web"), std::string::npos) << r.error().message;
    }
  }
}

}  // namespace
