// Pure parts of delivery and the relay: host order, final codes, what TLS
// reporting records.
#include <gtest/gtest.h>

#include <set>

#include "delivery/deliver.hpp"
#include "relay/failed_recipient.hpp"
#include "relay/relay.hpp"
#include "relay/reporting.hpp"

namespace danemta::delivery {
namespace {

TEST(HostOrder, ShufflesOnlyWithinEqualPreference) {
  dane::DestinationPlan plan;
  for (auto [name, pref] : {std::pair{"a", 10}, std::pair{"b", 20}, std::pair{"c", 20},
                            std::pair{"d", 20}, std::pair{"e", 30}}) {
    dane::HostPlan h;
    h.name = name;
    h.preference = static_cast<std::uint16_t>(pref);
    plan.hosts.push_back(h);
  }
  EXPECT_EQ(host_order(plan, false), (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  std::set<std::size_t> seen_second;
  for (int i = 0; i < 200; ++i) {
    std::vector<std::size_t> o = host_order(plan, true);
    ASSERT_EQ(o.front(), 0u) << "preference 10 always first";
    ASSERT_EQ(o.back(), 4u) << "preference 30 always last";
    std::set<std::size_t> middle(o.begin() + 1, o.end() - 1);
    ASSERT_EQ(middle, (std::set<std::size_t>{1, 2, 3}));
    seen_second.insert(o[1]);
  }
  EXPECT_EQ(seen_second.size(), 3u) << "each equal-preference host comes first sometimes";
}

}  // namespace
}  // namespace danemta::delivery

namespace danemta::relay {
namespace {

TEST(ExpiredStatus, PermanentCodeOfTheOutcomeElseDeliveryTimeExpired) {
  EXPECT_EQ(expired_status("tlsa-invalid"), "5.7.323");
  EXPECT_EQ(expired_status("dnssec-invalid"), "5.7.324");
  EXPECT_EQ(expired_status("connection-failed"), "5.4.1");
  EXPECT_EQ(expired_status(""), "5.4.7") << "a server's own 4xx replies until the end";
}

// One-line reply; `text` follows the code, as smtp::Reply keeps it.
smtp::Reply reply(int code, const std::string& text) {
  smtp::Reply r;
  r.code = code;
  r.lines = {text};
  return r;
}

// RFC 3464 section 2.3.6: "smtp;" only for what the remote server said.
TEST(FailedRecipient, ServerReplyIsSmtpDiagnostic) {
  delivery::RecipientResult rr;
  rr.recipient = "bob@example.org";
  rr.relay = "mx1.example.org[192.0.2.1]:25";
  rr.diagnostic = "mx1.example.org[192.0.2.1]:25 said: 550 5.1.1 no such user";
  rr.reply = reply(550, "5.1.1 no such user");
  dsn::FailedRecipient f = to_failed_recipient(rr, "5.1.1", 1000);
  EXPECT_TRUE(f.diagnostic_is_smtp);
  EXPECT_EQ(f.diagnostic, "550 5.1.1 no such user");
  EXPECT_EQ(f.remote_mta, "mx1.example.org");
  EXPECT_TRUE(f.outcome.empty());
  EXPECT_EQ(f.last_attempt, 1000);
}

TEST(FailedRecipient, GreetingRefusalIsSmtpWithItsOutcome) {
  delivery::RecipientResult rr;
  rr.recipient = "bob@example.org";
  rr.relay = "mx1.example.org[192.0.2.1]:25";
  rr.outcome = dane::Outcome::connection_failed;
  rr.diagnostic = "mx1.example.org[192.0.2.1]:25: greeting: rejected: 421 4.3.2 busy";
  rr.reply = reply(421, "4.3.2 busy");
  dsn::FailedRecipient f = to_failed_recipient(rr, "5.4.1", 1000);
  EXPECT_TRUE(f.diagnostic_is_smtp);
  EXPECT_EQ(f.diagnostic, "421 4.3.2 busy");
  EXPECT_EQ(f.outcome, "connection-failed");
  EXPECT_FALSE(f.fix.empty());
}

TEST(FailedRecipient, LocalOutcomesAreNotSmtp) {
  delivery::RecipientResult dane_failure;
  dane_failure.outcome = dane::Outcome::tlsa_invalid;
  dane_failure.diagnostic = "no TLSA record matched";
  delivery::RecipientResult timeout;
  timeout.outcome = dane::Outcome::connection_failed;
  timeout.diagnostic = "mx1.example.org[192.0.2.1]:25: greeting: timeout after 300 s";
  delivery::RecipientResult spool;  // no outcome, no reply: an unreadable spool file
  spool.dsn = "4.3.0";
  spool.diagnostic = "cannot read the message: I/O error";
  delivery::RecipientResult utf8;  // SMTPUTF8 needed, not offered: danemta's decision
  utf8.dsn = "5.6.7";
  utf8.diagnostic = "mail: SMTPUTF8 not offered";
  for (const delivery::RecipientResult& rr : {dane_failure, timeout, spool, utf8}) {
    dsn::FailedRecipient f = to_failed_recipient(rr, "5.0.0", 1000);
    EXPECT_FALSE(f.diagnostic_is_smtp) << rr.diagnostic;
    EXPECT_EQ(f.diagnostic, rr.diagnostic);
  }
}

}  // namespace
}  // namespace danemta::relay

namespace danemta::relay {
namespace {

delivery::AddressAttempt session(const std::string& host, std::optional<dane::Outcome> failure,
                                 dane::Authentication tls, bool connected = true) {
  delivery::AddressAttempt a;
  a.host = host;
  a.address = "192.0.2.1";
  a.local_address = "198.51.100.7";
  a.failure = failure;
  a.tls = tls;
  a.connected = connected;
  a.detail = "detail";
  return a;
}

TEST(SessionResults, WhatTlsReportingSees) {
  dane::DestinationPlan plan;
  plan.domain = "example.org";
  dane::HostPlan dane_host;
  dane_host.name = "mx1.example.org";
  dane_host.preference = 10;
  dane_host.requirement = dane::Requirement::dane;
  dane_host.usable_tlsa = {dns::TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(32, 0xab)}};
  dane::HostPlan plain_host;
  plain_host.name = "mx2.example.org";
  plain_host.preference = 20;
  plain_host.requirement = dane::Requirement::opportunistic;
  dane::HostPlan bogus_host;
  bogus_host.name = "mx3.example.org";
  bogus_host.preference = 5;
  bogus_host.requirement = dane::Requirement::unusable;
  bogus_host.failure = dane::Outcome::dnssec_invalid;
  dane::HostPlan lame_host;
  lame_host.name = "mx4.example.org";
  lame_host.preference = 1;
  lame_host.requirement = dane::Requirement::unusable;
  lame_host.failure = dane::Outcome::dns_failed;
  plan.hosts = {lame_host, bogus_host, dane_host, plain_host};

  delivery::BatchResult batch;
  batch.sessions = {
      session("mx1.example.org", dane::Outcome::tlsa_invalid, dane::Authentication::none),
      session("mx1.example.org", std::nullopt, dane::Authentication::dane_verified),
      session("mx2.example.org", std::nullopt, dane::Authentication::opportunistic),
      session("mx2.example.org", std::nullopt, dane::Authentication::none),
      session("mx2.example.org", dane::Outcome::connection_failed, dane::Authentication::none,
              false),
  };
  batch.sessions[3].address = "192.0.2.9";
  delivery::AttemptResult message;
  message.tried = {batch.sessions[3]};
  message.tried[0].mail_sent = true;
  batch.messages = {message};
  std::vector<tlsrpt::SessionResult> r = session_results(plan, batch, 1000);
  ASSERT_EQ(r.size(), 5u) << "one for the bogus host, four connected sessions";
  EXPECT_EQ(r[0].mx_host, "mx3.example.org");
  EXPECT_EQ(r[0].result_type, "dnssec-invalid");
  EXPECT_EQ(r[0].policy_type, tlsrpt::PolicyType::tlsa);
  EXPECT_EQ(r[1].result_type, "tlsa-invalid");
  EXPECT_EQ(r[1].policy_strings,
            std::vector<std::string>{dns::to_string(dane_host.usable_tlsa[0])});
  EXPECT_EQ(r[1].sending_mta_ip, "198.51.100.7");
  EXPECT_EQ(r[1].receiving_ip, "192.0.2.1");
  EXPECT_TRUE(r[2].success);
  EXPECT_EQ(r[2].policy_type, tlsrpt::PolicyType::tlsa);
  EXPECT_TRUE(r[3].success);
  EXPECT_EQ(r[3].policy_type, tlsrpt::PolicyType::no_policy_found);
  EXPECT_FALSE(r[4].success);
  EXPECT_EQ(r[4].result_type, "starttls-not-supported") << "delivered in clear";
  EXPECT_EQ(r[4].receiving_ip, "192.0.2.9");

  // The same session in clear, but STARTTLS was offered and its handshake
  // failed (opportunistic TLS fell back): a negotiation failure, not
  // "STARTTLS not supported".
  batch.sessions[3].starttls_offered = true;
  batch.messages[0].tried[0].starttls_offered = true;
  r = session_results(plan, batch, 1000);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_FALSE(r[4].success);
  EXPECT_EQ(r[4].result_type, "validation-failure") << "handshake failed, then clear";
  EXPECT_EQ(r[4].failure_reason_code, "detail");

  dane::DestinationPlan bogus_mx;
  bogus_mx.domain = "example.net";
  bogus_mx.failure = dane::Outcome::dnssec_invalid;
  r = session_results(bogus_mx, {}, 1000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result_type, "dnssec-invalid");
  EXPECT_EQ(r[0].mx_host, "");
  bogus_mx.failure = dane::Outcome::dns_failed;
  EXPECT_TRUE(session_results(bogus_mx, {}, 1000).empty()) << "no RFC 8460 result type";
}

TEST(SessionResults, PlanFailureNamesEachHost) {
  dane::DestinationPlan plan;
  plan.domain = "example.org";
  plan.failure = dane::Outcome::tlsa_invalid;
  for (const char* name : {"mx1.example.org", "mx2.example.org"}) {
    dane::HostPlan h;
    h.name = name;
    h.requirement = dane::Requirement::unusable;
    h.failure = dane::Outcome::dnssec_invalid;
    h.reason = "bogus TLSA";
    plan.hosts.push_back(h);
  }
  std::vector<tlsrpt::SessionResult> r = session_results(plan, {}, 1000);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].mx_host, "mx1.example.org");
  EXPECT_EQ(r[0].receiving_mx_hostname, "mx1.example.org");
  EXPECT_EQ(r[0].result_type, "dnssec-invalid");
  EXPECT_EQ(r[1].mx_host, "mx2.example.org");
}

TEST(SessionResults, UnreachedBackupIsNotCounted) {
  dane::DestinationPlan plan;
  plan.domain = "example.org";
  dane::HostPlan primary;
  primary.name = "mx1.example.org";
  primary.preference = 10;
  primary.requirement = dane::Requirement::opportunistic;
  dane::HostPlan backup;
  backup.name = "mx2.example.org";
  backup.preference = 20;
  backup.requirement = dane::Requirement::unusable;
  backup.failure = dane::Outcome::dnssec_invalid;
  plan.hosts = {primary, backup};

  delivery::BatchResult batch;
  batch.sessions = {session("mx1.example.org", std::nullopt, dane::Authentication::opportunistic)};
  delivery::AttemptResult message;
  message.tried = {batch.sessions[0]};
  message.tried[0].mail_sent = true;
  batch.messages = {message};
  std::vector<tlsrpt::SessionResult> r = session_results(plan, batch, 1000);
  ASSERT_EQ(r.size(), 1u) << "the backup was never tried";
  EXPECT_TRUE(r[0].success);

  // The primary failed: delivery went on to the backup, whose failure counts.
  batch.sessions[0].failure = dane::Outcome::connection_failed;
  batch.messages[0].tried[0].mail_sent = false;
  r = session_results(plan, batch, 1000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].mx_host, "mx2.example.org");
  EXPECT_EQ(r[0].result_type, "dnssec-invalid");
}

TEST(SessionResults, NonTlsFailuresAreNotReported) {
  dane::DestinationPlan plan;
  plan.domain = "example.org";
  dane::HostPlan host;
  host.name = "mx1.example.org";
  host.requirement = dane::Requirement::opportunistic;
  plan.hosts = {host};
  // 421 at EHLO, a timeout or a dropped connection: connected, no policy
  // failure, no TLS, no transaction.
  delivery::BatchResult batch;
  batch.sessions = {session("mx1.example.org", std::nullopt, dane::Authentication::none)};
  batch.sessions[0].detail = "421 4.3.2 shutting down";
  delivery::AttemptResult message;
  message.tried = {batch.sessions[0]};
  batch.messages = {message};
  EXPECT_TRUE(session_results(plan, batch, 1000).empty());
}

TEST(ReceivedFields, CountsOnlyTheHeaderSection) {
  EXPECT_EQ(received_fields(""), 0u);
  EXPECT_EQ(received_fields("Subject: x\r\n\r\nReceived: in the body\r\n"), 0u);
  EXPECT_EQ(received_fields("Received: a\r\n\tfolded\r\nRECEIVED: b\r\nreceived:c\r\n"
                            "X-Received: no\r\nSubject: s\r\n\r\nReceived: body\r\n"),
            3u);
  EXPECT_EQ(received_fields("Received: a\nReceived: b\n\nReceived: c\n"), 2u) << "bare LF";
}

}  // namespace
}  // namespace danemta::relay
