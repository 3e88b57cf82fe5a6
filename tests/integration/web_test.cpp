// `danemta web` against the lab: the real binary serving the page, headless
// Chromium (tests/web/web.py, selenium) reading it, and the JSON API
// compared with `danemta check --json`. NETs 127.0.185.x - 127.0.189.x and
// 127.0.195.x (checks whose visitor leaves).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using nlohmann::json;

const std::string kWebPy = "/usr/bin/python3 " DANEMTA_TESTS_DIR "/web/web.py";

// The five worlds of the issue: good, stale TLSA, bogus DNSSEC, no
// STARTTLS, null MX. Receivers on 127.0.NET.10-12.
struct Lab {
  explicit Lab(int net) : rx(net) {
    auto good = lab::self_signed({"mx.good.example"});
    auto next = lab::self_signed({"mx.good.example"});
    auto stale_old = lab::self_signed({"mx.stale.example"});
    auto stale_now = lab::self_signed({"mx.stale.example"});
    rx.add(10, Receivers::with_chain(good, "mx.good.example"));
    rx.add(11, Receivers::with_chain(stale_now, "mx.stale.example"));
    lab::Behaviour plain = Receivers::with_chain(good, "mx.plain.example");
    plain.offer_starttls = false;
    rx.add(12, plain);
    const std::string n = std::to_string(net);
    good_domain = "good" + n + ".example";
    domains = {good_domain, "stale" + n + ".example", "bogus" + n + ".example",
               "plain" + n + ".example", "nomail" + n + ".example"};
    const std::string ee = lab::tlsa_rdata(good.leaf, 3, 1, 1);
    json zones =
        json::array({{{"name", domains[0]},
                      {"records",
                       {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", ee),
                        rx.tlsa_line("mx", lab::tlsa_rdata(next.leaf, 3, 1, 1))}}},
                     {{"name", domains[1]},
                      {"records",
                       {"@ MX 10 mx", "mx A " + rx.ip(11),
                        rx.tlsa_line("mx", lab::tlsa_rdata(stale_old.leaf, 3, 1, 1))}}},
                     {{"name", domains[2]},
                      {"records", {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", ee)}},
                      {"tamper", {"_" + std::to_string(rx.port()) + "._tcp.mx TLSA"}}},
                     {{"name", domains[3]},
                      {"records", {"@ MX 10 mx", "mx A " + rx.ip(12), rx.tlsa_line("mx", ee)}}},
                     {{"name", domains[4]}, {"records", {"@ MX 0 ."}}}});
    world = std::make_unique<lab::World>(json{{"zones", zones}}.dump());
  }
  Receivers rx;
  std::unique_ptr<lab::World> world;
  std::string good_domain;
  std::vector<std::string> domains;
};

// `danemta web` with a [web] section of the test's choosing.
struct Web {
  Web(const Lab& l, const std::string& name, const std::string& web_settings)
      : Web(*l.world, l.rx.port(), name, web_settings) {}
  Web(const lab::World& world, std::uint16_t smtp_port, const std::string& name,
      const std::string& web_settings) {
    dir = std::filesystem::temp_directory_path() /
          ("danemta-web-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "danemta.toml")
        << "[dns]\nforwarders = [\"" << world.resolver() << "\"]\ntrust_anchor_file = \""
        << world.trust_anchor_file() << "\"\n\n[web]\nallowed_ports = [" << smtp_port << "]\n"
        << web_settings << "\n";
    process = std::make_unique<lab::Process>(
        std::vector<std::string>{DANEMTA_BINARY, "--config", (dir / "danemta.toml").string(),
                                 "web"},
        (dir / "web.log").string());
    // Up, or exited with its reason ("danemta: ..."), whichever comes first.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!process->wait_for_log("listening on ", std::chrono::milliseconds(200)) &&
           process->log().find("danemta: ") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
    }
    if (process->log().find("listening on ") == std::string::npos)
      ADD_FAILURE() << "danemta web did not start: " << process->log();
    const std::string log = process->log();
    const auto at = log.find("listening on ");
    if (at != std::string::npos) {
      const auto start = at + 13;
      const auto host = log.find("://", start) + 3;
      base = log.substr(start, log.find('/', host) - start);
    }
  }
  ~Web() {
    process->stop(SIGTERM);
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  std::unique_ptr<lab::Process> process;
  std::string base;  // "http://127.0.185.1:PORT"
};

struct Http {
  int status = 0;
  json headers;
  std::string body;
};

Http get(const std::string& url, const std::string& ca_file = "",
         const std::string& forwarded_for = "") {
  const std::string env = forwarded_for.empty() ? "" : "X_FORWARDED_FOR='" + forwarded_for + "' ";
  lab::CommandResult r = lab::run_command(env + kWebPy + " get '" + url + "' " + ca_file);
  Http h;
  try {
    json j = json::parse(r.out);
    h.status = j["status"];
    h.headers = j["headers"];
    h.body = j["body"];
  } catch (const std::exception& e) {
    ADD_FAILURE() << url << ": " << e.what() << "\n" << r.out;
  }
  return h;
}

json parse_or_fail(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what() << "\n" << text;
    return json::object();
  }
}

// TTLs count down in the resolver's cache between two lookups: not
// compared. DNS does not keep an RRset's order: lists that follow it are
// compared sorted.
void normalize(json& j) {
  if (j.is_object()) {
    j.erase("ttl");
    for (auto& [k, v] : j.items()) {
      normalize(v);
      if (v.is_array() && (k == "tlsa" || k == "tlsa_matches" || k == "warnings" ||
                           k == "records" || k == "addresses"))
        std::sort(v.begin(), v.end(),
                  [](const json& a, const json& b) { return a.dump() < b.dump(); });
    }
  } else if (j.is_array()) {
    for (json& v : j) normalize(v);
  }
}

TEST(Web, BrowserShowsEachVerdictAndApiEqualsCheckJson) {
  Lab l(185);
  Web web(l, "browser",
          "listen = \"127.0.185.1:" + std::to_string(lab::free_tcp_port()) +
              "\"\n"
              "allow_private_targets = true\nclient_checks = 1000\n");
  ASSERT_FALSE(web.base.empty());

  // DANEMTA_WEB_SCREENSHOTS=DIR keeps a screenshot of each page (docs/web/).
  const char* shots = std::getenv("DANEMTA_WEB_SCREENSHOTS");
  std::string cmd = kWebPy + " browse " + web.base + " " + (shots ? shots : "-");
  for (const std::string& d : l.domains) cmd += " " + d;
  lab::CommandResult browsed = lab::run_command(cmd);
  ASSERT_EQ(browsed.exit_code, 0) << browsed.out;
  json b = parse_or_fail(browsed.out.substr(browsed.out.find('{')));
  const std::map<std::string, std::pair<std::string, std::string>> expected = {
      {l.domains[0], {"OK", ""}},
      {l.domains[1], {"FAIL", "4.7.323"}},
      {l.domains[2], {"FAIL", "4.7.324"}},
      {l.domains[3], {"FAIL", "4.7.321"}},
      {l.domains[4], {"FAIL", "5.1.10"}}};
  for (const auto& [domain, want] : expected) {
    const json& page = b["pages"][domain];
    EXPECT_EQ(page.value("status", ""), want.first) << domain << ": " << page.dump(1);
    EXPECT_EQ(page.value("code", "?"), want.second) << domain << ": " << page.dump(1);
    // Progress: the steps were listed as they came, and stay.
    EXPECT_GE(page["steps"].size(), 2u) << domain << ": " << page.dump(1);
    EXPECT_EQ(page.value("json_link", ""), web.base + "/api/check?domain=" + domain);
    EXPECT_EQ(page.value("share_link", ""), web.base + "/check?domain=" + domain);
  }
  const json& good = b["pages"][l.domains[0]];
  const std::string good_text = good.value("text", "");
  EXPECT_NE(good_text.find("matches depth 0"), std::string::npos) << good_text;
  EXPECT_NE(good_text.find("ready"), std::string::npos) << good_text;
  EXPECT_NE(good.dump().find("connecting to mx." + l.domains[0]), std::string::npos)
      << good.dump(1);
  const std::string stale_text = b["pages"][l.domains[1]].value("text", "");
  EXPECT_NE(stale_text.find("matches no certificate"), std::string::npos) << stale_text;
  EXPECT_NE(stale_text.find("Fix:"), std::string::npos) << stale_text;
  const std::string bogus = b["pages"][l.domains[2]].value("text", "");
  EXPECT_NE(bogus.find("bogus"), std::string::npos) << bogus;
  EXPECT_NE(bogus.find("validator:"), std::string::npos) << bogus;
  EXPECT_NE(b["pages"][l.domains[3]].value("text", "").find("NOT offered"), std::string::npos);
  EXPECT_NE(b["pages"][l.domains[4]].value("text", "").find("Null MX"), std::string::npos);
  EXPECT_EQ(b["form"].value("status", ""), "OK") << b["form"].dump(1);
  EXPECT_EQ(b["form"].value("url", ""), web.base + "/check?domain=" + l.domains[0] + "&port=");
  EXPECT_NE(b.value("bad_input", "").find("hyphen"), std::string::npos) << b.dump(1);

  // The JSON API is `danemta check --json`, TTLs aside.
  for (const std::string& d : l.domains) {
    Http api = get(web.base + "/api/check?domain=" + d);
    EXPECT_EQ(api.status, 200) << api.body;
    EXPECT_EQ(api.headers.value("Content-Type", ""), "application/json");
    json from_web = parse_or_fail(api.body);
    lab::CommandResult cli =
        lab::run_command(std::string(DANEMTA_BINARY) + " check --json --resolver " +
                         l.world->resolver() + " --trust-anchor " + l.world->trust_anchor_file() +
                         " --timeout 15 --port " + std::to_string(l.rx.port()) + " " + d);
    json from_cli = parse_or_fail(cli.out);
    EXPECT_TRUE(from_web["live"].get<bool>() || d == l.domains[2] || d == l.domains[4]);
    normalize(from_web);
    normalize(from_cli);
    EXPECT_EQ(from_web, from_cli) << d << "\n" << json::diff(from_cli, from_web).dump(1);
  }
}

TEST(Web, RefusesPrivateTargetsOverRateAndBadInput) {
  Lab l(186);
  // Two checks per client per hour; private targets not allowed (the default).
  Web web(l, "refusals",
          "listen = \"127.0.186.1:" + std::to_string(lab::free_tcp_port()) +
              "\"\n"
              "client_checks = 2\nclient_window_seconds = 3600\n"
              "trusted_proxies = [\"127.0.0.1\"]\n");
  ASSERT_FALSE(web.base.empty());

  // Bad input never starts a check (nor counts against the client).
  for (const std::string& q :
       {std::string("domain="), std::string("domain=-bad-.example"), std::string("domain=a..b"),
        std::string("domain=nodot"), std::string("domain=a%FF.example"),
        std::string("domain=ab--cd.example"), std::string("domain=") + std::string(254, 'a'),
        std::string("domain=x.") + std::string(64, 'a') + ".example",
        std::string("domain=good186.example&port=26"),
        std::string("domain=good186.example&port=x25"),
        std::string("domain=%3Cscript%3E.example")}) {
    Http api = get(web.base + "/api/check?" + q);
    EXPECT_EQ(api.status, 400) << q << ": " << api.body;
    EXPECT_TRUE(parse_or_fail(api.body).contains("error")) << api.body;
    Http page = get(web.base + "/check?" + q);
    EXPECT_EQ(page.status, 400) << q;
    EXPECT_NE(page.body.find("id=\"error\""), std::string::npos) << page.body;
    EXPECT_EQ(page.body.find("<script>"), std::string::npos) << "input is escaped";
  }
  EXPECT_NE(get(web.base + "/api/check?domain=a%FF.example").body.find("internationalized"),
            std::string::npos);
  EXPECT_NE(get(web.base + "/api/check?domain=x&port=26").body.find("two labels"),
            std::string::npos);
  // A name typed in Unicode is checked as its A-labels (this one has no MX in
  // the lab: a check that fails).
  Http idn = get(web.base + "/api/check?domain=B%C3%9Ccher.example");
  EXPECT_EQ(idn.status, 200) << idn.body;
  EXPECT_EQ(parse_or_fail(idn.body).value("domain", ""), "xn--bcher-kva.example") << idn.body;

  // The MX host's address is on loopback: not probed.
  Http good = get(web.base + "/api/check?domain=good186.example");
  ASSERT_EQ(good.status, 200) << good.body;
  json j = parse_or_fail(good.body);
  const json& probe = j["hosts"][0]["probes"][0];
  EXPECT_EQ(probe["address"], l.rx.ip(10));
  EXPECT_FALSE(probe["connected"].get<bool>());
  EXPECT_FALSE(probe["reachable"].get<bool>());
  EXPECT_NE(probe["detail"].get<std::string>().find("not probed: 127.0.186.10 is a loopback"),
            std::string::npos)
      << probe.dump(1);
  EXPECT_NE(j["verdict"]["status"], "ok");
  // Nothing connected to the receiver.
  // (Two checks of this client are spent: the Unicode one and this one.)

  Http over = get(web.base + "/api/check?domain=nomail186.example");
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_NE(parse_or_fail(over.body).value("error", "").find("Too many checks"), std::string::npos);
  EXPECT_FALSE(over.headers.value("Retry-After", "").empty()) << over.headers.dump();
  Http over_page = get(web.base + "/check?domain=nomail186.example");
  EXPECT_EQ(over_page.status, 429);
  EXPECT_NE(over_page.body.find("Too many checks"), std::string::npos) << over_page.body;
  Http over_events = get(web.base + "/events?domain=nomail186.example");
  EXPECT_EQ(over_events.status, 200);
  EXPECT_NE(over_events.body.find("event: refused\ndata: Too many checks"), std::string::npos)
      << over_events.body;
  // Behind a trusted proxy (127.0.0.1 here) each visitor its X-Forwarded-For
  // names has a limit of its own; without the header the proxy is the client.
  EXPECT_EQ(get(web.base + "/api/check?domain=nomail186.example", "", "198.51.100.7").status, 200);
  EXPECT_EQ(
      get(web.base + "/api/check?domain=nomail186.example", "", "192.0.2.1, 198.51.100.7").status,
      200);
  EXPECT_EQ(get(web.base + "/api/check?domain=nomail186.example", "", "198.51.100.7").status, 429);
  EXPECT_EQ(get(web.base + "/api/check?domain=nomail186.example", "", "junk").status, 429)
      << "a malformed header: the proxy itself is the client";
  // The form itself is always served.
  EXPECT_EQ(get(web.base + "/").status, 200);
  EXPECT_EQ(get(web.base + "/nothing").status, 404);
}

// Reads from `fd` until `text` has come (true) or the peer closes or
// `patience` passes (false); what came is in `got`.
bool read_until(int fd, const std::string& text, std::string& got,
                std::chrono::seconds patience = std::chrono::seconds(180)) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (got.find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

// A TCP connection to ip:port, from `source` when one is given (another
// client for the web server's limits).
int connect_to(const std::string& ip, std::uint16_t port, const std::string& source = "") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(Web, ServesHttpsWithTheConfiguredCertificate) {
  lab::World world(
      json{{"zones", {{{"name", "nomail189.example"}, {"records", {"@ MX 0 ."}}}}}}.dump());
  const auto dir = std::filesystem::temp_directory_path() /
                   ("danemta-web-https-certs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto chain = lab::private_ca({"web.lab.example"});
  lab::ChainFiles files = lab::write_chain_files(chain, dir);
  ASSERT_TRUE(files.ca);
  Web web(world, 25, "https",
          "listen = \"127.0.189.1:" + std::to_string(lab::free_tcp_port()) +
              "\"\n"
              "tls_cert_file = \"" +
              files.chain.string() + "\"\ntls_key_file = \"" + files.key.string() + "\"\n");
  ASSERT_EQ(web.base.substr(0, 8), "https://") << web.process->log();
  // Verified against the lab CA (the name is not: the URL has an address).
  Http api = get(web.base + "/api/check?domain=nomail189.example", files.ca->string());
  EXPECT_EQ(api.status, 200) << api.body;
  EXPECT_EQ(parse_or_fail(api.body)["verdict"]["outcome"]["code"], "5.1.10");
  Http form = get(web.base + "/", files.ca->string());
  EXPECT_EQ(form.status, 200);
  EXPECT_NE(form.body.find("<form"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// A listener on ip:port (port 0: any free one) that accepts connections
// (the kernel's backlog) and never greets; -1 if it cannot be opened.
// `port` becomes the port bound.
int silent_listener(const std::string& ip, std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 8) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

TEST(Web, BusyWhenEveryCheckSlotIsTaken) {
  // An MX host that accepts connections (the kernel's backlog) and never
  // greets: a check of it holds its slot for probe_timeout_seconds.
  const std::string mx = "127.0.187.10";
  std::uint16_t port = 0;
  const int silent = silent_listener(mx, port);
  ASSERT_GE(silent, 0);
  lab::World world(json{{"zones",
                         {{{"name", "slow187.example"}, {"records", {"@ MX 10 mx", "mx A " + mx}}},
                          {{"name", "nomail187.example"}, {"records", {"@ MX 0 ."}}}}}}
                       .dump());
  Web web(world, port, "busy",
          "listen = \"127.0.187.1:" + std::to_string(lab::free_tcp_port()) +
              "\"\n"
              "allow_private_targets = true\nmax_concurrent = 1\n"
              "probe_timeout_seconds = 300\n");
  ASSERT_FALSE(web.base.empty());
  const std::string host = web.base.substr(7, web.base.rfind(':') - 7);
  const auto web_port =
      static_cast<std::uint16_t>(std::stoi(web.base.substr(web.base.rfind(':') + 1)));

  // A check that is stuck in its probe: the one slot is taken.
  int follower = connect_to(host, web_port);
  ASSERT_GE(follower, 0);
  const std::string request = "GET /events?domain=slow187.example HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(follower, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::string events;
  ASSERT_TRUE(read_until(follower, "event: step\ndata: connecting to mx.slow187.example", events))
      << events;

  Http busy = get(web.base + "/api/check?domain=nomail187.example");
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_NE(parse_or_fail(busy.body).value("error", "").find("busy"), std::string::npos);
  EXPECT_FALSE(busy.headers.value("Retry-After", "").empty());
  Http page = get(web.base + "/check?domain=nomail187.example");
  EXPECT_EQ(page.status, 503);
  EXPECT_NE(page.body.find("Busy"), std::string::npos) << page.body;
  EXPECT_EQ(get(web.base + "/").status, 200) << "the form is served while busy";
  ::close(follower);
  ::close(silent);
}

// Accepts one connection on any of `listeners` within `patience`; -1 if
// none came.
int accept_one(const std::vector<int>& listeners,
               std::chrono::seconds patience = std::chrono::seconds(180)) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> p;
    for (int fd : listeners) p.push_back(pollfd{fd, POLLIN, 0});
    if (::poll(p.data(), p.size(), 200) <= 0) continue;
    for (const pollfd& x : p)
      if (x.revents & POLLIN) return ::accept(x.fd, nullptr, nullptr);
  }
  return -1;
}

// The connections waiting on `listeners` (made, not yet accepted): accepts
// and closes them, and says how many there were.
std::size_t accept_waiting(const std::vector<int>& listeners) {
  std::size_t n = 0;
  for (int fd : listeners) {
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) break;
      ::close(c);
      ++n;
    }
  }
  return n;
}

// How often `text` occurs in `where`.
std::size_t count_of(const std::string& where, const std::string& text) {
  std::size_t n = 0;
  for (auto at = where.find(text); at != std::string::npos; at = where.find(text, at + 1)) ++n;
  return n;
}

TEST(Web, CheckStopsWhenItsVisitorLeaves) {
  // One MX host with three addresses, each a listener that never greets: a
  // check probes them one after the other, each probe waiting for its
  // greeting (probe_timeout_seconds, 300 here) until the test closes it.
  std::vector<int> silent;
  std::uint16_t port = 0;
  for (int i = 10; i <= 12; ++i) {
    const std::string ip = "127.0.195." + std::to_string(i);
    const int fd = silent_listener(ip, port);  // the same port on each address
    ASSERT_GE(fd, 0) << ip;
    silent.push_back(fd);
  }
  lab::World world(
      json{{"zones",
            {{{"name", "slow195.example"},
              {"records",
               {"@ MX 10 mx", "mx A 127.0.195.10", "mx A 127.0.195.11", "mx A 127.0.195.12"}}},
             {{"name", "nomail195.example"}, {"records", {"@ MX 0 ."}}}}}}
          .dump());
  Web web(world, port, "abandon",
          "listen = \"127.0.195.1:" + std::to_string(lab::free_tcp_port()) +
              "\"\n"
              "allow_private_targets = true\nmax_concurrent = 1\nclient_checks = 1000\n"
              "probe_timeout_seconds = 300\ncheck_timeout_seconds = 600\n");
  ASSERT_FALSE(web.base.empty());
  const std::string host = web.base.substr(7, web.base.rfind(':') - 7);
  const auto web_port =
      static_cast<std::uint16_t>(std::stoi(web.base.substr(web.base.rfind(':') + 1)));

  // Polls (a bounded wait, not a timing expectation) until a check from
  // another client is admitted: the one slot is free again.
  auto admitted = [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    Http h;
    do {
      h = get(web.base + "/api/check?domain=nomail195.example");
      if (h.status != 503) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (std::chrono::steady_clock::now() < deadline);
    return h.status;
  };

  struct Visit {
    std::string client;
    std::string request;
  };
  const std::vector<Visit> visits = {
      // A page's event stream: it reads the steps up to the first probe, then closes.
      {"127.0.195.2", "GET /events?domain=slow195.example HTTP/1.1\r\nHost: x\r\n\r\n"},
      // A script's API request, given up while the check probes.
      {"127.0.195.3", "GET /api/check?domain=slow195.example HTTP/1.1\r\nHost: x\r\n\r\n"}};
  for (const Visit& v : visits) {
    SCOPED_TRACE(v.request);
    int visitor = connect_to(host, web_port, v.client);
    ASSERT_GE(visitor, 0);
    ASSERT_EQ(::write(visitor, v.request.data(), v.request.size()),
              static_cast<ssize_t>(v.request.size()));
    if (v.request.find("/events") != std::string::npos) {
      std::string events;
      ASSERT_TRUE(read_until(visitor, "data: connecting to mx.slow195.example", events)) << events;
    }
    // The check's first probe is connected and waits for its greeting.
    const int probe = accept_one(silent);
    ASSERT_GE(probe, 0) << web.process->log();
    EXPECT_EQ(get(web.base + "/api/check?domain=nomail195.example").status, 503)
        << "the check holds the only slot";
    ::close(visitor);

    // The slot is free while that probe is still in progress (the probe's
    // connection is still open: nothing to read, not closed).
    EXPECT_EQ(admitted(), 200) << web.process->log();
    pollfd p{probe, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "the first probe still waits for its greeting";

    // The probe ends (the connection closes before a greeting); the check
    // then ends without probing the other two addresses, and says so.
    ::close(probe);
    const std::string line = "check of slow195.example for " + v.client +
                             " abandoned: the visitor left; 2 of 3 addresses not probed";
    EXPECT_TRUE(web.process->wait_for_log(line, std::chrono::seconds(180))) << web.process->log();
    EXPECT_EQ(count_of(web.process->log(), line), 1u) << web.process->log();
    EXPECT_EQ(accept_waiting(silent), 0u) << "no address was probed after the visitor left";
  }
  EXPECT_EQ(count_of(web.process->log(), "abandoned"), 2u) << web.process->log();
  // A check whose visitor stays is not abandoned.
  EXPECT_EQ(get(web.base + "/api/check?domain=nomail195.example").status, 200);
  EXPECT_EQ(count_of(web.process->log(), "abandoned"), 2u) << web.process->log();
  for (int fd : silent) ::close(fd);
}

}  // namespace
