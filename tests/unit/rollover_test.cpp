// The rollover guard's rules (inbound/rollover.hpp) with a fake clock and
// hand-made chains and lookups.
#include "inbound/rollover.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using danemta::dns::TlsaRecord;
using namespace danemta::inbound;

std::vector<std::uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

danemta::tls::CertSummary cert(const std::string& name, std::int64_t not_after) {
  danemta::tls::CertSummary c;
  c.subject = "CN=" + name;
  c.spki_der = bytes(name + "-spki");
  c.cert_der = bytes(name + "-cert");
  c.spki_sha256 = std::string(64, 'a');
  c.not_after_epoch = not_after;
  c.not_after = "then";
  return c;
}

// A chain: its leaf, and an issuer when `ca` is not empty.
Chain chain(const std::string& name, std::int64_t not_after = 1'000'000'000,
            const std::string& ca = "") {
  Chain c;
  c.certs.push_back(cert(name, not_after));
  if (!ca.empty()) c.certs.push_back(cert(ca, not_after * 2));
  c.fingerprint = name;
  return c;
}

// Full-data records (matching type 0), so no digest is needed here.
TlsaRecord ee(const Chain& c) {
  return {3, 1, 0, c.certs.front().spki_der};
}
TlsaRecord ta(const Chain& c) {
  return {2, 1, 0, c.certs.at(1).spki_der};
}

Lookup secure(const std::string& name, std::vector<TlsaRecord> records, std::uint32_t ttl) {
  Lookup l;
  l.mx_name = name;
  l.owner = "_25._tcp." + name;
  l.secure = true;
  l.ttl = ttl;
  l.records = std::move(records);
  return l;
}

Params params(int margin = 30, int warning_days = 14) {
  Params p;
  p.margin = std::chrono::seconds(margin);
  p.expiry_warning = std::chrono::seconds(warning_days * 86400);
  return p;
}

TEST(Rollover, NewCertificateWithoutRecordIsNotServed) {
  const Chain old_c = chain("old"), new_c = chain("new");
  SlotState state;
  const Decision d =
      decide(old_c, &new_c, {secure("mx.example", {ee(old_c)}, 60)}, state, 1000, params());
  EXPECT_FALSE(d.switch_now);
  EXPECT_TRUE(d.served_published);
  EXPECT_FALSE(d.candidate_published);
  EXPECT_EQ(d.ready_at, 0);
  ASSERT_EQ(d.to_publish.size(), 1u);
  EXPECT_EQ(d.to_publish[0], "_25._tcp.mx.example. IN TLSA 3 1 1 " + std::string(64, 'a'));
  EXPECT_EQ(state.candidate, "new");
  EXPECT_TRUE(state.seen.empty());
}

TEST(Rollover, WaitsForTheTtlPlusMarginAfterTheRecordIsFirstSeen) {
  const Chain old_c = chain("old"), new_c = chain("new");
  SlotState state;
  const std::vector<Lookup> both = {secure("mx.example", {ee(old_c), ee(new_c)}, 60)};
  Decision d = decide(old_c, &new_c, both, state, 1000, params(30));
  EXPECT_FALSE(d.switch_now);
  EXPECT_TRUE(d.candidate_published);
  EXPECT_EQ(d.ready_at, 1091);  // TTL + margin + the clock's second
  ASSERT_EQ(state.seen.size(), 1u);
  EXPECT_EQ(state.seen[0].first_seen, 1000);
  EXPECT_EQ(state.seen[0].ttl, 60u);
  // A cache counting the TTL down does not shorten the wait.
  d = decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 5)}, state, 1090,
             params(30));
  EXPECT_FALSE(d.switch_now);
  EXPECT_EQ(d.ready_at, 1091);
  d = decide(old_c, &new_c, both, state, 1091, params(30));
  EXPECT_TRUE(d.switch_now) << d.why;
}

TEST(Rollover, TheWaitCountsFromTheStoredFirstSighting) {
  // A restart reads the sightings back (guard.cpp): the wait is neither
  // reset nor skipped.
  const Chain old_c = chain("old"), new_c = chain("new");
  const std::vector<Lookup> both = {secure("mx.example", {ee(old_c), ee(new_c)}, 60)};
  SlotState before;
  decide(old_c, &new_c, both, before, 500, params(30));
  SlotState restored = before;  // what the state file held
  Decision d = decide(old_c, &new_c, both, restored, 590, params(30));
  EXPECT_FALSE(d.switch_now);
  EXPECT_EQ(d.ready_at, 591);
  d = decide(old_c, &new_c, both, restored, 591, params(30));
  EXPECT_TRUE(d.switch_now);
}

TEST(Rollover, AWithdrawnRecordStartsTheWaitAgain) {
  const Chain old_c = chain("old"), new_c = chain("new");
  SlotState state;
  decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, state, 1000, params());
  decide(old_c, &new_c, {secure("mx.example", {ee(old_c)}, 60)}, state, 1050, params());
  EXPECT_TRUE(state.seen.empty());
  Decision d = decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, state,
                      1060, params());
  EXPECT_EQ(d.ready_at, 1151);
  d = decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, state, 1100,
             params());
  EXPECT_FALSE(d.switch_now);
}

TEST(Rollover, EveryMxNameMustPublishIt) {
  const Chain old_c = chain("old"), new_c = chain("new");
  SlotState state;
  const std::vector<Lookup> lookups = {secure("mx1.example", {ee(old_c), ee(new_c)}, 60),
                                       secure("mx2.example", {ee(old_c)}, 60)};
  const Decision d = decide(old_c, &new_c, lookups, state, 1000, params());
  decide(old_c, &new_c, lookups, state, 1'000'000, params());
  EXPECT_FALSE(decide(old_c, &new_c, lookups, state, 1'000'000, params()).switch_now);
  EXPECT_FALSE(d.candidate_published);
  ASSERT_EQ(d.to_publish.size(), 1u);
  EXPECT_EQ(d.to_publish[0].rfind("_25._tcp.mx2.example. IN TLSA 3 1 1 ", 0), 0u);
  ASSERT_EQ(d.names.size(), 2u);
  EXPECT_TRUE(d.names[0].candidate_published);
  EXPECT_FALSE(d.names[1].candidate_published);
}

TEST(Rollover, AnUnpublishedServedCertificateGivesWayAtOnce) {
  // The operator replaced the record before the certificate: the served
  // one matches nothing, the new one matches everywhere.
  const Chain old_c = chain("old"), new_c = chain("new");
  SlotState state;
  const Decision d =
      decide(old_c, &new_c, {secure("mx.example", {ee(new_c)}, 3600)}, state, 1000, params());
  EXPECT_TRUE(d.switch_now);
  EXPECT_FALSE(d.served_published);
}

TEST(Rollover, ARecordThatAlreadyMatchesTheServedChainNeedsNoWait) {
  // A new key under the same CA, whose DANE-TA(2) record is published.
  const Chain old_c = chain("old", 1'000'000'000, "ca"), new_c = chain("new", 1'000'000'000, "ca");
  SlotState state;
  const Decision d =
      decide(old_c, &new_c, {secure("mx.example", {ta(old_c)}, 3600)}, state, 1000, params());
  EXPECT_TRUE(d.switch_now) << d.why;
}

TEST(Rollover, RecordsForAChainWithAnIssuerIncludeDaneTa) {
  const Chain c = chain("leaf", 1'000'000'000, "ca");
  const std::vector<TlsaRecord> r = records_for(c);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].usage, 3);
  EXPECT_EQ(r[1].usage, 2);
  EXPECT_EQ(r[1].selector, 1);
  EXPECT_EQ(r[1].mtype, 1);
  EXPECT_EQ(r[1].data.size(), 32u);
}

TEST(Rollover, InsecureOrFailedLookupsPublishNothing) {
  const Chain old_c = chain("old"), new_c = chain("new");
  Lookup insecure = secure("mx.example", {ee(old_c), ee(new_c)}, 60);
  insecure.secure = false;
  insecure.problem = "insecure";
  SlotState state;
  Decision d = decide(old_c, &new_c, {insecure}, state, 1000, params());
  d = decide(old_c, &new_c, {insecure}, state, 1'000'000, params());
  EXPECT_FALSE(d.switch_now);
  EXPECT_FALSE(d.served_published);
  EXPECT_EQ(d.names.at(0).problem, "insecure");
  EXPECT_TRUE(state.seen.empty());
}

TEST(Rollover, NoMxNamesMeansNoGuard) {
  const Chain old_c = chain("old"), new_c = chain("new");
  SlotState state;
  EXPECT_TRUE(decide(old_c, &new_c, {}, state, 1000, params()).switch_now);
}

TEST(Rollover, ExpiryWithoutAServableSuccessorIsReported) {
  const std::int64_t now = 1'000'000;
  const Chain old_c = chain("old", now + 3 * 86400), new_c = chain("new", now + 400 * 86400);
  SlotState state;
  Decision d = decide(old_c, &new_c, {secure("mx.example", {ee(old_c)}, 60)}, state, now, params());
  EXPECT_TRUE(d.expiring);
  EXPECT_NE(d.expiry_problem.find("no TLSA record matching the new one is published"),
            std::string::npos)
      << d.expiry_problem;
  d = decide(old_c, nullptr, {secure("mx.example", {ee(old_c)}, 60)}, state, now, params());
  EXPECT_TRUE(d.expiring);
  EXPECT_NE(d.expiry_problem.find("no new certificate"), std::string::npos);
  // Published and past its wait: switched, nothing to report.
  SlotState s2;
  decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, s2, now, params());
  d = decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, s2, now + 91,
             params());
  EXPECT_TRUE(d.switch_now);
  EXPECT_FALSE(d.expiring);
  // Far from expiry: quiet.
  EXPECT_FALSE(decide(chain("x", now + 100 * 86400), nullptr, {}, state, now, params()).expiring);
}

TEST(Rollover, AnotherCandidateForgetsTheSightings) {
  const Chain old_c = chain("old"), new_c = chain("new"), newer = chain("newer");
  SlotState state;
  decide(old_c, &new_c, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, state, 1000, params());
  ASSERT_EQ(state.seen.size(), 1u);
  decide(old_c, &newer, {secure("mx.example", {ee(old_c), ee(new_c)}, 60)}, state, 1001, params());
  EXPECT_EQ(state.candidate, "newer");
  EXPECT_TRUE(state.seen.empty());
  // The served chain as "candidate" is no candidate.
  decide(old_c, &old_c, {secure("mx.example", {ee(old_c)}, 60)}, state, 1002, params());
  EXPECT_EQ(state.candidate, "");
}

}  // namespace
