// A private Postfix 3.7 as a DANE-verifying sender for tests: its own
// instance directory (etc/, queue/, data/, maillog), its own validating
// unbound on ADDRESS:53 (forwarding to the lab's NSD with the lab's trust
// anchor), and a private mount namespace in which /etc/resolv.conf names
// that unbound ("options trust-ad": glibc clears the AD bit otherwise).
// main.cf: smtp_dns_support_level = dnssec, smtp_tls_security_level = dane,
// no connection reuse, so each delivery is its own verified session.
// Needs root, postfix, unbound and unshare (scripts/setup installs them with
// "No configuration" and leaves nothing running). Nothing is left behind:
// master and unbound are stopped and the directory removed.
#pragma once

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/run.hpp"

namespace danemta::lab {

class PostfixSender {
 public:
  // Postfix's smtpd on `listen`:PORT (mynetworks 127.0.0.0/8 may relay),
  // its unbound on `resolver_address`:53; both on the test's own NET.
  PostfixSender(const World& world, const std::string& listen, const std::string& resolver_address)
      : listen_(listen), port_(free_tcp_port()) {
    try {
      start(world, resolver_address);
    } catch (...) {
      cleanup();
      throw;
    }
  }
  ~PostfixSender() { cleanup(); }
  PostfixSender(const PostfixSender&) = delete;
  PostfixSender& operator=(const PostfixSender&) = delete;

  // Whether the tools are there (tests skip without them).
  static bool available() {
    return ::geteuid() == 0 && std::filesystem::exists("/usr/sbin/postfix") &&
           std::filesystem::exists("/usr/sbin/unbound") &&
           std::filesystem::exists("/usr/bin/unshare") && ::getpwnam("postfix") != nullptr;
  }

  std::uint16_t port() const { return port_; }
  std::string log() const { return read(dir_ + "/maillog"); }

  // Waits until the maillog contains `text` `n` times.
  bool wait_for_log(const std::string& text, std::size_t n = 1,
                    std::chrono::seconds timeout = std::chrono::seconds(30)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string l = log();
      std::size_t count = 0;
      for (auto at = l.find(text); at != std::string::npos; at = l.find(text, at + 1)) ++count;
      if (count >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  CommandResult send(const std::string& to, const std::string& subject) const {
    return run_command("swaks --server " + listen_ + ":" + std::to_string(port_) +
                       " --from postfix-user@sender.lab.example --to " + to +
                       " --header 'Subject: " + subject + "' --body 'hello from postfix'");
  }

 private:
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static bool alive(pid_t pid) {
    const std::string stat = read("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
  }

  void start(const World& world, const std::string& resolver_address) {
    if (!available()) throw std::runtime_error("postfix, unbound or unshare missing, or not root");
    const passwd* pw = ::getpwnam("postfix");
    std::string tmpl = "/tmp/danemta-lab-postfix-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);  // postfix-owned processes traverse it
    for (const char* sub : {"etc", "queue", "data"})
      std::filesystem::create_directory(dir_ + "/" + sub);
    if (::chown((dir_ + "/data").c_str(), pw->pw_uid, pw->pw_gid) != 0)
      throw std::runtime_error("chown " + dir_ + "/data failed");

    const std::string unbound_conf = dir_ + "/unbound.conf";
    std::ofstream(unbound_conf)
        << "server:\n  interface: " << resolver_address
        << "\n  port: 53\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n"
           "  directory: \""
        << dir_
        << "\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n"
           "  verbosity: 1\n  num-threads: 1\n  do-not-query-localhost: no\n"
           "  access-control: 127.0.0.0/8 allow\n  trust-anchor-file: \""
        << world.trust_anchor_file()
        << "\"\nremote-control:\n  control-enable: no\n"
           "forward-zone:\n  name: \".\"\n  forward-addr: "
        << world.resolver() << "\n";
    unbound_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/unbound", "-d", "-c", unbound_conf},
        dir_ + "/unbound.log");
    if (!unbound_->wait_for_log("start of service", std::chrono::seconds(10)))
      throw std::runtime_error("unbound did not start:\n" + unbound_->log());

    std::ofstream(dir_ + "/resolv.conf")
        << "nameserver " << resolver_address << "\noptions trust-ad\n";
    std::ofstream(dir_ + "/etc/main.cf")
        << "compatibility_level = 3.6\nqueue_directory = " << dir_
        << "/queue\ndata_directory = " << dir_ << "/data\nmaillog_file_prefixes = " << dir_
        << "\nmaillog_file = " << dir_
        << "/maillog\nmyhostname = postfix.lab.example\nmydestination =\nrelay_domains =\n"
           "relayhost =\nlocal_recipient_maps =\nalias_maps =\nalias_database =\nbiff = no\n"
           "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n"
           "smtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane\n"
           "smtp_tls_loglevel = 1\nsmtp_connection_cache_on_demand = no\n"
           "smtp_tls_session_cache_database =\ntlsproxy_tls_security_level = none\n"
           "minimal_backoff_time = 2s\nmaximal_backoff_time = 4s\nqueue_run_delay = 2s\n";
    std::ofstream(dir_ + "/etc/master.cf") << listen_ << ":" << port_
                                           << " inet n - n - - smtpd\n"
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
    // `postfix start-fg` keeps master as a child of postfix-script, our
    // child; master's pid comes from queue/pid/master.pid.
    postfix_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/unshare", "--mount", "--propagation", "private",
                                 "/bin/sh", "-c",
                                 "mount --bind \"$1\" /etc/resolv.conf && exec /usr/sbin/postfix "
                                 "-c \"$2\" start-fg",
                                 "sh", dir_ + "/resolv.conf", dir_ + "/etc"},
        dir_ + "/start.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const long p = std::strtol(read(dir_ + "/queue/pid/master.pid").c_str(), nullptr, 10);
      if (p > 0 && alive(static_cast<pid_t>(p)) &&
          log().find("daemon started") != std::string::npos) {
        master_ = static_cast<pid_t>(p);
        if (run_command("swaks --quit-after banner --server " + listen_ + ":" +
                        std::to_string(port_))
                .exit_code == 0)
          return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("postfix did not start: " + read(dir_ + "/start.log") + log());
  }

  void cleanup() {
    if (master_ <= 0 && !dir_.empty()) {
      const long p = std::strtol(read(dir_ + "/queue/pid/master.pid").c_str(), nullptr, 10);
      if (p > 0 && alive(static_cast<pid_t>(p))) master_ = static_cast<pid_t>(p);
    }
    if (master_ > 0) {
      ::kill(master_, SIGTERM);  // what `postfix stop` does; master stops its children
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (alive(master_) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (alive(master_)) ::kill(master_, SIGKILL);
      master_ = -1;
    }
    if (postfix_) postfix_->stop(SIGTERM);
    postfix_.reset();
    if (unbound_) unbound_->stop(SIGTERM);
    unbound_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string listen_;
  std::uint16_t port_;
  std::string dir_;
  std::unique_ptr<Process> unbound_;
  std::unique_ptr<Process> postfix_;
  pid_t master_ = -1;
};

}  // namespace danemta::lab
