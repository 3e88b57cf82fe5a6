// Relay throughput benchmark: a signed lab world with D recipient domains (each its
// own signed zone with MX, A and TLSA 3 1 1 for one lab receiver's certificate), the
// danemta relay binary as a child process, N messages submitted over a few
// concurrent SMTP connections, and the time until the receiver has them all.
// Reports submission and end-to-end rates, the relay's CPU per message (DNS
// included) and peak RSS, the receiver's TCP sessions and TLS handshakes and the
// verification level. Each relay instance gets a cold batch (fresh process, empty
// resolver cache) and then a warm batch of N more messages.
// --mta postfix runs the same workload through a private Postfix instance (with its
// own validating unbound on 127.0.91.53:53, in a private mount namespace whose
// /etc/resolv.conf points there); --mta both runs danemta, then Postfix, for every
// D of --domains, and compares. Loopback only (NSD on 127.0.0.1, 127.0.90.x and
// 127.0.91.53); bounded by --messages and --timeout. See bench/README.md.
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/postfix.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/run.hpp"
#include "smtp/client.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace danemta;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kNet = 90;                            // 127.0.90.x: this benchmark's addresses
constexpr const char* kListen = "127.0.90.1";       // the relay's submission listener
constexpr const char* kParent = "bench90.example";  // D = 1: the only recipient domain
constexpr std::size_t kMaxDomains = 10000;

// The i-th (0-based) of D recipient domains. D = 1 keeps the original single
// domain; otherwise each domain is its own signed zone under bench90.example.
std::string domain_name(std::size_t domains, std::size_t i) {
  if (domains == 1) return kParent;
  return "d" + std::to_string(i + 1) + "." + kParent;
}

// --- command line ---------------------------------------------------------------

struct Options {
  std::string danemta = "build/release/src/app/danemta";
  std::size_t messages = 2000;
  std::size_t size = 4096;
  std::size_t connections = 4;
  std::size_t max_deliveries = 100;
  std::size_t max_per_destination = 20;
  int timeout_seconds = 300;
  std::string spool_dir;                    // empty: the world's directory
  std::string mta = "danemta";              // danemta | postfix | both
  std::vector<std::size_t> domains{1};      // one instance (cold + warm batch) per D
  bool warm = true;                         // a second batch through the same instance
  std::size_t repeat = 1;                   // the whole sequence, this many times
  bool keep = false;                        // keep the Postfix instance's directory
  std::vector<std::string> postfix_params;  // extra main.cf lines, NAME=VALUE
  std::vector<std::string> danemta_params;  // SECTION.KEY=VALUE (TOML value)
  std::string perf_dir;                     // perf record the danemta relay into here
};

void usage(std::ostream& out) {
  out << "usage: danemta_bench_relay [options]\n"
         "  --danemta PATH             relay binary (default build/release/src/app/danemta)\n"
         "  --messages N               messages per batch (default 2000, 1..1000000)\n"
         "  --size BYTES               size of each message (default 4096)\n"
         "  --connections C            concurrent submission connections (default 4)\n"
         "  --domains D[,D...]         recipient domains, round robin (default 1); a list\n"
         "                             runs every D in turn, e.g. 1,100,1000\n"
         "  --warm yes|no              after the cold batch, a warm batch of N more\n"
         "                             through the same relay (default yes)\n"
         "  --repeat R                 run the whole sequence R times; the summary gives\n"
         "                             medians (default 1)\n"
         "  --max-deliveries N         [relay] max_deliveries (default 100)\n"
         "  --max-per-destination N    [relay] max_per_destination (default 20)\n"
         "  --timeout SECONDS          give up on a batch after this long (default 300)\n"
         "  --spool-dir DIR            where danemta's queue.db and the Postfix instance\n"
         "                             (its queue) go (default: the lab world's dir, /tmp)\n"
         "  --mta danemta|postfix|both which relay to measure (default danemta); postfix\n"
         "                             needs root, postfix, unbound and unshare installed\n"
         "  --danemta-param S.KEY=VAL  extra danemta.toml setting, VAL in TOML syntax, e.g.\n"
         "                             dns.cache_mib=1 or delivery.inet_protocols='\"ipv4\"'\n"
         "                             (repeatable; replaces the benchmark's own value)\n"
         "  --perf DIR                 perf record (-F 999) the danemta relay of every\n"
         "                             instance into DIR (its figures are then perturbed)\n"
         "  --keep-postfix-dir yes     do not remove the Postfix instance's temp directory\n"
         "  --postfix-param NAME=VALUE extra main.cf setting (repeatable; last one wins)\n";
}

std::size_t parse_count(const std::string& flag, const std::string& text, std::size_t min,
                        std::size_t max) {
  std::size_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max)
    throw std::invalid_argument(flag + ": expected a number in " + std::to_string(min) + ".." +
                                std::to_string(max) + ", got '" + text + "'");
  return v;
}

bool parse_yes_no(const std::string& flag, const std::string& value) {
  if (value == "yes") return true;
  if (value == "no") return false;
  throw std::invalid_argument(flag + ": expected yes or no, got '" + value + "'");
}

Options parse_options(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "-h" || flag == "--help") {
      usage(std::cout);
      std::exit(0);
    }
    if (i + 1 >= args.size()) throw std::invalid_argument(flag + ": unknown flag or no value");
    const std::string& value = args[++i];
    if (flag == "--danemta") {
      o.danemta = value;
    } else if (flag == "--messages") {
      o.messages = parse_count(flag, value, 1, 1000000);
    } else if (flag == "--size") {
      o.size = parse_count(flag, value, 256, 10000000);
    } else if (flag == "--connections") {
      o.connections = parse_count(flag, value, 1, 256);
    } else if (flag == "--domains") {
      o.domains.clear();
      std::istringstream in(value);
      for (std::string d; std::getline(in, d, ',');)
        o.domains.push_back(parse_count(flag, d, 1, kMaxDomains));
      if (o.domains.empty()) throw std::invalid_argument("--domains: expected D[,D...]");
    } else if (flag == "--warm") {
      o.warm = parse_yes_no(flag, value);
    } else if (flag == "--repeat") {
      o.repeat = parse_count(flag, value, 1, 100);
    } else if (flag == "--max-deliveries") {
      o.max_deliveries = parse_count(flag, value, 1, 100000);
    } else if (flag == "--max-per-destination") {
      o.max_per_destination = parse_count(flag, value, 1, 100000);
    } else if (flag == "--timeout") {
      o.timeout_seconds = static_cast<int>(parse_count(flag, value, 1, 86400));
    } else if (flag == "--spool-dir") {
      o.spool_dir = value;
    } else if (flag == "--mta") {
      if (value != "danemta" && value != "postfix" && value != "both")
        throw std::invalid_argument("--mta: expected danemta, postfix or both, got '" + value +
                                    "'");
      o.mta = value;
    } else if (flag == "--keep-postfix-dir") {
      o.keep = parse_yes_no(flag, value);
    } else if (flag == "--postfix-param") {
      if (value.find('=') == std::string::npos || value.find('\n') != std::string::npos)
        throw std::invalid_argument("--postfix-param: expected NAME=VALUE, got '" + value + "'");
      o.postfix_params.push_back(value);
    } else if (flag == "--danemta-param") {
      const auto eq = value.find('=');
      const auto dot = value.find('.');
      if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 >= eq ||
          value.find('\n') != std::string::npos)
        throw std::invalid_argument("--danemta-param: expected SECTION.KEY=VALUE, got '" + value +
                                    "'");
      o.danemta_params.push_back(value);
    } else if (flag == "--perf") {
      o.perf_dir = value;
    } else {
      throw std::invalid_argument(flag + ": unknown flag");
    }
  }
  return o;
}

// --- signals: Ctrl-C ends the run through the destructors (NSD, relay) ------------

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_signal(int) {
  g_interrupted = 1;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// --- small helpers --------------------------------------------------------------

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The relay's pid: lab::Process does not expose it, so find our child whose command
// line carries the relay's config path.
std::optional<pid_t> child_pid(const std::string& config_path) {
  const pid_t self = ::getpid();
  for (const fs::directory_entry& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_file(e.path() / "stat");
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(close_paren + 2));
    std::string state;
    long ppid = 0;
    fields >> state >> ppid;
    if (ppid != self) continue;
    std::string cmdline = read_file(e.path() / "cmdline");
    if (cmdline.find(config_path) != std::string::npos) return static_cast<pid_t>(std::stol(name));
  }
  return std::nullopt;
}

// utime + stime of a process, in milliseconds (/proc/PID/stat fields 14 and 15).
double cpu_ms(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return static_cast<double>(utime + stime) * 1000.0 / ticks;
}

// A "VmHWM:   12345 kB" style line of /proc/PID/status, in KiB.
long status_kib(pid_t pid, const std::string& key) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0)
      return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  return -1;
}

double self_cpu_ms() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1000.0 + static_cast<double>(t.tv_usec) / 1000.0;
  };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

std::string fs_type(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
      return buf;
    }
  }
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string machine() {
  std::string model = "?";
  std::istringstream in(read_file("/proc/cpuinfo"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " cpus";
}

// A message of exactly `size` bytes (CRLF line endings), numbered.
std::string make_message(std::size_t seq, const std::string& rcpt, std::size_t size) {
  std::string m = "From: <bench@sender.example>\r\nTo: <" + rcpt + ">\r\nSubject: bench " +
                  std::to_string(seq) + "\r\nMessage-ID: <bench." + std::to_string(seq) +
                  "@sender.example>\r\nX-Bench-Seq: " + std::to_string(seq) + "\r\n\r\n";
  const std::string line(76, 'x');
  while (m.size() + line.size() + 2 <= size) m += line + "\r\n";
  if (m.size() + 2 < size) m += std::string(size - m.size() - 2, 'y') + "\r\n";
  return m;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

// --- the relays under test ------------------------------------------------------

// Fields 3.. of /proc/PID/stat (after the command name); empty if the process is gone.
std::vector<std::string> stat_fields(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return {};
  std::istringstream in(stat.substr(close_paren + 2));
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

double ticks_to_ms(unsigned long long ticks) {
  return static_cast<double>(ticks) * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Queries the lab's NSD has answered since it started, per type ("RQ" = all): NSD
// logs its BIND8-style counters (NSTATS per type, XSTATS totals) on SIGUSR1. The
// difference over a batch is what the relay's resolver (danemta's libunbound,
// Postfix's unbound) asked the authoritative side: cold lookups, or cache misses.
class NsdQueries {
 public:
  NsdQueries() = default;
  NsdQueries(pid_t pid, std::string log_path) : pid_(pid), log_(std::move(log_path)) {}

  std::map<std::string, long> snapshot() const {
    std::map<std::string, long> out;
    if (pid_ <= 0) return out;
    const std::size_t before = count(read_file(log_), " XSTATS ");
    ::kill(pid_, SIGUSR1);
    std::string text;
    for (int i = 0; i < 300; ++i) {  // a child logs them within a few ms
      text = read_file(log_);
      if (count(text, " XSTATS ") > before) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto last_line = [&text](const char* tag) {
      const auto at = text.rfind(tag);
      if (at == std::string::npos) return std::string();
      return text.substr(at, text.find('\n', at) - at);
    };
    auto pairs = [&out](const std::string& line, bool only_rq) {
      std::istringstream in(line);
      for (std::string tok; in >> tok;) {
        const auto eq = tok.find('=');
        if (eq == std::string::npos) continue;
        const std::string key = tok.substr(0, eq);
        if (!only_rq || key == "RQ") out[key] = std::strtol(tok.c_str() + eq + 1, nullptr, 10);
      }
    };
    pairs(last_line(" NSTATS "), false);
    pairs(last_line(" XSTATS "), true);
    return out;
  }

  static std::map<std::string, long> diff(const std::map<std::string, long>& before,
                                          const std::map<std::string, long>& after) {
    std::map<std::string, long> out;
    for (const auto& [key, n] : after) {
      const auto it = before.find(key);
      const long d = n - (it == before.end() ? 0 : it->second);
      if (d != 0) out[key] = d;
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// The relay being measured: its processes' CPU, memory and log.
class Mta {
 public:
  virtual ~Mta() = default;
  virtual std::uint16_t port() const = 0;
  virtual double cpu_ms() const = 0;                  // the MTA's own processes
  virtual double helper_cpu_ms() const { return 0; }  // the resolver it depends on (Postfix)
  virtual void sample() {}                            // every ~0.5 s during a batch
  virtual long memory_kib() const = 0;                // see memory_label()
  virtual long helper_memory_kib() const { return 0; }
  virtual std::string memory_label() const = 0;
  virtual long threads() const = 0;
  virtual std::string log_path() const = 0;
  virtual std::string log() const = 0;
  virtual void stop() = 0;
  // Per-delivery (danemta) or per-session (Postfix) TLS verification levels.
  virtual std::map<std::string, std::size_t> tls_levels(const std::string& log) const = 0;
  virtual std::size_t dane_verified(const std::string& log) const = 0;
};

// The lines a log file gained since the last mark(), read incrementally (the logs
// of a long run grow to megabytes; re-reading them every 100 ms would load the
// machine the relay runs on).
class LogTail {
 public:
  explicit LogTail(std::string path) : path_(std::move(path)) {}
  void poll() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return;
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const auto nl = chunk.rfind('\n');
    if (nl == std::string::npos) return;  // only complete lines
    chunk.resize(nl + 1);
    offset_ += chunk.size();
    sent_ += count(chunk, "status=sent");
    deferred_ += count(chunk, "status=deferred");
    text_ += chunk;
  }
  void mark() {
    poll();
    text_.clear();
    sent_ = deferred_ = 0;
  }
  const std::string& text() const { return text_; }
  std::size_t sent() const { return sent_; }
  std::size_t deferred() const { return deferred_; }

 private:
  std::string path_;
  std::size_t offset_ = 0;
  std::string text_;
  std::size_t sent_ = 0, deferred_ = 0;
};

// "tls=VALUE" of every status=sent line, counted per VALUE.
std::map<std::string, std::size_t> sent_tls_levels(const std::string& log) {
  std::map<std::string, std::size_t> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("status=sent") == std::string::npos) continue;
    auto at = line.rfind("tls=");
    std::string level = at == std::string::npos ? "(none)" : line.substr(at + 4);
    while (!level.empty() && (level.back() == '\r' || level.back() == ' ')) level.pop_back();
    ++out[level];
  }
  return out;
}

// danemta.toml as sections of KEY = VALUE lines (VALUE in TOML syntax), so that
// --danemta-param can replace the benchmark's own settings.
class Toml {
 public:
  void set(const std::string& section, const std::string& key, const std::string& value) {
    auto s = std::find_if(sections_.begin(), sections_.end(),
                          [&](const auto& x) { return x.first == section; });
    if (s == sections_.end()) s = sections_.insert(sections_.end(), {section, {}});
    auto k = std::find_if(s->second.begin(), s->second.end(),
                          [&](const auto& x) { return x.first == key; });
    if (k == s->second.end()) {
      s->second.emplace_back(key, value);
    } else {
      k->second = value;
    }
  }
  std::string text() const {
    std::string out;
    for (const auto& [section, entries] : sections_) {
      out += "[" + section + "]\n";
      for (const auto& [key, value] : entries) out += key + " = " + value + "\n";
      out += "\n";
    }
    return out;
  }
  static std::string quote(const std::string& s) { return "\"" + s + "\""; }

 private:
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> sections_;
};

class Danemta final : public Mta {
 public:
  // `tag` names this instance's files (config, log, spool) in the world's directory.
  Danemta(const Options& o, const std::string& binary, const lab::World& world,
          std::uint16_t rx_port, const std::string& tag)
      : port_(lab::free_tcp_port()),
        config_path_(world.dir() + "/danemta-" + tag + ".toml"),
        log_path_(world.dir() + "/relay-" + tag + ".log"),
        spool_dir_(o.spool_dir.empty() ? world.dir() : o.spool_dir),
        spool_(spool_dir_ + "/bench-queue-" + std::to_string(::getpid()) + "-" + tag + ".db") {
    Toml c;
    c.set("dns", "forwarders", "[" + Toml::quote(world.resolver()) + "]");
    c.set("dns", "trust_anchor_file", Toml::quote(world.trust_anchor_file()));
    c.set("dns", "timeout_seconds", "10");
    c.set("delivery", "port", std::to_string(rx_port));
    // As Postfix's inet_protocols = ipv4 (tests/lab/postfix.cpp): the lab has no
    // AAAA records, and neither relay looks them up.
    c.set("delivery", "inet_protocols", Toml::quote("ipv4"));
    c.set("relay", "listen",
          "[" + Toml::quote(std::string(kListen) + ":" + std::to_string(port_)) + "]");
    c.set("relay", "spool", Toml::quote(spool_));
    c.set("relay", "hostname", Toml::quote("relay.lab.example"));
    c.set("relay", "user", Toml::quote(lab::current_user()));
    c.set("relay", "max_deliveries", std::to_string(o.max_deliveries));
    c.set("relay", "max_per_destination", std::to_string(o.max_per_destination));
    c.set("relay", "min_backoff_seconds", "1");
    c.set("relay", "max_backoff_seconds", "2");
    for (const std::string& p : o.danemta_params) {
      const auto dot = p.find('.'), eq = p.find('=');
      c.set(p.substr(0, dot), p.substr(dot + 1, eq - dot - 1), p.substr(eq + 1));
    }
    std::ofstream(config_path_) << c.text();
    relay_ = std::make_unique<lab::Process>(
        std::vector<std::string>{binary, "--config", config_path_, "relay"}, log_path_);
    if (!relay_->wait_for_log("listening on", std::chrono::seconds(15)))
      throw std::runtime_error("the relay did not start:\n" + relay_->log());
    const std::optional<pid_t> pid = child_pid(config_path_);
    if (!pid) throw std::runtime_error("cannot find the relay's pid");
    pid_ = *pid;
    if (!o.perf_dir.empty()) {
      fs::create_directories(o.perf_dir);
      const std::string out = fs::absolute(o.perf_dir).string() + "/" + tag + ".data";
      perf_ = std::make_unique<lab::Process>(
          std::vector<std::string>{"/usr/bin/perf", "record", "-q", "-F", "999", "-o", out, "-p",
                                   std::to_string(pid_)},
          fs::absolute(o.perf_dir).string() + "/perf-" + tag + ".log");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // attached
      std::cout << "perf record of the relay: " << out << std::endl;
    }
  }
  ~Danemta() override {
    stop();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-bodies"}) fs::remove_all(spool_ + suffix, ec);
  }
  std::uint16_t port() const override { return port_; }
  double cpu_ms() const override { return ::cpu_ms(pid_); }
  long memory_kib() const override { return status_kib(pid_, "VmHWM"); }
  std::string memory_label() const override { return "relay peak RSS (VmHWM)"; }
  long threads() const override { return status_kib(pid_, "Threads"); }
  std::string log_path() const override { return log_path_; }
  std::string log() const override { return relay_ ? relay_->log() : read_file(log_path_); }
  void stop() override {
    if (perf_) perf_->stop(SIGINT);  // perf writes its file on SIGINT
    perf_.reset();
    if (relay_) relay_->stop(SIGTERM);
    relay_.reset();
  }
  std::map<std::string, std::size_t> tls_levels(const std::string& log) const override {
    return sent_tls_levels(log);
  }
  std::size_t dane_verified(const std::string& log) const override {
    return count(log, "tls=dane-verified");
  }
  const std::string& spool_dir() const { return spool_dir_; }

 private:
  std::uint16_t port_;
  std::string config_path_, log_path_, spool_dir_, spool_;
  std::unique_ptr<lab::Process> relay_, perf_;
  pid_t pid_ = -1;
};

constexpr const char* kResolverAddress = "127.0.91.53";  // glibc's resolv.conf has no port

// The Postfix instance (lab::PostfixInstance, tests/lab/postfix.hpp: its
// directory, master.cf, unbound on 127.0.91.53:53 and mount namespace) with the
// benchmark's main.cf settings (bench/README.md lists them): the submission
// listener on kListen, TLS connection reuse through tlsproxy, one transport entry
// per recipient domain, the process and destination limits, --postfix-param.
lab::PostfixConfig postfix_config(const Options& o, std::uint16_t rx_port,
                                  const std::vector<std::string>& domains) {
  lab::PostfixConfig c;
  c.listen = kListen;
  c.resolver_address = kResolverAddress;
  // --spool-dir puts the instance (and so its queue) where danemta's spool goes.
  c.dir_template =
      (o.spool_dir.empty() ? std::string("/tmp") : o.spool_dir) + "/danemta-bench-postfix-XXXXXX";
  c.myhostname = "relay.lab.example";
  // smtp:DOMAIN:PORT keeps the MX lookup (no brackets) and the TLSA lookup at
  // _PORT._tcp.<MX host>.
  for (const std::string& d : domains)
    c.transport.push_back(d + " smtp:" + d + ":" + std::to_string(rx_port));
  c.connection_reuse = true;
  c.main_cf = {"default_process_limit = " + std::to_string(o.max_deliveries),
               "smtp_destination_concurrency_limit = " + std::to_string(o.max_per_destination)};
  c.main_cf.insert(c.main_cf.end(), o.postfix_params.begin(), o.postfix_params.end());
  c.keep_dir = o.keep;
  c.interrupted = &g_interrupted;
  return c;
}

// What --mta postfix needs, checked before anything runs.
void check_postfix_prerequisites() {
  const std::string why = lab::PostfixInstance::missing();
  if (!why.empty())
    throw std::runtime_error("--mta postfix: " + why +
                             " (it needs root, and apt-get install postfix unbound util-linux; "
                             "see bench/README.md)");
}

// Postfix as a relay under test: lab::PostfixInstance plus what is measured of
// it (CPU and PSS of master and its children, unbound's CPU and peak RSS) and
// how its log is read.
class Postfix final : public Mta {
 public:
  // `domains`: every recipient domain of the world, one transport entry each.
  Postfix(const Options& o, const lab::World& world, std::uint16_t rx_port,
          const std::vector<std::string>& domains)
      : instance_(world, postfix_config(o, rx_port, domains)) {}

  std::uint16_t port() const override { return instance_.port(); }

  // master's own and reaped children's time (fields 14-17) plus its live children's.
  double cpu_ms() const override {
    std::vector<std::string> f = stat_fields(instance_.master_pid());
    if (f.size() < 15) return 0;
    unsigned long long t = 0;
    for (int i = 14; i <= 17; ++i) t += std::stoull(f[static_cast<std::size_t>(i - 3)]);
    for (pid_t child : lab::child_processes(instance_.master_pid())) {
      std::vector<std::string> c = stat_fields(child);
      if (c.size() >= 13) t += std::stoull(c[11]) + std::stoull(c[12]);
    }
    return ticks_to_ms(t);
  }
  double helper_cpu_ms() const override { return ::cpu_ms(instance_.unbound_pid()); }
  // Sum of Pss (shared pages divided among their users) over master and its live
  // children, sampled every ~0.5 s during the batches and at their ends: the
  // highest sum so far. Summing VmHWM would count the shared libraries once per
  // process.
  void sample() override { peak_pss_kib_ = std::max(peak_pss_kib_, pss_sum_kib()); }
  long memory_kib() const override { return std::max(peak_pss_kib_, pss_sum_kib()); }
  std::string memory_label() const override { return "Postfix peak PSS (sum, sampled)"; }
  long helper_memory_kib() const override { return status_kib(instance_.unbound_pid(), "VmHWM"); }
  long pss_sum_kib() const {
    auto pss = [](pid_t pid) {
      std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/smaps_rollup"));
      for (std::string line; std::getline(in, line);)
        if (line.rfind("Pss:", 0) == 0) return std::strtol(line.c_str() + 4, nullptr, 10);
      return 0L;
    };
    const pid_t master = instance_.master_pid();
    long sum = pss(master);
    for (pid_t child : lab::child_processes(master)) sum += pss(child);
    return sum;
  }
  long threads() const override {  // processes, not threads
    return 1 + static_cast<long>(lab::child_processes(instance_.master_pid()).size());
  }
  std::string log() const override { return instance_.log(); }
  std::string log_path() const override { return instance_.log_path(); }
  void stop() override { instance_.stop(); }

  // smtp(8) logs one line per TLS session it sets up: "Verified" = DANE-verified
  // here (the TLSA 3 1 1 matched); "Trusted", "Untrusted", "Anonymous" would be less.
  std::map<std::string, std::size_t> tls_levels(const std::string& log) const override {
    std::map<std::string, std::size_t> out;
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(" postfix/smtp[") == std::string::npos) continue;
      auto at = line.find(" TLS connection established");
      if (at == std::string::npos) continue;
      auto colon = line.rfind(": ", at);
      ++out[line.substr(colon + 2, at - colon - 2) + " (smtp sessions)"];
    }
    return out;
  }
  std::size_t dane_verified(const std::string& log) const override {
    auto levels = tls_levels(log);
    auto it = levels.find("Verified (smtp sessions)");
    return it == levels.end() ? 0 : it->second;
  }
  const std::string& dir() const { return instance_.dir(); }

 private:
  lab::PostfixInstance instance_;
  long peak_pss_kib_ = 0;
};

// --- submission -----------------------------------------------------------------

struct Submission {
  std::size_t accepted = 0;
  std::size_t failed = 0;
  std::string first_error;
  Clock::time_point last_accepted{};
};

// rcpt<seq> at the (seq mod domains)-th domain: round robin.
std::string recipient(std::size_t seq, std::size_t domains) {
  return "rcpt" + std::to_string(seq) + "@" + domain_name(domains, seq % domains);
}

// One submission connection: connect, EHLO, then `count` transactions (RSET
// between, done by the client), then QUIT.
asio::awaitable<void> submit(asio::io_context& io, std::uint16_t port, std::size_t first,
                             std::size_t count, std::size_t size, std::size_t domains,
                             Submission& out) {
  smtp::ClientConfig config;
  config.connect = config.greeting = config.ehlo = config.mail = config.rcpt = config.data_init =
      config.data_block = config.dot = config.rset = config.quit = std::chrono::seconds(60);
  smtp::Client client(io, config);
  auto fail = [&](const smtp::Failure& f, std::size_t lost) {
    out.failed += lost;
    if (out.first_error.empty()) out.first_error = f.to_string();
  };
  const std::string listen = kListen;  // named: no temporaries inside co_await (HACKING.md)
  const std::string helo = "bench.sender.example";
  auto greeting = co_await client.connect(listen, port);
  if (!greeting) {
    fail(greeting.error(), count);
    co_return;
  }
  auto caps = co_await client.ehlo(helo);
  if (!caps) {
    fail(caps.error(), count);
    co_return;
  }
  for (std::size_t i = 0; i < count && !g_interrupted; ++i) {
    const std::size_t seq = first + i;
    const std::string rcpt = recipient(seq, domains);
    const std::string message = make_message(seq, rcpt, size);
    smtp::Envelope envelope{"bench@sender.example", {rcpt}};
    auto sent = co_await client.send(std::move(envelope), message);
    if (!sent) {
      fail(sent.error(), count - i);
      co_return;
    }
    if (sent->data_reply && sent->data_reply->code == 250) {
      ++out.accepted;
      out.last_accepted = Clock::now();
    } else {
      ++out.failed;
      if (out.first_error.empty())
        out.first_error = sent->data_reply ? sent->data_reply->to_string() : "no DATA reply";
    }
  }
  co_await client.quit();
}

// --- one batch ------------------------------------------------------------------

// What the receiver saw of the current batch (reset between batches).
struct Received {
  std::atomic<std::size_t> messages{0};
  std::atomic<std::size_t> in_tls{0};
  std::atomic<Clock::rep> first{0};
  std::atomic<Clock::rep> last{0};
  void reset() {
    messages = 0;
    in_tls = 0;
    first = 0;
    last = 0;
  }
};

struct Batch {
  std::string which;  // danemta | postfix
  std::size_t domains = 1;
  std::string name;  // cold | warm
  std::size_t round = 0;
  std::size_t first_seq = 0;
};

std::string loadavg_1min() {
  std::string l = read_file("/proc/loadavg");
  return l.substr(0, l.find(' '));
}

// Submits N messages through `relay`, waits until the receiver has them all and
// the relay has logged every delivery, and reports (a table, then one JSON line).
json run_batch(const Options& o, const Batch& b, Mta& relay, LogTail& tail, const lab::Receiver& mx,
               Received& received, std::size_t& sessions_seen, const std::string& spool_dir,
               const NsdQueries& nsd) {
  // Other work on the machine skews every figure: report the load at the start.
  const std::string loadavg = loadavg_1min();
  const std::map<std::string, long> nsd_start = nsd.snapshot();
  received.reset();
  tail.mark();
  const double cpu_start = relay.cpu_ms();
  const double helper_start = relay.helper_cpu_ms();
  const double self_start = self_cpu_ms();

  // Submit over `connections` concurrent sessions on one io_context.
  const auto deadline = Clock::now() + std::chrono::seconds(o.timeout_seconds);
  const std::size_t connections = std::min(o.connections, o.messages);
  Submission submission;
  asio::io_context io;
  const Clock::time_point start = Clock::now();
  std::size_t next = b.first_seq;
  for (std::size_t c = 0; c < connections; ++c) {
    const std::size_t share = o.messages / connections + (c < o.messages % connections ? 1 : 0);
    asio::co_spawn(io, submit(io, relay.port(), next, share, o.size, b.domains, submission),
                   [&submission](std::exception_ptr e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       submission.first_error = ex.what();
                     }
                   });
    next += share;
  }
  auto last_sample = Clock::now();
  auto sample = [&] {
    if (Clock::now() - last_sample < std::chrono::milliseconds(500)) return;
    relay.sample();
    last_sample = Clock::now();
  };
  while (!io.stopped() && Clock::now() < deadline && !g_interrupted) {
    io.run_for(std::chrono::milliseconds(500));
    sample();
  }
  const double submit_seconds =
      submission.accepted > 0 ? seconds(submission.last_accepted - start) : 0;

  // Wait until the receiver has every accepted message, then until the relay has
  // logged (and recorded) every delivery, so its CPU time covers the whole work.
  while (received.messages.load() < submission.accepted && Clock::now() < deadline &&
         !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    sample();
  }
  const std::size_t delivered = received.messages.load();
  const Clock::time_point last_received{Clock::duration(received.last.load())};
  const double e2e_seconds = delivered > 0 ? seconds(last_received - start) : 0;
  tail.poll();
  while (tail.sent() < delivered && Clock::now() < deadline && !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    tail.poll();
  }
  const double relay_cpu = relay.cpu_ms() - cpu_start;
  const double helper_cpu = relay.helper_cpu_ms() - helper_start;
  relay.sample();
  const long memory_kib = relay.memory_kib();
  const long helper_memory_kib = relay.helper_memory_kib();
  const long threads = relay.threads();
  const double bench_cpu = self_cpu_ms() - self_start;
  tail.poll();
  const std::string& log = tail.text();
  const std::map<std::string, long> queries = NsdQueries::diff(nsd_start, nsd.snapshot());
  const long all_queries = queries.count("RQ") ? queries.at("RQ") : 0;

  // The receiver's TCP sessions opened during this batch and their TLS handshakes.
  const std::vector<lab::Session> sessions = mx.sessions();  // a copy of everything: once
  std::size_t tcp_sessions = 0, tls_sessions = 0, mixed_sessions = 0;
  std::map<std::string, std::size_t> protocols;
  for (std::size_t i = sessions_seen; i < sessions.size(); ++i) {
    ++tcp_sessions;
    // A session that carried recipients of two domains: connection reuse across
    // destinations (each domain has its own MX host, TLSA RRset and SNI).
    std::string first_domain;
    bool mixed = false;
    for (const lab::Message& m : sessions[i].messages)
      for (const std::string& r : m.rcpt_to) {
        const std::string domain = r.substr(r.find('@') + 1);
        if (first_domain.empty()) first_domain = domain;
        mixed = mixed || domain != first_domain;
      }
    if (mixed) ++mixed_sessions;
    if (sessions[i].starttls_completed) {
      ++tls_sessions;
      ++protocols[sessions[i].tls_version + " " + sessions[i].cipher];
    }
  }
  sessions_seen = sessions.size();
  const std::map<std::string, std::size_t> levels = relay.tls_levels(log);
  const std::size_t dane_verified = relay.dane_verified(log);
  const bool complete = submission.accepted == o.messages && delivered == o.messages;

  const double n = static_cast<double>(o.messages);
  const double submit_rate =
      submit_seconds > 0 ? static_cast<double>(submission.accepted) / submit_seconds : 0;
  const double e2e_rate = e2e_seconds > 0 ? static_cast<double>(delivered) / e2e_seconds : 0;
  const double per_msg = delivered > 0 ? 1.0 / static_cast<double>(delivered) : 0;
  const double cpu_per_msg = relay_cpu * per_msg;
  const bool postfix = b.which == "postfix";

  json result = {
      {"bench", "relay_throughput"},
      {"mta", b.which},
      {"domains", b.domains},
      {"batch", b.name},
      {"round", b.round},
      {"complete", complete},
      {"messages", o.messages},
      {"size", o.size},
      {"connections", connections},
      {"max_deliveries", o.max_deliveries},
      {"max_per_destination", o.max_per_destination},
      {"accepted", submission.accepted},
      {"submit_failed", submission.failed},
      {"delivered", delivered},
      {"delivered_in_tls", received.in_tls.load()},
      {"submit_seconds", submit_seconds},
      {"submit_msgs_per_s", submit_rate},
      {"e2e_seconds", e2e_seconds},
      {"first_delivery_seconds",
       delivered > 0 ? seconds(Clock::time_point(Clock::duration(received.first.load())) - start)
                     : 0},
      {"e2e_msgs_per_s", e2e_rate},
      {"relay_cpu_ms", relay_cpu},
      {"relay_cpu_ms_per_msg", cpu_per_msg},
      {"resolver_cpu_ms", helper_cpu},
      {"resolver_cpu_ms_per_msg", helper_cpu * per_msg},
      {"cpu_ms_per_msg_with_dns", (relay_cpu + helper_cpu) * per_msg},
      {postfix ? "relay_peak_pss_kib_sampled" : "relay_peak_rss_kib", memory_kib},
      {"resolver_peak_rss_kib", helper_memory_kib},
      {postfix ? "relay_processes_at_end" : "relay_threads", threads},
      {"bench_cpu_ms", bench_cpu},
      {"authoritative_queries", all_queries},
      {"authoritative_queries_by_type", queries},
      {"receiver_sessions", tcp_sessions},
      {"receiver_tls_sessions", tls_sessions},
      {"receiver_sessions_with_two_domains", mixed_sessions},
      {"sessions_per_msg",
       delivered > 0 ? static_cast<double>(tcp_sessions) / static_cast<double>(delivered) : 0},
      {"tls_levels", levels},
      {"dane_verified_lines", dane_verified},
      {"sent_lines", tail.sent()},
      {"deferred_lines", tail.deferred()},
      {"tls_protocols", protocols},
      {"spool_fs", fs_type(spool_dir)},
      {"machine", machine()},
      {"loadavg_1min_at_start", loadavg},
  };
  if (!submission.first_error.empty()) result["first_error"] = submission.first_error;

  auto row = [](const std::string& k, const std::string& v) {
    std::printf("  %-34s %s\n", k.c_str(), v.c_str());
  };
  auto fmt = [](const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  std::printf("%s relay throughput, D=%zu, %s batch (%s)\n", b.which.c_str(), b.domains,
              b.name.c_str(), complete ? "complete" : "INCOMPLETE");
  row("machine", machine() + ", load " + loadavg + " at start");
  row("messages x size", std::to_string(o.messages) + " x " + std::to_string(o.size) + " B to " +
                             std::to_string(b.domains) + " domain(s)");
  row("submission connections", std::to_string(connections));
  row(postfix ? "process limit / per destination" : "max_deliveries / per destination",
      std::to_string(o.max_deliveries) + " / " + std::to_string(o.max_per_destination));
  row("spool filesystem", fs_type(spool_dir));
  row("accepted (250, durable)", std::to_string(submission.accepted) + " in " +
                                     fmt("%.2f s", submit_seconds) + " = " +
                                     fmt("%.0f msgs/s", submit_rate));
  row("delivered (receiver)", std::to_string(delivered) + " in " + fmt("%.2f s", e2e_seconds) +
                                  " = " + fmt("%.0f msgs/s", e2e_rate) + " end to end");
  row(postfix ? "Postfix CPU (all its processes)" : "relay CPU (user+sys, DNS incl.)",
      fmt("%.0f ms", relay_cpu) + " = " + fmt("%.2f ms/msg", cpu_per_msg));
  if (postfix) {
    row("unbound CPU (its resolver)",
        fmt("%.0f ms", helper_cpu) + " = " + fmt("%.3f ms/msg", helper_cpu * per_msg));
    row("Postfix + unbound CPU", fmt("%.2f ms/msg", (relay_cpu + helper_cpu) * per_msg));
  }
  row(relay.memory_label(), fmt("%.1f MiB", static_cast<double>(memory_kib) / 1024.0));
  if (postfix)
    row("unbound peak RSS (VmHWM)",
        fmt("%.1f MiB", static_cast<double>(helper_memory_kib) / 1024.0));
  row("bench CPU (submitter+receiver)",
      fmt("%.0f ms", bench_cpu) + " = " + fmt("%.2f ms/msg", bench_cpu / n));
  std::string qt;
  for (const auto& [type, k] : queries)
    if (type != "RQ") qt += (qt.empty() ? "" : " ") + type + "=" + std::to_string(k);
  row("queries at the lab's NSD",
      std::to_string(all_queries) + (qt.empty() ? "" : " (" + qt + ")"));
  row("sink TCP sessions / TLS handshakes",
      std::to_string(tcp_sessions) + " / " + std::to_string(tls_sessions) + " for " +
          std::to_string(delivered) + " messages (" + std::to_string(received.in_tls.load()) +
          " in TLS; " + std::to_string(mixed_sessions) + " sessions with two domains)");
  std::string lv;
  for (const auto& [level, k] : levels)
    lv += (lv.empty() ? "" : ", ") + level + " " + std::to_string(k);
  row(postfix ? "smtp TLS session lines" : "tls= of status=sent lines", lv.empty() ? "-" : lv);
  row("status=sent / deferred lines",
      std::to_string(tail.sent()) + " / " + std::to_string(tail.deferred()));
  if (!submission.first_error.empty()) row("first submission error", submission.first_error);
  std::cout << result.dump() << std::endl;
  return result;
}

// --- the run --------------------------------------------------------------------

struct Lab {
  std::shared_ptr<Received> received = std::make_shared<Received>();
  std::unique_ptr<lab::Receivers> rx;
  lab::Receiver* mx = nullptr;
  std::unique_ptr<lab::World> world;
  std::vector<std::string> domains;  // every recipient domain the world has
  std::size_t sessions_seen = 0;
  NsdQueries nsd;  // the world's authoritative server: what the resolver asked
};

// One receiver (the sink) on 127.0.90.10 with a self-signed certificate, and one
// world: bench90.example (D = 1) and, when some D > 1, d1..dMAX.bench90.example,
// each a signed zone with its own MX host name (MX 10 mx, mx A 127.0.90.10,
// _PORT._tcp.mx TLSA 3 1 1 of the sink's certificate). The child zones share one
// key pair (lab.py "shared_key") so that a world of 1000 zones comes up quickly.
void make_lab(std::size_t max_domains, Lab& l) {
  const std::string mx_name = std::string("mx.") + kParent;
  lab::Chain chain = lab::self_signed({mx_name});
  lab::Behaviour behaviour = lab::Receivers::with_chain(chain, mx_name);
  behaviour.keep_data = false;  // count, do not keep, the messages
  behaviour.on_message = [received = l.received](const lab::Session& s, std::size_t index) {
    const auto now = Clock::now().time_since_epoch().count();
    Clock::rep zero = 0;
    received->first.compare_exchange_strong(zero, now);
    Clock::rep last = received->last.load();
    while (last < now && !received->last.compare_exchange_weak(last, now)) {
    }
    if (s.messages[index].in_tls) ++received->in_tls;
    ++received->messages;
  };
  l.rx = std::make_unique<lab::Receivers>(kNet);
  l.mx = &l.rx->add(10, behaviour);

  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  auto records = [&] {
    return json::array({"@ MX 10 mx", "mx A " + l.rx->ip(10), l.rx->tlsa_line("mx", tlsa)});
  };
  json zones = json::array({{{"name", kParent}, {"records", records()}}});
  l.domains = {kParent};
  if (max_domains > 1)
    for (std::size_t i = 0; i < max_domains; ++i) {
      l.domains.push_back(domain_name(max_domains, i));
      zones.push_back({{"name", l.domains.back()}, {"shared_key", true}, {"records", records()}});
    }
  const auto start = Clock::now();
  l.world = std::make_unique<lab::World>(json{{"zones", zones}}.dump());
  const json info = json::parse(read_file(l.world->dir() + "/lab.json"), nullptr, false);
  if (!info.is_discarded())
    l.nsd = NsdQueries(info.value("nsd_pid", -1), l.world->dir() + "/nsd.log");
  std::printf("lab world: %zu recipient zone(s) signed and served in %.1f s (load %s)\n",
              l.domains.size(), seconds(Clock::now() - start), loadavg_1min().c_str());
}

// One relay instance for one D: a fresh process (cold caches), a cold batch, then
// (--warm yes) a warm batch through the same instance.
void run_instance(const Options& o, const std::string& which, std::size_t domains,
                  std::size_t round, Lab& l, std::size_t& seq, std::vector<json>& results) {
  const std::string tag = which + "-d" + std::to_string(domains) + "-r" + std::to_string(round + 1);
  std::unique_ptr<Mta> relay;
  std::string spool_dir;
  if (which == "danemta") {
    auto d =
        std::make_unique<Danemta>(o, fs::absolute(o.danemta).string(), *l.world, l.rx->port(), tag);
    spool_dir = d->spool_dir();
    relay = std::move(d);
  } else {
    auto p = std::make_unique<Postfix>(o, *l.world, l.rx->port(), l.domains);
    spool_dir = p->dir() + "/queue";
    relay = std::move(p);
  }
  LogTail tail(relay->log_path());
  for (const char* name : {"cold", "warm"}) {
    if (std::string(name) == "warm" && !o.warm) break;
    if (g_interrupted) break;
    Batch b{which, domains, name, round, seq};
    results.push_back(
        run_batch(o, b, *relay, tail, *l.mx, *l.received, l.sessions_seen, spool_dir, l.nsd));
    seq += o.messages;
    if (!results.back().value("complete", false)) break;  // a warm batch would not be warm
  }
  relay->stop();
}

// Median (min-max) of one figure over the rounds of (mta, D, batch).
std::string spread(const std::vector<const json*>& rs, const char* key, const char* f,
                   double scale = 1.0) {
  std::vector<double> v;
  for (const json* r : rs) v.push_back(r->value(key, 0.0) * scale);
  if (v.empty()) return "-";
  char buf[96];
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  std::string m(64, '\0');
  m.resize(static_cast<std::size_t>(std::snprintf(m.data(), m.size(), f, median(v))));
  if (v.size() == 1) return m;
  std::string a(64, '\0'), z(64, '\0');
  a.resize(static_cast<std::size_t>(std::snprintf(a.data(), a.size(), f, *lo)));
  z.resize(static_cast<std::size_t>(std::snprintf(z.data(), z.size(), f, *hi)));
  std::snprintf(buf, sizeof buf, "%s (%s-%s)", m.c_str(), a.c_str(), z.c_str());
  return buf;
}

double median_of(const std::vector<const json*>& rs, const char* key) {
  std::vector<double> v;
  for (const json* r : rs) v.push_back(r->value(key, 0.0));
  return median(v);
}

// The summary: one markdown row per (D, batch, MTA), medians over the rounds, and
// danemta/Postfix ratios of the medians when both ran.
void summarize(const Options& o, const std::vector<json>& results,
               const std::vector<std::string>& mtas) {
  std::printf(
      "\nsummary: N=%zu x %zu B per batch, %zu round(s), median (min-max); CPU includes DNS "
      "(danemta: its own process, libunbound inside; Postfix: all its processes + its "
      "unbound); memory: danemta VmHWM, Postfix peak sampled PSS sum + unbound VmHWM\n\n",
      o.messages, o.size, o.repeat);
  std::printf(
      "| D | batch | MTA | end-to-end msgs/s | accepted msgs/s | CPU ms/msg incl. DNS | of which "
      "resolver | NSD queries | sink TCP sessions | TLS handshakes | memory MiB | complete |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  auto pick = [&](const std::string& mta, std::size_t d, const std::string& batch) {
    std::vector<const json*> rs;
    for (const json& r : results)
      if (r.value("mta", "") == mta && r.value("domains", std::size_t{0}) == d &&
          r.value("batch", "") == batch)
        rs.push_back(&r);
    return rs;
  };
  std::vector<json> compare;
  for (std::size_t d : o.domains) {
    for (const char* batch : {"cold", "warm"}) {
      for (const std::string& mta : mtas) {
        const auto rs = pick(mta, d, batch);
        if (rs.empty()) continue;
        const bool postfix = mta == "postfix";
        std::size_t complete = 0;
        for (const json* r : rs) complete += r->value("complete", false) ? 1 : 0;
        std::string memory = spread(
            rs, postfix ? "relay_peak_pss_kib_sampled" : "relay_peak_rss_kib", "%.1f", 1.0 / 1024);
        if (postfix) memory += " + " + spread(rs, "resolver_peak_rss_kib", "%.1f", 1.0 / 1024);
        std::printf(
            "| %zu | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %zu/%zu |\n", d, batch,
            mta.c_str(), spread(rs, "e2e_msgs_per_s", "%.0f").c_str(),
            spread(rs, "submit_msgs_per_s", "%.0f").c_str(),
            spread(rs, "cpu_ms_per_msg_with_dns", "%.2f").c_str(),
            postfix ? spread(rs, "resolver_cpu_ms_per_msg", "%.3f").c_str() : "(in process)",
            spread(rs, "authoritative_queries", "%.0f").c_str(),
            spread(rs, "receiver_sessions", "%.0f").c_str(),
            spread(rs, "receiver_tls_sessions", "%.0f").c_str(), memory.c_str(), complete,
            rs.size());
      }
      const auto dr = pick("danemta", d, batch), pr = pick("postfix", d, batch);
      if (dr.empty() || pr.empty()) continue;
      auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
      compare.push_back(
          {{"bench", "relay_throughput_compare"},
           {"domains", d},
           {"batch", batch},
           {"rounds", o.repeat},
           {"e2e_ratio", ratio(median_of(dr, "e2e_msgs_per_s"), median_of(pr, "e2e_msgs_per_s"))},
           {"submit_ratio",
            ratio(median_of(dr, "submit_msgs_per_s"), median_of(pr, "submit_msgs_per_s"))},
           {"cpu_ratio_with_dns", ratio(median_of(dr, "cpu_ms_per_msg_with_dns"),
                                        median_of(pr, "cpu_ms_per_msg_with_dns"))},
           {"cpu_ratio_mta_only",
            ratio(median_of(dr, "relay_cpu_ms_per_msg"), median_of(pr, "relay_cpu_ms_per_msg"))}});
    }
  }
  if (compare.empty()) return;
  std::printf(
      "\ndanemta / Postfix, ratios of the medians (targets: end-to-end >= 3, CPU incl. DNS <= "
      "0.33)\n\n| D | batch | end-to-end msgs/s | accepted msgs/s | CPU ms/msg incl. DNS | CPU, "
      "MTA processes only |\n|---|---|---|---|---|---|\n");
  for (const json& c : compare)
    std::printf("| %zu | %s | %.2f | %.2f | %.2f | %.2f |\n", c.value("domains", std::size_t{0}),
                c.value("batch", "").c_str(), c.value("e2e_ratio", 0.0),
                c.value("submit_ratio", 0.0), c.value("cpu_ratio_with_dns", 0.0),
                c.value("cpu_ratio_mta_only", 0.0));
  for (const json& c : compare) std::cout << c.dump() << std::endl;
}

int run(const Options& o) {
  std::vector<std::string> mtas;
  if (o.mta == "both") {
    mtas = {"danemta", "postfix"};
  } else {
    mtas = {o.mta};
  }
  if (o.mta != "postfix" && !fs::exists(o.danemta))
    throw std::runtime_error("no danemta binary at " + o.danemta +
                             " (build it, or pass --danemta PATH)");
  if (o.mta != "danemta") check_postfix_prerequisites();
  Lab l;
  make_lab(*std::max_element(o.domains.begin(), o.domains.end()), l);

  std::vector<json> results;
  std::size_t seq = 0;
  for (std::size_t round = 0; round < o.repeat && !g_interrupted; ++round)
    for (std::size_t d : o.domains)
      for (const std::string& mta : mtas) {
        if (g_interrupted) break;
        run_instance(o, mta, d, round, l, seq, results);
      }
  if (g_interrupted) return 130;
  summarize(o, results, mtas);
  const std::size_t expected = o.repeat * o.domains.size() * mtas.size() * (o.warm ? 2 : 1);
  const bool all_complete = results.size() == expected &&
                            std::all_of(results.begin(), results.end(),
                                        [](const json& r) { return r.value("complete", false); });
  return all_complete ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  try {
    return run(parse_options(argc, argv));
  } catch (const std::invalid_argument& e) {
    std::cerr << "danemta_bench_relay: " << e.what() << "\n";
    usage(std::cerr);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "danemta_bench_relay: " << e.what() << "\n";
    return 1;
  }
}
