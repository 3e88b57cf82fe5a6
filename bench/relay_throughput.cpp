// Relay throughput benchmark: a signed lab world with one DANE domain (TLSA 3 1 1 for
// a lab receiver's certificate), the danemta relay binary as a child process, N
// messages submitted over a few concurrent SMTP connections, and the time until the
// receiver has them all. Reports submission and end-to-end rates, the relay's CPU
// per message and peak RSS, TLS sessions per message and the verification level.
// --mta postfix runs the same workload through a private Postfix instance (with its
// own validating unbound on 127.0.0.153:53, in a private mount namespace whose
// /etc/resolv.conf points there); --mta both runs danemta, then Postfix, and
// compares. Loopback only (127.0.0.1, 127.0.0.153 and 127.0.90.x); bounded by
// --messages and --timeout. See bench/README.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
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

constexpr int kNet = 90;  // 127.0.90.x: this benchmark's own receiver addresses
constexpr const char* kDomain = "bench90.example";
constexpr const char* kMx = "mx.bench90.example";

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
  bool keep = false;                        // keep the Postfix instance's directory
  std::vector<std::string> postfix_params;  // extra main.cf lines, NAME=VALUE
};

void usage(std::ostream& out) {
  out << "usage: danemta_bench_relay [options]\n"
         "  --danemta PATH             relay binary (default build/release/src/app/danemta)\n"
         "  --messages N               messages to submit (default 2000, 1..1000000)\n"
         "  --size BYTES               size of each message (default 4096)\n"
         "  --connections C            concurrent submission connections (default 4)\n"
         "  --max-deliveries N         [relay] max_deliveries (default 100)\n"
         "  --max-per-destination N    [relay] max_per_destination (default 20)\n"
         "  --timeout SECONDS          give up after this long (default 300)\n"
         "  --spool-dir DIR            where queue.db goes (default: the lab world's dir)\n"
         "  --mta danemta|postfix|both which relay to measure (default danemta); postfix\n"
         "                             needs root, postfix, unbound and unshare installed\n"
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
      o.keep = value == "yes";
    } else if (flag == "--postfix-param") {
      if (value.find('=') == std::string::npos || value.find('\n') != std::string::npos)
        throw std::invalid_argument("--postfix-param: expected NAME=VALUE, got '" + value + "'");
      o.postfix_params.push_back(value);
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
std::string make_message(std::size_t seq, std::size_t size) {
  std::string m = "From: <bench@sender.example>\r\nTo: <rcpt" + std::to_string(seq) + "@" +
                  kDomain + ">\r\nSubject: bench " + std::to_string(seq) +
                  "\r\nMessage-ID: <bench." + std::to_string(seq) +
                  "@sender.example>\r\nX-Bench-Seq: " + std::to_string(seq) + "\r\n\r\n";
  const std::string line(76, 'x');
  while (m.size() + line.size() + 2 <= size) m += line + "\r\n";
  if (m.size() + 2 < size) m += std::string(size - m.size() - 2, 'y') + "\r\n";
  return m;
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

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const fs::directory_entry& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    std::vector<std::string> f = stat_fields(pid);
    if (f.size() > 1 && std::stol(f[1]) == parent) out.push_back(pid);
  }
  return out;
}

bool alive(pid_t pid) {
  std::vector<std::string> f = stat_fields(pid);
  return !f.empty() && f[0] != "Z";
}

// The relay being measured: its processes' CPU, memory and log.
class Mta {
 public:
  virtual ~Mta() = default;
  virtual std::string name() const = 0;
  virtual std::uint16_t port() const = 0;
  virtual double cpu_ms() const = 0;                  // the MTA's own processes
  virtual double helper_cpu_ms() const { return 0; }  // the resolver it depends on (Postfix)
  virtual long rss_kib() const = 0;
  virtual long threads() const = 0;
  virtual std::string log() const = 0;
  virtual void stop() = 0;
  // Per-delivery (danemta) or per-session (Postfix) TLS verification levels.
  virtual std::map<std::string, std::size_t> tls_levels(const std::string& log) const = 0;
  virtual std::size_t dane_verified(const std::string& log) const = 0;
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

class Danemta final : public Mta {
 public:
  Danemta(const Options& o, const std::string& binary, const lab::World& world,
          std::uint16_t rx_port)
      : port_(lab::free_tcp_port()),
        config_path_(world.dir() + "/danemta.toml"),
        spool_dir_(o.spool_dir.empty() ? world.dir() : o.spool_dir),
        spool_(spool_dir_ + "/bench-queue-" + std::to_string(::getpid()) + ".db") {
    std::ofstream(config_path_) << "[dns]\nforwarders = [\"" << world.resolver()
                                << "\"]\ntrust_anchor_file = \"" << world.trust_anchor_file()
                                << "\"\ntimeout_seconds = 10\n\n[delivery]\nport = " << rx_port
                                << "\n\n[relay]\nlisten = [\"127.0.0.1:" << port_
                                << "\"]\nspool = \"" << spool_
                                << "\"\nhostname = \"relay.lab.example\"\nuser = \""
                                << lab::current_user()
                                << "\"\nmax_deliveries = " << o.max_deliveries
                                << "\nmax_per_destination = " << o.max_per_destination
                                << "\nmin_backoff_seconds = 1\nmax_backoff_seconds = 2\n";
    relay_ = std::make_unique<lab::Process>(
        std::vector<std::string>{binary, "--config", config_path_, "relay"},
        world.dir() + "/relay.log");
    if (!relay_->wait_for_log("listening on", std::chrono::seconds(15)))
      throw std::runtime_error("the relay did not start:\n" + relay_->log());
    const std::optional<pid_t> pid = child_pid(config_path_);
    if (!pid) throw std::runtime_error("cannot find the relay's pid");
    pid_ = *pid;
  }
  ~Danemta() override {
    relay_.reset();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(spool_ + suffix, ec);
  }
  std::string name() const override { return "danemta"; }
  std::uint16_t port() const override { return port_; }
  double cpu_ms() const override { return ::cpu_ms(pid_); }
  long rss_kib() const override { return status_kib(pid_, "VmHWM"); }
  long threads() const override { return status_kib(pid_, "Threads"); }
  std::string log() const override { return relay_->log(); }
  void stop() override { relay_->stop(SIGTERM); }
  std::map<std::string, std::size_t> tls_levels(const std::string& log) const override {
    return sent_tls_levels(log);
  }
  std::size_t dane_verified(const std::string& log) const override {
    return count(log, "tls=dane-verified");
  }
  const std::string& spool_dir() const { return spool_dir_; }

 private:
  std::uint16_t port_;
  std::string config_path_, spool_dir_, spool_;
  std::unique_ptr<lab::Process> relay_;
  pid_t pid_ = -1;
};

constexpr const char* kPostfix = "/usr/sbin/postfix";
constexpr const char* kUnbound = "/usr/sbin/unbound";
constexpr const char* kUnshare = "/usr/bin/unshare";
constexpr const char* kResolverAddress = "127.0.0.153";  // glibc's resolv.conf has no port

// The master.cf of the instance: Debian's services, chroot off everywhere, plus
// tlsproxy (smtp_tls_connection_reuse) and the submission listener.
std::string postfix_master_cf(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port) +
         " inet n - n - - smtpd\n"
         "pickup    unix  n - n 60    1 pickup\n"
         "cleanup   unix  n - n -     0 cleanup\n"
         "qmgr      unix  n - n 300   1 qmgr\n"
         "tlsmgr    unix  - - n 1000? 1 tlsmgr\n"
         "rewrite   unix  - - n -     - trivial-rewrite\n"
         "bounce    unix  - - n -     0 bounce\n"
         "defer     unix  - - n -     0 bounce\n"
         "trace     unix  - - n -     0 bounce\n"
         "verify    unix  - - n -     1 verify\n"
         "flush     unix  n - n 1000? 0 flush\n"
         "proxymap  unix  - - n -     - proxymap\n"
         "proxywrite unix - - n -     1 proxymap\n"
         "smtp      unix  - - n -     - smtp\n"
         "relay     unix  - - n -     - smtp\n"
         "showq     unix  n - n -     - showq\n"
         "error     unix  - - n -     - error\n"
         "retry     unix  - - n -     - error\n"
         "discard   unix  - - n -     - discard\n"
         "local     unix  - n n -     - local\n"
         "virtual   unix  - n n -     - virtual\n"
         "lmtp      unix  - - n -     - lmtp\n"
         "anvil     unix  - - n -     1 anvil\n"
         "scache    unix  - - n -     1 scache\n"
         "postlog   unix-dgram n - n - 1 postlogd\n"
         "tlsproxy  unix  - - n -     0 tlsproxy\n";
}

// Postfix's main.cf settings (bench/README.md lists them).
std::string postfix_main_cf(const Options& o, const std::string& dir, std::uint16_t rx_port) {
  std::ostringstream m;
  m << "compatibility_level = 3.6\n"
    << "queue_directory = " << dir << "/queue\n"
    << "data_directory = " << dir << "/data\n"
    << "maillog_file_prefixes = " << dir << "\n"
    << "maillog_file = " << dir << "/maillog\n"
    << "myhostname = relay.lab.example\n"
    << "mydestination =\n"
    << "relay_domains =\n"
    << "relayhost =\n"
    << "local_recipient_maps =\n"
    << "alias_maps =\n"
    << "alias_database =\n"
    << "biff = no\n"
    << "inet_interfaces = 127.0.0.1\n"
    << "inet_protocols = ipv4\n"
    << "mynetworks = 127.0.0.0/8\n"
    << "transport_maps = texthash:" << dir << "/etc/transport\n"
    << "smtp_dns_support_level = dnssec\n"
    << "smtp_tls_security_level = dane\n"
    << "smtp_tls_loglevel = 1\n"
    << "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n"
    << "smtp_connection_cache_on_demand = yes\n"
    << "smtp_tls_connection_reuse = yes\n"
    << "tlsproxy_tls_security_level = none\n"
    << "default_process_limit = " << o.max_deliveries << "\n"
    << "smtp_destination_concurrency_limit = " << o.max_per_destination << "\n";
  for (const std::string& p : o.postfix_params) m << p << "\n";
  (void)rx_port;
  return m.str();
}

// One Postfix instance in DIR (etc/, queue/, data/, maillog) plus its validating
// unbound on 127.0.0.153:53, forwarding to the lab's NSD with the lab's trust
// anchor. Postfix runs in a private mount namespace where /etc/resolv.conf is
// bind-mounted from DIR/resolv.conf ("nameserver 127.0.0.153", "options trust-ad":
// glibc 2.31+ clears the AD bit otherwise). `postfix start-fg` keeps master as a
// child of postfix-script, our child; its pid comes from queue/pid/master.pid.
class Postfix final : public Mta {
 public:
  Postfix(const Options& o, const lab::World& world, std::uint16_t rx_port)
      : port_(lab::free_tcp_port()), keep_(o.keep) {
    try {
      start(o, world, rx_port);
    } catch (...) {
      cleanup();  // the destructor does not run when the constructor throws
      throw;
    }
  }

  ~Postfix() override { cleanup(); }

  std::string name() const override { return "postfix"; }
  std::uint16_t port() const override { return port_; }

 private:
  void start(const Options& o, const lab::World& world, std::uint16_t rx_port) {
    for (const char* tool : {kPostfix, kUnbound, kUnshare})
      if (!fs::exists(tool))
        throw std::runtime_error(
            std::string("no ") + tool +
            " (apt-get install postfix unbound util-linux; see bench/README.md)");
    if (::geteuid() != 0)
      throw std::runtime_error("--mta postfix needs root (mount namespace, port 53)");
    const passwd* pw = ::getpwnam("postfix");
    if (!pw) throw std::runtime_error("no user 'postfix' (install the postfix package)");
    if (!port_free(kResolverAddress, 53))
      throw std::runtime_error(std::string("something already listens on ") + kResolverAddress +
                               ":53 (another benchmark?)");

    char tmpl[] = "/tmp/danemta-bench-postfix-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);  // postfix-owned processes traverse it
    for (const char* sub : {"etc", "queue", "data"}) fs::create_directory(dir_ + "/" + sub);
    if (::chown((dir_ + "/data").c_str(), pw->pw_uid, pw->pw_gid) != 0)
      throw std::runtime_error("chown data directory failed");

    // The resolver.
    unbound_conf_ = dir_ + "/unbound.conf";
    std::ofstream(unbound_conf_) << "server:\n  interface: " << kResolverAddress
                                 << "\n  port: 53\n  do-ip6: no\n  username: \"\"\n"
                                    "  chroot: \"\"\n  directory: \""
                                 << dir_
                                 << "\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n"
                                    "  verbosity: 1\n  num-threads: 1\n"
                                    "  do-not-query-localhost: no\n"
                                    "  access-control: 127.0.0.0/8 allow\n"
                                    "  trust-anchor-file: \""
                                 << world.trust_anchor_file()
                                 << "\"\nremote-control:\n  control-enable: no\n"
                                    "forward-zone:\n  name: \".\"\n  forward-addr: "
                                 << world.resolver() << "\n";
    unbound_ = std::make_unique<lab::Process>(
        std::vector<std::string>{kUnbound, "-d", "-c", unbound_conf_}, dir_ + "/unbound.log");
    if (!unbound_->wait_for_log("start of service", std::chrono::seconds(10)))
      throw std::runtime_error("unbound did not start:\n" + unbound_->log());
    const std::optional<pid_t> upid = child_pid(unbound_conf_);
    if (!upid) throw std::runtime_error("cannot find unbound's pid");
    unbound_pid_ = *upid;

    // The Postfix instance.
    std::ofstream(dir_ + "/resolv.conf")
        << "nameserver " << kResolverAddress << "\noptions trust-ad\n";
    std::ofstream(dir_ + "/etc/transport")
        << kDomain << " smtp:" << kDomain << ":" << rx_port << "\n";
    std::ofstream(dir_ + "/etc/main.cf") << postfix_main_cf(o, dir_, rx_port);
    std::ofstream(dir_ + "/etc/master.cf") << postfix_master_cf(port_);
    const std::vector<pid_t> before = children_of(::getpid());
    postfix_ = std::make_unique<lab::Process>(
        std::vector<std::string>{kUnshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
                                 "mount --bind \"$1\" /etc/resolv.conf && exec " +
                                     std::string(kPostfix) + " -c \"$2\" start-fg",
                                 "sh", dir_ + "/resolv.conf", dir_ + "/etc"},
        dir_ + "/start.log");
    pid_t script = -1;  // unshare -> sh -> postfix -> postfix-script: one pid, our child
    for (pid_t c : children_of(::getpid()))
      if (std::find(before.begin(), before.end(), c) == before.end()) script = c;
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline && !g_interrupted) {
      if (script > 0 && !alive(script)) break;  // postfix-script gave up
      if (master_pid_ <= 0) {
        const std::string pidfile = read_file(dir_ + "/queue/pid/master.pid");
        const long p = std::strtol(pidfile.c_str(), nullptr, 10);
        if (p > 0 && alive(static_cast<pid_t>(p)) &&
            read_file(dir_ + "/maillog").find("daemon started") != std::string::npos)
          master_pid_ = static_cast<pid_t>(p);
      }
      if (master_pid_ > 0 && accepts("127.0.0.1", port_)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (master_pid_ <= 0 || !accepts("127.0.0.1", port_))
      throw std::runtime_error(
          "postfix did not start (" + dir_ +
          "/start.log, maillog below; Postfix reports some "
          "fatal errors only to a terminal: try --keep-postfix-dir yes, then script -qc "
          "'postfix -c DIR/etc check' /dev/null):\n" +
          postfix_->log() + read_file(dir_ + "/maillog"));
  }

  void cleanup() {
    stop();
    if (!keep_ && !dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    } else if (!dir_.empty()) {
      std::cerr << "danemta_bench_relay: kept " << dir_ << "\n";
    }
    dir_.clear();
  }

 public:
  // master's own and reaped children's time (fields 14-17) plus its live children's.
  double cpu_ms() const override {
    std::vector<std::string> f = stat_fields(master_pid_);
    if (f.size() < 15) return 0;
    unsigned long long t = 0;
    for (int i = 14; i <= 17; ++i) t += std::stoull(f[static_cast<std::size_t>(i - 3)]);
    for (pid_t child : children_of(master_pid_)) {
      std::vector<std::string> c = stat_fields(child);
      if (c.size() >= 13) t += std::stoull(c[11]) + std::stoull(c[12]);
    }
    return ticks_to_ms(t);
  }
  double helper_cpu_ms() const override { return ::cpu_ms(unbound_pid_); }
  // Sum of Pss (shared pages divided among their users) over master and its live
  // children at the end of the run: not a peak; summing VmHWM would count the
  // shared libraries once per process.
  long rss_kib() const override {
    auto pss = [](pid_t pid) {
      std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/smaps_rollup"));
      for (std::string line; std::getline(in, line);)
        if (line.rfind("Pss:", 0) == 0) return std::strtol(line.c_str() + 4, nullptr, 10);
      return 0L;
    };
    long sum = pss(master_pid_);
    for (pid_t child : children_of(master_pid_)) sum += pss(child);
    return sum;
  }
  long threads() const override {
    return 1 + static_cast<long>(children_of(master_pid_).size());  // processes, not threads
  }
  std::string log() const override { return read_file(dir_ + "/maillog"); }

  void stop() override {
    if (master_pid_ <= 0 && postfix_ && !dir_.empty()) {  // started, not yet seen ready
      const long p = std::strtol(read_file(dir_ + "/queue/pid/master.pid").c_str(), nullptr, 10);
      if (p > 0 && alive(static_cast<pid_t>(p))) master_pid_ = static_cast<pid_t>(p);
    }
    if (master_pid_ > 0) {
      const std::vector<pid_t> children = children_of(master_pid_);
      ::kill(master_pid_, SIGTERM);  // what `postfix stop` does; master stops its children
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      while (alive(master_pid_) && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (alive(master_pid_)) ::kill(master_pid_, SIGKILL);
      // The children exit on their own once master is gone; wait for them, so a
      // following run (--mta both) does not share the CPUs with them.
      auto any_alive = [&children] {
        return std::any_of(children.begin(), children.end(), [](pid_t c) { return alive(c); });
      };
      const auto children_deadline = Clock::now() + std::chrono::seconds(5);
      while (any_alive() && Clock::now() < children_deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      for (pid_t c : children)
        if (alive(c)) ::kill(c, SIGKILL);
      master_pid_ = -1;
    }
    if (postfix_) postfix_->stop(SIGTERM);  // postfix-script exits once master has
    postfix_.reset();
    if (unbound_) unbound_->stop(SIGTERM);
    unbound_.reset();
  }

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
  const std::string& dir() const { return dir_; }

 private:
  static bool port_free(const char* address, std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, address, &a.sin_addr);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }
  static bool accepts(const char* address, std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, address, &a.sin_addr);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  std::uint16_t port_;
  bool keep_;
  std::string dir_, unbound_conf_;
  std::unique_ptr<lab::Process> unbound_, postfix_;
  pid_t unbound_pid_ = -1;
  pid_t master_pid_ = -1;
};

// --- submission -----------------------------------------------------------------

struct Submission {
  std::size_t accepted = 0;
  std::size_t failed = 0;
  std::string first_error;
  Clock::time_point last_accepted{};
};

// One submission connection: connect, EHLO, then `count` transactions (RSET
// between, done by the client), then QUIT.
asio::awaitable<void> submit(asio::io_context& io, std::uint16_t port, std::size_t first,
                             std::size_t count, std::size_t size, Submission& out) {
  smtp::ClientConfig config;
  config.connect = config.greeting = config.ehlo = config.mail = config.rcpt = config.data_init =
      config.data_block = config.dot = config.rset = config.quit = std::chrono::seconds(60);
  smtp::Client client(io, config);
  auto fail = [&](const smtp::Failure& f, std::size_t lost) {
    out.failed += lost;
    if (out.first_error.empty()) out.first_error = f.to_string();
  };
  auto greeting = co_await client.connect("127.0.0.1", port);
  if (!greeting) {
    fail(greeting.error(), count);
    co_return;
  }
  auto caps = co_await client.ehlo("bench.sender.example");
  if (!caps) {
    fail(caps.error(), count);
    co_return;
  }
  for (std::size_t i = 0; i < count && !g_interrupted; ++i) {
    const std::size_t seq = first + i;
    const std::string message = make_message(seq, size);
    smtp::Envelope envelope{"bench@sender.example", {"rcpt" + std::to_string(seq) + "@" + kDomain}};
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

// --- the run --------------------------------------------------------------------

struct Received {
  std::atomic<std::size_t> messages{0};
  std::atomic<std::size_t> in_tls{0};
  std::atomic<Clock::rep> first{0};
  std::atomic<Clock::rep> last{0};
};

int run(const Options& o, const std::string& which, json& result) {
  std::string binary;
  if (which == "danemta") {
    if (!fs::exists(o.danemta))
      throw std::runtime_error("no danemta binary at " + o.danemta +
                               " (build it, or pass --danemta PATH)");
    binary = fs::absolute(o.danemta).string();
  }
  // Other work on the machine skews every figure: report the load at the start.
  std::string loadavg = read_file("/proc/loadavg");
  loadavg = loadavg.substr(0, loadavg.find(' '));

  // The receiver: one MX on 127.0.90.10 with a self-signed certificate; TLSA 3 1 1.
  auto received = std::make_shared<Received>();
  lab::Receivers rx(kNet);
  lab::Chain chain = lab::self_signed({kMx});
  lab::Behaviour behaviour = lab::Receivers::with_chain(chain, kMx);
  behaviour.on_message = [received](const lab::Session& s, std::size_t index) {
    const auto now = Clock::now().time_since_epoch().count();
    Clock::rep zero = 0;
    received->first.compare_exchange_strong(zero, now);
    Clock::rep last = received->last.load();
    while (last < now && !received->last.compare_exchange_weak(last, now)) {
    }
    if (s.messages[index].in_tls) ++received->in_tls;
    ++received->messages;
  };
  lab::Receiver& mx = rx.add(10, behaviour);

  json zone = {{"name", kDomain},
               {"records",
                {"@ MX 10 mx", "mx A " + rx.ip(10),
                 rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}};
  lab::World world(json{{"zones", json::array({zone})}}.dump());

  std::unique_ptr<Mta> relay;
  std::string spool_dir;
  if (which == "danemta") {
    auto d = std::make_unique<Danemta>(o, binary, world, rx.port());
    spool_dir = d->spool_dir();
    relay = std::move(d);
  } else {
    auto p = std::make_unique<Postfix>(o, world, rx.port());
    spool_dir = p->dir() + "/queue";
    relay = std::move(p);
  }
  const std::uint16_t listen_port = relay->port();
  const double cpu_start = relay->cpu_ms();
  const double helper_start = relay->helper_cpu_ms();
  const double self_start = self_cpu_ms();

  // Submit over `connections` concurrent sessions on one io_context.
  const auto deadline = Clock::now() + std::chrono::seconds(o.timeout_seconds);
  const std::size_t connections = std::min(o.connections, o.messages);
  Submission submission;
  asio::io_context io;
  const Clock::time_point start = Clock::now();
  std::size_t next = 0;
  for (std::size_t c = 0; c < connections; ++c) {
    const std::size_t share = o.messages / connections + (c < o.messages % connections ? 1 : 0);
    asio::co_spawn(io, submit(io, listen_port, next, share, o.size, submission),
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
  io.run_for(std::chrono::seconds(o.timeout_seconds));
  const double submit_seconds =
      submission.accepted > 0 ? seconds(submission.last_accepted - start) : 0;

  // Wait until the receiver has every accepted message, then until the relay has
  // logged (and recorded) every delivery, so its CPU time covers the whole work.
  while (received->messages.load() < submission.accepted && Clock::now() < deadline &&
         !g_interrupted)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::size_t delivered = received->messages.load();
  const Clock::time_point last_received{Clock::duration(received->last.load())};
  const double e2e_seconds = delivered > 0 ? seconds(last_received - start) : 0;
  std::string log = relay->log();
  while (count(log, "status=sent") < delivered && Clock::now() < deadline && !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log = relay->log();
  }
  const double relay_cpu = relay->cpu_ms() - cpu_start;
  const double helper_cpu = relay->helper_cpu_ms() - helper_start;
  const long hwm_kib = relay->rss_kib();
  const long threads = relay->threads();
  const double bench_cpu = self_cpu_ms() - self_start;
  relay->stop();
  log = relay->log();

  const std::vector<lab::Session> sessions = mx.sessions();  // a copy of everything: once
  std::size_t tls_sessions = 0;
  std::map<std::string, std::size_t> protocols;
  for (const lab::Session& s : sessions)
    if (s.starttls_completed) {
      ++tls_sessions;
      ++protocols[s.tls_version + " " + s.cipher];
    }
  const std::map<std::string, std::size_t> levels = relay->tls_levels(log);
  const std::size_t dane_verified = relay->dane_verified(log);
  const std::size_t deferred = count(log, "status=deferred");
  const std::size_t sent_lines = count(log, "status=sent");
  const bool complete = submission.accepted == o.messages && delivered == o.messages;

  const double n = static_cast<double>(o.messages);
  const double submit_rate =
      submit_seconds > 0 ? static_cast<double>(submission.accepted) / submit_seconds : 0;
  const double e2e_rate = e2e_seconds > 0 ? static_cast<double>(delivered) / e2e_seconds : 0;
  const double per_msg = delivered > 0 ? 1.0 / static_cast<double>(delivered) : 0;
  const double cpu_per_msg = relay_cpu * per_msg;

  result = {
      {"bench", "relay_throughput"},
      {"mta", which},
      {"complete", complete},
      {"messages", o.messages},
      {"size", o.size},
      {"connections", connections},
      {"max_deliveries", o.max_deliveries},
      {"max_per_destination", o.max_per_destination},
      {"accepted", submission.accepted},
      {"submit_failed", submission.failed},
      {"delivered", delivered},
      {"delivered_in_tls", received->in_tls.load()},
      {"submit_seconds", submit_seconds},
      {"submit_msgs_per_s", submit_rate},
      {"e2e_seconds", e2e_seconds},
      {"first_delivery_seconds",
       delivered > 0 ? seconds(Clock::time_point(Clock::duration(received->first.load())) - start)
                     : 0},
      {"e2e_msgs_per_s", e2e_rate},
      {"relay_cpu_ms", relay_cpu},
      {"relay_cpu_ms_per_msg", cpu_per_msg},
      {"resolver_cpu_ms", helper_cpu},
      {"resolver_cpu_ms_per_msg", helper_cpu * per_msg},
      {which == "postfix" ? "relay_pss_kib_at_end" : "relay_peak_rss_kib", hwm_kib},
      {which == "postfix" ? "relay_processes_at_end" : "relay_threads", threads},
      {"bench_cpu_ms", bench_cpu},
      {"receiver_sessions", sessions.size()},
      {"receiver_tls_sessions", tls_sessions},
      {"sessions_per_msg",
       delivered > 0 ? static_cast<double>(sessions.size()) / static_cast<double>(delivered) : 0},
      {"tls_levels", levels},
      {"dane_verified_lines", dane_verified},
      {"sent_lines", sent_lines},
      {"deferred_lines", deferred},
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
  std::printf("%s relay throughput (%s)\n", which.c_str(), complete ? "complete" : "INCOMPLETE");
  row("machine", machine() + ", load " + loadavg + " at start");
  row("messages x size", std::to_string(o.messages) + " x " + std::to_string(o.size) + " B");
  row("submission connections", std::to_string(connections));
  row(which == "postfix" ? "process limit / per destination" : "max_deliveries / per destination",
      std::to_string(o.max_deliveries) + " / " + std::to_string(o.max_per_destination));
  row("spool filesystem", fs_type(spool_dir));
  row("accepted (250, durable)", std::to_string(submission.accepted) + " in " +
                                     fmt("%.2f s", submit_seconds) + " = " +
                                     fmt("%.0f msgs/s", submit_rate));
  row("delivered (receiver)", std::to_string(delivered) + " in " + fmt("%.2f s", e2e_seconds) +
                                  " = " + fmt("%.0f msgs/s", e2e_rate) + " end to end");
  row(which == "postfix" ? "Postfix CPU (all its processes)" : "relay CPU (user+sys)",
      fmt("%.0f ms", relay_cpu) + " = " + fmt("%.2f ms/msg", cpu_per_msg));
  if (which == "postfix")
    row("unbound CPU (its resolver)",
        fmt("%.0f ms", helper_cpu) + " = " + fmt("%.3f ms/msg", helper_cpu * per_msg));
  row(which == "postfix" ? "Postfix PSS (sum, live at end)" : "relay peak RSS (VmHWM)",
      fmt("%.1f MiB", static_cast<double>(hwm_kib) / 1024.0));
  row("bench CPU (submitter+receiver)",
      fmt("%.0f ms", bench_cpu) + " = " + fmt("%.2f ms/msg", bench_cpu / n));
  row("receiver TLS sessions / messages",
      std::to_string(tls_sessions) + " / " + std::to_string(delivered) + " (" +
          std::to_string(sessions.size()) + " TCP sessions, " +
          std::to_string(received->in_tls.load()) + " messages in TLS)");
  std::string lv;
  for (const auto& [level, k] : levels)
    lv += (lv.empty() ? "" : ", ") + level + " " + std::to_string(k);
  row(which == "postfix" ? "smtp TLS session lines" : "tls= of status=sent lines",
      lv.empty() ? "-" : lv);
  row("status=sent / deferred lines",
      std::to_string(sent_lines) + " / " + std::to_string(deferred));
  if (!submission.first_error.empty()) row("first submission error", submission.first_error);
  std::cout << result.dump() << std::endl;
  if (g_interrupted) return 130;
  return complete ? 0 : 1;
}

int run(const Options& o) {
  if (o.mta != "both") {
    json r;
    return run(o, o.mta, r);
  }
  json d, p;
  const int rd = run(o, "danemta", d);
  if (g_interrupted) return 130;
  const int rp = run(o, "postfix", p);
  if (g_interrupted) return 130;
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  auto num = [](const json& j, const char* k) { return j.value(k, 0.0); };
  const double d_e2e = num(d, "e2e_msgs_per_s"), p_e2e = num(p, "e2e_msgs_per_s");
  const double d_sub = num(d, "submit_msgs_per_s"), p_sub = num(p, "submit_msgs_per_s");
  const double d_cpu = num(d, "relay_cpu_ms_per_msg"), p_cpu = num(p, "relay_cpu_ms_per_msg");
  const double p_res = num(p, "resolver_cpu_ms_per_msg");
  std::printf("danemta vs Postfix (same lab, same workload)\n");
  std::printf("  %-30s %10s %10s %14s\n", "", "danemta", "postfix", "danemta/postfix");
  std::printf("  %-30s %10.0f %10.0f %14.2f\n", "accepted msgs/s", d_sub, p_sub,
              ratio(d_sub, p_sub));
  std::printf("  %-30s %10.0f %10.0f %14.2f\n", "end-to-end msgs/s", d_e2e, p_e2e,
              ratio(d_e2e, p_e2e));
  std::printf("  %-30s %10.3f %10.3f %14.2f\n", "MTA CPU ms/msg", d_cpu, p_cpu,
              ratio(d_cpu, p_cpu));
  std::printf("  %-30s %10.3f %10.3f %14.2f\n", "MTA+resolver CPU ms/msg", d_cpu, p_cpu + p_res,
              ratio(d_cpu, p_cpu + p_res));
  std::printf("  %-30s %10zu %10zu\n", "receiver TLS sessions",
              d.value("receiver_tls_sessions", std::size_t{0}),
              p.value("receiver_tls_sessions", std::size_t{0}));
  json cmp = {{"bench", "relay_throughput_compare"},
              {"e2e_ratio", ratio(d_e2e, p_e2e)},
              {"submit_ratio", ratio(d_sub, p_sub)},
              {"cpu_ratio", ratio(d_cpu, p_cpu)},
              {"cpu_ratio_with_resolver", ratio(d_cpu, p_cpu + p_res)}};
  std::cout << cmp.dump() << std::endl;
  return rd != 0 ? rd : rp;
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
