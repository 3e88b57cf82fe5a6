#include "app/privileges.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace danemta::app {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Result<Account> lookup(const std::string& name) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(size > 0 ? static_cast<std::size_t>(size) : 16384, '\0');
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE)
    buf.resize(buf.size() * 2);
  if (rc != 0)
    return fail("[relay] user = \"" + name + "\": cannot look it up: " + errno_text(rc),
                Severity::permanent);
  if (found == nullptr)
    return fail("[relay] user = \"" + name +
                    "\": no such user (create it, e.g. useradd --system --user-group "
                    "--home-dir /var/spool/danemta --shell /usr/sbin/nologin " +
                    name + ")",
                Severity::permanent);
  return Account{name, pw.pw_uid, pw.pw_gid};
}

std::string parent_of(const std::string& file) {
  return std::filesystem::path(file).parent_path().string();
}

}  // namespace

Result<RunAs> relay_run_as(const std::string& user, uid_t euid) {
  if (user.empty()) {
    if (euid == 0)
      return fail(
          "refusing to run as root: set [relay] user to an unprivileged account (the package "
          "creates \"danemta\"); started as root, the relay binds its listeners and then "
          "switches to that user. To run as root anyway, say so: user = \"root\"",
          Severity::permanent);
    return RunAs{};
  }
  auto account = lookup(user);
  if (!account) return tl::unexpected(account.error());
  RunAs r{*account, false};
  if (euid == account->uid) return r;
  if (euid == 0) {
    r.switch_needed = true;
    return r;
  }
  return fail("[relay] user = \"" + user + "\" (uid " + std::to_string(account->uid) +
                  "), but danemta runs as uid " + std::to_string(euid) +
                  " and cannot switch: start it as root or as " + user,
              Severity::permanent);
}

Result<RunAs> tool_run_as(const std::string& user, uid_t euid) {
  if (user.empty() || euid != 0) return RunAs{};
  auto account = lookup(user);
  if (!account) return tl::unexpected(account.error());
  return RunAs{*account, account->uid != 0};
}

std::vector<StateFile> state_files(const config::Config& cfg) {
  std::vector<StateFile> files;
  auto add = [&files](std::string what, const std::string& file) {
    std::string dir = parent_of(file);
    if (dir.empty()) return;  // the working directory
    for (const StateFile& f : files)
      if (f.directory == dir) return;
    files.push_back({what + " " + file, dir});
  };
  add("spool", cfg.relay.spool);
  if (cfg.tlsrpt.enabled) add("tlsrpt store", cfg.tlsrpt_store());
  return files;
}

Result<void> ensure_private_directory(const std::string& dir, const Account* owner) {
  if (::mkdir(dir.c_str(), 0700) != 0) {
    const int err = errno;
    if (err == EEXIST) {
      struct stat st {};
      if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};
      return fail(dir + " exists and is not a directory", Severity::permanent);
    }
    if (err == ENOENT)
      return fail(
          "cannot create the state directory " + dir + ": " + parent_of(dir) + " does not exist",
          Severity::permanent);
    return fail("cannot create the state directory " + dir + ": " + errno_text(err),
                Severity::permanent);
  }
  if (owner != nullptr && ::chown(dir.c_str(), owner->uid, owner->gid) != 0) {
    const int err = errno;
    return fail("cannot give " + dir + " to " + owner->name + ": " + errno_text(err),
                Severity::permanent);
  }
  return {};
}

std::vector<std::string> make_state_private(const config::Config& cfg) {
  std::vector<std::string> databases = {cfg.relay.spool};
  if (cfg.tlsrpt.enabled) databases.push_back(cfg.tlsrpt_store());
  std::vector<std::string> changed;
  auto tighten = [&changed](const std::string& path, bool directory) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;
    if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) return;
    if ((st.st_mode & 077) == 0) return;
    const mode_t mode = st.st_mode & 0700;
    if (::chmod(path.c_str(), mode) == 0)
      changed.push_back(path + " " + octal(st.st_mode) + " -> " + octal(mode));
  };
  for (const std::string& db : databases)
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) tighten(db + suffix, false);
  tighten(cfg.relay.spool + "-bodies", true);
  return changed;
}

Result<void> assume(const Account& a) {
  if (::initgroups(a.name.c_str(), a.gid) != 0 || ::setegid(a.gid) != 0 || ::seteuid(a.uid) != 0) {
    const int err = errno;
    return fail("cannot act as " + a.name + ": " + errno_text(err), Severity::permanent);
  }
  return {};
}

Result<void> restore_root() {
  if (::seteuid(0) != 0 || ::setegid(0) != 0) {
    const int err = errno;
    return fail("cannot act as root again: " + errno_text(err), Severity::permanent);
  }
  return {};
}

Result<void> drop_to(const Account& a) {
  const std::string who =
      a.name + " (uid " + std::to_string(a.uid) + ", gid " + std::to_string(a.gid) + ")";
  if (::geteuid() != 0 && ::seteuid(0) != 0)
    return fail("cannot switch to " + who + ": not started as root", Severity::permanent);
  if (::initgroups(a.name.c_str(), a.gid) != 0) {
    const int err = errno;
    return fail("cannot set the groups of " + who + ": " + errno_text(err), Severity::permanent);
  }
  if (::setresgid(a.gid, a.gid, a.gid) != 0 || ::setresuid(a.uid, a.uid, a.uid) != 0) {
    const int err = errno;
    return fail("cannot switch to " + who + ": " + errno_text(err), Severity::permanent);
  }
  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0 || ru != a.uid ||
      eu != a.uid || su != a.uid || rg != a.gid || eg != a.gid || sg != a.gid)
    return fail("switched to " + who + ", but the process ids say otherwise", Severity::permanent);
  if (a.uid != 0) {
    // Nothing may lead back: a process that can become root again has not
    // given it up.
    if (::setuid(0) == 0 || ::seteuid(0) == 0)
      return fail("switched to " + who + ", but root could be regained", Severity::permanent);
    if (a.gid != 0 && (::setgid(0) == 0 || ::setegid(0) == 0))
      return fail("switched to " + who + ", but group root could be regained", Severity::permanent);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[2]{};
    if (::syscall(SYS_capget, &header, caps) != 0)
      return fail(
          "switched to " + who + ", but cannot read the capabilities left: " + errno_text(errno),
          Severity::permanent);
    for (const auto& c : caps)
      if (c.effective != 0 || c.permitted != 0 || c.inheritable != 0)
        return fail("switched to " + who + ", but capabilities are left", Severity::permanent);
  }
  return {};
}

Result<void> forbid_new_privileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fail("cannot set no_new_privs: " + errno_text(errno), Severity::permanent);
  return {};
}

Result<void> check_readable_later(const config::Config& cfg, const std::string& who) {
  const std::pair<const char*, std::string> files[] = {
      {"[dns] trust_anchor_file", cfg.dns.trust_anchor_file},
      {"[tlsrpt] dkim_key_file", cfg.tlsrpt.dkim_key_file},
      {"[tlsrpt] https_ca_file", cfg.tlsrpt.https_ca_file},
      {"[relay] tls_cert_file", cfg.relay.tls_cert_file},
      {"[relay] tls_key_file", cfg.relay.tls_key_file},
      {"[relay] credentials_file", cfg.relay.credentials_file}};
  for (const auto& [key, path] : files) {
    if (path.empty()) continue;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      return fail(std::string(key) + " " + path + ": not readable by " + who + ": " +
                      errno_text(err) + " (the relay reads it while it runs: e.g. group of " + who +
                      ", mode 0640, in a directory " + who + " can enter)",
                  Severity::permanent);
    }
    ::close(fd);
  }
  return {};
}

Result<void> enter_as_relay_user(const config::Config& cfg) {
  auto run_as = tool_run_as(cfg.relay.user, ::geteuid());
  if (!run_as) return tl::unexpected(run_as.error());
  if (!run_as->switch_needed) return {};
  if (auto no_new = forbid_new_privileges(); !no_new) return no_new;
  for (const StateFile& f : state_files(cfg)) {
    if (auto made = ensure_private_directory(f.directory, &*run_as->account); !made)
      return fail(f.what + ": " + made.error().message, Severity::permanent);
  }
  return drop_to(*run_as->account);
}

std::string ownership_hint(const std::string& path, const Account& a) {
  const std::string dir = parent_of(path).empty() ? "." : parent_of(path);
  const std::string fix = "chown -R " + a.name + ": " + dir;
  if (::eaccess(dir.c_str(), W_OK | X_OK) != 0)
    return dir + " is not writable by " + a.name + " (" + fix + ", and let " + a.name +
           " reach it)";
  for (const char* suffix : {"", "-wal", "-shm", "-journal", "-bodies"}) {
    const std::string p = path + suffix;
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && st.st_uid != a.uid)
      return p + " belongs to uid " + std::to_string(st.st_uid) + ", not to " + a.name + " (" +
             fix + ")";
  }
  return "";
}

}  // namespace danemta::app
