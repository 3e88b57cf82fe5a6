// A cache of validated answers in front of any dns::Resolver: the relay asks
// the same MX, address and TLSA questions for every message to a destination,
// and libunbound keeps no figures of its own cache. This one counts its hits
// and misses, which the relay reports (docs/metrics.md, docs/logs.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "dns/resolver.hpp"

namespace boost::asio {
class io_context;
}

namespace danemta::dns {

struct CacheOptions {
  // At most this many answers are kept; 0 turns the cache off (every query
  // goes to the inner resolver and nothing is counted).
  std::size_t max_entries = 100000;
  // An answer is kept for its TTL, at most this long.
  std::chrono::seconds max_ttl{3600};
};

// Counted since the cache was made. A lookup is one query of a batch.
struct CacheStats {
  std::uint64_t hits = 0;       // answered from the cache
  std::uint64_t misses = 0;     // sent to the inner resolver
  std::uint64_t evictions = 0;  // unexpired answers dropped to make room
  std::size_t entries = 0;      // answers held now (expired ones are dropped at each lookup)
};

// How long an answer may be kept, in seconds: its TTL and no more than any
// alias on the way (CNAME records' TTLs), for a verdict only (secure or
// insecure; records or a proven absence, RFC 2308). 0, never kept, for bogus
// and indeterminate answers (local failures and malformed records
// included): a failure is always asked again and never turns into a stale
// "verified".
std::uint32_t keep_seconds(const Answer& a);

// A Resolver that answers from its cache what it can and sends the rest of a
// batch to `inner`, then hands the answers back in the order asked. An
// answer is kept for keep_seconds(), at most options.max_ttl; one from the
// cache carries the TTLs it has left (whole seconds; its CNAME links' too),
// and is not used in its last second. `done` always runs on `io`, never inside
// resolve(). Single-threaded like UnboundResolver: create, resolve and
// destroy on the thread running `io`; `inner` and `io` must outlive it.
// Destroying it drops the batches still waiting for `inner`: their `done`
// is never called.
class CachingResolver final : public Resolver {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  CachingResolver(boost::asio::io_context& io, Resolver& inner, CacheOptions options,
                  Clock clock = std::chrono::steady_clock::now);
  ~CachingResolver() override;
  CachingResolver(const CachingResolver&) = delete;
  CachingResolver& operator=(const CachingResolver&) = delete;

  void resolve(std::vector<Query> queries, std::function<void(std::vector<Answer>)> done) override;

  CacheStats stats() const;
  bool enabled() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // callbacks hold weak_ptrs
};

}  // namespace danemta::dns
