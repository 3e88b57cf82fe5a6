#include "dns/caching_resolver.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <iterator>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "dns/wire.hpp"

namespace danemta::dns {

namespace asio = boost::asio;

namespace {

using TimePoint = std::chrono::steady_clock::time_point;

struct QueryHash {
  std::size_t operator()(const Query& q) const {
    return std::hash<std::string>{}(q.name) * 31u + static_cast<std::size_t>(q.type);
  }
};

// Whole seconds left before `expires`.
std::int64_t seconds_left(TimePoint now, TimePoint expires) {
  if (expires <= now) return 0;
  return std::chrono::duration_cast<std::chrono::seconds>(expires - now).count();
}

}  // namespace

std::uint32_t keep_seconds(const Answer& a) {
  if (!a.answered() || a.local_failure || !a.malformed.empty()) return 0;
  std::uint32_t ttl = a.ttl;
  for (const CnameLink& link : a.cname_chain) ttl = std::min(ttl, link.ttl);
  return ttl;
}

struct CachingResolver::Impl : std::enable_shared_from_this<CachingResolver::Impl> {
  struct Entry;
  using Lru = std::list<Entry>;                            // most recently used first
  using Expiry = std::multimap<TimePoint, Lru::iterator>;  // soonest first
  struct Entry {
    Query key;
    Answer answer;
    TimePoint expires;
    std::int64_t kept = 0;  // seconds from storing to `expires`
    Expiry::iterator by_expiry;
  };

  Impl(asio::io_context& context, Resolver& in, CacheOptions o, Clock c)
      : io(context), inner(in), options(o), clock(std::move(c)) {}

  void erase(Lru::iterator it) {
    expiry.erase(it->by_expiry);
    index.erase(it->key);
    lru.erase(it);
  }

  void drop_expired(TimePoint now) {
    // An entry with less than a second left is as good as gone (seconds_left).
    while (!expiry.empty() && seconds_left(now, expiry.begin()->first) < 1)
      erase(expiry.begin()->second);
  }

  // The cached answer with its remaining TTL, or nothing.
  bool find(const Query& q, TimePoint now, Answer& out) {
    auto found = index.find(q);
    if (found == index.end()) return false;
    const Lru::iterator it = found->second;
    const std::int64_t left = seconds_left(now, it->expires);
    if (left < 1) {
      erase(it);
      return false;
    }
    lru.splice(lru.begin(), lru, it);
    // The time that has passed comes off every TTL the answer carries.
    const std::int64_t passed = it->kept - left;
    auto less = [passed](std::uint32_t ttl) {
      return static_cast<std::uint32_t>(std::max<std::int64_t>(0, ttl - passed));
    };
    out = it->answer;
    out.ttl = less(out.ttl);
    for (CnameLink& link : out.cname_chain) link.ttl = less(link.ttl);
    return true;
  }

  void store(const Query& q, const Answer& a, TimePoint now) {
    const auto ttl =
        std::min<std::int64_t>(static_cast<std::int64_t>(keep_seconds(a)), options.max_ttl.count());
    if (ttl < 1) return;
    if (auto found = index.find(q); found != index.end()) erase(found->second);
    drop_expired(now);
    while (!lru.empty() && lru.size() >= options.max_entries) {
      erase(std::prev(lru.end()));
      ++counts.evictions;
    }
    Entry e;
    e.key = q;
    e.answer = a;
    e.kept = ttl;
    e.expires = now + std::chrono::seconds(ttl);
    lru.push_front(std::move(e));
    const Lru::iterator it = lru.begin();
    it->by_expiry = expiry.emplace(it->expires, it);
    index.emplace(q, it);
  }

  void resolve(std::vector<Query> queries, std::function<void(std::vector<Answer>)> done) {
    if (options.max_entries == 0) {
      inner.resolve(std::move(queries), std::move(done));
      return;
    }
    const TimePoint now = clock();
    drop_expired(now);
    std::vector<Answer> answers(queries.size());
    std::vector<std::size_t> missing;  // positions in `queries` sent to `inner`
    std::vector<Query> asked;
    for (std::size_t i = 0; i < queries.size(); ++i) {
      if (find(queries[i], now, answers[i])) {
        ++counts.hits;
        continue;
      }
      ++counts.misses;
      missing.push_back(i);
      asked.push_back(queries[i]);
    }
    if (missing.empty()) {
      asio::post(io, [done = std::move(done), answers = std::move(answers)]() mutable {
        done(std::move(answers));
      });
      return;
    }
    // `inner` runs `done` on the loop, never inside resolve(): so does this.
    inner.resolve(std::move(asked), [weak = weak_from_this(), missing = std::move(missing),
                                     answers = std::move(answers), queries = std::move(queries),
                                     done = std::move(done)](std::vector<Answer> got) mutable {
      auto self = weak.lock();
      if (!self) return;  // destroyed: `done` is never called
      const TimePoint at = self->clock();
      for (std::size_t j = 0; j < missing.size(); ++j) {
        const Query& q = queries[missing[j]];
        if (j >= got.size()) {
          answers[missing[j]] = indeterminate_answer(q, "no answer from the resolver");
          continue;
        }
        // Only an answer to the question asked is kept (the inner resolver
        // answers in order; this guards the cache against one that does not).
        if (got[j].qname == q.name && got[j].qtype == q.type) self->store(q, got[j], at);
        answers[missing[j]] = std::move(got[j]);
      }
      done(std::move(answers));
    });
  }

  asio::io_context& io;
  Resolver& inner;
  CacheOptions options;
  Clock clock;
  Lru lru;
  Expiry expiry;
  std::unordered_map<Query, Lru::iterator, QueryHash> index;
  CacheStats counts;
};

CachingResolver::CachingResolver(asio::io_context& io, Resolver& inner, CacheOptions options,
                                 Clock clock)
    : impl_(std::make_shared<Impl>(io, inner, options, std::move(clock))) {}

CachingResolver::~CachingResolver() = default;

void CachingResolver::resolve(std::vector<Query> queries,
                              std::function<void(std::vector<Answer>)> done) {
  impl_->resolve(std::move(queries), std::move(done));
}

CacheStats CachingResolver::stats() const {
  CacheStats s = impl_->counts;
  s.entries = impl_->lru.size();
  return s;
}

bool CachingResolver::enabled() const {
  return impl_->options.max_entries > 0;
}

}  // namespace danemta::dns
