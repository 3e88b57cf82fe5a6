#include "relay/instruments.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>

#include "dane/outcome.hpp"
#include "dane/tls_glue.hpp"

namespace danemta::relay {

namespace {

using metrics::Labels;
using metrics::Type;

// Every outcome of the table (dane/outcome.hpp), for the series made at 0.
constexpr std::array kOutcomes = {
    dane::Outcome::dnssec_invalid,
    dane::Outcome::dns_failed,
    dane::Outcome::local_dns_failed,
    dane::Outcome::domain_not_found,
    dane::Outcome::no_address,
    dane::Outcome::connection_failed,
    dane::Outcome::starttls_not_supported,
    dane::Outcome::certificate_expired,
    dane::Outcome::tlsa_invalid,
    dane::Outcome::certificate_host_mismatch,
    dane::Outcome::dane_required,
    dane::Outcome::validation_failure,
    dane::Outcome::null_mx,
};

constexpr std::array kLevels = {
    dane::Authentication::dane_verified,
    dane::Authentication::dane_trusted,
    dane::Authentication::mandatory_unauthenticated,
    dane::Authentication::opportunistic,
    dane::Authentication::none,
};

constexpr std::array<const char*, 5> kLookupTypes = {"MX", "A", "AAAA", "TLSA", "CNAME"};
constexpr std::array<dns::Security, 4> kSecurity = {dns::Security::secure, dns::Security::insecure,
                                                    dns::Security::bogus,
                                                    dns::Security::indeterminate};
constexpr std::array<const char*, 6> kDnsReasons = {"bogus",   "local-resolver", "malformed",
                                                    "timeout", "servfail",       "error"};

std::string name_of(dane::Outcome o) {
  return std::string(dane::info(o).name);
}

}  // namespace

void declare_metrics(metrics::Registry& m) {
  m.declare("danemta_inbound_certificate_expiry_timestamp_seconds", Type::gauge,
            "[inbound]: when the served STARTTLS certificate expires (seconds since the epoch)");
  m.declare("danemta_inbound_certificate_published", Type::gauge,
            "[inbound]: 1 when a DNSSEC-secure TLSA record matches the served certificate at "
            "every MX name");
  m.declare("danemta_inbound_rollover_pending", Type::gauge,
            "[inbound]: 1 while a new certificate waits for its TLSA record (rollover guard)");
  m.declare("danemta_inbound_rollover_blocked", Type::gauge,
            "[inbound]: 1 when the served certificate is near expiry and no new one can be "
            "served (its TLSA record is not published, or not yet for the TTL)");
  m.declare("danemta_messages_received_total", Type::counter,
            "Messages accepted from submitters (answered 250 after they were stored).");
  m.declare("danemta_recipients_received_total", Type::counter,
            "Recipients of the messages accepted from submitters.");
  m.declare("danemta_messages_refused_total", Type::counter,
            "Messages refused after their data, by reason (mail-loop, storage-full, "
            "storage-error).");
  m.declare("danemta_recipients_delivered_total", Type::counter,
            "Recipients a receiving server accepted (log status=sent), by the TLS "
            "authentication level of the session (tls=).");
  m.declare("danemta_recipients_deferred_total", Type::counter,
            "Recipients deferred for a later retry (log status=deferred), by outcome.");
  m.declare("danemta_recipients_bounced_total", Type::counter,
            "Recipients that failed for good (log status=bounced), by outcome and cause "
            "(permanent: a permanent failure; expired: the queue lifetime ended).");
  m.declare("danemta_notifications_total", Type::counter,
            "Notices queued for senders (RFC 3464), by kind (non-delivery, delay).");
  m.declare("danemta_delivery_duration_seconds", Type::histogram,
            "Time from a message's arrival to the delivery of a recipient (log delay=).",
            {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400});
  m.declare("danemta_tls_sessions_total", Type::counter,
            "Outbound SMTP sessions that were ready to carry mail, by TLS authentication level "
            "(dane-verified, dane-trusted, mandatory-unauthenticated, opportunistic, none).");
  m.declare("danemta_dane_failures_total", Type::counter,
            "DNSSEC and DANE policy failures recorded for TLS reporting, by RFC 8460 "
            "result-type.");
  m.declare("danemta_dns_lookups_total", Type::counter,
            "DNS lookups answered to the relay, by record type and validation result "
            "(secure, insecure, bogus, indeterminate).");
  m.declare("danemta_dns_failures_total", Type::counter,
            "DNS lookups that failed (bogus or indeterminate), by reason (bogus, "
            "local-resolver, malformed, timeout, servfail, error).");
  m.declare("danemta_dns_cache_lookups_total", Type::counter,
            "Lookups asked of danemta's answer cache ([dns] answer_cache_entries), by result "
            "(hit: answered from the cache; miss: asked of the validating resolver).");
  m.declare("danemta_dns_cache_evictions_total", Type::counter,
            "Unexpired answers dropped from danemta's answer cache to make room.");
  m.declare("danemta_dns_cache_entries", Type::gauge, "Answers held in danemta's answer cache.");
  m.declare("danemta_queue_recipients", Type::gauge,
            "Recipients in the spool by state: due (next attempt due or under way), deferred "
            "(waiting for a retry), delivered and bounced (kept until danemta queue purge).");
  m.declare("danemta_queue_messages", Type::gauge, "Messages with a recipient still pending.");
  m.declare("danemta_queue_oldest_message_age_seconds", Type::gauge,
            "Age of the oldest message with a recipient still pending (0: none).");
  m.declare("danemta_queue_destinations", Type::gauge,
            "Destination domains with a recipient pending.");
  m.declare("danemta_queue_destination_recipients", Type::gauge,
            "Pending recipients by destination domain, for the domains with the most "
            "([metrics] top_destinations).");
  m.declare("danemta_deliveries_in_flight", Type::gauge, "Delivery attempts running now.");
  m.declare("danemta_spool_writable", Type::gauge,
            "1 when the last write to the spool succeeded, 0 while results are held in memory "
            "or messages are refused because the spool cannot be written.");

  m.add("danemta_messages_received_total", {}, 0);
  m.add("danemta_recipients_received_total", {}, 0);
  for (const char* reason : {"mail-loop", "storage-full", "storage-error"})
    m.add("danemta_messages_refused_total", {{"reason", reason}}, 0);
  for (dane::Authentication level : kLevels) {
    m.add("danemta_recipients_delivered_total", {{"tls", std::string(dane::to_string(level))}}, 0);
    m.add("danemta_tls_sessions_total", {{"level", std::string(dane::to_string(level))}}, 0);
  }
  std::vector<std::string> outcomes;
  for (dane::Outcome o : kOutcomes) outcomes.push_back(name_of(o));
  outcomes.push_back("server-reply");
  outcomes.push_back("other");
  for (const std::string& o : outcomes) {
    const auto known = dane::outcome_named(o);
    const bool retried = !known || dane::info(*known).retry;
    if (retried) m.add("danemta_recipients_deferred_total", {{"outcome", o}}, 0);
    m.add("danemta_recipients_bounced_total", {{"outcome", o}, {"cause", "permanent"}}, 0);
    if (retried)
      m.add("danemta_recipients_bounced_total", {{"outcome", o}, {"cause", "expired"}}, 0);
  }
  for (const char* kind : {"non-delivery", "delay"})
    m.add("danemta_notifications_total", {{"kind", kind}}, 0);
  for (dane::Outcome o : kOutcomes) {
    const std::string type(dane::info(o).tlsrpt_result);
    if (!type.empty() && !m.value("danemta_dane_failures_total", {{"result_type", type}}))
      m.add("danemta_dane_failures_total", {{"result_type", type}}, 0);
  }
  for (const char* type : kLookupTypes)
    for (dns::Security s : kSecurity)
      m.add("danemta_dns_lookups_total",
            {{"type", type}, {"security", std::string(dns::to_string(s))}}, 0);
  for (const char* reason : kDnsReasons)
    m.add("danemta_dns_failures_total", {{"reason", reason}}, 0);
  m.add("danemta_dns_cache_lookups_total", {{"result", "hit"}}, 0);
  m.add("danemta_dns_cache_lookups_total", {{"result", "miss"}}, 0);
  m.add("danemta_dns_cache_evictions_total", {}, 0);
  m.set("danemta_dns_cache_entries", {}, 0);
  m.set("danemta_deliveries_in_flight", {}, 0);
  m.set("danemta_spool_writable", {}, 1);
}

std::string outcome_label(const delivery::RecipientResult& r) {
  if (r.outcome) return name_of(*r.outcome);
  return r.reply ? "server-reply" : "other";
}

void count_recipient(metrics::Registry& m, const delivery::RecipientResult& r, bool lifetime_over,
                     double delay_seconds) {
  switch (r.status) {
    case delivery::Status::delivered:
      m.add("danemta_recipients_delivered_total", {{"tls", std::string(dane::to_string(r.tls))}});
      m.observe("danemta_delivery_duration_seconds", {}, std::max(0.0, delay_seconds));
      return;
    case delivery::Status::deferred:
      m.add("danemta_recipients_deferred_total", {{"outcome", outcome_label(r)}});
      return;
    case delivery::Status::bounced:
      m.add("danemta_recipients_bounced_total",
            {{"outcome", outcome_label(r)}, {"cause", lifetime_over ? "expired" : "permanent"}});
      return;
  }
}

void count_sessions(metrics::Registry& m, const delivery::BatchResult& batch,
                    const std::vector<tlsrpt::SessionResult>& seen) {
  for (const delivery::AddressAttempt& a : batch.sessions)
    if (a.connected && !a.failure)
      m.add("danemta_tls_sessions_total", {{"level", std::string(dane::to_string(a.tls))}});
  for (const tlsrpt::SessionResult& s : seen)
    if (!s.success && s.policy_type == tlsrpt::PolicyType::tlsa)
      m.add("danemta_dane_failures_total", {{"result_type", s.result_type}});
}

void count_queue(metrics::Registry& m, const queue::QueueCounts& c, queue::Time now) {
  auto n = [](std::size_t v) { return static_cast<double>(v); };
  m.set("danemta_queue_recipients", {{"state", "due"}}, n(c.due));
  m.set("danemta_queue_recipients", {{"state", "deferred"}}, n(c.deferred));
  m.set("danemta_queue_recipients", {{"state", "delivered"}}, n(c.delivered));
  m.set("danemta_queue_recipients", {{"state", "bounced"}}, n(c.bounced));
  m.set("danemta_queue_messages", {}, n(c.messages));
  const queue::Time age = c.oldest_pending ? std::max<queue::Time>(0, now - *c.oldest_pending) : 0;
  m.set("danemta_queue_oldest_message_age_seconds", {}, static_cast<double>(age));
  m.set("danemta_queue_destinations", {}, n(c.destinations));
  m.clear("danemta_queue_destination_recipients");
  for (const auto& [domain, count] : c.top_destinations)
    m.set("danemta_queue_destination_recipients", {{"domain", domain}}, n(count));
}

void forget_queue(metrics::Registry& m) {
  for (const char* name : {"danemta_queue_recipients", "danemta_queue_messages",
                           "danemta_queue_oldest_message_age_seconds", "danemta_queue_destinations",
                           "danemta_queue_destination_recipients"})
    m.clear(name);
}

std::string dns_failure_reason(const dns::Answer& a) {
  switch (a.security) {
    case dns::Security::secure:
    case dns::Security::insecure:
      return "";
    case dns::Security::bogus:
      return "bogus";
    case dns::Security::indeterminate:
      break;
  }
  if (a.local_failure) return "local-resolver";
  if (!a.malformed.empty()) return "malformed";
  // The resolver's own words for a query it gave up on (unbound_resolver.cpp).
  if (a.why.starts_with("timeout")) return "timeout";
  if (a.rcode == 2) return "servfail";
  return "error";
}

void count_dns_cache(metrics::Registry& m, const dns::CacheStats& stats) {
  auto catch_up = [&m](std::string_view name, const Labels& labels, std::uint64_t total) {
    const double gained = static_cast<double>(total) - m.value(name, labels).value_or(0);
    if (gained > 0) m.add(name, labels, gained);
  };
  catch_up("danemta_dns_cache_lookups_total", {{"result", "hit"}}, stats.hits);
  catch_up("danemta_dns_cache_lookups_total", {{"result", "miss"}}, stats.misses);
  catch_up("danemta_dns_cache_evictions_total", {}, stats.evictions);
  m.set("danemta_dns_cache_entries", {}, static_cast<double>(stats.entries));
}

std::string dns_cache_summary(const dns::CacheStats& now, const dns::CacheStats& before) {
  const std::uint64_t hits = now.hits - before.hits;
  const std::uint64_t lookups = hits + (now.misses - before.misses);
  std::array<char, 16> percent{};
  std::snprintf(
      percent.data(), percent.size(), "%.1f",
      lookups == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / static_cast<double>(lookups));
  return "dns cache: lookups=" + std::to_string(lookups) + " hits=" + std::to_string(hits) + " (" +
         percent.data() + "%) entries=" + std::to_string(now.entries) +
         " evictions=" + std::to_string(now.evictions - before.evictions);
}

void MeteredResolver::resolve(std::vector<dns::Query> queries,
                              std::function<void(std::vector<dns::Answer>)> done) {
  metrics::Registry& m = registry_;
  inner_.resolve(std::move(queries), [&m,
                                      done = std::move(done)](std::vector<dns::Answer> answers) {
    for (const dns::Answer& a : answers) {
      m.add("danemta_dns_lookups_total", {{"type", std::string(dns::to_string(a.qtype))},
                                          {"security", std::string(dns::to_string(a.security))}});
      if (const std::string reason = dns_failure_reason(a); !reason.empty())
        m.add("danemta_dns_failures_total", {{"reason", reason}});
    }
    done(std::move(answers));
  });
}

}  // namespace danemta::relay
