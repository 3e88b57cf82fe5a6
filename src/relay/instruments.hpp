// What the relay counts for monitoring: the danemta_* metric families
// (docs/metrics.md has the list an operator reads), the label values they
// take, and a resolver that counts lookups. The relay feeds a
// metrics::Registry through these functions; metrics::Server serves it.
#pragma once

#include <string>
#include <vector>

#include "delivery/deliver.hpp"
#include "dns/caching_resolver.hpp"
#include "dns/resolver.hpp"
#include "metrics/registry.hpp"
#include "queue/spool.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::relay {

// Declares every family with its help text, and creates the series of
// every known label value at 0, so that rates are defined from the first
// scrape and a dashboard shows "0", not "no data".
void declare_metrics(metrics::Registry& registry);

// The "outcome" label of a recipient that was not delivered: the name of
// danemta's outcome ("tlsa-invalid", "dnssec-invalid", ...; dane/outcome.hpp),
// "server-reply" when the receiving server's reply decided (a 4xx or 5xx),
// "other" when neither (the text could not be read from the spool, content
// the next hop cannot take).
std::string outcome_label(const delivery::RecipientResult& r);

// One recipient's result as logged (status=sent, deferred or bounced):
// `lifetime_over` when a deferral became a bounce because the queue
// lifetime ended; `delay` is the log's delay= (arrival to now), observed
// for delivered recipients.
void count_recipient(metrics::Registry& registry, const delivery::RecipientResult& r,
                     bool lifetime_over, double delay_seconds);

// One attempt's sessions: each that was ready to carry mail, by its TLS
// authentication level, and each DANE policy failure TLS reporting recorded
// (RFC 8460 result types of the "tlsa" policy type) from `seen`.
void count_sessions(metrics::Registry& registry, const delivery::BatchResult& batch,
                    const std::vector<tlsrpt::SessionResult>& seen);

// The queue gauges from the spool's counts at `now`.
void count_queue(metrics::Registry& registry, const queue::QueueCounts& counts, queue::Time now);
// The queue gauges removed (the spool could not be read: better no figure
// than a stale one).
void forget_queue(metrics::Registry& registry);

// The "reason" label of a failed lookup (bogus or indeterminate answer):
// "bogus", "local-resolver" (danemta's own resolver was not working),
// "malformed", "timeout", "servfail", or "error" (any other resolver error
// or RCODE). Empty for an answer that is not a failure.
std::string dns_failure_reason(const dns::Answer& a);

// danemta's answer cache (dns/caching_resolver.hpp): its figures since it
// was made into danemta_dns_cache_lookups_total, _evictions_total and
// _entries (each counter goes up by what it gained since the last call).
void count_dns_cache(metrics::Registry& registry, const dns::CacheStats& stats);

// The relay's periodic line on the answer cache, for what happened between
// `before` and `now` (lookups, hits, evictions) and the entries held now:
// "dns cache: lookups=120 hits=96 (80.0%) entries=41 evictions=0".
std::string dns_cache_summary(const dns::CacheStats& now, const dns::CacheStats& before);

// Passes every query to `inner` and counts each answer
// (danemta_dns_lookups_total, danemta_dns_failures_total) before handing it on.
class MeteredResolver final : public dns::Resolver {
 public:
  // Both must outlive this resolver.
  MeteredResolver(dns::Resolver& inner, metrics::Registry& registry)
      : inner_(inner), registry_(registry) {}
  void resolve(std::vector<dns::Query> queries,
               std::function<void(std::vector<dns::Answer>)> done) override;

 private:
  dns::Resolver& inner_;
  metrics::Registry& registry_;
};

}  // namespace danemta::relay
