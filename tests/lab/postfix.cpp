#include "lab/postfix.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "lab/lab.hpp"
#include "lab/process.hpp"

namespace danemta::lab {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kPostfix = "/usr/sbin/postfix";
constexpr const char* kUnbound = "/usr/sbin/unbound";
constexpr const char* kUnshare = "/usr/bin/unshare";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Fields 3.. of /proc/PID/stat (after the command name); empty if the process is gone.
std::vector<std::string> stat_fields(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 > stat.size()) return {};
  std::istringstream in(stat.substr(close_paren + 2));
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

// A socket on ADDRESS:PORT: SOCK_DGRAM bound (nobody holds the UDP port, e.g. a
// resolver) or SOCK_STREAM connected (a TCP listener accepts).
bool socket_works(int type, const std::string& address, std::uint16_t port) {
  const int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  const auto* sa = reinterpret_cast<sockaddr*>(&a);
  const bool ok =
      (type == SOCK_DGRAM ? ::bind(fd, sa, sizeof a) : ::connect(fd, sa, sizeof a)) == 0;
  ::close(fd);
  return ok;
}

// master's pid from its pid file, if that process is alive.
pid_t live_master(const std::string& dir) {
  const long p = std::strtol(read_file(dir + "/queue/pid/master.pid").c_str(), nullptr, 10);
  return p > 0 && process_alive(static_cast<pid_t>(p)) ? static_cast<pid_t>(p) : -1;
}

std::string unbound_conf(const std::string& address, const std::string& dir, const World& world) {
  std::ostringstream u;
  u << "server:\n  interface: " << address
    << "\n  port: 53\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"" << dir
    << "\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n"
       "  verbosity: 1\n  num-threads: 1\n  do-not-query-localhost: no\n"
       "  access-control: 127.0.0.0/8 allow\n  trust-anchor-file: \""
    << world.trust_anchor_file()
    << "\"\nremote-control:\n  control-enable: no\n"
       "forward-zone:\n  name: \".\"\n  forward-addr: "
    << world.resolver() << "\n";
  return u.str();
}

}  // namespace

std::string postfix_main_cf(const PostfixConfig& config, const std::string& dir) {
  std::ostringstream m;
  m << "compatibility_level = 3.6\n"
    << "queue_directory = " << dir << "/queue\n"
    << "data_directory = " << dir << "/data\n"
    << "maillog_file_prefixes = " << dir << "\n"
    << "maillog_file = " << dir << "/maillog\n"
    << "myhostname = " << config.myhostname << "\n"
    << "mydestination =\n"
    << "relay_domains =\n"
    << "relayhost =\n"
    << "local_recipient_maps =\n"
    << "alias_maps =\n"
    << "alias_database =\n"
    << "biff = no\n"
    << "inet_interfaces = 127.0.0.1\n"  // smtpd listens on config.listen (master.cf)
    << "inet_protocols = ipv4\n"
    << "mynetworks = 127.0.0.0/8\n";
  if (!config.transport.empty()) m << "transport_maps = texthash:" << dir << "/etc/transport\n";
  m << "smtp_dns_support_level = dnssec\n"
    << "smtp_tls_security_level = dane\n"
    << "smtp_tls_loglevel = 1\n";
  if (config.connection_reuse) {
    m << "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n"
      << "smtp_connection_cache_on_demand = yes\n"
      << "smtp_tls_connection_reuse = yes\n";
  } else {
    m << "smtp_connection_cache_on_demand = no\n"
      << "smtp_tls_session_cache_database =\n";
  }
  m << "tlsproxy_tls_security_level = none\n";  // silences a warning; tlsproxy as client only
  for (const std::string& line : config.main_cf) m << line << "\n";
  return m.str();
}

// Debian's services, chroot off everywhere, plus tlsproxy (for
// smtp_tls_connection_reuse) and smtpd on LISTEN:PORT instead of "smtp inet".
std::string postfix_master_cf(const std::string& listen, std::uint16_t port) {
  return listen + ":" + std::to_string(port) +
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

bool process_alive(pid_t pid) {
  const std::vector<std::string> f = stat_fields(pid);
  return !f.empty() && f[0] != "Z";
}

std::vector<pid_t> child_processes(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    const std::vector<std::string> f = stat_fields(pid);
    if (f.size() > 1 && std::stol(f[1]) == parent) out.push_back(pid);
  }
  return out;
}

PostfixInstance::PostfixInstance(const World& world, PostfixConfig config)
    : config_(std::move(config)), port_(free_tcp_port()) {
  try {
    start(world);
  } catch (...) {
    cleanup();  // the destructor does not run when the constructor throws
    throw;
  }
}

PostfixInstance::~PostfixInstance() {
  cleanup();
}

std::string PostfixInstance::missing() {
  for (const char* tool : {kPostfix, kUnbound, kUnshare})
    if (!fs::exists(tool)) return std::string("no ") + tool;
  if (::geteuid() != 0) return "not root";
  if (::getpwnam("postfix") == nullptr) return "no user 'postfix'";
  return "";
}

std::string PostfixInstance::log() const {
  return read_file(log_path());
}

void PostfixInstance::start(const World& world) {
  if (const std::string why = missing(); !why.empty())
    throw std::runtime_error("cannot run a private Postfix: " + why);
  if (!socket_works(SOCK_DGRAM, config_.resolver_address, 53))
    throw std::runtime_error("something already listens on " + config_.resolver_address +
                             ":53 (another test or benchmark?)");
  const passwd* pw = ::getpwnam("postfix");
  std::string tmpl = config_.dir_template;
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp " + config_.dir_template + " failed");
  dir_ = tmpl;
  ::chmod(dir_.c_str(), 0755);  // postfix-owned processes traverse it
  for (const char* sub : {"etc", "queue", "data"}) fs::create_directory(dir_ + "/" + sub);
  if (::chown((dir_ + "/data").c_str(), pw->pw_uid, pw->pw_gid) != 0)
    throw std::runtime_error("chown " + dir_ + "/data failed");

  // The resolver.
  const std::string conf = dir_ + "/unbound.conf";
  std::ofstream(conf) << unbound_conf(config_.resolver_address, dir_, world);
  unbound_ = std::make_unique<Process>(std::vector<std::string>{kUnbound, "-d", "-c", conf},
                                       dir_ + "/unbound.log");
  if (!unbound_->wait_for_log("start of service", std::chrono::seconds(10)))
    throw std::runtime_error("unbound did not start:\n" + unbound_->log());
  unbound_pid_ = unbound_->pid();  // unbound -d: the process we started

  // The Postfix instance.
  std::ofstream(dir_ + "/resolv.conf")
      << "nameserver " << config_.resolver_address << "\noptions trust-ad\n";
  if (!config_.transport.empty()) {
    std::ofstream transport(dir_ + "/etc/transport");
    for (const std::string& line : config_.transport) transport << line << "\n";
  }
  std::ofstream(dir_ + "/etc/main.cf") << postfix_main_cf(config_, dir_);
  std::ofstream(dir_ + "/etc/master.cf") << postfix_master_cf(config_.listen, port_);
  // unshare -> sh -> postfix -> postfix-script: one pid, our child. `postfix
  // start-fg` keeps master as a child of postfix-script; master's pid comes
  // from queue/pid/master.pid.
  postfix_ = std::make_unique<Process>(
      std::vector<std::string>{kUnshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
                               "mount --bind \"$1\" /etc/resolv.conf && exec " +
                                   std::string(kPostfix) + " -c \"$2\" start-fg",
                               "sh", dir_ + "/resolv.conf", dir_ + "/etc"},
      dir_ + "/start.log");
  const pid_t script = postfix_->pid();
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline && !(config_.interrupted && *config_.interrupted)) {
    if (script > 0 && !process_alive(script)) break;  // postfix-script gave up
    if (master_pid_ <= 0 && log().find("daemon started") != std::string::npos)
      master_pid_ = live_master(dir_);
    if (master_pid_ > 0 && socket_works(SOCK_STREAM, config_.listen, port_)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (master_pid_ > 0 && socket_works(SOCK_STREAM, config_.listen, port_)) return;
  throw std::runtime_error(
      "postfix did not start (" + dir_ +
      "/start.log, maillog below; Postfix reports some fatal errors only to a terminal: keep "
      "the directory (the benchmark's --keep-postfix-dir yes), then script -qc 'postfix -c "
      "DIR/etc check' /dev/null):\n" +
      postfix_->log() + log());
}

void PostfixInstance::stop() {
  if (master_pid_ <= 0 && postfix_ && !dir_.empty())  // started, not yet seen ready
    master_pid_ = live_master(dir_);
  if (master_pid_ > 0) {
    const std::vector<pid_t> children = child_processes(master_pid_);
    ::kill(master_pid_, SIGTERM);  // what `postfix stop` does; master stops its children
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (process_alive(master_pid_) && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (process_alive(master_pid_)) ::kill(master_pid_, SIGKILL);
    // The children exit on their own once master is gone; wait for them, so
    // whatever runs next (the benchmark's next relay) has the CPUs to itself.
    auto any_alive = [&children] {
      return std::any_of(children.begin(), children.end(), process_alive);
    };
    const auto children_deadline = Clock::now() + std::chrono::seconds(5);
    while (any_alive() && Clock::now() < children_deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (pid_t c : children)
      if (process_alive(c)) ::kill(c, SIGKILL);
    master_pid_ = -1;
  }
  if (postfix_) postfix_->stop(SIGTERM);  // postfix-script exits once master has
  postfix_.reset();
  if (unbound_) unbound_->stop(SIGTERM);
  unbound_.reset();
}

void PostfixInstance::cleanup() {
  stop();
  if (dir_.empty()) return;
  if (config_.keep_dir) {
    std::cerr << program_invocation_short_name << ": kept " << dir_ << "\n";
  } else {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  dir_.clear();
}

namespace {

PostfixConfig sender_config(const std::string& listen, const std::string& resolver_address) {
  PostfixConfig c;
  c.listen = listen;
  c.resolver_address = resolver_address;
  c.main_cf = {"minimal_backoff_time = 2s", "maximal_backoff_time = 4s", "queue_run_delay = 2s"};
  return c;
}

}  // namespace

PostfixSender::PostfixSender(const World& world, const std::string& listen,
                             const std::string& resolver_address)
    : listen_(listen), instance_(world, sender_config(listen, resolver_address)) {}

bool PostfixSender::wait_for_log(const std::string& text, std::size_t n,
                                 std::chrono::seconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const std::string l = log();
    std::size_t count = 0;
    for (auto at = l.find(text); at != std::string::npos; at = l.find(text, at + 1)) ++count;
    if (count >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

CommandResult PostfixSender::send(const std::string& to, const std::string& subject) const {
  return run_command("swaks --server " + listen_ + ":" + std::to_string(port()) +
                     " --from postfix-user@sender.lab.example --to " + to +
                     " --header 'Subject: " + subject + "' --body 'hello from postfix'");
}

}  // namespace danemta::lab
