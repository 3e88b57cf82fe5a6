// A private Postfix 3.7 instance on the lab as a DANE-verifying sender, for the
// integration tests (PostfixSender) and the relay benchmark's Postfix comparison
// (bench/relay_throughput.cpp). Its own instance directory (etc/, queue/, data/,
// maillog), its own validating unbound on RESOLVER:53 (forwarding to the lab's NSD
// with the lab's trust anchor), and a private mount namespace in which
// /etc/resolv.conf names that unbound ("options trust-ad": glibc clears the AD bit
// otherwise). main.cf: smtp_dns_support_level = dnssec, smtp_tls_security_level =
// dane. Needs root, postfix, unbound and unshare (scripts/setup installs them with
// "No configuration" and leaves nothing running). Nothing is left behind: master
// (and its children) and unbound are stopped and the directory removed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lab/run.hpp"

namespace danemta::lab {

class Process;
class World;

// What differs between the users of an instance.
struct PostfixConfig {
  std::string listen;            // smtpd's address (master.cf), on a free port
  std::string resolver_address;  // where the instance's unbound listens, port 53
  std::string dir_template = "/tmp/danemta-lab-postfix-XXXXXX";  // for mkdtemp
  std::string myhostname = "postfix.lab.example";
  // etc/transport lines ("DOMAIN smtp:DOMAIN:PORT"); with any, main.cf's
  // transport_maps names the file.
  std::vector<std::string> transport;
  // Reused TLS connections (connection cache on demand, tlsproxy) and a TLS
  // session cache; without, each delivery is its own verified session.
  bool connection_reuse = false;
  std::vector<std::string> main_cf;  // more main.cf lines, appended as they are
  bool keep_dir = false;             // leave the directory behind (said on stderr)
  // Set by a signal handler: stop waiting for Postfix to start.
  const volatile std::sig_atomic_t* interrupted = nullptr;
};

// The instance's main.cf and master.cf; `dir` is the instance directory.
std::string postfix_main_cf(const PostfixConfig& config, const std::string& dir);
std::string postfix_master_cf(const std::string& listen, std::uint16_t port);

// From /proc: whether `pid` exists and is not a zombie; the processes whose
// parent is `parent`.
bool process_alive(pid_t pid);
std::vector<pid_t> child_processes(pid_t parent);

class PostfixInstance {
 public:
  // Throws std::runtime_error (having stopped what it started) when it cannot start.
  PostfixInstance(const World& world, PostfixConfig config);
  ~PostfixInstance();
  PostfixInstance(const PostfixInstance&) = delete;
  PostfixInstance& operator=(const PostfixInstance&) = delete;

  // "" when running as root with postfix, unbound, unshare and the user
  // postfix installed; otherwise what is missing.
  static std::string missing();
  static bool available() { return missing().empty(); }

  std::uint16_t port() const { return port_; }  // smtpd's, on config.listen
  const std::string& dir() const { return dir_; }
  std::string log_path() const { return dir_ + "/maillog"; }
  std::string log() const;
  pid_t master_pid() const { return master_pid_; }  // -1 once stopped
  pid_t unbound_pid() const { return unbound_pid_; }

  // SIGTERM to master (what `postfix stop` does), waits for it and its
  // children, then reaps postfix-script and stops unbound. The directory stays
  // until the destructor.
  void stop();

 private:
  void start(const World& world);
  void cleanup();

  PostfixConfig config_;
  std::uint16_t port_;
  std::string dir_;
  std::unique_ptr<Process> unbound_, postfix_;
  pid_t unbound_pid_ = -1;
  pid_t master_pid_ = -1;
};

// The tests' sender: smtpd on `listen`:PORT (mynetworks 127.0.0.0/8 may relay),
// its unbound on `resolver_address`:53, both on the test's own NET; no
// connection reuse, short retry times.
class PostfixSender {
 public:
  PostfixSender(const World& world, const std::string& listen, const std::string& resolver_address);

  // Whether the tools are there (tests skip without them).
  static bool available() { return PostfixInstance::available(); }

  std::uint16_t port() const { return instance_.port(); }
  std::string log() const { return instance_.log(); }

  // Waits until the maillog contains `text` `n` times.
  bool wait_for_log(const std::string& text, std::size_t n = 1,
                    std::chrono::seconds timeout = std::chrono::seconds(30)) const;

  CommandResult send(const std::string& to, const std::string& subject) const;

 private:
  std::string listen_;
  PostfixInstance instance_;
};

}  // namespace danemta::lab
