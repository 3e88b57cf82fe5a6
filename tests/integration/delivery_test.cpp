// DANE-verified delivery end to end: a signed lab world (NSD + libunbound),
// real OpenSSL handshakes, and lab receivers on loopback addresses that
// record what they got. Each test uses its own 127.0.N.0/24 addresses.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "dane/plan.hpp"
#include "delivery/deliver.hpp"
#include "dns/unbound_resolver.hpp"
#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/receiver.hpp"
#include "lab/receivers.hpp"
#include "tls/context.hpp"

namespace {

using namespace danemta;
using lab::Behaviour;
using lab::Receiver;
using nlohmann::json;

const std::string kBody =
    "From: a@sender.example\r\nTo: b@dest.example\r\nSubject: hi\r\n\r\nline one\r\n.dotted\r\n";

struct Attempt {
  dane::DestinationPlan plan;
  delivery::AttemptResult result;
};

using lab::Receivers;

Behaviour with_chain(lab::Chain chain, const std::string& hostname) {
  return Receivers::with_chain(std::move(chain), hostname);
}

Attempt deliver_to(const lab::World& world, const std::string& domain, std::uint16_t port,
                   std::vector<std::string> rcpts = {"b@dest.example"},
                   config::TlsPolicy policy = config::TlsPolicy::dane) {
  boost::asio::io_context io;
  config::DnsConfig dns;
  dns.forwarders = {world.resolver()};
  dns.trust_anchor_file = world.trust_anchor_file();
  dns.timeout = std::chrono::seconds(10);
  auto resolver = dns::UnboundResolver::create(io, dns);
  EXPECT_TRUE(resolver) << resolver.error().message;
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  EXPECT_TRUE(tls::configure_client_context(ctx.native_handle()));

  Attempt run;
  delivery::Message msg{"Q1", "a@sender.example", std::move(rcpts), kBody};
  delivery::DeliveryOptions options;
  options.helo_name = "relay.sender.example";
  options.client.connect = std::chrono::seconds(5);
  options.client.greeting = options.client.ehlo = options.client.starttls = std::chrono::seconds(5);
  options.client.mail = options.client.rcpt = options.client.data_init = options.client.data_block =
      options.client.dot = std::chrono::seconds(5);
  dane::plan_destination(**resolver, domain, dane::PlanOptions{policy, port},
                         [&](dane::DestinationPlan plan, dane::AnswerSet) {
                           run.plan = plan;
                           boost::asio::co_spawn(
                               io, delivery::deliver(ctx, std::move(plan), msg, options),
                               [&](std::exception_ptr e, delivery::AttemptResult r) {
                                 if (e) std::rethrow_exception(e);
                                 run.result = std::move(r);
                               });
                         });
  io.run();
  return run;
}

std::string spec(std::vector<json> zones) {
  return json{{"zones", zones}}.dump();
}

std::string tlsa_line(const std::string& owner, std::uint16_t port, const std::string& rdata) {
  return "_" + std::to_string(port) + "._tcp." + owner + " TLSA " + rdata;
}

bool mail_in_clear(const Receiver& r) {
  for (const lab::Session& s : r.sessions())
    if (s.verb_in_clear("MAIL") || s.verb_in_clear("RCPT") || s.verb_in_clear("DATA")) return true;
  return false;
}

std::size_t messages(const Receiver& r) {
  std::size_t n = 0;
  for (const lab::Session& s : r.sessions()) n += s.messages.size();
  return n;
}

TEST(Delivery, MatchingDaneEeIsDaneVerified) {
  Receivers rx(21);
  auto chain = lab::self_signed({"mx1.d21.example"});
  Receiver& mx1 = rx.add(10, with_chain(chain, "mx1.d21.example"));
  lab::World world(spec({{{"name", "d21.example"},
                          {"records",
                           {"@ MX 10 mx1", "mx1 A " + rx.ip(10),
                            tlsa_line("mx1", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d21.example", rx.port());
  ASSERT_EQ(run.result.recipients.size(), 1u);
  const auto& r = run.result.recipients[0];
  EXPECT_EQ(r.status, delivery::Status::delivered) << r.diagnostic;
  EXPECT_EQ(r.tls, dane::Authentication::dane_verified);
  EXPECT_EQ(r.dsn.substr(0, 1), "2");
  auto sessions = mx1.sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0].starttls_completed);
  EXPECT_EQ(sessions[0].sni, "mx1.d21.example");
  ASSERT_EQ(sessions[0].messages.size(), 1u);
  EXPECT_TRUE(sessions[0].messages[0].in_tls);
  EXPECT_EQ(sessions[0].messages[0].data, kBody);
  EXPECT_FALSE(mail_in_clear(mx1));
  ASSERT_EQ(run.result.tried.size(), 1u);
  EXPECT_EQ(run.result.tried[0].facts.protocol.substr(0, 4), "TLSv");
}

TEST(Delivery, StaleTlsaTriesNextMxThenDefers) {
  Receivers rx(22);
  auto current = lab::self_signed({"mx1.d22.example"});
  auto old_key = lab::self_signed({"mx1.d22.example"});
  auto good2 = lab::self_signed({"mx2.d22.example"});
  Receiver& mx1 = rx.add(10, with_chain(current, "mx1.d22.example"));
  Receiver& mx2 = rx.add(11, with_chain(good2, "mx2.d22.example"));
  Receiver& solo = rx.add(12, with_chain(current, "solo.e22.example"));
  lab::World world(
      spec({{{"name", "d22.example"},
             {"records",
              {"@ MX 10 mx1", "@ MX 20 mx2", "mx1 A " + rx.ip(10), "mx2 A " + rx.ip(11),
               tlsa_line("mx1", rx.port(), lab::tlsa_rdata(old_key.leaf, 3, 1, 1)),
               tlsa_line("mx2", rx.port(), lab::tlsa_rdata(good2.leaf, 3, 1, 1))}}},
            {{"name", "e22.example"},
             {"records",
              {"@ MX 10 solo", "solo A " + rx.ip(12),
               tlsa_line("solo", rx.port(), lab::tlsa_rdata(old_key.leaf, 3, 1, 1))}}}}));

  Attempt two = deliver_to(world, "d22.example", rx.port());
  EXPECT_EQ(two.result.recipients[0].status, delivery::Status::delivered);
  EXPECT_NE(two.result.recipients[0].relay.find("mx2.d22.example"), std::string::npos);
  ASSERT_EQ(two.result.tried.size(), 2u);
  EXPECT_EQ(two.result.tried[0].failure, dane::Outcome::tlsa_invalid);
  EXPECT_FALSE(mail_in_clear(mx1));
  EXPECT_EQ(messages(mx1), 0u);
  EXPECT_EQ(messages(mx2), 1u);

  Attempt one = deliver_to(world, "e22.example", rx.port());
  const auto& r = one.result.recipients[0];
  EXPECT_EQ(r.status, delivery::Status::deferred);
  EXPECT_EQ(r.outcome, dane::Outcome::tlsa_invalid);
  EXPECT_EQ(r.dsn, "4.7.323");
  EXPECT_EQ(messages(solo), 0u);
  for (const lab::Session& s : solo.sessions())
    for (const lab::Command& c : s.commands) EXPECT_NE(c.line.substr(0, 4), "MAIL") << c.line;
}

TEST(Delivery, CurrentPlusNextRecordsDeliver) {
  Receivers rx(23);
  auto current = lab::self_signed({"mx.d23.example"});
  auto next = lab::self_signed({"mx.d23.example"});
  rx.add(10, with_chain(current, "mx.d23.example"));
  lab::World world(
      spec({{{"name", "d23.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(next.leaf, 3, 1, 1)),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(current.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d23.example", rx.port());
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::delivered)
      << run.result.recipients[0].diagnostic;
}

TEST(Delivery, DaneTaWithPrivateCaChecksNames) {
  Receivers rx(24);
  auto good = lab::private_ca({"mx.d24.example"});
  auto wrong = lab::private_ca({"other.example"});
  rx.add(10, with_chain(good, "mx.d24.example"));
  Receiver& bad = rx.add(11, with_chain(wrong, "mx.e24.example"));
  lab::World world(
      spec({{{"name", "d24.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(*good.issuer(), 2, 1, 1))}}},
            {{"name", "e24.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(11),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(*wrong.issuer(), 2, 1, 1))}}}}));
  Attempt ok = deliver_to(world, "d24.example", rx.port());
  EXPECT_EQ(ok.result.recipients[0].status, delivery::Status::delivered)
      << ok.result.recipients[0].diagnostic;
  EXPECT_EQ(ok.result.recipients[0].tls, dane::Authentication::dane_verified);

  Attempt mismatch = deliver_to(world, "e24.example", rx.port());
  EXPECT_EQ(mismatch.result.recipients[0].status, delivery::Status::deferred);
  EXPECT_EQ(mismatch.result.recipients[0].outcome, dane::Outcome::certificate_host_mismatch)
      << mismatch.result.recipients[0].diagnostic;
  EXPECT_EQ(mismatch.result.recipients[0].dsn, "4.7.325");
  EXPECT_EQ(messages(bad), 0u);
}

TEST(Delivery, ExpiredLeafPassesUnderDaneEeAndFailsUnderDaneTa) {
  Receivers rx(25);
  auto expired =
      lab::private_ca({"mx.d25.example", "mx.e25.example"}, lab::KeyType::ecdsa_p256, true);
  rx.add(10, with_chain(expired, "mx.d25.example"));
  rx.add(11, with_chain(expired, "mx.e25.example"));
  lab::World world(
      spec({{{"name", "d25.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(expired.leaf, 3, 1, 1))}}},
            {{"name", "e25.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(11),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(*expired.issuer(), 2, 1, 1))}}}}));
  Attempt ee = deliver_to(world, "d25.example", rx.port());
  EXPECT_EQ(ee.result.recipients[0].status, delivery::Status::delivered)
      << ee.result.recipients[0].diagnostic;
  Attempt ta = deliver_to(world, "e25.example", rx.port());
  EXPECT_EQ(ta.result.recipients[0].outcome, dane::Outcome::certificate_expired)
      << ta.result.recipients[0].diagnostic;
  EXPECT_EQ(ta.result.recipients[0].dsn, "4.7.322");
}

TEST(Delivery, DaneHostWithoutStarttlsGetsNoMail) {
  Receivers rx(26);
  auto chain = lab::self_signed({"mx.d26.example"});
  Behaviour b = with_chain(chain, "mx.d26.example");
  b.offer_starttls = false;
  Receiver& mx = rx.add(10, b);
  lab::World world(spec({{{"name", "d26.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d26.example", rx.port());
  const auto& r = run.result.recipients[0];
  EXPECT_EQ(r.status, delivery::Status::deferred);
  EXPECT_EQ(r.outcome, dane::Outcome::starttls_not_supported);
  EXPECT_EQ(r.dsn, "4.7.321");
  ASSERT_TRUE(mx.wait_closed(1));
  auto sessions = mx.sessions();
  ASSERT_EQ(sessions.size(), 1u);
  for (const lab::Command& c : sessions[0].commands) {
    EXPECT_NE(c.line.substr(0, 4), "MAIL") << "no MAIL command may reach a DANE host in clear";
    EXPECT_NE(c.line.substr(0, 4), "RCPT");
  }
}

TEST(Delivery, AllTlsaUnusableMeansEncryptedUnauthenticated) {
  Receivers rx(27);
  auto chain = lab::self_signed({"mx.d27.example"});
  Receiver& mx = rx.add(10, with_chain(chain, "mx.d27.example"));
  lab::World world(
      spec({{{"name", "d27.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10), tlsa_line("mx", rx.port(), "3 1 1 00"),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 1, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d27.example", rx.port());
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::delivered);
  EXPECT_EQ(run.result.recipients[0].tls, dane::Authentication::mandatory_unauthenticated);
  EXPECT_FALSE(mail_in_clear(mx));
}

TEST(Delivery, InsecureZoneIsOpportunisticAndPlaintextWithoutStarttls) {
  Receivers rx(28);
  auto chain = lab::self_signed({"unrelated.example"});
  Receiver& tls_mx = rx.add(10, with_chain(chain, "mx.d28.example"));
  Behaviour plain;
  plain.hostname = "mx.e28.example";
  Receiver& plain_mx = rx.add(11, plain);
  lab::World world(spec(
      {{{"name", "d28.example"}, {"ds", false}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(10)}}},
       {{"name", "e28.example"},
        {"signed", false},
        {"records", {"@ MX 10 mx", "mx A " + rx.ip(11)}}}}));
  Attempt opp = deliver_to(world, "d28.example", rx.port());
  EXPECT_EQ(opp.result.recipients[0].status, delivery::Status::delivered);
  EXPECT_EQ(opp.result.recipients[0].tls, dane::Authentication::opportunistic);
  EXPECT_EQ(messages(tls_mx), 1u);
  Attempt clear = deliver_to(world, "e28.example", rx.port());
  EXPECT_EQ(clear.result.recipients[0].status, delivery::Status::delivered);
  EXPECT_EQ(clear.result.recipients[0].tls, dane::Authentication::none);
  ASSERT_EQ(messages(plain_mx), 1u);
  EXPECT_FALSE(plain_mx.sessions()[0].messages[0].in_tls);
}

TEST(Delivery, DigestAgility) {
  Receivers rx(29);
  auto chain = lab::self_signed({"mx.d29.example"});
  auto other = lab::self_signed({"mx.d29.example"});
  rx.add(10, with_chain(chain, "mx.d29.example"));
  rx.add(11, with_chain(chain, "mx.e29.example"));
  lab::World world(
      spec({// 3 1 1 mismatched + 3 1 2 matching: only the SHA2-512 record counts: pass.
            {{"name", "d29.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(other.leaf, 3, 1, 1)),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 2))}}},
            // 3 1 2 mismatched + 3 1 1 matching: the weaker digest is ignored: fail.
            {{"name", "e29.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(11),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(other.leaf, 3, 1, 2)),
               tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt pass = deliver_to(world, "d29.example", rx.port());
  EXPECT_EQ(pass.result.recipients[0].status, delivery::Status::delivered)
      << pass.result.recipients[0].diagnostic;
  Attempt fail = deliver_to(world, "e29.example", rx.port());
  EXPECT_EQ(fail.result.recipients[0].outcome, dane::Outcome::tlsa_invalid)
      << fail.result.recipients[0].diagnostic;
}

TEST(Delivery, SniIsTheTlsaBaseDomainOfACnameHost) {
  Receivers rx(30);
  auto chain = lab::self_signed({"smtp.hoster30.example"});
  Receiver& mx = rx.add(10, with_chain(chain, "smtp.hoster30.example"));
  lab::World world(spec(
      {{{"name", "d30.example"}, {"records", {"@ MX 10 mx", "mx CNAME smtp.hoster30.example."}}},
       {{"name", "hoster30.example"},
        {"records",
         {"smtp A " + rx.ip(10),
          tlsa_line("smtp", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d30.example", rx.port());
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::delivered);
  ASSERT_FALSE(mx.sessions().empty());
  EXPECT_EQ(mx.sessions()[0].sni, "smtp.hoster30.example");
}

TEST(Delivery, Ipv6Loopback) {
  Receivers rx(31);
  auto chain = lab::self_signed({"mx.d31.example"});
  Receiver& first = rx.add(10, with_chain(chain, "mx.d31.example"));
  Receiver& v6 = rx.add(0, with_chain(chain, "mx.d31.example"));
  (void)first;
  lab::World world(spec({{{"name", "d31.example"},
                          {"records",
                           {"@ MX 10 mx", "mx AAAA ::1",
                            tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d31.example", rx.port());
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::delivered)
      << run.result.recipients[0].diagnostic;
  EXPECT_NE(run.result.recipients[0].relay.find("[::1]"), std::string::npos);
  EXPECT_EQ(messages(v6), 1u);
}

TEST(Delivery, PerRecipientServerReplies) {
  Receivers rx(32);
  auto chain = lab::self_signed({"mx.d32.example"});
  Behaviour b = with_chain(chain, "mx.d32.example");
  b.rcpt_replies["<gone@dest.example>"] = {550, "5.1.1 no such user"};
  b.rcpt_replies["gone@dest.example"] = {550, "5.1.1 no such user"};
  b.rcpt_replies["<busy@dest.example>"] = {450, "4.2.1 mailbox busy"};
  b.rcpt_replies["busy@dest.example"] = {450, "4.2.1 mailbox busy"};
  rx.add(10, b);
  lab::World world(spec({{{"name", "d32.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d32.example", rx.port(),
                           {"ok@dest.example", "gone@dest.example", "busy@dest.example"});
  ASSERT_EQ(run.result.recipients.size(), 3u);
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::delivered);
  EXPECT_EQ(run.result.recipients[1].status, delivery::Status::bounced);
  EXPECT_EQ(run.result.recipients[1].dsn, "5.1.1");
  EXPECT_EQ(run.result.recipients[2].status, delivery::Status::deferred);
  EXPECT_EQ(run.result.recipients[2].dsn, "4.2.1");
}

TEST(Delivery, BogusTlsaNeverConnects) {
  Receivers rx(33);
  auto chain = lab::self_signed({"mx.d33.example"});
  Receiver& mx = rx.add(10, with_chain(chain, "mx.d33.example"));
  lab::World world(spec({{{"name", "d33.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}},
                          {"tamper", {"_" + std::to_string(rx.port()) + "._tcp.mx TLSA"}}}}));
  Attempt run = deliver_to(world, "d33.example", rx.port());
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::deferred);
  EXPECT_EQ(run.result.recipients[0].dsn, "4.7.324");
  EXPECT_TRUE(mx.sessions().empty());
}

TEST(Delivery, MailRefusedWithFourXxIsDeferredWithTheServersCode) {
  Receivers rx(34);
  auto chain = lab::self_signed({"mx.d34.example"});
  Behaviour b = with_chain(chain, "mx.d34.example");
  b.replies[lab::Stage::mail] = {451, "4.3.0 try later"};
  rx.add(10, b);
  lab::World world(spec({{{"name", "d34.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            tlsa_line("mx", rx.port(), lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Attempt run = deliver_to(world, "d34.example", rx.port());
  EXPECT_EQ(run.result.recipients[0].status, delivery::Status::deferred);
  EXPECT_EQ(run.result.recipients[0].dsn, "4.3.0");
  EXPECT_NE(run.result.recipients[0].diagnostic.find("try later"), std::string::npos);
}

}  // namespace

namespace {

using namespace danemta;

TEST(Delivery, BatchSharesOneDaneSession) {
  lab::Receivers rx(35);
  auto chain = lab::self_signed({"mx.d35.example"});
  lab::Behaviour b = lab::Receivers::with_chain(chain, "mx.d35.example");
  b.rcpt_replies["<gone@d35.example>"] = {550, "5.1.1 no such user"};
  b.rcpt_replies["gone@d35.example"] = {550, "5.1.1 no such user"};
  lab::Receiver& mx = rx.add(10, b);
  lab::World world(
      nlohmann::json{{"zones",
                      {{{"name", "d35.example"},
                        {"records",
                         {"@ MX 10 mx", "mx A " + rx.ip(10),
                          rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}}}
          .dump());

  boost::asio::io_context io;
  config::DnsConfig dns;
  dns.forwarders = {world.resolver()};
  dns.trust_anchor_file = world.trust_anchor_file();
  auto resolver = dns::UnboundResolver::create(io, dns);
  ASSERT_TRUE(resolver);
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  ASSERT_TRUE(tls::configure_client_context(ctx.native_handle()));
  std::vector<delivery::Message> batch{
      {"Q1", "a@sender.example", {"one@d35.example"}, "Subject: 1\r\n\r\none\r\n"},
      {"Q2", "a@sender.example", {"gone@d35.example"}, "Subject: 2\r\n\r\ntwo\r\n"},
      {"Q3",
       "a@sender.example",
       {"three@d35.example", "four@d35.example"},
       "Subject: 3\r\n\r\nthree\r\n"}};
  std::vector<delivery::AttemptResult> results;
  std::size_t sessions_tried = 0;
  dane::plan_destination(
      **resolver, "d35.example", dane::PlanOptions{config::TlsPolicy::dane, rx.port()},
      [&](dane::DestinationPlan plan, dane::AnswerSet) {
        boost::asio::co_spawn(
            io, delivery::deliver_batch(ctx, std::move(plan), batch, delivery::DeliveryOptions{}),
            [&](std::exception_ptr e, delivery::BatchResult r) {
              if (e) std::rethrow_exception(e);
              results = std::move(r.messages);
              sessions_tried = r.sessions.size();
            });
      });
  io.run();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(sessions_tried, 1u);
  EXPECT_EQ(results[0].recipients[0].status, delivery::Status::delivered);
  EXPECT_EQ(results[1].recipients[0].status, delivery::Status::bounced);
  EXPECT_EQ(results[1].recipients[0].dsn, "5.1.1");
  EXPECT_EQ(results[2].recipients[0].status, delivery::Status::delivered);
  EXPECT_EQ(results[2].recipients[1].status, delivery::Status::delivered);
  EXPECT_EQ(results[2].recipients[1].tls, dane::Authentication::dane_verified);
  auto sessions = mx.sessions();
  ASSERT_EQ(sessions.size(), 1u) << "one TLS handshake for the whole batch";
  EXPECT_EQ(sessions[0].messages.size(), 2u);
  EXPECT_FALSE(mail_in_clear(mx));
}

}  // namespace
