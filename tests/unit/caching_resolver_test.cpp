#include "dns/caching_resolver.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace danemta::dns {
namespace {

using namespace std::chrono_literals;

// Answers from a table (indeterminate for anything not in it), on the loop
// as the Resolver contract says, and remembers every batch it was asked.
class FakeResolver final : public Resolver {
 public:
  explicit FakeResolver(boost::asio::io_context& io) : io_(io) {}
  void resolve(std::vector<Query> queries, std::function<void(std::vector<Answer>)> done) override {
    asked.push_back(queries);
    std::vector<Answer> answers;
    for (const Query& q : queries) {
      auto it = table.find(q);
      if (it != table.end()) {
        answers.push_back(it->second);
      } else {
        Answer a;
        a.qname = q.name;
        a.qtype = q.type;
        a.security = Security::indeterminate;
        a.why = "not in the table";
        answers.push_back(a);
      }
    }
    boost::asio::post(io_, [done = std::move(done), answers = std::move(answers)]() mutable {
      done(std::move(answers));
    });
  }

  std::map<Query, Answer> table;
  std::vector<std::vector<Query>> asked;

 private:
  boost::asio::io_context& io_;
};

Answer answer(const std::string& name, RrType type, Security security, std::uint32_t ttl) {
  Answer a;
  a.qname = name;
  a.qtype = type;
  a.canonical_name = name;
  a.security = security;
  a.ttl = ttl;
  if (security == Security::secure || security == Security::insecure) {
    a.havedata = true;
    if (type == RrType::TLSA) a.tlsa.push_back(TlsaRecord{3, 1, 1, {0xab, 0xcd}});
    if (type == RrType::A) a.addresses.push_back("192.0.2.25");
    if (type == RrType::MX) a.mx.push_back(MxRecord{10, "mx." + name});
  }
  return a;
}

class CachingResolverTest : public ::testing::Test {
 protected:
  void SetUp() override { make({}); }

  void make(CacheOptions options) {
    cache_.reset();
    cache_ = std::make_unique<CachingResolver>(io_, inner_, options, [this] { return now_; });
  }

  void add(const Answer& a) { inner_.table[Query{a.qname, a.qtype}] = a; }

  std::vector<Answer> ask(std::vector<Query> queries) {
    std::optional<std::vector<Answer>> got;
    cache_->resolve(std::move(queries), [&got](std::vector<Answer> a) { got = std::move(a); });
    // `done` runs on the loop, never inside resolve().
    EXPECT_FALSE(got.has_value());
    io_.restart();
    io_.run();
    EXPECT_TRUE(got.has_value());
    return got.value_or(std::vector<Answer>{});
  }

  Answer ask_one(const std::string& name, RrType type) {
    std::vector<Answer> a = ask({Query{name, type}});
    return a.empty() ? Answer{} : a.front();
  }

  std::size_t inner_queries() const {
    std::size_t n = 0;
    for (const auto& batch : inner_.asked) n += batch.size();
    return n;
  }

  boost::asio::io_context io_;
  FakeResolver inner_{io_};
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1000)};
  std::unique_ptr<CachingResolver> cache_;
};

const std::string kTlsaOwner = "_25._tcp.mx.example.org";

TEST_F(CachingResolverTest, HitWithinTheTtlWithTheRemainingTtl) {
  add(answer(kTlsaOwner, RrType::TLSA, Security::secure, 300));
  Answer first = ask_one(kTlsaOwner, RrType::TLSA);
  EXPECT_EQ(first.security, Security::secure);
  EXPECT_EQ(first.ttl, 300u);
  EXPECT_EQ(inner_queries(), 1u);

  now_ += 100s;
  Answer second = ask_one(kTlsaOwner, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 1u);  // from the cache
  EXPECT_EQ(second.security, Security::secure);
  EXPECT_EQ(second.tlsa, first.tlsa);
  EXPECT_EQ(second.qname, kTlsaOwner);
  EXPECT_EQ(second.ttl, 200u);

  now_ += 150s + 500ms;
  Answer third = ask_one(kTlsaOwner, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 1u);
  EXPECT_EQ(third.ttl, 49u);  // whole seconds, rounded down

  const CacheStats s = cache_->stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.evictions, 0u);
}

TEST_F(CachingResolverTest, MissAfterTheTtl) {
  add(answer(kTlsaOwner, RrType::TLSA, Security::secure, 2));
  ask_one(kTlsaOwner, RrType::TLSA);
  now_ += 1s;
  EXPECT_EQ(ask_one(kTlsaOwner, RrType::TLSA).ttl, 1u);
  EXPECT_EQ(inner_queries(), 1u);

  // The RRset changed upstream; the old one has run out.
  Answer changed = answer(kTlsaOwner, RrType::TLSA, Security::secure, 2);
  changed.tlsa = {TlsaRecord{3, 1, 1, {0x01, 0x02}}};
  add(changed);
  now_ += 1s;
  Answer after = ask_one(kTlsaOwner, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 2u);
  EXPECT_EQ(after.tlsa, changed.tlsa);
  EXPECT_EQ(cache_->stats().misses, 2u);
  EXPECT_EQ(cache_->stats().hits, 1u);
}

TEST_F(CachingResolverTest, NotUsedInItsLastSecond) {
  add(answer(kTlsaOwner, RrType::TLSA, Security::secure, 10));
  ask_one(kTlsaOwner, RrType::TLSA);
  now_ += 9s + 1ms;
  ask_one(kTlsaOwner, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 2u);
}

TEST_F(CachingResolverTest, TtlZeroIsNotKept) {
  add(answer(kTlsaOwner, RrType::TLSA, Security::secure, 0));
  ask_one(kTlsaOwner, RrType::TLSA);
  ask_one(kTlsaOwner, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 2u);
  EXPECT_EQ(cache_->stats().entries, 0u);
}

TEST_F(CachingResolverTest, FailuresAreNeverKept) {
  Answer bogus = answer("bogus.example", RrType::MX, Security::bogus, 300);
  bogus.why = "signature expired";
  add(bogus);
  add(answer("broken.example", RrType::MX, Security::indeterminate, 300));
  Answer local = answer("local.example", RrType::MX, Security::indeterminate, 300);
  local.local_failure = true;
  add(local);
  Answer malformed = answer("malformed.example", RrType::MX, Security::indeterminate, 300);
  malformed.malformed = "MX record at malformed.example: exchange: truncated";
  add(malformed);
  const std::vector<Query> queries = {{"bogus.example", RrType::MX},
                                      {"broken.example", RrType::MX},
                                      {"local.example", RrType::MX},
                                      {"malformed.example", RrType::MX},
                                      {"absent.example", RrType::MX}};
  for (int round = 0; round < 2; ++round) {
    std::vector<Answer> got = ask(queries);
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0].security, Security::bogus);
    EXPECT_EQ(got[0].why, "signature expired");
    EXPECT_EQ(got[1].security, Security::indeterminate);
    EXPECT_TRUE(got[2].local_failure);
    EXPECT_EQ(got[4].why, "not in the table");
  }
  EXPECT_EQ(inner_queries(), 10u);
  EXPECT_EQ(cache_->stats().entries, 0u);
  EXPECT_EQ(cache_->stats().hits, 0u);
  EXPECT_EQ(cache_->stats().misses, 10u);

  // A failure does not push out what is kept either: the verdict stays
  // until its TTL, and a failure later is asked again each time.
  add(answer("good.example", RrType::MX, Security::secure, 300));
  ask_one("good.example", RrType::MX);
  add(bogus);
  Answer later_bogus = bogus;
  later_bogus.qname = "good.example";
  add(later_bogus);
  EXPECT_EQ(ask_one("good.example", RrType::MX).security, Security::secure);  // cached
  now_ += 300s;
  EXPECT_EQ(ask_one("good.example", RrType::MX).security, Security::bogus);
  EXPECT_EQ(ask_one("good.example", RrType::MX).security, Security::bogus);
  EXPECT_EQ(cache_->stats().entries, 0u);
}

TEST_F(CachingResolverTest, InsecureAnswersAreKept) {
  add(answer("plain.example", RrType::MX, Security::insecure, 60));
  ask_one("plain.example", RrType::MX);
  EXPECT_EQ(ask_one("plain.example", RrType::MX).security, Security::insecure);
  EXPECT_EQ(inner_queries(), 1u);
}

TEST_F(CachingResolverTest, NegativeAnswerKeptForItsSoaTtl) {
  Answer nx = answer("_25._tcp.mx2.example.org", RrType::TLSA, Security::secure, 0);
  nx.havedata = false;
  nx.tlsa.clear();
  nx.nxdomain = true;
  nx.rcode = 3;
  nx.ttl = 30;  // wire.cpp: min(SOA TTL, SOA MINIMUM)
  add(nx);
  ask_one(nx.qname, RrType::TLSA);
  now_ += 29s;
  Answer cached = ask_one(nx.qname, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 1u);
  EXPECT_TRUE(cached.nxdomain);
  EXPECT_EQ(cached.rcode, 3);
  EXPECT_EQ(cached.security, Security::secure);
  EXPECT_TRUE(cached.tlsa.empty());
  EXPECT_EQ(cached.ttl, 1u);
  now_ += 1s;
  ask_one(nx.qname, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 2u);

  // A negative answer without an SOA has TTL 0 (wire.cpp): not kept.
  Answer bare = nx;
  bare.qname = "_25._tcp.mx3.example.org";
  bare.ttl = 0;
  add(bare);
  ask_one(bare.qname, RrType::TLSA);
  ask_one(bare.qname, RrType::TLSA);
  EXPECT_EQ(inner_queries(), 4u);
}

TEST_F(CachingResolverTest, AliasTtlBoundsTheKeepingTime) {
  Answer a = answer("mx.example.org", RrType::A, Security::secure, 3000);
  a.cname_chain.push_back(CnameLink{"mx.example.org", "host.example.net", 60});
  a.canonical_name = "host.example.net";
  add(a);
  ask_one("mx.example.org", RrType::A);
  now_ += 20s;
  Answer cached = ask_one("mx.example.org", RrType::A);
  EXPECT_EQ(inner_queries(), 1u);
  EXPECT_EQ(cached.ttl, 2980u);
  ASSERT_EQ(cached.cname_chain.size(), 1u);
  EXPECT_EQ(cached.cname_chain[0].ttl, 40u);
  now_ += 40s;
  ask_one("mx.example.org", RrType::A);
  EXPECT_EQ(inner_queries(), 2u);
}

TEST_F(CachingResolverTest, MaxTtlCapsTheKeepingTime) {
  make({.max_entries = 10, .max_ttl = 60s});
  add(answer("long.example", RrType::MX, Security::secure, 86400));
  ask_one("long.example", RrType::MX);
  now_ += 59s;
  EXPECT_EQ(ask_one("long.example", RrType::MX).ttl, 86341u);  // the record's own, run down
  EXPECT_EQ(inner_queries(), 1u);
  now_ += 1s;
  ask_one("long.example", RrType::MX);
  EXPECT_EQ(inner_queries(), 2u);
}

TEST_F(CachingResolverTest, CapacityEvictsExpiredFirstThenLeastRecentlyUsed) {
  make({.max_entries = 3, .max_ttl = 3600s});
  add(answer("a.example", RrType::MX, Security::secure, 600));
  add(answer("b.example", RrType::MX, Security::secure, 10));
  add(answer("c.example", RrType::MX, Security::secure, 600));
  add(answer("d.example", RrType::MX, Security::secure, 600));
  add(answer("e.example", RrType::MX, Security::secure, 600));
  ask({{"a.example", RrType::MX}, {"b.example", RrType::MX}, {"c.example", RrType::MX}});
  EXPECT_EQ(cache_->stats().entries, 3u);

  // b has run out: it makes room for d, nothing unexpired is evicted.
  now_ += 20s;
  ask_one("a.example", RrType::MX);  // hit: a is now the most recently used
  ask_one("d.example", RrType::MX);
  EXPECT_EQ(cache_->stats().entries, 3u);
  EXPECT_EQ(cache_->stats().evictions, 0u);

  // Full of unexpired answers: c, the least recently used, goes.
  ask_one("e.example", RrType::MX);
  EXPECT_EQ(cache_->stats().entries, 3u);
  EXPECT_EQ(cache_->stats().evictions, 1u);
  const std::size_t before = inner_queries();
  ask({{"a.example", RrType::MX}, {"d.example", RrType::MX}, {"e.example", RrType::MX}});
  EXPECT_EQ(inner_queries(), before);
  ask_one("c.example", RrType::MX);
  EXPECT_EQ(inner_queries(), before + 1);
}

TEST_F(CachingResolverTest, BatchMixingHitsAndMissesKeepsTheOrder) {
  add(answer("a.example", RrType::MX, Security::secure, 600));
  add(answer("b.example", RrType::MX, Security::secure, 600));
  add(answer("mx.b.example", RrType::A, Security::secure, 600));
  add(answer("_25._tcp.mx.b.example", RrType::TLSA, Security::secure, 600));
  ask({{"b.example", RrType::MX}, {"_25._tcp.mx.b.example", RrType::TLSA}});
  inner_.asked.clear();

  std::vector<Answer> got = ask({{"a.example", RrType::MX},
                                 {"b.example", RrType::MX},
                                 {"mx.b.example", RrType::A},
                                 {"_25._tcp.mx.b.example", RrType::TLSA},
                                 {"nope.example", RrType::MX}});
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].qname, "a.example");
  EXPECT_EQ(got[1].qname, "b.example");
  EXPECT_EQ(got[2].qname, "mx.b.example");
  EXPECT_EQ(got[2].addresses, std::vector<std::string>{"192.0.2.25"});
  EXPECT_EQ(got[3].qname, "_25._tcp.mx.b.example");
  EXPECT_EQ(got[3].qtype, RrType::TLSA);
  EXPECT_EQ(got[4].qname, "nope.example");
  EXPECT_EQ(got[4].security, Security::indeterminate);
  // Only the misses went to the inner resolver, in one batch, in order.
  ASSERT_EQ(inner_.asked.size(), 1u);
  EXPECT_EQ(inner_.asked[0], (std::vector<Query>{{"a.example", RrType::MX},
                                                 {"mx.b.example", RrType::A},
                                                 {"nope.example", RrType::MX}}));
  EXPECT_EQ(cache_->stats().hits, 2u);
  EXPECT_EQ(cache_->stats().misses, 5u);
}

TEST_F(CachingResolverTest, AllHitsAndEmptyBatchesAnswerOnTheLoop) {
  add(answer("a.example", RrType::MX, Security::secure, 600));
  ask_one("a.example", RrType::MX);
  EXPECT_EQ(ask({{"a.example", RrType::MX}, {"a.example", RrType::MX}}).size(), 2u);
  EXPECT_EQ(ask({}).size(), 0u);  // ask() checks `done` did not run inside resolve()
  EXPECT_EQ(inner_queries(), 1u);
}

TEST_F(CachingResolverTest, DisabledCachePassesEverythingThrough) {
  make({.max_entries = 0, .max_ttl = 3600s});
  EXPECT_FALSE(cache_->enabled());
  add(answer("a.example", RrType::MX, Security::secure, 600));
  ask_one("a.example", RrType::MX);
  ask_one("a.example", RrType::MX);
  EXPECT_EQ(inner_queries(), 2u);
  const CacheStats s = cache_->stats();
  EXPECT_EQ(s.hits + s.misses + s.entries + s.evictions, 0u);
}

TEST_F(CachingResolverTest, DestroyedWhileWaitingNeverCallsDone) {
  add(answer("a.example", RrType::MX, Security::secure, 600));
  bool called = false;
  cache_->resolve({{"a.example", RrType::MX}}, [&called](std::vector<Answer>) { called = true; });
  cache_.reset();
  io_.restart();
  io_.run();
  EXPECT_FALSE(called);
}

TEST(KeepSeconds, VerdictsOnly) {
  EXPECT_EQ(keep_seconds(answer("a.example", RrType::MX, Security::secure, 60)), 60u);
  EXPECT_EQ(keep_seconds(answer("a.example", RrType::MX, Security::insecure, 60)), 60u);
  EXPECT_EQ(keep_seconds(answer("a.example", RrType::MX, Security::bogus, 60)), 0u);
  EXPECT_EQ(keep_seconds(answer("a.example", RrType::MX, Security::indeterminate, 60)), 0u);
}

}  // namespace
}  // namespace danemta::dns
