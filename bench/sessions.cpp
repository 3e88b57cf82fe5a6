// danemta_bench_sessions: K outbound sessions held open at once. A slow lab
// sink (one Asio thread in this process, STARTTLS with a self-signed ECDSA
// certificate named by a TLSA 3 1 1 record) takes each message's data and then
// holds the final reply back; the relay (the danemta binary, a child process)
// gets K messages for K different recipient domains, so it opens K sessions,
// each DANE-verified, and every one waits at the end of its data.
//
// With all K held, it measures the relay's resident memory against its idle
// figure before the run (upper bound of memory per session: it includes the
// K messages' jobs and the resolver's cache for K domains) and its event-loop
// latency: the time a new SMTP client waits for the relay's greeting and its
// EHLO reply, against the same probe before the run. Then the sink answers
// 250 to every message and the run waits until the relay logged all K as
// sent. Loopback only (NSD on 127.0.0.1, the sink on 127.0.92.10, the relay
// on 127.0.92.1). bench/README.md, "Many sessions".
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/run.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace lab = danemta::lab;

namespace {

constexpr const char* kZone = "bench92.example";
constexpr const char* kSinkIp = "127.0.92.10";
constexpr const char* kRelayIp = "127.0.92.1";

// Ctrl-C or SIGTERM ends the waits, so that the destructors stop the relay
// and NSD.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_signal(int) {
  g_interrupted = 1;
}

// --- the slow sink ----------------------------------------------------------------

struct SinkState {
  std::atomic<std::size_t> connections{0};  // open now
  std::atomic<std::size_t> handshakes{0};   // STARTTLS completed
  std::atomic<std::size_t> held{0};         // messages waiting for their final reply
  std::atomic<std::size_t> answered{0};
  std::atomic<bool> release{false};
};

class Sink {
 public:
  explicit Sink(const lab::Chain& chain) : tls_(asio::ssl::context::tls_server) {
    SSL_CTX* ctx = tls_.native_handle();
    if (SSL_CTX_use_certificate(ctx, chain.leaf.x509()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, chain.leaf.key()) != 1)
      throw std::runtime_error("sink: cannot load its certificate");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    acceptor_.open(tcp::v4());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(tcp::endpoint(asio::ip::make_address(kSinkIp), 0));
    acceptor_.listen(4096);
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Sink() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return port_; }
  SinkState& state() { return state_; }
  void release() {
    state_.release = true;
    asio::post(io_, [this] { release_timer_.cancel(); });
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        continue;  // EMFILE and the like: the relay retries
      }
      asio::co_spawn(io_, session(std::move(socket)), asio::detached);
    }
  }

  // Reads one line ("...\r\n") into `line`; false at EOF or error.
  template <class Stream>
  static asio::awaitable<bool> read_line(Stream& s, asio::streambuf& buf, std::string& line) {
    auto [ec, n] =
        co_await asio::async_read_until(s, buf, "\r\n", asio::as_tuple(asio::use_awaitable));
    if (ec) co_return false;
    line.assign(asio::buffers_begin(buf.data()),
                asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
    buf.consume(n);
    co_return true;
  }
  template <class Stream>
  static asio::awaitable<bool> say(Stream& s, const std::string& text) {
    auto [ec, n] =
        co_await asio::async_write(s, asio::buffer(text), asio::as_tuple(asio::use_awaitable));
    (void)n;
    co_return !ec;
  }

  // The SMTP dialogue on `s` until QUIT, EOF or (on the plain stream) a
  // STARTTLS accepted: then `starttls` is set.
  template <class Stream>
  asio::awaitable<void> dialogue(Stream& s, asio::streambuf& buf, bool tls, bool& starttls) {
    std::string line;
    for (;;) {
      if (!co_await read_line(s, buf, line)) co_return;
      std::string verb = line.substr(0, 4);
      std::transform(verb.begin(), verb.end(), verb.begin(), ::toupper);
      if (verb == "EHLO") {
        const std::string reply = tls ? "250-sink.bench92.example\r\n250 PIPELINING\r\n"
                                      : "250-sink.bench92.example\r\n250-PIPELINING\r\n"
                                        "250 STARTTLS\r\n";
        if (!co_await say(s, reply)) co_return;
      } else if (verb == "STAR" && !tls) {
        if (!co_await say(s, std::string("220 2.0.0 go ahead\r\n"))) co_return;
        starttls = true;
        co_return;
      } else if (verb == "MAIL" || verb == "RCPT" || verb == "RSET" || verb == "NOOP") {
        if (!co_await say(s, std::string("250 2.0.0 ok\r\n"))) co_return;
      } else if (verb == "DATA") {
        if (!co_await say(s, std::string("354 go ahead\r\n"))) co_return;
        for (;;) {
          if (!co_await read_line(s, buf, line)) co_return;
          if (line == ".\r\n") break;
        }
        // The slow part: no final reply until released.
        ++state_.held;
        while (!state_.release) {
          co_await release_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        --state_.held;
        ++state_.answered;
        if (!co_await say(s, std::string("250 2.0.0 queued\r\n"))) co_return;
      } else if (verb == "QUIT") {
        co_await say(s, std::string("221 2.0.0 bye\r\n"));
        co_return;
      } else {
        if (!co_await say(s, std::string("502 5.5.2 unknown\r\n"))) co_return;
      }
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    ++state_.connections;
    struct Count {
      SinkState& s;
      ~Count() { --s.connections; }
    } count{state_};
    asio::streambuf buf;
    bool starttls = false;
    if (!co_await say(socket, std::string("220 sink.bench92.example ESMTP\r\n"))) co_return;
    co_await dialogue(socket, buf, false, starttls);
    if (!starttls) co_return;
    asio::ssl::stream<tcp::socket&> tls(socket, tls_);
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server,
                                             asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    ++state_.handshakes;
    asio::streambuf tls_buf;
    bool again = false;
    co_await dialogue(tls, tls_buf, true, again);
  }

  asio::io_context io_;
  asio::ssl::context tls_;
  tcp::acceptor acceptor_{io_};
  asio::steady_timer release_timer_{io_, Clock::time_point::max()};
  std::uint16_t port_ = 0;
  SinkState state_;
  std::thread thread_;
};

// --- the relay ----------------------------------------------------------------------

long status_kib(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

double cpu_ms(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::vector<std::string> f;
  for (std::string w; rest >> w;) f.push_back(w);
  if (f.size() < 13) return 0;
  return static_cast<double>(std::stoull(f[11]) + std::stoull(f[12])) * 1000.0 /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::optional<pid_t> child_pid(const std::string& needle) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = s.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(s.substr(close + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    if (ppid != std::to_string(::getpid())) continue;
    std::ifstream cmd(e.path() / "cmdline");
    std::string c((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    if (c.find(needle) != std::string::npos) return static_cast<pid_t>(std::stoi(name));
  }
  return std::nullopt;
}

// A blocking SMTP client on one socket: line I/O with a deadline.
class Probe {
 public:
  // Milliseconds from connect to the greeting, and to the EHLO reply's end.
  static std::pair<double, double> greet(std::uint16_t port) {
    asio::io_context io;
    tcp::socket s(io);
    const auto t0 = Clock::now();
    s.connect(tcp::endpoint(asio::ip::make_address(kRelayIp), port));
    asio::streambuf buf;
    asio::read_until(s, buf, "\r\n");
    const auto t1 = Clock::now();
    asio::write(s, asio::buffer(std::string("EHLO probe.example\r\n")));
    std::string text;
    for (;;) {
      const std::size_t n = asio::read_until(s, buf, "\r\n");
      std::string line(asio::buffers_begin(buf.data()),
                       asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
      buf.consume(n);
      if (line.size() >= 4 && line[3] == ' ') break;
    }
    const auto t2 = Clock::now();
    asio::write(s, asio::buffer(std::string("QUIT\r\n")));
    auto ms = [](Clock::duration d) {
      return std::chrono::duration<double, std::milli>(d).count();
    };
    return {ms(t1 - t0), ms(t2 - t0)};
  }
};

struct Latency {
  double greeting_median = 0, greeting_max = 0, ehlo_median = 0, ehlo_max = 0;
};

Latency probe_latency(std::uint16_t port, int probes) {
  std::vector<double> g, e;
  for (int i = 0; i < probes; ++i) {
    auto [greeting, ehlo] = Probe::greet(port);
    g.push_back(greeting);
    e.push_back(ehlo);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::sort(g.begin(), g.end());
  std::sort(e.begin(), e.end());
  return {g[g.size() / 2], g.back(), e[e.size() / 2], e.back()};
}

// Submits the K messages over one SMTP session (PIPELINING not needed: the
// relay answers each DATA once it is in the spool).
void submit(std::uint16_t port, std::size_t first, std::size_t k) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address(kRelayIp), port));
  asio::streambuf buf;
  auto reply = [&]() {
    for (;;) {
      const std::size_t n = asio::read_until(s, buf, "\r\n");
      std::string line(asio::buffers_begin(buf.data()),
                       asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
      buf.consume(n);
      if (line.size() >= 4 && line[3] == ' ') return line;
    }
  };
  auto command = [&](const std::string& c, char expect) {
    asio::write(s, asio::buffer(c));
    const std::string r = reply();
    if (r.empty() || r[0] != expect) throw std::runtime_error("submission: " + c + " -> " + r);
  };
  reply();
  command("EHLO bench.sender.example\r\n", '2');
  for (std::size_t i = first; i < first + k; ++i) {
    const std::string rcpt = "user@d" + std::to_string(i) + "." + kZone;
    command("MAIL FROM:<bench@sender.example>\r\n", '2');
    command("RCPT TO:<" + rcpt + ">\r\n", '2');
    command("DATA\r\n", '3');
    command("From: bench@sender.example\r\nTo: " + rcpt + "\r\nSubject: session " +
                std::to_string(i) + "\r\n\r\n" + std::string(1000, 'x') + "\r\n.\r\n",
            '2');
  }
  command("QUIT\r\n", '2');
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline || g_interrupted) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

std::size_t count_in_file(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

json run_one(const std::string& binary, const lab::World& world, Sink& sink, std::size_t k,
             std::size_t first, int timeout_s) {
  const std::uint16_t port = lab::free_tcp_port();
  const std::string tag = "k" + std::to_string(k);
  const std::string config = world.dir() + "/danemta-" + tag + ".toml";
  const std::string log = world.dir() + "/relay-" + tag + ".log";
  {
    std::ofstream c(config);
    c << "[dns]\nforwarders = [\"" << world.resolver() << "\"]\ntrust_anchor_file = \""
      << world.trust_anchor_file() << "\"\ntimeout_seconds = 10\n"
      << "[delivery]\nport = " << sink.port() << "\ninet_protocols = \"ipv4\"\n"
      << "connection_cache_seconds = 0\n"
      << "[relay]\nlisten = [\"" << kRelayIp << ":" << port << "\"]\nspool = \"" << world.dir()
      << "/queue-" << tag << ".db\"\nhostname = \"relay.lab.example\"\nuser = \""
      << lab::current_user() << "\"\nmax_deliveries = " << k + 10 << "\nmax_connections = " << 100
      << "\n";
  }
  lab::Process relay({binary, "--config", config, "relay"}, log);
  if (!relay.wait_for_log("listening on", std::chrono::seconds(15)))
    throw std::runtime_error("the relay did not start:\n" + relay.log());
  const auto pid = child_pid(config);
  if (!pid) throw std::runtime_error("cannot find the relay's pid");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  json r;
  r["sessions"] = k;
  const long rss_idle = status_kib(*pid, "VmRSS");
  const Latency idle = probe_latency(port, 20);
  const double cpu0 = cpu_ms(*pid);
  const auto t0 = Clock::now();
  submit(port, first, k);
  const auto t_submitted = Clock::now();
  const bool all_held =
      wait_until([&] { return sink.state().held.load() >= k; }, std::chrono::seconds(timeout_s));
  const auto t_held = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // settle
  const long rss_held = status_kib(*pid, "VmRSS");
  const long fds = static_cast<long>(std::distance(
      fs::directory_iterator("/proc/" + std::to_string(*pid) + "/fd"), fs::directory_iterator{}));
  const Latency busy = probe_latency(port, 20);
  const double cpu_held = cpu_ms(*pid);
  sink.release();
  const bool all_sent = wait_until([&] { return count_in_file(log, "status=sent") >= k; },
                                   std::chrono::seconds(timeout_s));
  const auto t_sent = Clock::now();
  const std::size_t verified = count_in_file(log, "tls=dane-verified");
  auto s = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  r["all_held"] = all_held;
  r["held"] = sink.state().held.load() + sink.state().answered.load();
  r["all_sent"] = all_sent;
  r["dane_verified"] = verified;
  r["submit_s"] = s(t_submitted - t0);
  r["open_all_s"] = s(t_held - t0);
  r["drain_s"] = s(t_sent - t_held);
  r["relay_rss_idle_kib"] = rss_idle;
  r["relay_rss_held_kib"] = rss_held;
  r["relay_vmhwm_kib"] = status_kib(*pid, "VmHWM");
  r["relay_fds_held"] = fds;
  r["kib_per_session"] =
      static_cast<double>(rss_held - rss_idle) / static_cast<double>(std::max<std::size_t>(k, 1));
  r["relay_cpu_ms_per_session_open"] = (cpu_held - cpu0) / static_cast<double>(k);
  r["relay_threads"] = status_kib(*pid, "Threads");
  r["probe_idle"] = {{"greeting_ms_median", idle.greeting_median},
                     {"greeting_ms_max", idle.greeting_max},
                     {"ehlo_ms_median", idle.ehlo_median},
                     {"ehlo_ms_max", idle.ehlo_max}};
  r["probe_held"] = {{"greeting_ms_median", busy.greeting_median},
                     {"greeting_ms_max", busy.greeting_max},
                     {"ehlo_ms_median", busy.ehlo_median},
                     {"ehlo_ms_max", busy.ehlo_max}};
  relay.stop(SIGTERM);
  sink.state().release = false;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> ks = {1000, 5000, 10000};
  std::string binary = "build/release/src/app/danemta";
  int timeout_s = 600;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sessions" && i + 1 < argc) {
      ks.clear();
      std::stringstream list(argv[++i]);
      for (std::string item; std::getline(list, item, ',');) ks.push_back(std::stoul(item));
    } else if (a == "--danemta" && i + 1 < argc) {
      binary = argv[++i];
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout_s = std::stoi(argv[++i]);
    } else {
      std::cout << "usage: danemta_bench_sessions [--sessions K[,K...]] (1000,5000,10000)\n"
                   "       [--danemta PATH] [--timeout SECONDS] (600 per step)\n";
      return a == "--help" ? 0 : 2;
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const std::size_t kmax = *std::max_element(ks.begin(), ks.end());
  // Each side needs a descriptor per session, and some to spare.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  const rlim_t want = static_cast<rlim_t>(kmax) + 1000;
  if (nofile.rlim_cur < want) {
    nofile.rlim_cur = std::min(want, nofile.rlim_max);
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (nofile.rlim_cur < want) {
    std::cerr << "danemta_bench_sessions: RLIMIT_NOFILE " << nofile.rlim_cur << " < " << want
              << " (raise the hard limit)\n";
    return 2;
  }
  try {
    const lab::Chain chain = lab::self_signed({std::string("mx.") + kZone});
    Sink sink(chain);
    // One signed zone; every dN.bench92.example is a validated wildcard answer
    // (MX 10 mx.bench92.example): K destinations, one MX host and TLSA RRset.
    const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
    json zone = {
        {"name", kZone},
        {"records", json::array({"@ MX 10 mx", "* MX 10 mx", std::string("mx A ") + kSinkIp,
                                 "_" + std::to_string(sink.port()) + "._tcp.mx TLSA " + tlsa})}};
    lab::World world(json{{"zones", json::array({zone})}}.dump());
    std::printf(
        "| sessions | all held | open all (s) | relay RSS idle -> held (MiB) | KiB per "
        "session (upper bound) | relay CPU ms per session | greeting ms idle / held "
        "(median, max) | EHLO ms idle / held (median, max) | drain (s) | dane-verified "
        "|\n|---|---|---|---|---|---|---|---|---|---|\n");
    std::size_t first = 0;
    for (std::size_t k : ks) {
      if (g_interrupted) break;
      const json r = run_one(binary, world, sink, k, first, timeout_s);
      first += k;
      std::printf(
          "| %zu | %s | %.1f | %.1f -> %.1f | %.1f | %.2f | %.1f, %.1f / %.1f, %.1f | %.1f, %.1f "
          "/ %.1f, %.1f | %.1f | %zu |\n",
          k, r["all_held"].get<bool>() ? "yes" : "NO", r["open_all_s"].get<double>(),
          r["relay_rss_idle_kib"].get<double>() / 1024,
          r["relay_rss_held_kib"].get<double>() / 1024, r["kib_per_session"].get<double>(),
          r["relay_cpu_ms_per_session_open"].get<double>(),
          r["probe_idle"]["greeting_ms_median"].get<double>(),
          r["probe_idle"]["greeting_ms_max"].get<double>(),
          r["probe_held"]["greeting_ms_median"].get<double>(),
          r["probe_held"]["greeting_ms_max"].get<double>(),
          r["probe_idle"]["ehlo_ms_median"].get<double>(),
          r["probe_idle"]["ehlo_ms_max"].get<double>(),
          r["probe_held"]["ehlo_ms_median"].get<double>(),
          r["probe_held"]["ehlo_ms_max"].get<double>(), r["drain_s"].get<double>(),
          r["dane_verified"].get<std::size_t>());
      std::cout << json{{"bench", "sessions"}, {"result", r}}.dump() << std::endl;
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::cerr << "danemta_bench_sessions: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
