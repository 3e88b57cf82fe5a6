// Scheduling knobs through the real relay: [transport] next hops (a
// smarthost by name with DANE on its own port, an IP address with mandatory
// TLS, "direct" exemptions), [concurrency] per destination, a route's own
// concurrency, and [delivery] source_address.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using lab::RelaySetup;

// Puts `lines` at the top of the config's [delivery] section.
void add_to_delivery(const RelaySetup& setup, const std::string& lines) {
  std::ifstream in(setup.config_path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  const auto at = s.find("[delivery]\n");
  ASSERT_NE(at, std::string::npos);
  s.insert(at + 11, lines);
  std::ofstream(setup.config_path, std::ios::trunc) << s;
}

// Whether the session received a command with this verb (case-insensitive).
bool has_command(const lab::Session& s, const std::string& verb) {
  for (const lab::Command& c : s.commands) {
    std::string v = c.line.substr(0, c.line.find(' '));
    for (char& ch : v) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (v == verb) return true;
  }
  return false;
}

std::vector<std::string> recipients_of(const lab::Receiver& r) {
  std::vector<std::string> out;
  for (const lab::Session& s : r.sessions())
    for (const lab::Message& m : s.messages)
      for (const std::string& to : m.rcpt_to) out.push_back(to);
  std::sort(out.begin(), out.end());
  return out;
}

// Counts the sessions that are inside their end-of-data at once; each stays
// there until the test releases them (at most 15 s).
struct Overlap {
  std::mutex m;
  std::condition_variable cv;
  int inside = 0;
  int most = 0;
  bool released = false;

  std::function<void(const lab::Session&, std::size_t)> hook() {
    return [this](const lab::Session&, std::size_t) {
      std::unique_lock lock(m);
      ++inside;
      most = std::max(most, inside);
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(15), [this] { return released; });
      --inside;
    };
  }
  // Waits until `n` sessions were inside at once (false after `limit`).
  bool reached(int n, std::chrono::milliseconds limit) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, limit, [this, n] { return most >= n; });
  }
  void release() {
    std::lock_guard lock(m);
    released = true;
    cv.notify_all();
  }
  int peak() {
    std::lock_guard lock(m);
    return most;
  }
};

TEST(RelayRouting, TransportRoutesKeepTheirOwnTlsPolicy) {
  // 127.0.180.x: the destinations' own MX hosts on the lab's delivery port;
  // 127.0.181.x: next hops on a port of their own (a submission-style smarthost).
  Receivers mx(180);
  Receivers hops(181);
  auto chain = lab::self_signed({"mx.direct180.example", "mx.routed180.example"});
  auto hop_chain = lab::self_signed({"relay.hop180.example", "stale.hop180.example"});
  auto other_chain = lab::self_signed({"relay.hop180.example"});
  lab::Receiver& direct_mx = mx.add(10, Receivers::with_chain(chain, "mx.direct180.example"));
  lab::Receiver& routed_mx = mx.add(11, Receivers::with_chain(chain, "mx.routed180.example"));
  lab::Receiver& hop = hops.add(10, Receivers::with_chain(hop_chain, "relay.hop180.example"));
  lab::Receiver& literal = hops.add(11, Receivers::with_chain(hop_chain, "literal.hop180"));
  // Serves a certificate its TLSA record does not match.
  lab::Receiver& stale = hops.add(12, Receivers::with_chain(other_chain, "stale.hop180.example"));
  // Advertises no STARTTLS: an address next hop with tls = "encrypt" must not get mail.
  lab::Receiver& clear = hops.add(13, lab::Behaviour{});
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  const std::string hop_tlsa = lab::tlsa_rdata(hop_chain.leaf, 3, 1, 1);
  lab::World world(
      lab::spec({{{"name", "direct180.example"},
                  {"records", {"@ MX 10 mx", "mx A " + mx.ip(10), mx.tlsa_line("mx", tlsa)}}},
                 {{"name", "routed180.example"},
                  {"records", {"@ MX 10 mx", "mx A " + mx.ip(11), mx.tlsa_line("mx", tlsa)}}},
                 {{"name", "hop180.example"},
                  {"records",
                   {"relay A " + hops.ip(10), hops.tlsa_line("relay", hop_tlsa),
                    "stale A " + hops.ip(12), hops.tlsa_line("stale", hop_tlsa)}}}}));
  const std::string port = std::to_string(hops.port());
  RelaySetup setup(world, mx.port(),
                   "min_backoff_seconds = 1\nmax_backoff_seconds = 1\n"
                   "\n[transport]\n"
                   "\"*\" = { nexthop = \"[relay.hop180.example]:" +
                       port +
                       "\", tls = \"dane-only\" }\n"
                       "\"direct180.example\" = \"direct\"\n"
                       "\"literal180.example\" = { nexthop = \"[" +
                       hops.ip(11) + "]:" + port +
                       "\", tls = \"encrypt\" }\n"
                       "\"clear180.example\" = { nexthop = \"[" +
                       hops.ip(13) + "]:" + port +
                       "\", tls = \"encrypt\" }\n"
                       "\"stale180.example\" = \"[stale.hop180.example]:" +
                       port + "\"\n");
  add_to_delivery(setup, "source_address = \"127.0.180.99\"\n");
  auto relay = setup.start();
  for (const char* to : {"a@direct180.example", "b@routed180.example", "c@nowhere180.example",
                         "d@literal180.example", "e@clear180.example", "f@stale180.example"})
    ASSERT_EQ(setup.swaks("s@direct180.example", to).exit_code, 0) << to;

  ASSERT_TRUE(lab::wait_messages(hop, 2)) << relay->log();
  ASSERT_TRUE(lab::wait_messages(literal, 1)) << relay->log();
  ASSERT_TRUE(lab::wait_messages(direct_mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("to=<f@stale180.example>")) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("to=<e@clear180.example>")) << relay->log();

  // "direct" keeps a domain on its own MX hosts; everything else takes the
  // "*" route, a domain with no DNS at all included, and its MX host is unused.
  EXPECT_EQ(recipients_of(direct_mx), std::vector<std::string>{"a@direct180.example"});
  EXPECT_EQ(recipients_of(hop),
            (std::vector<std::string>{"b@routed180.example", "c@nowhere180.example"}));
  EXPECT_EQ(lab::messages(routed_mx), 0u);
  EXPECT_EQ(recipients_of(literal), std::vector<std::string>{"d@literal180.example"});

  // The route by name is DANE-verified at _PORT._tcp of the next hop, with it as SNI.
  const std::string log = relay->log();
  EXPECT_NE(
      log.find("to=<b@routed180.example>, relay=relay.hop180.example[" + hops.ip(10) + "]:" + port),
      std::string::npos)
      << log;
  for (const lab::Session& s : hop.sessions()) {
    if (s.messages.empty()) continue;
    EXPECT_TRUE(s.starttls_completed);
    EXPECT_EQ(s.sni, "relay.hop180.example");
  }
  // A line for b with dane-verified TLS.
  const auto b_line = log.find("to=<b@routed180.example>");
  ASSERT_NE(b_line, std::string::npos);
  const std::string b = log.substr(b_line, log.find('\n', b_line) - b_line);
  EXPECT_NE(b.find("status=sent"), std::string::npos) << b;
  EXPECT_NE(b.find("dane-verified"), std::string::npos) << b;

  // The address route got TLS (encrypt); the one that offers none got nothing.
  for (const lab::Session& s : literal.sessions()) {
    if (!s.messages.empty()) {
      EXPECT_TRUE(s.starttls_completed);
    }
  }
  EXPECT_EQ(lab::messages(clear), 0u);
  EXPECT_EQ(lab::messages(stale), 0u) << "a TLSA mismatch at the next hop is never delivered";
  const auto f_line = log.find("to=<f@stale180.example>");
  const std::string f = log.substr(f_line, log.find('\n', f_line) - f_line);
  EXPECT_NE(f.find("status=deferred"), std::string::npos) << f;
  EXPECT_NE(f.find("4.7."), std::string::npos) << f;
  const auto e_line = log.find("to=<e@clear180.example>");
  const std::string e = log.substr(e_line, log.find('\n', e_line) - e_line);
  EXPECT_NE(e.find("status=deferred"), std::string::npos) << e;

  // Every connection came from [delivery] source_address.
  for (const lab::Receiver* r : {&direct_mx, &hop, &literal, &stale, &clear})
    for (const lab::Session& s : r->sessions())
      EXPECT_EQ(s.peer.rfind("127.0.180.99 ", 0), 0u) << s.peer;
  relay->stop(SIGTERM);
}

TEST(RelayRouting, ConcurrencyLimitsPerDestinationAndPerRoute) {
  Receivers rx(182);
  auto chain = lab::self_signed({"mx.one182.example"});
  Overlap one;    // [concurrency] "one182.example" = 1
  Overlap many;   // default limit: proves attempts to one domain do overlap
  Overlap route;  // two domains through a route with concurrency = 1
  lab::Behaviour b1 = Receivers::with_chain(chain, "mx.one182.example");
  b1.on_message = one.hook();
  lab::Behaviour b2 = Receivers::with_chain(chain, "mx.one182.example");
  b2.on_message = many.hook();
  lab::Behaviour b3 = Receivers::with_chain(chain, "mx.one182.example");
  b3.on_message = route.hook();
  lab::Receiver& one_mx = rx.add(10, b1);
  lab::Receiver& many_mx = rx.add(11, b2);
  lab::Receiver& hop = rx.add(12, b3);
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  lab::World world(
      lab::spec({{{"name", "one182.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", tlsa)}}},
                 {{"name", "many182.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(11), rx.tlsa_line("mx", tlsa)}}},
                 {{"name", "hop182.example"},
                  {"records", {"relay A " + rx.ip(12), rx.tlsa_line("relay", tlsa)}}}}));
  RelaySetup setup(world, rx.port(),
                   "\n[concurrency]\n\"one182.example\" = 1\n"
                   "\n[transport]\n\".r182.example\" = { nexthop = \"[relay.hop182.example]\", "
                   "tls = \"may\", concurrency = 1 }\n");
  auto relay = setup.start();

  // A second message is submitted while the first one's attempt is held
  // inside its end-of-data, so only a limit keeps them from running side by
  // side (the scheduler would otherwise start a second attempt at once).
  auto second_attempt_overlaps = [&](Overlap& o, const std::string& first,
                                     const std::string& second) {
    EXPECT_EQ(setup.swaks("s@one182.example", first).exit_code, 0);
    EXPECT_TRUE(o.reached(1, std::chrono::seconds(15))) << relay->log();
    EXPECT_EQ(setup.swaks("s@one182.example", second).exit_code, 0);
    const bool overlapped = o.reached(2, std::chrono::seconds(2));
    o.release();
    return overlapped;
  };
  EXPECT_TRUE(second_attempt_overlaps(many, "u0@many182.example", "u1@many182.example"))
      << "the control domain's attempts never overlapped";
  EXPECT_FALSE(second_attempt_overlaps(one, "u0@one182.example", "u1@one182.example"));
  EXPECT_FALSE(second_attempt_overlaps(route, "u@d0.r182.example", "u@d1.r182.example"));
  ASSERT_TRUE(lab::wait_messages(many_mx, 2)) << relay->log();
  ASSERT_TRUE(lab::wait_messages(one_mx, 2)) << relay->log();
  ASSERT_TRUE(lab::wait_messages(hop, 2)) << relay->log();
  EXPECT_EQ(many.peak(), 2);
  EXPECT_EQ(one.peak(), 1);
  EXPECT_EQ(route.peak(), 1);
  relay->stop(SIGTERM);
}

// The connection cache: a session that carried mail stays open for the next
// attempt to the same destination under the same plan (no new handshake),
// is not handed on once the plan changes (here the TLS policy, by SIGHUP),
// and ends with QUIT after connection_cache_seconds without use.
TEST(RelayRouting, ConnectionCacheReusesOnlyUnderTheSamePlan) {
  Receivers rx(183);
  auto chain = lab::self_signed({"mx.cache183.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.cache183.example"));
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  lab::World world(
      lab::spec({{{"name", "cache183.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", tlsa)}}}}));
  RelaySetup setup(world, rx.port(), "");
  // Long enough that the second message surely finds the session parked.
  add_to_delivery(setup, "connection_cache_seconds = 60\n");
  std::string original;
  {
    std::ifstream in(setup.config_path);
    std::stringstream text;
    text << in.rdbuf();
    original = text.str();
  }
  auto relay = setup.start();

  ASSERT_EQ(setup.swaks("s@cache183.example", "a@cache183.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 1)) << relay->log();
  ASSERT_EQ(setup.swaks("s@cache183.example", "b@cache183.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 2)) << relay->log();
  {
    const std::vector<lab::Session> sessions = mx.sessions();
    ASSERT_EQ(sessions.size(), 1u) << "the second message reused the first session";
    EXPECT_EQ(sessions[0].messages.size(), 2u);
    EXPECT_TRUE(sessions[0].starttls_completed);
    EXPECT_FALSE(sessions[0].closed);
    EXPECT_TRUE(has_command(sessions[0], "RSET")) << "a parked session is checked before use";
  }
  // Both deliveries are dane-verified: the reused session keeps its result.
  EXPECT_EQ(lab::count(relay->log(), "tls=dane-verified"), 2u) << relay->log();

  // Another TLS policy for the destination: another plan, a new session.
  std::ofstream(setup.config_path)
      << original << "\n[policy]\n\"cache183.example\" = \"dane-only\"\n";
  ASSERT_EQ(kill(relay->pid(), SIGHUP), 0);
  ASSERT_TRUE(relay->wait_for_log("reload")) << relay->log();
  ASSERT_EQ(setup.swaks("s@cache183.example", "c@cache183.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 3)) << relay->log();
  {
    const std::vector<lab::Session> sessions = mx.sessions();
    ASSERT_EQ(sessions.size(), 2u) << "a changed plan never reuses a session";
    EXPECT_EQ(sessions[1].messages.size(), 1u);
  }

  // Idle sessions end with QUIT: a short idle time by reload, then a new
  // message's session is closed by itself.
  std::ofstream(setup.config_path, std::ios::trunc)
      << original.substr(0, original.find("connection_cache_seconds"))
      << "connection_cache_seconds = 1\n"
      << original.substr(original.find('\n', original.find("connection_cache_seconds")) + 1);
  ASSERT_EQ(kill(relay->pid(), SIGHUP), 0);
  ASSERT_TRUE(relay->wait_for_log("connection_cache_seconds: 60 -> 1")) << relay->log();
  ASSERT_EQ(setup.swaks("s@cache183.example", "d@cache183.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 4)) << relay->log();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool quit = false;
  while (!quit && std::chrono::steady_clock::now() < deadline) {
    const std::vector<lab::Session> sessions = mx.sessions();
    quit = sessions.back().closed && has_command(sessions.back(), "QUIT");
    if (!quit) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(quit) << "an idle parked session is closed with QUIT";
  relay->stop(SIGTERM);
}

}  // namespace

// The connection cache after a DNS change: once the destination's TLSA RRset
// has changed (and its TTL has run out in the relay's resolver), a parked
// session authenticated under the old RRset is not used; nor is one parked
// for another destination, even with the same MX host, address and record.
TEST(RelayRouting, ConnectionCacheIsNotUsedAfterTheTlsaRRsetChangedNorForAnotherDomain) {
  Receivers rx(184);
  auto chain = lab::self_signed({"mx.cache184.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.cache184.example"));
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  // A second usable record for the same key (SHA-512): the RRset changes,
  // the server and its certificate do not.
  const std::string tlsa512 = lab::tlsa_rdata(chain.leaf, 3, 1, 2);
  constexpr int kTtl = 2;
  const std::string owner = "_" + std::to_string(rx.port()) + "._tcp.mx";
  auto zones = [&](bool changed) {
    std::vector<std::string> records = {"@ MX 10 mx", "mx A " + rx.ip(10),
                                        owner + " " + std::to_string(kTtl) + " TLSA " + tlsa};
    if (changed) records.push_back(owner + " " + std::to_string(kTtl) + " TLSA " + tlsa512);
    return lab::spec(
        {{{"name", "cache184.example"}, {"records", records}},
         {{"name", "other184.example"}, {"records", {"@ MX 10 mx.cache184.example."}}}});
  };
  lab::World world(zones(false));
  RelaySetup setup(world, rx.port(), "");
  add_to_delivery(setup, "connection_cache_seconds = 120\n");
  auto relay = setup.start();

  ASSERT_EQ(setup.swaks("s@cache184.example", "a@cache184.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 1)) << relay->log();
  // Another destination on the same host, address and TLSA record: its own
  // session.
  ASSERT_EQ(setup.swaks("s@cache184.example", "b@other184.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 2)) << relay->log();
  {
    const std::vector<lab::Session> sessions = mx.sessions();
    ASSERT_EQ(sessions.size(), 2u) << "a session is never handed to another destination";
    for (const lab::Session& s : sessions) EXPECT_EQ(s.messages.size(), 1u);
  }

  // The TLSA RRset changes; after its TTL the relay's plan has the new one.
  world.update(zones(true));
  const auto changed_at = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - changed_at < std::chrono::seconds(kTtl + 1))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(setup.swaks("s@cache184.example", "c@cache184.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 3)) << relay->log();
  {
    const std::vector<lab::Session> sessions = mx.sessions();
    ASSERT_EQ(sessions.size(), 3u) << "the session parked under the old RRset was not used";
    EXPECT_EQ(sessions[2].messages.size(), 1u);
    EXPECT_EQ(sessions[2].messages[0].rcpt_to, std::vector<std::string>{"c@cache184.example"});
    EXPECT_TRUE(sessions[2].starttls_completed);
  }
  // Under the new RRset the session is cached and reused again.
  ASSERT_EQ(setup.swaks("s@cache184.example", "d@cache184.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, 4)) << relay->log();
  {
    const std::vector<lab::Session> sessions = mx.sessions();
    ASSERT_EQ(sessions.size(), 3u) << "the new session is reused under the same plan";
    EXPECT_EQ(sessions[2].messages.size(), 2u);
  }
  // The receiver has the message before the relay has its reply and logs
  // the delivery: wait (bounded) for the fourth line.
  std::string log = relay->log();
  for (int i = 0; i < 100 && lab::count(log, "tls=dane-verified") < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log = relay->log();
  }
  EXPECT_EQ(lab::count(log, "tls=dane-verified"), 4u) << log;
  relay->stop(SIGTERM);
}
