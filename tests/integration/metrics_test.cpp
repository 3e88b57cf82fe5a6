// The monitoring endpoint of the real relay ([metrics] listen): /metrics
// scraped with a real HTTP client (python3 urllib, the body read by the
// Prometheus Python client's parser) after a known mix of deliveries in the
// lab, figure by figure; /healthz; hostile HTTP clients; a full spool; the
// endpoint moved by SIGHUP. Addresses 127.0.170.x - 127.0.173.x.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::count;
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kScrape = "/usr/bin/python3 " DANEMTA_TESTS_DIR "/metrics/scrape.py";

// One scrape of /metrics: every sample by name and labels.
struct Figures {
  std::map<std::string, std::string> types;  // family -> "counter", "gauge", "histogram"
  std::map<std::string, std::map<std::map<std::string, std::string>, double>> samples;
  std::string content_type;
  std::string error;  // the scrape failed: why

  // The sample's value; -1 when it is absent.
  double at(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    auto f = samples.find(name);
    if (f == samples.end()) return -1;
    auto s = f->second.find(labels);
    return s == f->second.end() ? -1 : s->second;
  }
  // The sum over every series of `name`.
  double sum(const std::string& name) const {
    double total = 0;
    auto f = samples.find(name);
    if (f != samples.end())
      for (const auto& [labels, v] : f->second) total += v;
    return total;
  }
  // Every series of `name` whose value is not 0, as "k=v,k=v" -> value.
  std::map<std::string, double> nonzero(const std::string& name) const {
    std::map<std::string, double> out;
    auto f = samples.find(name);
    if (f == samples.end()) return out;
    for (const auto& [labels, v] : f->second) {
      if (v == 0) continue;
      std::string key;
      for (const auto& [k, value] : labels) key += (key.empty() ? "" : ",") + k + "=" + value;
      out[key] = v;
    }
    return out;
  }
};

Figures scrape(const std::string& address) {
  Figures f;
  lab::CommandResult r = lab::run_command(kScrape + " metrics http://" + address + "/metrics");
  if (r.exit_code != 0) {
    f.error = r.out;
    return f;
  }
  json j = json::parse(r.out, nullptr, false);
  if (j.is_discarded()) {
    f.error = "not JSON: " + r.out;
    return f;
  }
  f.content_type = j["content_type"];
  for (auto& [name, type] : j["families"].items()) f.types[name] = type;
  for (const json& s : j["samples"]) {
    std::map<std::string, std::string> labels;
    for (auto& [k, v] : s[1].items()) labels[k] = v;
    f.samples[s[0]][labels] = s[2].is_number() ? s[2].get<double>() : -2;
  }
  return f;
}

struct Page {
  int status = 0;
  std::string content_type;
  std::string body;
};

Page get(const std::string& url) {
  Page p;
  lab::CommandResult r = lab::run_command(kScrape + " get " + url);
  json j = json::parse(r.out, nullptr, false);
  if (r.exit_code != 0 || j.is_discarded()) {
    p.body = r.out;
    return p;
  }
  p.status = j["status"];
  p.content_type = j["content_type"];
  p.body = j["body"];
  return p;
}

// Writes `request` to ADDRESS:PORT over TCP and reads until the server
// closes (or 20 s pass: a safety net, not a measurement); what came back.
std::string raw_http(const std::string& address, std::uint16_t port, const std::string& request,
                     bool half_close = true) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "(connect failed)";
  }
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close before taking it all
    sent += static_cast<std::size_t>(n);
  }
  if (half_close) shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return out;
}

// A connected TCP socket to ADDRESS:PORT (-1 on failure).
int connect_to(const std::string& address, std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool wait_until(const lab::Process& relay, const std::function<bool(const std::string&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(relay.log())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string metrics_section(const std::string& address) {
  return "\n[metrics]\nlisten = \"" + address + "\"\n";
}

TEST(Metrics, FiguresMatchTheLabsDeliveries) {
  Receivers rx(170);
  auto good = lab::self_signed({"mx.good170.example"});
  auto stale_key = lab::self_signed({"mx.stale170.example"});
  auto refusing_chain = lab::self_signed({"mx.refuse170.example"});
  auto plain_chain = lab::self_signed({"mx.plain170.example"});
  lab::Receiver& good_mx = rx.add(10, Receivers::with_chain(good, "mx.good170.example"));
  lab::Receiver& stale_mx =
      rx.add(11, Receivers::with_chain(good, "mx.stale170.example"));  // not the published key
  lab::Behaviour refusing = Receivers::with_chain(refusing_chain, "mx.refuse170.example");
  refusing.rcpt_replies["nobody@refuse170.example"] = {550, "5.1.1 no such user here"};
  rx.add(13, refusing);
  lab::Receiver& plain_mx = rx.add(14, Receivers::with_chain(plain_chain, "mx.plain170.example"));
  lab::Behaviour clear;
  clear.hostname = "mx.clear170.example";  // no certificate: no STARTTLS
  lab::Receiver& clear_mx = rx.add(15, clear);
  auto dane_zone = [&](const std::string& name, int host, const lab::Cert& leaf) {
    return json{{"name", name},
                {"records",
                 {"@ MX 10 mx", "mx A " + rx.ip(host),
                  rx.tlsa_line("mx", lab::tlsa_rdata(leaf, 3, 1, 1))}}};
  };
  auto unsigned_zone = [&](const std::string& name, int host) {
    return json{
        {"name", name}, {"signed", false}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(host)}}};
  };
  lab::World world(
      spec({dane_zone("good170.example", 10, good.leaf),
            dane_zone("stale170.example", 11, stale_key.leaf),
            dane_zone("refuse170.example", 13, refusing_chain.leaf),
            unsigned_zone("plain170.example", 14), unsigned_zone("clear170.example", 15),
            json{{"name", "bogus170.example"},
                 {"faults", {"expired"}},
                 {"records", {"@ MX 10 mx", "mx A " + rx.ip(16)}}},
            json{{"name", "lame170.example"}, {"served", false}}}));
  const std::string endpoint = "127.0.170.1:" + std::to_string(lab::free_tcp_port());
  // No retry within the test; three destinations queued at most.
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n" +
                       metrics_section(endpoint) + "top_destinations = 2\n");
  {
    // One session per message, so the session figures do not depend on
    // whether the connection cache was still holding the last one.
    std::ifstream in(setup.config_path);
    std::stringstream text;
    text << in.rdbuf();
    std::string config = text.str();
    config.insert(config.find("[delivery]\n") + 11, "connection_cache_seconds = 0\n");
    std::ofstream(setup.config_path, std::ios::trunc) << config;
  }
  auto relay = setup.start();
  ASSERT_THAT(relay->log(), HasSubstr("metrics on http://" + endpoint + "/metrics and /healthz"));

  // Before any mail: every family there, every counter at 0, an empty queue.
  Figures start = scrape(endpoint);
  ASSERT_EQ(start.error, "") << relay->log();
  EXPECT_EQ(start.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(start.types["danemta_delivery_duration_seconds"], "histogram");
  EXPECT_EQ(start.types["danemta_queue_recipients"], "gauge");
  EXPECT_EQ(start.types["danemta_messages_received"], "counter")
      << "the Python client names a counter family without _total";
  for (const char* counter :
       {"danemta_messages_received_total", "danemta_recipients_delivered_total",
        "danemta_recipients_deferred_total", "danemta_recipients_bounced_total",
        "danemta_tls_sessions_total", "danemta_dane_failures_total", "danemta_dns_lookups_total",
        "danemta_dns_failures_total", "danemta_dns_cache_lookups_total",
        "danemta_dns_cache_evictions_total"}) {
    EXPECT_TRUE(start.samples.count(counter)) << counter;
    EXPECT_EQ(start.sum(counter), 0) << counter;
  }
  EXPECT_EQ(start.at("danemta_queue_recipients", {{"state", "deferred"}}), 0);
  EXPECT_EQ(start.at("danemta_queue_destinations"), 0);
  EXPECT_EQ(start.at("danemta_spool_writable"), 1);
  Page health = get("http://" + endpoint + "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.body, "ok\n");

  // One message at a time, each to its final line, so that every delivery
  // has a session of its own and the figures are exact.
  auto send_and_wait = [&](const std::string& to, const std::string& line, std::size_t n) {
    ASSERT_EQ(setup.swaks("a@good170.example", to).exit_code, 0) << to << "\n" << relay->log();
    ASSERT_TRUE(wait_until(*relay, [&](const std::string& log) { return count(log, line) >= n; }))
        << to << ": waiting for " << n << " x " << line << "\n"
        << relay->log();
  };
  send_and_wait("b1@good170.example", "status=sent", 1);
  send_and_wait("b2@good170.example", "status=sent", 2);
  send_and_wait("b3@good170.example", "status=sent", 3);
  send_and_wait("x@stale170.example", "status=deferred", 1);
  send_and_wait("nobody@refuse170.example", "status=bounced", 1);
  // ...and the bounce to a@good170.example.
  ASSERT_TRUE(wait_until(*relay, [](const std::string& log) {
    return count(log, "status=sent") >= 4 && count(log, ": removed") >= 5;
  })) << relay->log();
  send_and_wait("p@plain170.example", "status=sent", 5);
  send_and_wait("c@clear170.example", "status=sent", 6);
  send_and_wait("z@bogus170.example", "status=deferred", 2);
  send_and_wait("l@lame170.example", "status=deferred", 3);
  ASSERT_TRUE(wait_until(*relay, [](const std::string& log) {
    return count(log, ": removed") >= 7;  // every finished message is written
  })) << relay->log();

  EXPECT_EQ(lab::messages(good_mx), 4u) << "three messages and the bounce";
  EXPECT_EQ(lab::messages(stale_mx), 0u);
  EXPECT_EQ(lab::messages(plain_mx), 1u);
  EXPECT_EQ(lab::messages(clear_mx), 1u);
  const std::string log = relay->log();
  EXPECT_EQ(count(log, "status=sent"), 6u) << log;
  // Four deliveries and the refusal came over DANE-verified sessions.
  EXPECT_EQ(count(log, "tls=dane-verified"), 5u) << log;

  Figures f = scrape(endpoint);
  ASSERT_EQ(f.error, "") << relay->log();
  using Series = std::map<std::string, double>;
  EXPECT_EQ(f.at("danemta_messages_received_total"), 9);
  EXPECT_EQ(f.at("danemta_recipients_received_total"), 9);
  EXPECT_EQ(f.sum("danemta_messages_refused_total"), 0);
  EXPECT_EQ(f.nonzero("danemta_recipients_delivered_total"),
            (Series{{"tls=dane-verified", 4}, {"tls=none", 1}, {"tls=opportunistic", 1}}));
  EXPECT_EQ(f.nonzero("danemta_recipients_deferred_total"), (Series{{"outcome=dns-failed", 1},
                                                                    {"outcome=dnssec-invalid", 1},
                                                                    {"outcome=tlsa-invalid", 1}}));
  EXPECT_EQ(f.nonzero("danemta_recipients_bounced_total"),
            (Series{{"cause=permanent,outcome=server-reply", 1}}));
  EXPECT_EQ(f.nonzero("danemta_notifications_total"), (Series{{"kind=non-delivery", 1}}));
  // Sessions: three, the refusing server's and the bounce's verified by
  // DANE; the stale one failed its DANE check and carried nothing.
  EXPECT_EQ(f.nonzero("danemta_tls_sessions_total"),
            (Series{{"level=dane-verified", 5}, {"level=none", 1}, {"level=opportunistic", 1}}));
  EXPECT_EQ(f.nonzero("danemta_dane_failures_total"),
            (Series{{"result_type=dnssec-invalid", 1}, {"result_type=tlsa-invalid", 1}}));
  // DNS: MX for each of the 10 attempts; A, AAAA for the 8 with an MX
  // host; TLSA only where the address records are secure (RFC 7672 2.2.2).
  EXPECT_EQ(f.nonzero("danemta_dns_lookups_total"), (Series{{"security=secure,type=MX", 6},
                                                            {"security=insecure,type=MX", 2},
                                                            {"security=bogus,type=MX", 1},
                                                            {"security=indeterminate,type=MX", 1},
                                                            {"security=secure,type=A", 6},
                                                            {"security=insecure,type=A", 2},
                                                            {"security=secure,type=AAAA", 6},
                                                            {"security=insecure,type=AAAA", 2},
                                                            {"security=secure,type=TLSA", 6}}));
  EXPECT_EQ(f.nonzero("danemta_dns_failures_total"),
            (Series{{"reason=bogus", 1}, {"reason=servfail", 1}}));
  // All 32 lookups went through danemta's answer cache (lab TTLs and SOA
  // minimum: 300 s). good170.example's four attempts (three messages and
  // the bounce) asked MX, A, AAAA (NODATA, kept for the SOA's negative TTL)
  // and TLSA once, then found them in the cache: 12 hits. Every other
  // lookup was a first or a failure (bogus170, lame170: never kept).
  EXPECT_EQ(f.nonzero("danemta_dns_cache_lookups_total"),
            (Series{{"result=hit", 12}, {"result=miss", 20}}));
  // Kept: MX, A and AAAA of good, stale, refuse, plain and clear; TLSA of
  // the three signed ones.
  EXPECT_EQ(f.at("danemta_dns_cache_entries"), 18);
  EXPECT_EQ(f.at("danemta_dns_cache_evictions_total"), 0);
  // The latency histogram: one observation per delivered recipient,
  // cumulative buckets ending at +Inf = count.
  EXPECT_EQ(f.at("danemta_delivery_duration_seconds_count"), 6);
  EXPECT_EQ(f.at("danemta_delivery_duration_seconds_bucket", {{"le", "+Inf"}}), 6);
  EXPECT_GT(f.at("danemta_delivery_duration_seconds_sum"), 0);
  double previous = 0;
  for (const char* le : {"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "900",
                         "3600", "14400", "86400", "+Inf"}) {
    const double n = f.at("danemta_delivery_duration_seconds_bucket", {{"le", le}});
    EXPECT_GE(n, previous) << le;
    previous = n;
  }
  EXPECT_EQ(f.at("danemta_delivery_duration_seconds_bucket", {{"le", "60"}}), 6)
      << "every delivery within a minute of its arrival";
  // The queue: three deferred recipients at three destinations, two shown.
  EXPECT_EQ(f.nonzero("danemta_queue_recipients"),
            (Series{{"state=bounced", 1}, {"state=deferred", 3}, {"state=delivered", 6}}));
  EXPECT_EQ(f.at("danemta_queue_messages"), 3);
  EXPECT_EQ(f.at("danemta_queue_destinations"), 3);
  EXPECT_EQ(f.nonzero("danemta_queue_destination_recipients"),
            (Series{{"domain=bogus170.example", 1}, {"domain=lame170.example", 1}}))
      << "the first two by name among equals";
  EXPECT_GE(f.at("danemta_queue_oldest_message_age_seconds"), 0);
  EXPECT_EQ(f.at("danemta_deliveries_in_flight"), 0);
  EXPECT_EQ(f.at("danemta_spool_writable"), 1);

  // What `danemta queue list` says agrees (the bounce is a message too).
  lab::CommandResult list = setup.queue("list --all");
  EXPECT_THAT(list.out, HasSubstr("-- 10 message(s), 3 with pending recipients")) << list.out;
  EXPECT_EQ(count(list.out, "  delivered  "), 6u) << list.out;
  EXPECT_EQ(count(list.out, "  bounced  "), 1u) << list.out;
  EXPECT_EQ(count(list.out, "  pending  "), 3u) << list.out;

  health = get("http://" + endpoint + "/healthz");
  EXPECT_EQ(health.status, 200);
  const pid_t pid = relay->pid();
  EXPECT_EQ(relay->stop(SIGTERM), 0);
  // The cache's summary line, written at stop (the periodic one comes
  // every 5 minutes).
  EXPECT_THAT(relay->log(),
              HasSubstr(" danemta/master[" + std::to_string(pid) +
                        "]: dns cache: lookups=32 hits=12 (37.5%) entries=18 evictions=0\n"))
      << relay->log();
}

TEST(Metrics, HostileRequestsAreRefusedWithinBounds) {
  lab::World world(spec({json{{"name", "quiet171.example"}}}));
  const std::uint16_t port = lab::free_tcp_port();
  const std::string ip = "127.0.171.1";
  RelaySetup setup(world, 25, metrics_section(ip + ":" + std::to_string(port)));
  auto relay = setup.start();

  // Only GET and HEAD, only the two paths.
  std::string r =
      raw_http(ip, port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n")) << r;
  EXPECT_THAT(r, HasSubstr("\r\nAllow: GET, HEAD\r\n")) << r;
  r = raw_http(ip, port, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 405 ")) << r;
  r = raw_http(ip, port, "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 404 Not Found\r\n")) << r;
  r = raw_http(ip, port, "GET /metrics/../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 404 ")) << r;
  // HEAD: GET's header, no content.
  r = raw_http(ip, port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_THAT(r, HasSubstr("Content-Length: ")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << "no body after the header: " << r;
  // HTTP/1.0 without keep-alive: answered, then closed.
  r = raw_http(ip, port, "GET /healthz HTTP/1.0\r\n\r\n", false);
  EXPECT_THAT(r, StartsWith("HTTP/1.0 200 OK\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nok\n")) << r;
  // Two requests on one connection (keep-alive), both answered.
  r = raw_http(ip, port,
               "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
               "Connection: close\r\n\r\n");
  EXPECT_EQ(count(r, "HTTP/1.1 200 OK\r\n"), 2u) << r;

  // An oversized header: 431, then the connection is closed.
  r = raw_http(
      ip, port,
      "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
      << r.substr(0, 200);
  // A request with a body, and garbage: 400.
  r = raw_http(ip, port, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 400 Bad Request\r\n")) << r;
  r = raw_http(ip, port,
               std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 400 ")) << r;
  // A request line without a header end, then the client half-closes: no
  // answer, the connection is closed.
  r = raw_http(ip, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  EXPECT_EQ(r, "");

  // 16 connections at once; the 17th is closed unanswered, and once they
  // are gone a new one is served.
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    const int fd = connect_to(ip, port);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  r = raw_http(ip, port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r, "") << "over the connection limit";
  // Those 16 are still served.
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(idle.front(), request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  char buf[512];
  const ssize_t n = recv(idle.front(), buf, sizeof buf, 0);
  EXPECT_THAT(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0),
              StartsWith("HTTP/1.1 200"));
  for (int fd : idle) close(fd);
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = get("http://" + ip + ":" + std::to_string(port) + "/healthz").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(served) << "served again once the connections are gone";

  // The relay is unharmed.
  EXPECT_EQ(scrape(ip + ":" + std::to_string(port)).error, "");
  EXPECT_EQ(relay->stop(SIGTERM), 0) << relay->log();
}

// A small tmpfs mounted for the test's lifetime (needs root: CI runs as root).
class Tmpfs {
 public:
  Tmpfs(std::string dir, const std::string& size) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  void fill() {
    int fd = open((dir_ + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::string block(64 * 1024, 'x');
    while (write(fd, block.data(), block.size()) > 0) {
    }
    std::string byte = "x";
    while (write(fd, byte.data(), 1) > 0) {
    }
    fsync(fd);
    close(fd);
  }
  void free_space() { std::filesystem::remove(dir_ + "/filler"); }

 private:
  std::string dir_;
  bool mounted_ = false;
};

TEST(Metrics, HealthzSaysWhenTheSpoolCannotBeWritten) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  Receivers rx(172);
  auto chain = lab::self_signed({"mx.full172.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.full172.example"));
  lab::World world(spec({json{{"name", "full172.example"},
                              {"records",
                               {"@ MX 10 mx", "mx A " + rx.ip(10),
                                rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  Tmpfs spool(world.dir() + "/spool", "4m");
  ASSERT_TRUE(spool.mounted());
  const std::string endpoint = "127.0.172.1:" + std::to_string(lab::free_tcp_port());
  RelaySetup setup(world, rx.port(), metrics_section(endpoint), world.dir() + "/spool");
  auto relay = setup.start();
  EXPECT_EQ(get("http://" + endpoint + "/healthz").status, 200);

  spool.fill();
  lab::CommandResult refused = setup.swaks("a@sender.example", "r@full172.example");
  EXPECT_THAT(refused.out, HasSubstr("452 4.3.1 Insufficient system storage")) << refused.out;
  Page health = get("http://" + endpoint + "/healthz");
  EXPECT_EQ(health.status, 503) << health.body;
  EXPECT_THAT(health.body, StartsWith("spool not writable: ")) << health.body;
  Figures f = scrape(endpoint);
  ASSERT_EQ(f.error, "");
  EXPECT_EQ(f.at("danemta_spool_writable"), 0);
  EXPECT_EQ(f.nonzero("danemta_messages_refused_total"),
            (std::map<std::string, double>{{"reason=storage-full", 1}}));
  EXPECT_EQ(f.at("danemta_messages_received_total"), 0);

  spool.free_space();
  ASSERT_EQ(setup.swaks("a@sender.example", "r@full172.example").exit_code, 0) << relay->log();
  ASSERT_TRUE(lab::wait_messages(mx, 1)) << relay->log();
  health = get("http://" + endpoint + "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  f = scrape(endpoint);
  EXPECT_EQ(f.at("danemta_spool_writable"), 1);
  EXPECT_EQ(f.at("danemta_messages_received_total"), 1);
  relay->stop(SIGTERM);
}

TEST(Metrics, ReloadOpensMovesAndClosesTheEndpoint) {
  lab::World world(spec({json{{"name", "quiet173.example"}}}));
  const std::string first = "127.0.173.1:" + std::to_string(lab::free_tcp_port());
  const std::string second = "127.0.173.2:" + std::to_string(lab::free_tcp_port());
  RelaySetup setup(world, 25, "");
  std::stringstream original;
  original << std::ifstream(setup.config_path).rdbuf();
  auto relay = setup.start();
  auto serves = [](const std::string& address) {
    return get("http://" + address + "/healthz").status == 200;
  };
  auto reload = [&](const std::string& extra, const std::string& line, std::size_t n) {
    std::ofstream(setup.config_path) << original.str() << extra;
    ASSERT_EQ(kill(relay->pid(), SIGHUP), 0);
    ASSERT_TRUE(wait_until(*relay, [&](const std::string& log) { return count(log, line) >= n; }))
        << relay->log();
  };
  EXPECT_FALSE(serves(first)) << "off by default";

  reload(metrics_section(first), "configuration reloaded", 1);
  EXPECT_THAT(relay->log(), HasSubstr("reload: metrics on http://" + first + "/metrics"));
  EXPECT_TRUE(serves(first));
  EXPECT_EQ(scrape(first).error, "");

  reload(metrics_section(second), "configuration reloaded", 2);
  EXPECT_THAT(relay->log(), HasSubstr("reload: metrics endpoint on " + first + " closed"));
  EXPECT_FALSE(serves(first));
  EXPECT_TRUE(serves(second));

  reload("", "configuration reloaded", 3);
  EXPECT_FALSE(serves(second));
  EXPECT_EQ(relay->stop(SIGTERM), 0);
}

}  // namespace
