// The monitoring figures: the Prometheus text exposition (format 0.0.4) of
// metrics::Registry, what the relay counts (relay/instruments.hpp), the
// spool's queue counts and the [metrics] configuration.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "config/config.hpp"
#include "metrics/registry.hpp"
#include "queue/spool.hpp"
#include "relay/instruments.hpp"

namespace danemta {
namespace {

using metrics::Registry;
using metrics::Type;
using ::testing::HasSubstr;

TEST(MetricsRegistry, CountersAndGaugesInDeclarationOrderWithSortedSeries) {
  Registry m;
  m.declare("demo_sent_total", Type::counter, "Messages sent.");
  m.declare("demo_queue", Type::gauge, "Queued now.");
  m.add("demo_sent_total", {{"tls", "none"}}, 2);
  m.add("demo_sent_total", {{"tls", "dane-verified"}});
  m.add("demo_sent_total", {{"tls", "dane-verified"}}, 0.5);
  m.set("demo_queue", {}, 7);
  m.set("demo_queue", {}, 3);
  EXPECT_EQ(m.render(),
            "# HELP demo_sent_total Messages sent.\n"
            "# TYPE demo_sent_total counter\n"
            "demo_sent_total{tls=\"dane-verified\"} 1.5\n"
            "demo_sent_total{tls=\"none\"} 2\n"
            "# HELP demo_queue Queued now.\n"
            "# TYPE demo_queue gauge\n"
            "demo_queue 3\n");
  EXPECT_EQ(m.value("demo_sent_total", {{"tls", "none"}}), 2);
  EXPECT_EQ(m.value("demo_sent_total", {{"tls", "opportunistic"}}), std::nullopt);
}

TEST(MetricsRegistry, LabelValuesAndHelpAreEscaped) {
  Registry m;
  m.declare("demo_total", Type::counter, "A \\ backslash\nand a new line, \"quotes\" stay.");
  m.add("demo_total", {{"domain", "a\"b\\c\nd"}, {"kind", "é"}});
  EXPECT_EQ(m.render(),
            "# HELP demo_total A \\\\ backslash\\nand a new line, \"quotes\" stay.\n"
            "# TYPE demo_total counter\n"
            "demo_total{domain=\"a\\\"b\\\\c\\nd\",kind=\"é\"} 1\n");
  EXPECT_EQ(metrics::escape_label_value("plain"), "plain");
  EXPECT_EQ(metrics::escape_label_value("\\\"\n"), "\\\\\\\"\\n");
  EXPECT_EQ(metrics::escape_help("say \"x\"\\\n"), "say \"x\"\\\\\\n");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry m;
  m.declare("demo_seconds", Type::histogram, "Durations.", {0.5, 1, 10});
  for (double v : {0.2, 0.5, 0.7, 3.0, 50.0}) m.observe("demo_seconds", {{"kind", "x"}}, v);
  m.observe("demo_seconds", {{"kind", "x"}}, std::nan(""));  // counted nowhere
  EXPECT_EQ(m.render(),
            "# HELP demo_seconds Durations.\n"
            "# TYPE demo_seconds histogram\n"
            "demo_seconds_bucket{kind=\"x\",le=\"0.5\"} 2\n"
            "demo_seconds_bucket{kind=\"x\",le=\"1\"} 3\n"
            "demo_seconds_bucket{kind=\"x\",le=\"10\"} 4\n"
            "demo_seconds_bucket{kind=\"x\",le=\"+Inf\"} 5\n"
            "demo_seconds_sum{kind=\"x\"} 54.4\n"
            "demo_seconds_count{kind=\"x\"} 5\n");
  EXPECT_EQ(m.value("demo_seconds", {{"kind", "x"}}), 5);

  Registry bare;
  bare.declare("demo_seconds", Type::histogram, "Durations.", {1});
  bare.observe("demo_seconds", {}, 1);
  EXPECT_EQ(bare.render(),
            "# HELP demo_seconds Durations.\n"
            "# TYPE demo_seconds histogram\n"
            "demo_seconds_bucket{le=\"1\"} 1\n"
            "demo_seconds_bucket{le=\"+Inf\"} 1\n"
            "demo_seconds_sum 1\n"
            "demo_seconds_count 1\n");
}

TEST(MetricsRegistry, ClearDropsEverySeriesOfAFamily) {
  Registry m;
  m.declare("demo_by_domain", Type::gauge, "Per domain.");
  m.set("demo_by_domain", {{"domain", "a.example"}}, 1);
  m.set("demo_by_domain", {{"domain", "b.example"}}, 2);
  m.clear("demo_by_domain");
  m.set("demo_by_domain", {{"domain", "c.example"}}, 3);
  EXPECT_EQ(m.render(),
            "# HELP demo_by_domain Per domain.\n"
            "# TYPE demo_by_domain gauge\n"
            "demo_by_domain{domain=\"c.example\"} 3\n");
}

TEST(MetricsRegistry, ValuesReadBackExactly) {
  EXPECT_EQ(metrics::format_value(0), "0");
  EXPECT_EQ(metrics::format_value(42), "42");
  EXPECT_EQ(metrics::format_value(-3), "-3");
  EXPECT_EQ(metrics::format_value(0.1), "0.1");
  EXPECT_EQ(metrics::format_value(1e21), "1e+21");
  EXPECT_EQ(metrics::format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(metrics::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(metrics::format_value(std::nan("")), "NaN");
  const double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(metrics::format_value(third)), third);
}

TEST(MetricsRegistry, MisuseIsAProgrammingError) {
  Registry m;
  m.declare("demo_total", Type::counter, "x");
  EXPECT_THROW(m.declare("demo_total", Type::counter, "again"), std::logic_error);
  EXPECT_THROW(m.declare("9starts_with_a_digit", Type::gauge, "x"), std::logic_error);
  EXPECT_THROW(m.declare("demo_gauge", Type::gauge, "x", {1}), std::logic_error);
  EXPECT_THROW(m.declare("demo_h", Type::histogram, "x", {2, 1}), std::logic_error);
  EXPECT_THROW(m.add("undeclared_total", {}), std::logic_error);
  EXPECT_THROW(m.set("demo_total", {}, 1), std::logic_error);
  EXPECT_THROW(m.add("demo_total", {}, -1), std::logic_error);
  EXPECT_THROW(m.add("demo_total", {{"bad-name", "x"}}), std::logic_error);
  EXPECT_THROW(m.add("demo_total", {{"__reserved", "x"}}), std::logic_error);
  m.declare("demo_h2", Type::histogram, "x", {1});
  EXPECT_THROW(m.observe("demo_h2", {{"le", "1"}}, 1), std::logic_error);
  EXPECT_TRUE(metrics::valid_metric_name("danemta:rate_5m"));
  EXPECT_FALSE(metrics::valid_label_name("with:colon"));
}

// ---- what the relay counts ------------------------------------------------

TEST(RelayInstruments, EveryFamilyIsDeclaredWithItsZeroSeries) {
  Registry m;
  relay::declare_metrics(m);
  const std::string text = m.render();
  for (const char* family :
       {"danemta_messages_received_total", "danemta_recipients_delivered_total",
        "danemta_recipients_deferred_total", "danemta_recipients_bounced_total",
        "danemta_tls_sessions_total", "danemta_dane_failures_total", "danemta_dns_lookups_total",
        "danemta_dns_failures_total", "danemta_delivery_duration_seconds",
        "danemta_queue_recipients", "danemta_queue_destination_recipients",
        "danemta_spool_writable"})
    EXPECT_THAT(text, HasSubstr("# TYPE " + std::string(family) + " ")) << family;
  EXPECT_EQ(m.value("danemta_recipients_delivered_total", {{"tls", "dane-verified"}}), 0);
  EXPECT_EQ(m.value("danemta_recipients_deferred_total", {{"outcome", "tlsa-invalid"}}), 0);
  EXPECT_EQ(m.value("danemta_recipients_deferred_total", {{"outcome", "server-reply"}}), 0);
  // null MX is never retried: no deferral series, a bounce series.
  EXPECT_EQ(m.value("danemta_recipients_deferred_total", {{"outcome", "null-mx"}}), std::nullopt);
  EXPECT_EQ(
      m.value("danemta_recipients_bounced_total", {{"outcome", "null-mx"}, {"cause", "permanent"}}),
      0);
  for (const char* type :
       {"dnssec-invalid", "starttls-not-supported", "certificate-expired", "tlsa-invalid",
        "certificate-host-mismatch", "dane-required", "validation-failure"})
    EXPECT_EQ(m.value("danemta_dane_failures_total", {{"result_type", type}}), 0) << type;
  EXPECT_EQ(m.value("danemta_dns_lookups_total", {{"type", "TLSA"}, {"security", "bogus"}}), 0);
  EXPECT_EQ(m.value("danemta_spool_writable", {}), 1);
}

TEST(RelayInstruments, RecipientsAreCountedAsTheLogSaysThem) {
  Registry m;
  relay::declare_metrics(m);
  delivery::RecipientResult sent;
  sent.status = delivery::Status::delivered;
  sent.tls = dane::Authentication::dane_verified;
  relay::count_recipient(m, sent, false, 0.3);
  relay::count_recipient(m, sent, false, 7200);

  delivery::RecipientResult stale;
  stale.status = delivery::Status::deferred;
  stale.outcome = dane::Outcome::tlsa_invalid;
  relay::count_recipient(m, stale, false, 1);
  stale.status = delivery::Status::bounced;
  relay::count_recipient(m, stale, true, 1);  // the queue lifetime ended

  delivery::RecipientResult refused;
  refused.status = delivery::Status::bounced;
  refused.reply = smtp::Reply{550, "5.1.1", {"no such user"}};
  relay::count_recipient(m, refused, false, 1);
  delivery::RecipientResult unread;
  unread.status = delivery::Status::deferred;
  relay::count_recipient(m, unread, false, 1);

  EXPECT_EQ(m.value("danemta_recipients_delivered_total", {{"tls", "dane-verified"}}), 2);
  EXPECT_EQ(m.value("danemta_delivery_duration_seconds", {}), 2);
  EXPECT_THAT(m.render(), HasSubstr("danemta_delivery_duration_seconds_bucket{le=\"0.5\"} 1\n"));
  EXPECT_THAT(m.render(), HasSubstr("danemta_delivery_duration_seconds_bucket{le=\"3600\"} 1\n"));
  EXPECT_THAT(m.render(), HasSubstr("danemta_delivery_duration_seconds_bucket{le=\"14400\"} 2\n"));
  EXPECT_THAT(m.render(), HasSubstr("danemta_delivery_duration_seconds_sum 7200.3\n"));
  EXPECT_EQ(m.value("danemta_recipients_deferred_total", {{"outcome", "tlsa-invalid"}}), 1);
  EXPECT_EQ(m.value("danemta_recipients_bounced_total",
                    {{"outcome", "tlsa-invalid"}, {"cause", "expired"}}),
            1);
  EXPECT_EQ(m.value("danemta_recipients_bounced_total",
                    {{"outcome", "server-reply"}, {"cause", "permanent"}}),
            1);
  EXPECT_EQ(m.value("danemta_recipients_deferred_total", {{"outcome", "other"}}), 1);
}

TEST(RelayInstruments, SessionsByLevelAndDaneFailuresByResultType) {
  Registry m;
  relay::declare_metrics(m);
  delivery::BatchResult batch;
  delivery::AddressAttempt verified;
  verified.connected = true;
  verified.tls = dane::Authentication::dane_verified;
  delivery::AddressAttempt mismatch = verified;
  mismatch.tls = dane::Authentication::none;
  mismatch.failure = dane::Outcome::tlsa_invalid;
  delivery::AddressAttempt unreachable;  // never connected
  unreachable.failure = dane::Outcome::connection_failed;
  delivery::AddressAttempt clear;
  clear.connected = true;
  batch.sessions = {verified, verified, mismatch, unreachable, clear};

  tlsrpt::SessionResult ok;
  ok.success = true;
  ok.policy_type = tlsrpt::PolicyType::tlsa;
  tlsrpt::SessionResult bad = ok;
  bad.success = false;
  bad.result_type = "tlsa-invalid";
  tlsrpt::SessionResult no_policy;  // a cleartext session without DANE: not a DANE failure
  no_policy.result_type = "starttls-not-supported";
  relay::count_sessions(m, batch, {ok, ok, bad, no_policy});

  EXPECT_EQ(m.value("danemta_tls_sessions_total", {{"level", "dane-verified"}}), 2);
  EXPECT_EQ(m.value("danemta_tls_sessions_total", {{"level", "none"}}), 1);
  EXPECT_EQ(m.value("danemta_dane_failures_total", {{"result_type", "tlsa-invalid"}}), 1);
  EXPECT_EQ(m.value("danemta_dane_failures_total", {{"result_type", "starttls-not-supported"}}), 0);
}

TEST(RelayInstruments, QueueGaugesShowTheTopDestinationsOnly) {
  Registry m;
  relay::declare_metrics(m);
  queue::QueueCounts c;
  c.due = 1;
  c.deferred = 5;
  c.delivered = 9;
  c.bounced = 2;
  c.messages = 4;
  c.oldest_pending = 1000;
  c.destinations = 3;
  c.top_destinations = {{"big.example", 4}, {"small.example", 2}};
  relay::count_queue(m, c, 1600);
  EXPECT_EQ(m.value("danemta_queue_recipients", {{"state", "deferred"}}), 5);
  EXPECT_EQ(m.value("danemta_queue_recipients", {{"state", "delivered"}}), 9);
  EXPECT_EQ(m.value("danemta_queue_oldest_message_age_seconds", {}), 600);
  EXPECT_EQ(m.value("danemta_queue_destinations", {}), 3);
  EXPECT_EQ(m.value("danemta_queue_destination_recipients", {{"domain", "big.example"}}), 4);

  c.top_destinations = {{"small.example", 1}};
  c.oldest_pending.reset();
  relay::count_queue(m, c, 1700);
  EXPECT_EQ(m.value("danemta_queue_destination_recipients", {{"domain", "big.example"}}),
            std::nullopt)
      << "a destination gone from the queue is gone from the figures";
  EXPECT_EQ(m.value("danemta_queue_oldest_message_age_seconds", {}), 0);

  relay::forget_queue(m);
  EXPECT_EQ(m.value("danemta_queue_recipients", {{"state", "deferred"}}), std::nullopt);
}

TEST(RelayInstruments, DnsFailureReasons) {
  dns::Answer a;
  a.security = dns::Security::secure;
  EXPECT_EQ(relay::dns_failure_reason(a), "");
  a.security = dns::Security::insecure;
  a.nxdomain = true;
  EXPECT_EQ(relay::dns_failure_reason(a), "") << "a proven absence is an answer";
  a.security = dns::Security::bogus;
  EXPECT_EQ(relay::dns_failure_reason(a), "bogus");
  a = dns::Answer{};
  a.security = dns::Security::indeterminate;
  a.rcode = 2;
  EXPECT_EQ(relay::dns_failure_reason(a), "servfail");
  a.rcode = 5;
  EXPECT_EQ(relay::dns_failure_reason(a), "error");
  a.why = "timeout after 10 s";
  EXPECT_EQ(relay::dns_failure_reason(a), "timeout");
  a.malformed = "bad RDATA";
  EXPECT_EQ(relay::dns_failure_reason(a), "malformed");
  a.local_failure = true;
  EXPECT_EQ(relay::dns_failure_reason(a), "local-resolver");
}

// A resolver that answers each query with a fixed verdict.
class FixedResolver : public dns::Resolver {
 public:
  void resolve(std::vector<dns::Query> queries,
               std::function<void(std::vector<dns::Answer>)> done) override {
    std::vector<dns::Answer> out;
    for (const dns::Query& q : queries) {
      dns::Answer a;
      a.qname = q.name;
      a.qtype = q.type;
      a.security = q.name == "bogus.example" ? dns::Security::bogus : dns::Security::secure;
      out.push_back(a);
    }
    done(std::move(out));
  }
};

TEST(RelayInstruments, MeteredResolverCountsEachAnswer) {
  Registry m;
  relay::declare_metrics(m);
  FixedResolver inner;
  relay::MeteredResolver metered(inner, m);
  std::size_t answered = 0;
  metered.resolve({{"good.example", dns::RrType::MX},
                   {"mx.good.example", dns::RrType::TLSA},
                   {"bogus.example", dns::RrType::MX}},
                  [&](std::vector<dns::Answer> answers) { answered = answers.size(); });
  EXPECT_EQ(answered, 3u);
  EXPECT_EQ(m.value("danemta_dns_lookups_total", {{"type", "MX"}, {"security", "secure"}}), 1);
  EXPECT_EQ(m.value("danemta_dns_lookups_total", {{"type", "MX"}, {"security", "bogus"}}), 1);
  EXPECT_EQ(m.value("danemta_dns_lookups_total", {{"type", "TLSA"}, {"security", "secure"}}), 1);
  EXPECT_EQ(m.value("danemta_dns_failures_total", {{"reason", "bogus"}}), 1);
}

TEST(RelayInstruments, DnsCacheFiguresCatchUpWithTheCache) {
  Registry m;
  relay::declare_metrics(m);
  EXPECT_EQ(m.value("danemta_dns_cache_lookups_total", {{"result", "hit"}}), 0);
  EXPECT_EQ(m.value("danemta_dns_cache_lookups_total", {{"result", "miss"}}), 0);
  EXPECT_EQ(m.value("danemta_dns_cache_evictions_total", {}), 0);
  EXPECT_EQ(m.value("danemta_dns_cache_entries", {}), 0);

  relay::count_dns_cache(m, {.hits = 7, .misses = 3, .evictions = 1, .entries = 2});
  relay::count_dns_cache(m, {.hits = 7, .misses = 3, .evictions = 1, .entries = 2});  // no change
  EXPECT_EQ(m.value("danemta_dns_cache_lookups_total", {{"result", "hit"}}), 7);
  EXPECT_EQ(m.value("danemta_dns_cache_lookups_total", {{"result", "miss"}}), 3);
  EXPECT_EQ(m.value("danemta_dns_cache_evictions_total", {}), 1);
  EXPECT_EQ(m.value("danemta_dns_cache_entries", {}), 2);
  relay::count_dns_cache(m, {.hits = 10, .misses = 4, .evictions = 1, .entries = 1});
  EXPECT_EQ(m.value("danemta_dns_cache_lookups_total", {{"result", "hit"}}), 10);
  EXPECT_EQ(m.value("danemta_dns_cache_lookups_total", {{"result", "miss"}}), 4);
  EXPECT_EQ(m.value("danemta_dns_cache_entries", {}), 1);
  EXPECT_THAT(m.render(), HasSubstr("danemta_dns_cache_lookups_total{result=\"hit\"} 10\n"));
}

TEST(RelayInstruments, DnsCacheSummaryCoversTheInterval) {
  const dns::CacheStats before{.hits = 100, .misses = 50, .evictions = 2, .entries = 40};
  const dns::CacheStats now{.hits = 196, .misses = 74, .evictions = 5, .entries = 41};
  EXPECT_EQ(relay::dns_cache_summary(now, before),
            "dns cache: lookups=120 hits=96 (80.0%) entries=41 evictions=3");
  EXPECT_EQ(relay::dns_cache_summary({.hits = 0, .misses = 3, .evictions = 0, .entries = 3}, {}),
            "dns cache: lookups=3 hits=0 (0.0%) entries=3 evictions=0");
  EXPECT_EQ(relay::dns_cache_summary({.hits = 2, .misses = 1, .evictions = 0, .entries = 1}, {}),
            "dns cache: lookups=3 hits=2 (66.7%) entries=1 evictions=0");
}

// ---- the spool's counts ---------------------------------------------------

TEST(QueueCounts, ByStateAndTopDestinations) {
  std::string tmpl = std::filesystem::temp_directory_path() / "danemta-counts-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::filesystem::path dir = tmpl;
  {
    auto opened = queue::open_sqlite_spool((dir / "spool.db").string());
    ASSERT_TRUE(opened) << opened.error().message;
    queue::Spool& spool = **opened;
    auto enqueue = [&](std::vector<std::string> to, queue::Time at) {
      queue::NewMessage m;
      m.mail_from = "s@sender.example";
      m.recipients = std::move(to);
      m.data = "Subject: x\r\n\r\nx\r\n";
      m.received_at = at;
      auto id = spool.enqueue(m);
      EXPECT_TRUE(id);
      return id ? *id : std::string();
    };
    auto empty = spool.counts(100, 5);
    ASSERT_TRUE(empty) << empty.error().message;
    EXPECT_EQ(empty->due + empty->deferred + empty->delivered + empty->bounced, 0u);
    EXPECT_EQ(empty->oldest_pending, std::nullopt);

    const std::string first = enqueue({"a@b.example", "b@b.example", "c@a.example"}, 1000);
    const std::string second = enqueue({"d@c.example", "e@a.example", "f@b.example"}, 2000);
    queue::RecipientUpdate delivered{0, queue::RecipientState::delivered, 0, "2.0.0", "", ""};
    queue::RecipientUpdate later{1, queue::RecipientState::pending, 5000, "4.7.323", "", ""};
    queue::RecipientUpdate bounced{0, queue::RecipientState::bounced, 0, "5.1.1", "", ""};
    ASSERT_TRUE(spool.record(first, {delivered, later}, 2500));
    ASSERT_TRUE(spool.record(second, {bounced}, 2500));

    auto c = spool.counts(3000, 2);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->due, 3u);       // c@a, e@a, f@b
    EXPECT_EQ(c->deferred, 1u);  // b@b, retried at 5000
    EXPECT_EQ(c->delivered, 1u);
    EXPECT_EQ(c->bounced, 1u);
    EXPECT_EQ(c->messages, 2u);
    EXPECT_EQ(c->oldest_pending, 1000);
    EXPECT_EQ(c->destinations, 2u);  // a.example, b.example (c.example bounced)
    using Top = std::vector<std::pair<std::string, std::size_t>>;
    EXPECT_EQ(c->top_destinations, (Top{{"a.example", 2}, {"b.example", 2}}));

    auto later_on = spool.counts(6000, 1);
    ASSERT_TRUE(later_on);
    EXPECT_EQ(later_on->due, 4u);
    EXPECT_EQ(later_on->deferred, 0u);
    EXPECT_EQ(later_on->top_destinations, (Top{{"a.example", 2}}));
  }
  std::filesystem::remove_all(dir);
}

// ---- [metrics] -------------------------------------------------------------

TEST(MetricsConfig, OffByDefaultAndListenChecked) {
  auto plain = config::parse("");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->metrics.listen, "");
  EXPECT_EQ(plain->metrics.top_destinations, 20u);

  auto on = config::parse("[metrics]\nlisten = \"127.0.0.1:9125\"\ntop_destinations = 5\n");
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_EQ(on->metrics.listen, "127.0.0.1:9125");
  EXPECT_EQ(on->metrics.top_destinations, 5u);
  auto v6 = config::parse("[metrics]\nlisten = \"[::1]:9125\"\n");
  ASSERT_TRUE(v6) << v6.error().message;
  auto off = config::parse("[metrics]\nlisten = \"\"\n");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_EQ(off->metrics.listen, "");

  for (const char* bad :
       {"[metrics]\nlisten = \"localhost:9125\"\n", "[metrics]\nlisten = \"127.0.0.1\"\n",
        "[metrics]\nlisten = 9125\n", "[metrics]\ntop_destinations = -1\n",
        "[metrics]\nport = 9125\n", "metrics = 1\n"}) {
    auto r = config::parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_THAT(r.error().message, HasSubstr("metrics")) << bad;
  }
  auto before = config::parse("[metrics]\nlisten = \"127.0.0.1:9125\"\n");
  auto after = config::parse("[metrics]\nlisten = \"127.0.0.1:9126\"\n");
  ASSERT_TRUE(before && after);
  EXPECT_EQ(config::changes(*before, *after),
            std::vector<std::string>{"metrics.listen: '127.0.0.1:9125' -> '127.0.0.1:9126'"});
}

}  // namespace
}  // namespace danemta
