// `danemta relay` as installed: started as root it binds port 25, then runs
// as the configured account with nothing of root left (ids, groups,
// capabilities, no_new_privs, in every thread), keeps its files private, and
// still accepts, queues and delivers; started as root without an account it
// refuses. Needs root (the suite runs as root in CI); skipped otherwise.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using lab::spec;
using lab::wait_messages;
namespace fs = std::filesystem;

// A directory under /tmp that other accounts may enter (the lab world's own
// directory is root's, mode 0700), removed at the end.
class OpenDir {
 public:
  OpenDir() {
    std::string tmpl = "/tmp/danemta-install.XXXXXX";
    path_ = ::mkdtemp(tmpl.data());
    ::chmod(path_.c_str(), 0755);
  }
  ~OpenDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  OpenDir(const OpenDir&) = delete;
  OpenDir& operator=(const OpenDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// "Uid" -> "65534\t65534\t65534\t65534", ... from a /proc status file.
std::map<std::string, std::string> proc_status(const std::string& file) {
  std::map<std::string, std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t") + 1);
    out[line.substr(0, colon)] = value;
  }
  return out;
}

struct Facts {
  bool exists = false;
  unsigned mode = 0;  // permission bits
  uid_t uid = 0;
  gid_t gid = 0;
};

Facts facts(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  return {true, static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
}

std::string four(unsigned id) {
  const std::string s = std::to_string(id);
  return s + "\t" + s + "\t" + s + "\t" + s;
}

// `dns`: the [dns] keys (a lab world's resolver and trust anchor).
std::string relay_config(const std::string& dns, std::uint16_t smtp_port, const std::string& dir,
                         const std::string& user_line, const std::string& listen) {
  return "[dns]\n" + dns +
         "timeout_seconds = 10\n\n[delivery]\nport = " + std::to_string(smtp_port) +
         "\n\n[relay]\n" + user_line + "listen = [\"" + listen + "\"]\nspool = \"" + dir +
         "/spool/queue.db\"\nhostname = \"relay.install151.example\"\n";
}

TEST(Install, RelayStartedAsRootBindsPort25ThenRunsAsTheConfiguredUser) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root: the relay binds port 25 as root and then switches to `nobody`";
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "this host has no `nobody` account";
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nobody->pw_gid;

  Receivers rx(152);
  auto chain = lab::self_signed({"mx.drop152.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.drop152.example"));
  lab::World world(spec({{{"name", "drop152.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  OpenDir dir;
  const std::string config = dir.path() + "/danemta.toml";
  // The trust anchor where the account can read it (libunbound reads it at
  // the first query, after the switch; the relay checks that at start).
  fs::copy_file(world.trust_anchor_file(), dir.path() + "/root.key");
  ::chmod((dir.path() + "/root.key").c_str(), 0644);
  const std::string dns = "forwarders = [\"" + world.resolver() + "\"]\ntrust_anchor_file = \"" +
                          dir.path() + "/root.key\"\n";
  std::ofstream(config) << relay_config(dns, rx.port(), dir.path(), "user = \"nobody\"\n",
                                        "127.0.151.1:25");
  const std::string spool = dir.path() + "/spool";
  ASSERT_FALSE(facts(spool).exists);

  // LeakSanitizer stops the process's threads with ptrace at exit, which a
  // process that gave up root (no longer dumpable) does not allow; leak
  // checking is off for this relay only.
  setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
  lab::Process relay({DANEMTA_BINARY, "--config", config, "relay"}, dir.path() + "/relay.log");
  unsetenv("ASAN_OPTIONS");
  ASSERT_TRUE(relay.wait_for_log("listening on 127.0.151.1:25")) << relay.log();
  EXPECT_NE(relay.log().find("listeners bound as root; running as nobody (uid " +
                             std::to_string(uid) + ", gid " + std::to_string(gid) + ")"),
            std::string::npos)
      << relay.log();

  // Every thread: the account's ids (real, effective, saved, file system),
  // its groups only, no capability, no_new_privs.
  std::size_t threads = 0;
  for (const auto& task :
       fs::directory_iterator("/proc/" + std::to_string(relay.pid()) + "/task")) {
    ++threads;
    auto st = proc_status(task.path().string() + "/status");
    EXPECT_EQ(st["Uid"], four(uid)) << task.path();
    EXPECT_EQ(st["Gid"], four(gid)) << task.path();
    EXPECT_EQ(st["Groups"], std::to_string(gid)) << task.path();
    for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapAmb"})
      EXPECT_EQ(st[cap], "0000000000000000") << task.path() << " " << cap;
    EXPECT_EQ(st["NoNewPrivs"], "1") << task.path();
  }
  EXPECT_GE(threads, 2u) << "the spool worker thread switched too";

  // The state it created: the spool directory (it did not exist), the queue
  // and TLS-RPT databases with their WAL files, the body-file directory.
  auto expect_private = [&](const std::string& path, unsigned mode) {
    const Facts f = facts(path);
    ASSERT_TRUE(f.exists) << path;
    EXPECT_EQ(f.mode, mode) << path;
    EXPECT_EQ(f.uid, uid) << path;
    EXPECT_EQ(f.gid, gid) << path;
  };
  expect_private(spool, 0700);
  for (const char* db : {"/queue.db", "/queue.db-wal", "/queue.db-shm", "/tlsrpt.db",
                         "/tlsrpt.db-wal", "/tlsrpt.db-shm"})
    expect_private(spool + db, 0600);
  expect_private(spool + "/queue.db-bodies", 0700);

  // Mail still flows through the unprivileged relay: a small message (stored
  // in queue.db) and one over 256 KiB (a body file), both delivered.
  const std::string swaks =
      "swaks --server 127.0.151.1:25 --local-interface 127.0.151.2 "
      "--from a@sender.example --to b@drop152.example";
  lab::CommandResult small = lab::run_command(swaks + " --body 'hello from nobody'");
  ASSERT_EQ(small.exit_code, 0) << small.out;
  EXPECT_NE(small.out.find("queued as"), std::string::npos) << small.out;
  {
    std::ofstream big(dir.path() + "/big.eml");
    big << "From: a@sender.example\r\nTo: b@drop152.example\r\nSubject: big\r\n\r\n";
    for (int i = 0; i < 4000; ++i) big << std::string(98, 'x') << "\r\n";
  }
  lab::CommandResult large = lab::run_command(swaks + " --data " + dir.path() + "/big.eml");
  ASSERT_EQ(large.exit_code, 0) << large.out;
  ASSERT_TRUE(wait_messages(mx, 2)) << relay.log();
  ASSERT_TRUE(relay.wait_for_log("status=sent")) << relay.log();
  std::size_t body_files = 0;
  for (const auto& f : fs::directory_iterator(spool + "/queue.db-bodies")) {
    ++body_files;
    expect_private(f.path().string(), 0600);
  }
  EXPECT_EQ(body_files, 1u);

  // `danemta queue` run as root switches to the account as well: what it
  // creates is the relay's, never root's.
  lab::CommandResult list =
      lab::run_command(std::string(DANEMTA_BINARY) + " --config " + config + " queue list --all");
  EXPECT_EQ(list.exit_code, 0) << list.out;
  EXPECT_NE(list.out.find("2 message(s)"), std::string::npos) << list.out;
  for (const auto& f : fs::recursive_directory_iterator(spool)) {
    const Facts got = facts(f.path().string());
    EXPECT_EQ(got.uid, uid) << f.path();
    EXPECT_EQ(got.mode & 077, 0u) << f.path();
  }
  EXPECT_EQ(relay.stop(SIGTERM), 0) << relay.log();
}

TEST(Install, RefusalsSayWhatToDo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the refusals are about starting as root";
  // Nothing is resolved: every case ends before the first lookup.
  const std::string dns = "forwarders = [\"127.0.0.1@9\"]\n";
  OpenDir dir;
  const std::string config = dir.path() + "/danemta.toml";
  const std::string relay = std::string(DANEMTA_BINARY) + " --config " + config + " relay";

  // Root without [relay] user: refused before anything is created.
  std::ofstream(config) << relay_config(dns, 25, dir.path(), "", "127.0.151.3:25");
  lab::CommandResult root = lab::run_command(relay);
  EXPECT_EQ(root.exit_code, 2) << root.out;
  EXPECT_NE(root.out.find("refusing to run as root"), std::string::npos) << root.out;
  EXPECT_NE(root.out.find("user = \"root\""), std::string::npos) << root.out;
  EXPECT_FALSE(facts(dir.path() + "/spool").exists);

  // An account that does not exist.
  std::ofstream(config) << relay_config(dns, 25, dir.path(), "user = \"nosuchuser151\"\n",
                                        "127.0.151.3:25");
  lab::CommandResult unknown = lab::run_command(relay);
  EXPECT_EQ(unknown.exit_code, 2) << unknown.out;
  EXPECT_NE(unknown.out.find("\"nosuchuser151\": no such user"), std::string::npos) << unknown.out;

  // A trust anchor file the account cannot read: libunbound would fail every
  // lookup from the first query on; the relay refuses at start instead.
  ASSERT_EQ(::mkdir((dir.path() + "/private").c_str(), 0700), 0);
  std::ofstream(dir.path() + "/private/root.key")
      << ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n";
  std::ofstream(config) << relay_config(
      dns + "trust_anchor_file = \"" + dir.path() + "/private/root.key\"\n", 25, dir.path(),
      "user = \"nobody\"\n", "127.0.151.3:25");
  setenv("ASAN_OPTIONS", "detect_leaks=0", 1);  // it exits after the switch (see above)
  lab::CommandResult anchor = lab::run_command(relay);
  unsetenv("ASAN_OPTIONS");
  EXPECT_EQ(anchor.exit_code, 2) << anchor.out;
  EXPECT_NE(anchor.out.find("[dns] trust_anchor_file " + dir.path() +
                            "/private/root.key: not readable by nobody"),
            std::string::npos)
      << anchor.out;
  std::error_code ec;
  fs::remove_all(dir.path() + "/spool", ec);

  // A spool left behind by root (0644, in a root-only directory): made
  // private, and the refusal names the directory and the fix.
  ASSERT_EQ(::mkdir((dir.path() + "/spool").c_str(), 0700), 0);
  { std::ofstream(dir.path() + "/spool/queue.db"); }
  ASSERT_EQ(::chmod((dir.path() + "/spool/queue.db").c_str(), 0644), 0);
  std::ofstream(config) << relay_config(dns, 25, dir.path(), "user = \"nobody\"\n",
                                        "127.0.151.3:25");
  setenv("ASAN_OPTIONS", "detect_leaks=0", 1);  // as above: it exits after the switch
  lab::CommandResult theirs = lab::run_command(relay);
  unsetenv("ASAN_OPTIONS");
  EXPECT_EQ(theirs.exit_code, 2) << theirs.out;
  EXPECT_NE(theirs.out.find("made private: " + dir.path() + "/spool/queue.db 0644 -> 0600"),
            std::string::npos)
      << theirs.out;
  EXPECT_NE(theirs.out.find(dir.path() + "/spool is not writable by nobody (chown -R nobody: " +
                            dir.path() + "/spool"),
            std::string::npos)
      << theirs.out;
  EXPECT_EQ(facts(dir.path() + "/spool/queue.db").mode, 0600u);
}

}  // namespace
