// Who danemta runs as, and the files it keeps: the account named by
// [relay] user, the switch from root to it, and the private state directories.
//
// Contract: a relay started as root binds its listeners as root and then runs
// as the configured account for good (real, effective and saved ids, the
// account's groups, no capabilities, no way back). Started as root without an
// account it refuses to run: a loud error beats a relay silently exposed as
// root (Postfix refuses to deliver as root for the same reason). `user =
// "root"` is the explicit way to run as root anyway.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"

namespace danemta::app {

// An account from the passwd database.
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// What a command does about [relay] user, decided from the configuration and
// the ids it was started with.
struct RunAs {
  // The configured account, looked up; nullopt when none is configured.
  std::optional<Account> account;
  // Started as root and the account is not root: switch to it.
  bool switch_needed = false;
};

// For `danemta relay`. Errors (permanent, with the fix in words): started as
// root without [relay] user; an account that does not exist; started as a
// user that is neither root nor the account (it cannot switch).
Result<RunAs> relay_run_as(const std::string& user, uid_t euid);

// For the commands that open the spool or the TLS-RPT store (`queue`,
// `tlsrpt`): switch only when started as root and an account other than
// root is configured, so the files they create belong to the relay's
// account; otherwise run as started. An unknown account is an error.
Result<RunAs> tool_run_as(const std::string& user, uid_t euid);

// A database danemta keeps, and the directory it lives in.
struct StateFile {
  std::string what;       // "spool /var/spool/danemta/queue.db", for messages
  std::string directory;  // "/var/spool/danemta"
};
// The spool and (when enabled) the TLS-RPT store, one per directory; files
// in the working directory are left out.
std::vector<StateFile> state_files(const config::Config& cfg);

// Creates `dir` with mode 0700 if it is missing (its parent must exist), and
// when `owner` is given (running as root) gives it to that account. An
// existing directory is left as it is.
Result<void> ensure_private_directory(const std::string& dir, const Account* owner);

// The databases (and their -wal, -shm, -journal files) and the body-file
// directory that exist and that group or others may read: they are made
// private (0600, 0700). Returns what was changed, for the log.
std::vector<std::string> make_state_private(const config::Config& cfg);

// Effective ids only: from here on files are created as `a` and access is
// checked as `a`, and `restore_root` can come back (the saved id stays 0).
Result<void> assume(const Account& a);
Result<void> restore_root();

// Sets no_new_privs: nothing this process executes can gain privileges.
// It holds for the calling thread and the threads it creates later, so it is
// called before any thread is started.
Result<void> forbid_new_privileges();

// For good, from root: the account's groups (initgroups), then real,
// effective and saved gid and uid. Checks that root cannot be regained
// (setuid(0) and setgid(0) fail) and that no capability is left. Every
// thread switches (glibc applies set*id to all threads).
Result<void> drop_to(const Account& a);

// The files the relay reads while it runs (the trust anchor file, the DKIM
// key, the https CA file; libunbound reads the trust anchor only when the
// first query starts; the STARTTLS certificate and key and the AUTH
// credentials, read again on SIGHUP): each must open for reading now, as the account the
// relay runs as, or the error names the file and the fix. `who` names that
// account in the message.
Result<void> check_readable_later(const config::Config& cfg, const std::string& who);

// For `danemta queue` and `danemta tlsrpt`: as tool_run_as decides, makes
// the state directories and switches to the relay's account for good.
Result<void> enter_as_relay_user(const config::Config& cfg);

// When opening `path` failed after a switch: a hint naming the file or
// directory that belongs to someone else, and the command that fixes it;
// empty when ownership is not the problem.
std::string ownership_hint(const std::string& path, const Account& a);

}  // namespace danemta::app
