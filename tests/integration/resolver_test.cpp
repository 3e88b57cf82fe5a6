// UnboundResolver against a real signed DNS world (tests/lab): NSD on a
// loopback port as the forwarder, the lab root's KSK as the trust anchor.
#include "dns/unbound_resolver.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lab/lab.hpp"

namespace danemta::dns {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string spec() {
  return R"({"zones":[
    {"name":"good.example","records":[
      "@ MX 10 mx1",
      "mx1 A 127.0.0.10",
      "_25._tcp.mx1 TLSA 3 1 1 )" +
         std::string(kDigest) + R"(",
      "mx2 A 127.0.0.11",
      "www CNAME alias",
      "alias CNAME mx1",
      "mx A 127.0.0.12",
      "_25._tcp.mx TYPE52 \\# 3 030101"]},
    {"name":"insecure.example","ds":false,"records":["@ MX 10 mx","mx A 127.0.0.13"]},
    {"name":"lame.example","served":false},
    {"name":"tampered.example","records":["@ MX 10 mx","mx A 127.0.0.14"],"tamper":["mx A"]}
  ]})";
}

// A UDP socket on loopback that never answers: queries sent to it time out.
class BlackHole {
 public:
  BlackHole() : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("black hole: cannot bind");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~BlackHole() { ::close(fd_); }
  BlackHole(const BlackHole&) = delete;
  BlackHole& operator=(const BlackHole&) = delete;
  std::string forwarder() const { return "127.0.0.1@" + std::to_string(port_); }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

class ResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { world_ = new lab::World(spec()); }
  static void TearDownTestSuite() {
    delete world_;
    world_ = nullptr;
  }

  void SetUp() override {
    config::DnsConfig cfg;
    cfg.forwarders = {world_->resolver()};
    cfg.trust_anchor_file = world_->trust_anchor_file();
    cfg.timeout = 20s;
    auto r = UnboundResolver::create(io_, cfg);
    ASSERT_TRUE(r) << r.error().message;
    resolver_ = std::move(*r);
  }

  std::vector<Answer> resolve(std::vector<Query> queries) {
    std::optional<std::vector<Answer>> out;
    resolver_->resolve(std::move(queries), [&](std::vector<Answer> a) { out = std::move(a); });
    io_.restart();
    io_.run_for(60s);
    EXPECT_TRUE(out) << "resolve() did not complete";
    return out.value_or(std::vector<Answer>{});
  }

  Answer resolve_one(std::string name, RrType type) {
    auto answers = resolve({Query{std::move(name), type}});
    return answers.empty() ? Answer{} : answers[0];
  }

  static lab::World* world_;
  boost::asio::io_context io_;
  std::unique_ptr<UnboundResolver> resolver_;
};

lab::World* ResolverTest::world_ = nullptr;

TEST_F(ResolverTest, SecureMx) {
  Answer a = resolve_one("good.example", RrType::MX);
  EXPECT_EQ(a.security, Security::secure) << a.why;
  EXPECT_TRUE(a.havedata);
  ASSERT_EQ(a.mx.size(), 1u);
  EXPECT_EQ(a.mx[0].preference, 10);
  EXPECT_EQ(a.mx[0].exchange, "mx1.good.example");
  EXPECT_EQ(a.qname, "good.example");
  EXPECT_EQ(a.canonical_name, "good.example");
  EXPECT_GT(a.ttl, 0u);
}

TEST_F(ResolverTest, SecureTlsa) {
  Answer a = resolve_one("_25._tcp.mx1.good.example", RrType::TLSA);
  EXPECT_EQ(a.security, Security::secure) << a.why;
  ASSERT_EQ(a.tlsa.size(), 1u);
  EXPECT_EQ(to_string(a.tlsa[0]), std::string("3 1 1 ") + kDigest);
}

TEST_F(ResolverTest, SecureNxdomain) {
  Answer a = resolve_one("_25._tcp.mx2.good.example", RrType::TLSA);
  EXPECT_EQ(a.security, Security::secure) << a.why;
  EXPECT_TRUE(a.answered());
  EXPECT_TRUE(a.nxdomain);
  EXPECT_FALSE(a.havedata);
  EXPECT_EQ(a.rcode, 3);
  EXPECT_TRUE(a.tlsa.empty());
  // The negative TTL (RFC 2308) from the SOA libunbound returns with the
  // denial: the lab's SOA TTL and MINIMUM are both 300.
  EXPECT_GT(a.ttl, 0u);
  EXPECT_LE(a.ttl, 300u);
}

TEST_F(ResolverTest, SecureNodata) {
  Answer a = resolve_one("mx1.good.example", RrType::TLSA);
  EXPECT_EQ(a.security, Security::secure) << a.why;
  EXPECT_FALSE(a.nxdomain);
  EXPECT_FALSE(a.havedata);
  EXPECT_EQ(a.rcode, 0);
  EXPECT_GT(a.ttl, 0u);
  EXPECT_LE(a.ttl, 300u);
}

TEST_F(ResolverTest, InsecureZone) {
  Answer a = resolve_one("insecure.example", RrType::MX);
  EXPECT_EQ(a.security, Security::insecure) << a.why;
  ASSERT_EQ(a.mx.size(), 1u);
  EXPECT_EQ(a.mx[0].exchange, "mx.insecure.example");
}

TEST_F(ResolverTest, TamperedRecordIsBogus) {
  Answer a = resolve_one("mx.tampered.example", RrType::A);
  EXPECT_EQ(a.security, Security::bogus);
  EXPECT_NE(a.why.find("validation failure <mx.tampered.example. A IN>"), std::string::npos)
      << a.why;
  EXPECT_FALSE(a.answered());
  // The untampered MX of the same zone still validates.
  EXPECT_EQ(resolve_one("tampered.example", RrType::MX).security, Security::secure);
}

TEST_F(ResolverTest, NotServedZoneIsIndeterminate) {
  Answer a = resolve_one("lame.example", RrType::MX);
  EXPECT_FALSE(a.answered());
  EXPECT_EQ(a.security, Security::indeterminate) << a.why;
  EXPECT_EQ(a.why, "SERVFAIL from upstream");
  EXPECT_FALSE(a.havedata);
  EXPECT_FALSE(a.local_failure) << "the root DNSKEY probe is secure: the destination failed";
}

TEST_F(ResolverTest, CnameChain) {
  Answer a = resolve_one("www.good.example", RrType::A);
  EXPECT_EQ(a.security, Security::secure) << a.why;
  ASSERT_EQ(a.cname_chain.size(), 2u);
  EXPECT_EQ(a.cname_chain[0].owner, "www.good.example");
  EXPECT_EQ(a.cname_chain[0].target, "alias.good.example");
  EXPECT_EQ(a.cname_chain[1].owner, "alias.good.example");
  EXPECT_EQ(a.cname_chain[1].target, "mx1.good.example");
  EXPECT_EQ(a.canonical_name, "mx1.good.example");
  EXPECT_EQ(a.addresses, (std::vector<std::string>{"127.0.0.10"}));
}

// RFC 6698 section 2.1: 3 octets of RDATA is a TLSA record with empty
// association data (NSD refuses anything shorter), not a malformed one.
TEST_F(ResolverTest, ThreeOctetTlsaHasEmptyData) {
  Answer a = resolve_one("_25._tcp.mx.good.example", RrType::TLSA);
  EXPECT_EQ(a.security, Security::secure) << a.why;
  EXPECT_TRUE(a.malformed.empty()) << a.malformed;
  ASSERT_EQ(a.tlsa.size(), 1u);
  EXPECT_TRUE(a.tlsa[0].data.empty());
}

TEST_F(ResolverTest, ManyQueriesInOneCall) {
  std::vector<Query> queries;
  for (int i = 0; i < 10; ++i) {
    queries.push_back({"good.example", RrType::MX});
    queries.push_back({"mx1.good.example", RrType::A});
    queries.push_back({"_25._tcp.mx1.good.example", RrType::TLSA});
    queries.push_back({"insecure.example", RrType::MX});
    queries.push_back({"n" + std::to_string(i) + ".good.example", RrType::A});
  }
  auto answers = resolve(queries);
  ASSERT_EQ(answers.size(), queries.size());
  for (std::size_t i = 0; i < answers.size(); ++i) {
    SCOPED_TRACE(queries[i].name);
    EXPECT_EQ(answers[i].qname, queries[i].name);
    EXPECT_EQ(answers[i].qtype, queries[i].type);
    switch (i % 5) {
      case 0:
        EXPECT_EQ(answers[i].security, Security::secure) << answers[i].why;
        EXPECT_EQ(answers[i].mx.size(), 1u);
        break;
      case 1:
        EXPECT_EQ(answers[i].addresses, (std::vector<std::string>{"127.0.0.10"}));
        break;
      case 2:
        EXPECT_EQ(answers[i].tlsa.size(), 1u);
        break;
      case 3:
        EXPECT_EQ(answers[i].security, Security::insecure) << answers[i].why;
        break;
      case 4:
        EXPECT_EQ(answers[i].security, Security::secure) << answers[i].why;
        EXPECT_TRUE(answers[i].nxdomain);
        break;
    }
  }
}

TEST_F(ResolverTest, EmptyCallCompletes) {
  EXPECT_TRUE(resolve({}).empty());
}

TEST_F(ResolverTest, ResolveFromDoneCallback) {
  std::optional<Answer> second;
  resolver_->resolve({{"good.example", RrType::MX}}, [&](std::vector<Answer>) {
    resolver_->resolve({{"insecure.example", RrType::MX}},
                       [&](std::vector<Answer> a) { second = a.at(0); });
  });
  io_.restart();
  io_.run_for(60s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->security, Security::insecure);
}

// --- without the lab ---------------------------------------------------------------

TEST(UnboundResolverTimeout, QueriesToASilentForwarderTimeOut) {
  BlackHole hole;
  boost::asio::io_context io;
  config::DnsConfig cfg;
  cfg.forwarders = {hole.forwarder()};
  cfg.timeout = 1500ms;
  auto r = UnboundResolver::create(io, cfg);  // built-in root trust anchors
  ASSERT_TRUE(r) << r.error().message;
  std::optional<std::vector<Answer>> out;
  (*r)->resolve({{"example.org", RrType::MX}, {"_25._tcp.mx.example.org", RrType::TLSA}},
                [&](std::vector<Answer> a) { out = std::move(a); });
  const auto start = std::chrono::steady_clock::now();
  io.run_for(30s);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(out);
  ASSERT_EQ(out->size(), 2u);
  // The root DNSKEY probe times out too: the resolver itself is down
  // (DESIGN.md section 8), one more timeout later.
  for (const Answer& a : *out) {
    EXPECT_EQ(a.security, Security::indeterminate);
    EXPECT_TRUE(a.local_failure);
    EXPECT_EQ(a.why,
              "local DNS resolver not answering: the root DNSKEY query is indeterminate "
              "(timeout after 1500 ms); timeout after 1500 ms");
  }
  EXPECT_LT(elapsed, 10s);
}

TEST(UnboundResolverTimeout, DestructionWithQueriesOutstanding) {
  BlackHole hole;
  boost::asio::io_context io;
  config::DnsConfig cfg;
  cfg.forwarders = {hole.forwarder()};
  cfg.timeout = 20s;
  auto r = UnboundResolver::create(io, cfg);
  ASSERT_TRUE(r) << r.error().message;
  bool called = false;
  (*r)->resolve({{"example.org", RrType::MX}}, [&](std::vector<Answer>) { called = true; });
  io.run_for(200ms);
  r->reset();
  const auto start = std::chrono::steady_clock::now();
  io.restart();
  io.run_for(30s);  // returns at once: nothing is left to wait for
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_FALSE(called);
}

TEST(UnboundResolverCreate, BadForwarderIsPermanent) {
  boost::asio::io_context io;
  config::DnsConfig cfg;
  cfg.forwarders = {"not-an-address"};
  auto r = UnboundResolver::create(io, cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().severity, Severity::permanent);
  EXPECT_NE(r.error().message.find("bad forwarder"), std::string::npos) << r.error().message;
}

TEST(UnboundResolverCreate, MissingTrustAnchorFileIsPermanent) {
  boost::asio::io_context io;
  config::DnsConfig cfg;
  cfg.trust_anchor_file = "/nonexistent/root.key";
  auto r = UnboundResolver::create(io, cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().severity, Severity::permanent);
  EXPECT_EQ(r.error().message,
            "cannot read trust anchor file /nonexistent/root.key: No such file or directory");
}

// A malformed record is a start-up error, not a deferral of every message.
TEST(UnboundResolverCreate, MalformedTrustAnchorFileIsPermanent) {
  const std::string path = ::testing::TempDir() + "danemta_bad_root.key";
  std::ofstream(path) << "; a broken anchor\n. IN DS 20326 8 2 garbage\n";
  boost::asio::io_context io;
  config::DnsConfig cfg;
  cfg.trust_anchor_file = path;
  auto r = UnboundResolver::create(io, cfg);
  std::remove(path.c_str());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().severity, Severity::permanent);
  EXPECT_EQ(r.error().message,
            "trust anchor file " + path + " line 2: DS digest is not hex: garbage");
}

}  // namespace
}  // namespace danemta::dns
