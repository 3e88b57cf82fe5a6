// Relay throughput benchmark: a signed lab world with one DANE domain (TLSA 3 1 1 for
// a lab receiver's certificate), the danemta relay binary as a child process, N
// messages submitted over a few concurrent SMTP connections, and the time until the
// receiver has them all. Reports submission and end-to-end rates, the relay's CPU
// per message and peak RSS, TLS sessions per message and the verification level.
// Loopback only (127.0.0.1 and 127.0.90.x); bounded by --messages and --timeout.
// See bench/README.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

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
  std::string spool_dir;  // empty: the world's directory
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
         "  --spool-dir DIR            where queue.db goes (default: the lab world's dir)\n";
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

// "tls=VALUE" of every status=sent line, counted per VALUE.
std::map<std::string, std::size_t> tls_levels(const std::string& log) {
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

int run(const Options& o) {
  if (!fs::exists(o.danemta))
    throw std::runtime_error("no danemta binary at " + o.danemta +
                             " (build it, or pass --danemta PATH)");
  const std::string binary = fs::absolute(o.danemta).string();
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

  const std::uint16_t listen_port = lab::free_tcp_port();
  const std::string config_path = world.dir() + "/danemta.toml";
  const std::string log_path = world.dir() + "/relay.log";
  const std::string spool_dir = o.spool_dir.empty() ? world.dir() : o.spool_dir;
  const std::string spool = spool_dir + "/bench-queue-" + std::to_string(::getpid()) + ".db";
  std::ofstream(config_path) << "[dns]\nforwarders = [\"" << world.resolver()
                             << "\"]\ntrust_anchor_file = \"" << world.trust_anchor_file()
                             << "\"\ntimeout_seconds = 10\n\n[delivery]\nport = " << rx.port()
                             << "\n\n[relay]\nlisten = [\"127.0.0.1:" << listen_port
                             << "\"]\nspool = \"" << spool
                             << "\"\nhostname = \"relay.lab.example\"\nmax_deliveries = "
                             << o.max_deliveries
                             << "\nmax_per_destination = " << o.max_per_destination
                             << "\nmin_backoff_seconds = 1\nmax_backoff_seconds = 2\n";
  struct SpoolFiles {  // the spool lives outside the world dir with --spool-dir
    std::string path;
    ~SpoolFiles() {
      std::error_code ec;
      for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix, ec);
    }
  } spool_files{spool};

  lab::Process relay({binary, "--config", config_path, "relay"}, log_path);
  if (!relay.wait_for_log("listening on", std::chrono::seconds(15)))
    throw std::runtime_error("the relay did not start:\n" + relay.log());
  const std::optional<pid_t> pid = child_pid(config_path);
  if (!pid) throw std::runtime_error("cannot find the relay's pid");
  const double cpu_start = cpu_ms(*pid);
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
  std::string log = relay.log();
  while (count(log, "status=sent") < delivered && Clock::now() < deadline && !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log = relay.log();
  }
  const double relay_cpu = cpu_ms(*pid) - cpu_start;
  const long hwm_kib = status_kib(*pid, "VmHWM");
  const long threads = status_kib(*pid, "Threads");
  const double bench_cpu = self_cpu_ms() - self_start;
  relay.stop(SIGTERM);
  log = relay.log();

  const std::vector<lab::Session> sessions = mx.sessions();  // a copy of everything: once
  std::size_t tls_sessions = 0;
  std::map<std::string, std::size_t> protocols;
  for (const lab::Session& s : sessions)
    if (s.starttls_completed) {
      ++tls_sessions;
      ++protocols[s.tls_version + " " + s.cipher];
    }
  const std::map<std::string, std::size_t> levels = tls_levels(log);
  const std::size_t dane_verified = count(log, "tls=dane-verified");
  const std::size_t deferred = count(log, "status=deferred");
  const bool complete = submission.accepted == o.messages && delivered == o.messages;

  const double n = static_cast<double>(o.messages);
  const double submit_rate =
      submit_seconds > 0 ? static_cast<double>(submission.accepted) / submit_seconds : 0;
  const double e2e_rate = e2e_seconds > 0 ? static_cast<double>(delivered) / e2e_seconds : 0;
  const double cpu_per_msg = delivered > 0 ? relay_cpu / static_cast<double>(delivered) : 0;

  json result = {
      {"bench", "relay_throughput"},
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
      {"relay_peak_rss_kib", hwm_kib},
      {"relay_threads", threads},
      {"bench_cpu_ms", bench_cpu},
      {"receiver_sessions", sessions.size()},
      {"receiver_tls_sessions", tls_sessions},
      {"sessions_per_msg",
       delivered > 0 ? static_cast<double>(sessions.size()) / static_cast<double>(delivered) : 0},
      {"tls_levels", levels},
      {"dane_verified_lines", dane_verified},
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
  std::printf("danemta relay throughput (%s)\n", complete ? "complete" : "INCOMPLETE");
  row("machine", machine() + ", load " + loadavg + " at start");
  row("messages x size", std::to_string(o.messages) + " x " + std::to_string(o.size) + " B");
  row("submission connections", std::to_string(connections));
  row("max_deliveries / per destination",
      std::to_string(o.max_deliveries) + " / " + std::to_string(o.max_per_destination));
  row("spool filesystem", fs_type(spool_dir));
  row("accepted (250, durable)", std::to_string(submission.accepted) + " in " +
                                     fmt("%.2f s", submit_seconds) + " = " +
                                     fmt("%.0f msgs/s", submit_rate));
  row("delivered (receiver)", std::to_string(delivered) + " in " + fmt("%.2f s", e2e_seconds) +
                                  " = " + fmt("%.0f msgs/s", e2e_rate) + " end to end");
  row("relay CPU (user+sys)", fmt("%.0f ms", relay_cpu) + " = " + fmt("%.2f ms/msg", cpu_per_msg));
  row("relay peak RSS (VmHWM)", fmt("%.1f MiB", static_cast<double>(hwm_kib) / 1024.0));
  row("bench CPU (submitter+receiver)",
      fmt("%.0f ms", bench_cpu) + " = " + fmt("%.2f ms/msg", bench_cpu / n));
  row("receiver TLS sessions / messages", std::to_string(tls_sessions) + " / " +
                                              std::to_string(delivered) + " (" +
                                              std::to_string(sessions.size()) + " TCP sessions)");
  std::string lv;
  for (const auto& [level, k] : levels)
    lv += (lv.empty() ? "" : ", ") + level + " " + std::to_string(k);
  row("tls= of status=sent lines", lv.empty() ? "-" : lv);
  row("status=deferred lines", std::to_string(deferred));
  if (!submission.first_error.empty()) row("first submission error", submission.first_error);
  std::cout << result.dump() << std::endl;
  if (g_interrupted) return 130;
  return complete ? 0 : 1;
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
