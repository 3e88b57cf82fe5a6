// The store of session results behind tlsrpt::Store: one SQLite 3 file in
// WAL mode, so the relay records while `danemta tlsrpt send` reads. One
// connection, serialised by a mutex; callers are worker threads, never the
// event loop.
//
// synchronous=NORMAL: a power loss may drop the last results recorded
// before it. That costs a line in a report (RFC 8460 section 4), never a
// message, so results are not fsync'd one by one like the spool's messages.
#include <sqlite3.h>

#include "base/sqlite_handle.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {

namespace {

// Schema versions (PRAGMA user_version): 0 = empty file, 1 = results,
// 2 = results and the reports sent.
constexpr int kSchemaVersion = 2;

// policy_strings holds a JSON array of strings (section 4.3 "policy-string").
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE results (
  id                    INTEGER PRIMARY KEY,
  at                    INTEGER NOT NULL,
  policy_domain         TEXT NOT NULL,
  policy_type           TEXT NOT NULL,
  policy_strings        TEXT NOT NULL,
  mx_host               TEXT NOT NULL,
  success               INTEGER NOT NULL,
  result_type           TEXT NOT NULL,
  sending_mta_ip        TEXT NOT NULL,
  receiving_mx_hostname TEXT NOT NULL,
  receiving_ip          TEXT NOT NULL,
  failure_reason_code   TEXT NOT NULL
);
CREATE INDEX results_domain_at ON results(policy_domain, at);
CREATE INDEX results_at ON results(at);
PRAGMA user_version = 1;
)sql";

// One row per report produced (its id survives retries) and one per report
// and rua URI: whether it was sent, and the https retry schedule.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE reports (
  policy_domain TEXT NOT NULL,
  day           INTEGER NOT NULL,
  report_id     TEXT NOT NULL,
  PRIMARY KEY (policy_domain, day)
);
CREATE TABLE report_deliveries (
  policy_domain   TEXT NOT NULL,
  day             INTEGER NOT NULL,
  rua             TEXT NOT NULL,
  sent            INTEGER NOT NULL,
  failed_attempts INTEGER NOT NULL,
  first_attempt   INTEGER NOT NULL,
  next_attempt    INTEGER NOT NULL,
  last_error      TEXT NOT NULL,
  PRIMARY KEY (policy_domain, day, rua)
);
PRAGMA user_version = 2;
)sql";

// Milliseconds a statement waits for the other process's lock (the relay
// records while `danemta tlsrpt send` reads and expires).
constexpr int kBusyTimeoutMs = 10'000;

using sqlite::DbPtr;
using sqlite::out_ptr;
using sqlite::Query;
using sqlite::StmtPtr;

bool parse_policy_type(std::string_view text, PolicyType& out) {
  for (PolicyType t : {PolicyType::tlsa, PolicyType::no_policy_found}) {
    if (to_string(t) == text) {
      out = t;
      return true;
    }
  }
  return false;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::string path) : path_(std::move(path)) {}

  Result<void> open();

  Result<void> record(const SessionResult& r) override;
  Result<std::vector<std::string>> domains(Time begin, Time end) override;
  Result<std::vector<SessionResult>> results(const std::string& policy_domain, Time begin,
                                             Time end) override;
  Result<std::size_t> expire(Time before) override;
  Result<std::string> report_id(const std::string& policy_domain, Time day,
                                const std::string& proposed) override;
  Result<std::optional<RuaState>> rua_state(const std::string& policy_domain, Time day,
                                            const std::string& rua) override;
  Result<void> set_rua_state(const RuaState& state) override;
  Result<std::vector<std::pair<Time, std::string>>> unsent(Time since) override;

 private:
  tl::unexpected<Error> db_error(std::string_view what) const {
    return fail("tlsrpt store " + path_ + ": " + std::string(what) + ": " +
                sqlite3_errmsg(db_.get()));
  }

  Result<void> exec(const char* sql, std::string_view what) {
    if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return db_error(what);
    }
    return {};
  }

  // The prepared statement for `sql` (a string literal), prepared once.
  Result<sqlite3_stmt*> statement(const char* sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second.get();
    StmtPtr stmt;
    if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, out_ptr(stmt), nullptr) !=
        SQLITE_OK) {
      return db_error("prepare statement");
    }
    sqlite3_stmt* raw = stmt.get();
    statements_.emplace(sql, std::move(stmt));
    return raw;
  }

  Result<void> migrate();

  std::string path_;
  DbPtr db_;  // declared before statements_: closed after they are finalised
  std::unordered_map<const char*, StmtPtr> statements_;
  std::mutex mutex_;
};

Result<void> SqliteStore::open() {
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), out_ptr(db_), flags, nullptr) != SQLITE_OK) {
    if (!db_) return fail("tlsrpt store " + path_ + ": open: out of memory");
    return db_error("open");
  }
  sqlite3_extended_result_codes(db_.get(), 1);
  sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
  {
    auto stmt = statement("PRAGMA journal_mode = WAL");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    if (q.step() != SQLITE_ROW) return db_error("set WAL journal mode");
    const std::string mode = q.text(0);
    if (mode != "wal") {
      return fail("tlsrpt store " + path_ + ": journal mode is " + mode + ", not wal");
    }
  }
  statements_.clear();
  if (auto r = exec("PRAGMA synchronous = NORMAL", "set synchronous=NORMAL"); !r) return r;
  return migrate();
}

Result<void> SqliteStore::migrate() {
  if (auto r = exec("BEGIN IMMEDIATE", "begin transaction"); !r) return r;
  // Rolls back unless the COMMIT below succeeded.
  struct Rollback {
    sqlite3* db;
    bool armed = true;
    ~Rollback() {
      if (armed) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  } rollback{db_.get()};

  int version = 0;
  {
    auto stmt = statement("PRAGMA user_version");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    if (q.step() != SQLITE_ROW) return db_error("read schema version");
    version = static_cast<int>(q.int64(0));
  }
  statements_.clear();
  if (version > kSchemaVersion) {
    return fail("tlsrpt store " + path_ + ": schema version " + std::to_string(version) +
                    " is newer than this danemta's (" + std::to_string(kSchemaVersion) + ")",
                Severity::permanent);
  }
  if (version == 0) {
    if (auto r = exec(kSchemaV1, "create schema"); !r) return r;
  }
  if (version <= 1) {
    if (auto r = exec(kSchemaV2, "add the reports tables"); !r) return r;
  }
  if (auto r = exec("COMMIT", "commit"); !r) return r;
  rollback.armed = false;
  return {};
}

Result<void> SqliteStore::record(const SessionResult& r) {
  const std::string strings = nlohmann::json(r.policy_strings)
                                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "INSERT INTO results (at, policy_domain, policy_type, policy_strings, mx_host, success, "
      "result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, failure_reason_code) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, r.at)
      .bind(2, r.policy_domain)
      .bind(3, to_string(r.policy_type))
      .bind(4, strings)
      .bind(5, r.mx_host)
      .bind(6, std::int64_t{r.success ? 1 : 0})
      .bind(7, r.result_type)
      .bind(8, r.sending_mta_ip)
      .bind(9, r.receiving_mx_hostname)
      .bind(10, r.receiving_ip)
      .bind(11, r.failure_reason_code);
  if (q.step() != SQLITE_DONE) return db_error("record result");
  return {};
}

Result<std::vector<std::string>> SqliteStore::domains(Time begin, Time end) {
  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "SELECT DISTINCT policy_domain FROM results WHERE at >= ?1 AND at < ?2 "
      "ORDER BY policy_domain");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, begin).bind(2, end);
  std::vector<std::string> out;
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("list domains");
    out.push_back(q.text(0));
  }
  return out;
}

Result<std::vector<SessionResult>> SqliteStore::results(const std::string& policy_domain,
                                                        Time begin, Time end) {
  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "SELECT at, policy_domain, policy_type, policy_strings, mx_host, success, result_type, "
      "sending_mta_ip, receiving_mx_hostname, receiving_ip, failure_reason_code "
      "FROM results WHERE policy_domain = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, id");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, policy_domain).bind(2, begin).bind(3, end);
  std::vector<SessionResult> out;
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("read results");
    SessionResult r;
    r.at = q.int64(0);
    r.policy_domain = q.text(1);
    const std::string type = q.text(2);
    if (!parse_policy_type(type, r.policy_type)) {
      return fail("tlsrpt store " + path_ + ": unknown policy type \"" + type + "\"",
                  Severity::permanent);
    }
    const auto strings = nlohmann::json::parse(q.text(3), nullptr, false);
    if (!strings.is_array()) {
      return fail("tlsrpt store " + path_ + ": policy strings are not a JSON array",
                  Severity::permanent);
    }
    for (const auto& s : strings) {
      if (!s.is_string()) {
        return fail("tlsrpt store " + path_ + ": a policy string is not a JSON string",
                    Severity::permanent);
      }
      r.policy_strings.push_back(s.get<std::string>());
    }
    r.mx_host = q.text(4);
    r.success = q.int64(5) != 0;
    r.result_type = q.text(6);
    r.sending_mta_ip = q.text(7);
    r.receiving_mx_hostname = q.text(8);
    r.receiving_ip = q.text(9);
    r.failure_reason_code = q.text(10);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::size_t> SqliteStore::expire(Time before) {
  std::lock_guard lock(mutex_);
  auto stmt = statement("DELETE FROM results WHERE at < ?1");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, before);
  if (q.step() != SQLITE_DONE) return db_error("expire results");
  const auto removed = static_cast<std::size_t>(sqlite3_changes64(db_.get()));
  for (const char* sql : {"DELETE FROM reports WHERE day + 86400 <= ?1",
                          "DELETE FROM report_deliveries WHERE day + 86400 <= ?1"}) {
    auto old = statement(sql);
    if (!old) return tl::unexpected(old.error());
    Query o(*old);
    o.bind(1, before);
    if (o.step() != SQLITE_DONE) return db_error("expire reports");
  }
  return removed;
}

Result<std::string> SqliteStore::report_id(const std::string& policy_domain, Time day,
                                           const std::string& proposed) {
  std::lock_guard lock(mutex_);
  {
    auto stmt = statement(
        "INSERT INTO reports (policy_domain, day, report_id) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (policy_domain, day) DO NOTHING");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    q.bind(1, policy_domain).bind(2, day).bind(3, proposed);
    if (q.step() != SQLITE_DONE) return db_error("record report id");
  }
  auto stmt = statement("SELECT report_id FROM reports WHERE policy_domain = ?1 AND day = ?2");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, policy_domain).bind(2, day);
  if (q.step() != SQLITE_ROW) return db_error("read report id");
  return q.text(0);
}

Result<std::optional<RuaState>> SqliteStore::rua_state(const std::string& policy_domain, Time day,
                                                       const std::string& rua) {
  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "SELECT sent, failed_attempts, first_attempt, next_attempt, last_error "
      "FROM report_deliveries WHERE policy_domain = ?1 AND day = ?2 AND rua = ?3");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, policy_domain).bind(2, day).bind(3, rua);
  const int rc = q.step();
  if (rc == SQLITE_DONE) return std::optional<RuaState>();
  if (rc != SQLITE_ROW) return db_error("read delivery state");
  RuaState st;
  st.policy_domain = policy_domain;
  st.day = day;
  st.rua = rua;
  st.sent = q.int64(0) != 0;
  st.failed_attempts = static_cast<int>(q.int64(1));
  st.first_attempt = q.int64(2);
  st.next_attempt = q.int64(3);
  st.last_error = q.text(4);
  return std::optional<RuaState>(std::move(st));
}

Result<void> SqliteStore::set_rua_state(const RuaState& st) {
  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "INSERT OR REPLACE INTO report_deliveries (policy_domain, day, rua, sent, failed_attempts, "
      "first_attempt, next_attempt, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, st.policy_domain)
      .bind(2, st.day)
      .bind(3, st.rua)
      .bind(4, std::int64_t{st.sent ? 1 : 0})
      .bind(5, std::int64_t{st.failed_attempts})
      .bind(6, st.first_attempt)
      .bind(7, st.next_attempt)
      .bind(8, st.last_error);
  if (q.step() != SQLITE_DONE) return db_error("record delivery state");
  return {};
}

Result<std::vector<std::pair<Time, std::string>>> SqliteStore::unsent(Time since) {
  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "SELECT DISTINCT day, policy_domain FROM report_deliveries "
      "WHERE sent = 0 AND first_attempt >= ?1 ORDER BY day, policy_domain");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, since);
  std::vector<std::pair<Time, std::string>> out;
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("list unsent reports");
    out.emplace_back(q.int64(0), q.text(1));
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  auto store = std::make_unique<SqliteStore>(path);
  if (auto r = store->open(); !r) return tl::unexpected(r.error());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace danemta::tlsrpt
