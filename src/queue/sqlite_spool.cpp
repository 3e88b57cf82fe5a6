// The embedded spool: one SQLite 3 file in WAL mode with synchronous=FULL, so
// every committed transaction is fsync'd to the write-ahead log before the
// call returns (DESIGN.md section 8: acknowledged = durable). One connection,
// serialised by a mutex; callers are worker threads, never the event loop.
//
// Group commit: enqueue() and record() calls that arrive on several threads
// while a commit is under way share the next transaction and its one fsync
// (each in its own savepoint, so one call's failure undoes only its own
// changes). Each call still returns only after the transaction holding its
// changes committed; the fsync latency is paid once per group instead of
// once per call.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sqlite_handle.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "base/text.hpp"
#include "queue/spool.hpp"

namespace danemta::queue {

namespace {

// Schema versions (PRAGMA user_version): 0 = empty file, 1 = this layout. A
// later version adds a migration step from the previous one in migrate().
constexpr int kSchemaVersion = 6;

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE messages (
  id            TEXT PRIMARY KEY NOT NULL,
  mail_from     TEXT NOT NULL,
  data          BLOB NOT NULL,
  size          INTEGER NOT NULL,
  received_at   INTEGER NOT NULL,
  received_from TEXT NOT NULL
);
CREATE TABLE recipients (
  message_id      TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  idx             INTEGER NOT NULL,
  address         TEXT NOT NULL,
  domain          TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'bounced')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_dsn        TEXT NOT NULL DEFAULT '',
  last_diagnostic TEXT NOT NULL DEFAULT '',
  last_outcome    TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX recipients_due ON recipients(state, next_attempt_at);
CREATE INDEX messages_age ON messages(received_at, id);
PRAGMA user_version = 1;
)sql";

// v2: a text over the inline limit lives in a file named by the message id
// under the bodies directory (`data` is then empty); TLS reports are marked.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE messages ADD COLUMN body_file INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN tls_report INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 2;
)sql";

// v3: the submitter's MAIL parameters that go on to the next hop
// (BODY=8BITMIME, RFC 6152; SMTPUTF8, RFC 6531).
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE messages ADD COLUMN body_8bitmime INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 3;
)sql";

// v4: whether the sender was told a recipient is delayed (one notice each).
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE recipients ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 4;
)sql";

// v5: the arrival to the millisecond (for the log's delays); 0 in rows
// written before.
constexpr const char* kSchemaV5 = R"sql(
ALTER TABLE messages ADD COLUMN received_ms INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 5;
)sql";

// v6: operator holds (a held recipient is never due: due recipients are
// found by (state, held, next attempt)), and for a delivered or bounced
// recipient next_attempt_at holds when it became so, which costs no write
// beyond the result itself: a message is finished when no recipient is
// pending, at the latest of its recipients' times, and finished messages
// are found for removal through the same index. Rows written before held 0
// there; such a recipient is taken to have finished when its message
// arrived (a temporary table of arrivals from the messages_age index, so
// the migration never reads the texts).
constexpr const char* kSchemaV6 = R"sql(
ALTER TABLE recipients ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
DROP INDEX recipients_due;
CREATE TEMP TABLE arrivals (id TEXT PRIMARY KEY NOT NULL, received_at INTEGER NOT NULL)
  WITHOUT ROWID;
INSERT INTO temp.arrivals SELECT id, received_at FROM messages;
UPDATE recipients SET next_attempt_at =
  MAX(1, COALESCE((SELECT received_at FROM temp.arrivals a WHERE a.id = recipients.message_id), 1))
  WHERE state != 'pending';
DROP TABLE temp.arrivals;
CREATE INDEX recipients_due ON recipients(state, held, next_attempt_at);
PRAGMA user_version = 6;
)sql";

// Queries about one message's recipients write `+state` (no index on
// state): they must use the primary key (message_id, idx), never walk every
// pending recipient through recipients_due.

// Messages deleted per transaction by purge_finished when asked for more.
constexpr std::size_t kPurgeBatch = 1000;

// A body file without a row is removed at open once it is this old: a draft
// being written by a running relay is younger (the end of data comes within
// the server's data timeout).
constexpr auto kOrphanAge = std::chrono::hours(1);

// Milliseconds a statement waits for another process's lock (`danemta queue`
// next to the relay) before failing with SQLITE_BUSY, a transient error.
constexpr int kBusyTimeoutMs = 10'000;

// Attempts at a fresh queue id after a UNIQUE violation.
constexpr int kIdAttempts = 16;

using sqlite::DbPtr;
using sqlite::out_ptr;
using sqlite::Query;
using sqlite::StmtPtr;

std::string_view state_text(RecipientState s) {
  return to_string(s);
}

bool parse_state(std::string_view text, RecipientState& out) {
  for (RecipientState s :
       {RecipientState::pending, RecipientState::delivered, RecipientState::bounced}) {
    if (to_string(s) == text) {
      out = s;
      return true;
    }
  }
  return false;
}

// "spool /x: what: strerror", Cause::storage_full for ENOSPC and EDQUOT.
tl::unexpected<Error> file_error(const std::string& path, std::string_view what, int err) {
  return fail("spool " + path + ": " + std::string(what) + ": " + std::strerror(err),
              Severity::transient,
              err == ENOSPC || err == EDQUOT ? Cause::storage_full : Cause::unspecified);
}

Result<void> write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return file_error(path, "write", errno);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Result<void> fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return file_error(dir, "open directory", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return file_error(dir, "fsync directory", err);
  return {};
}

// Up to `inline_max` bytes in memory; beyond that the text goes to the file
// `dir`/`id`, created on the first byte past the limit.
class SqliteDraft final : public Draft {
 public:
  SqliteDraft(std::string dir, std::string id, std::size_t inline_max)
      : dir_(std::move(dir)), id_(std::move(id)), inline_max_(inline_max) {}
  SqliteDraft(const SqliteDraft&) = delete;
  SqliteDraft& operator=(const SqliteDraft&) = delete;
  ~SqliteDraft() override {
    if (fd_ >= 0) ::close(fd_);
    if (created_ && !kept_) ::unlink(path().c_str());
  }

  Result<void> append(std::string_view text) override {
    if (broken_) return tl::unexpected(*broken_);
    size_ += text.size();
    if (!created_ && memory_.size() + text.size() <= inline_max_) {
      memory_.append(text);
      return {};
    }
    if (!created_) {
      fd_ = ::open(path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd_ < 0) return broken(file_error(path(), "create", errno));
      created_ = true;
      auto r = write_all(fd_, memory_, path());
      std::string().swap(memory_);
      if (!r) return broken(r);
    }
    if (auto r = write_all(fd_, text, path()); !r) return broken(r);
    return {};
  }
  std::size_t size() const override { return size_; }

  // Makes the file durable (file, then its directory entry).
  Result<void> sync() {
    if (broken_) return tl::unexpected(*broken_);
    if (!created_) return {};
    if (::fsync(fd_) != 0) return broken(file_error(path(), "fsync", errno));
    ::close(fd_);
    fd_ = -1;
    return fsync_dir(dir_);
  }
  // A new id after a collision in the database (the file follows it).
  Result<void> rename_to(std::string id) {
    const std::string from = path();
    const std::string old = std::move(id_);
    id_ = std::move(id);
    if (created_ && ::rename(from.c_str(), path().c_str()) != 0) {
      const int err = errno;
      id_ = old;
      return file_error(from, "rename", err);
    }
    return created_ ? fsync_dir(dir_) : Result<void>{};
  }

  const std::string& id() const { return id_; }
  bool in_file() const { return created_; }
  const std::string& memory() const { return memory_; }
  void keep() { kept_ = true; }
  std::string path() const { return dir_ + "/" + id_; }

 private:
  Result<void> broken(Result<void> r) {
    broken_ = r.error();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (created_) ::unlink(path().c_str());  // give the space back at once
    created_ = false;
    return r;
  }

  std::string dir_;
  std::string id_;
  std::size_t inline_max_;
  std::string memory_;
  std::size_t size_ = 0;
  int fd_ = -1;
  bool created_ = false;
  bool kept_ = false;
  std::optional<Error> broken_;
};

class MemoryReader final : public TextSource {
 public:
  explicit MemoryReader(std::string text) : text_(std::move(text)) {}
  Result<void> rewind() override {
    at_ = 0;
    return {};
  }
  Result<std::size_t> read(std::string& out, std::size_t max) override {
    const std::size_t n = std::min(max, text_.size() - at_);
    out.append(text_, at_, n);
    at_ += n;
    return n;
  }
  std::size_t size() const override { return text_.size(); }

 private:
  std::string text_;
  std::size_t at_ = 0;
};

class FileReader final : public TextSource {
 public:
  FileReader(std::string path, int fd, std::size_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  ~FileReader() override { ::close(fd_); }
  Result<void> rewind() override {
    if (::lseek(fd_, 0, SEEK_SET) != 0) return file_error(path_, "seek", errno);
    return {};
  }
  Result<std::size_t> read(std::string& out, std::size_t max) override {
    const std::size_t old = out.size();
    out.resize(old + max);
    ssize_t n;
    do {
      n = ::read(fd_, out.data() + old, max);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      const int err = errno;
      out.resize(old);
      return file_error(path_, "read", err);
    }
    out.resize(old + static_cast<std::size_t>(n));
    return static_cast<std::size_t>(n);
  }
  std::size_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  std::size_t size_;
};

class SqliteSpool final : public Spool {
 public:
  SqliteSpool(std::string path, std::size_t inline_max)
      : path_(std::move(path)),
        bodies_(path_ + "-bodies"),
        inline_max_(inline_max),
        rng_(std::random_device{}()) {}

  Result<void> open();

  Result<std::unique_ptr<Draft>> draft() override;
  Result<std::string> enqueue(const NewMessage& message, std::unique_ptr<Draft> text) override;
  Result<std::unique_ptr<TextSource>> reader(const std::string& message_id) override;
  Result<std::string> enqueue(const NewMessage& message) override;
  Result<std::vector<Job>> due(Time now, std::size_t limit,
                               const std::vector<std::string>& busy) override;
  Result<std::optional<Time>> next_due() override;
  Result<std::string> data(const std::string& message_id) override;
  Result<bool> record(const std::string& message_id, const std::vector<RecipientUpdate>& updates,
                      Time now) override;
  Result<std::optional<MessageInfo>> info(const std::string& message_id) override;
  Result<std::vector<MessageInfo>> list(bool finished_too) override;
  Result<Counts> counts() override;
  Result<Changes> change(QueueAction action, const Selector& selector, Time now) override;
  Result<bool> remove(const std::string& message_id) override;
  Result<QueueCounts> counts(Time now, std::size_t top) override;
  Result<Removal> remove(const Selector& selector) override;
  Result<std::size_t> purge_finished(Time finished_by, std::size_t limit) override;

 private:
  // A transaction that rolls back unless commit() succeeded.
  class Transaction {
   public:
    explicit Transaction(SqliteSpool& spool) : spool_(spool) {}
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
      if (open_) sqlite3_exec(spool_.db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    // IMMEDIATE takes the write lock up front: a writer never fails half-way
    // on a lock upgrade against another process.
    Result<void> begin(bool write) {
      auto r = spool_.exec(write ? "BEGIN IMMEDIATE" : "BEGIN", "begin transaction");
      if (r) open_ = true;
      return r;
    }
    Result<void> commit() {
      auto r = spool_.exec("COMMIT", "commit");
      if (r) open_ = false;
      return r;
    }

   private:
    SqliteSpool& spool_;
    bool open_ = false;
  };

  // SQLITE_FULL (ENOSPC or a quota) is told apart: the relay then stops
  // delivering until results can be written, and submitters get 452 4.3.1.
  tl::unexpected<Error> db_error(std::string_view what) const {
    const bool full = (sqlite3_extended_errcode(db_.get()) & 0xff) == SQLITE_FULL;
    return fail("spool " + path_ + ": " + std::string(what) + ": " + sqlite3_errmsg(db_.get()),
                Severity::transient, full ? Cause::storage_full : Cause::unspecified);
  }
  tl::unexpected<Error> usage_error(std::string_view what) const {
    return fail("spool " + path_ + ": " + std::string(what), Severity::permanent);
  }

  Result<void> exec(const char* sql, std::string_view what) {
    if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return db_error(what);
    }
    return {};
  }

  // The prepared statement for `sql` (a string literal), prepared once.
  Result<sqlite3_stmt*> statement(const char* sql, std::string_view what = "prepare statement") {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second.get();
    StmtPtr stmt;
    if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, out_ptr(stmt), nullptr) !=
        SQLITE_OK) {
      return db_error(what);
    }
    sqlite3_stmt* raw = stmt.get();
    statements_.emplace(sql, std::move(stmt));
    return raw;
  }

  Result<void> migrate();
  void remove_orphans();
  void remove_body_files(const std::vector<std::string>& ids);
  std::string new_id();
  Result<std::vector<RecipientStatus>> recipients_of(const std::string& message_id);
  Result<RecipientStatus> read_recipient(const Query& q, int first_col);
  // The pending recipients `selector` picks, with their message ids; ids in
  // the selector that name no message go to `missing`. In a transaction.
  struct Selected {
    std::string message_id;
    std::int64_t idx = 0;
    bool held = false;
    Time next_attempt_at = 0;
  };
  Result<std::vector<Selected>> select_pending(const Selector& selector,
                                               std::vector<std::string>& missing,
                                               std::vector<std::string>* kept);
  Result<bool> exists(const std::string& message_id);

  std::string path_;
  std::string bodies_;  // directory of body files
  std::size_t inline_max_;
  DbPtr db_;  // declared before statements_: closed after they are finalised
  std::unordered_map<const char*, StmtPtr> statements_;
  std::mutex mutex_;     // the connection
  std::mutex id_mutex_;  // rng_ (draft() runs on the event loop: never waits for an fsync)
  std::mt19937_64 rng_;

  // Group commit (see the top of this file).
  struct GroupWrite {
    std::function<Result<void>()> work;  // in the group's transaction, its own savepoint
    std::function<void()> committed;     // after the transaction committed, if work succeeded
    Result<void> result;
    bool done = false;
  };
  // Runs `write` in the next group transaction; returns its outcome once that
  // transaction committed (or failed).
  Result<void> in_group(GroupWrite& write);
  void commit_group(const std::vector<GroupWrite*>& group);
  std::mutex group_mutex_;  // the three below
  std::condition_variable group_done_;
  std::vector<GroupWrite*> group_waiting_;
  bool group_committing_ = false;
};

Result<void> SqliteSpool::in_group(GroupWrite& write) {
  std::unique_lock lock(group_mutex_);
  group_waiting_.push_back(&write);
  while (!write.done) {
    if (group_committing_) {
      group_done_.wait(lock);
      continue;
    }
    // This thread commits everything waiting, its own write included.
    group_committing_ = true;
    std::vector<GroupWrite*> group;
    group.swap(group_waiting_);
    lock.unlock();
    commit_group(group);
    lock.lock();
    for (GroupWrite* w : group) w->done = true;
    group_committing_ = false;
    group_done_.notify_all();
  }
  return write.result;
}

void SqliteSpool::commit_group(const std::vector<GroupWrite*>& group) {
  std::lock_guard lock(mutex_);
  auto fail_all = [&group](const Error& e) {
    for (GroupWrite* w : group) w->result = tl::unexpected(e);
  };
  Transaction tx(*this);
  if (auto r = tx.begin(true); !r) return fail_all(r.error());
  for (GroupWrite* w : group) {
    if (auto r = exec("SAVEPOINT w", "begin savepoint"); !r) return fail_all(r.error());
    w->result = w->work();
    if (!w->result) {
      if (auto r = exec("ROLLBACK TO w", "roll back savepoint"); !r) return fail_all(r.error());
    }
    if (auto r = exec("RELEASE w", "release savepoint"); !r) return fail_all(r.error());
  }
  if (auto r = tx.commit(); !r) return fail_all(r.error());
  for (GroupWrite* w : group)
    if (w->result && w->committed) w->committed();
}

Result<void> SqliteSpool::open() {
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), out_ptr(db_), flags, nullptr) != SQLITE_OK) {
    if (!db_) return fail("spool " + path_ + ": open: out of memory");
    return db_error("open");
  }
  sqlite3_extended_result_codes(db_.get(), 1);
  sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);

  // journal_mode answers with the mode in force; anything but "wal" means the
  // file system or file refused it, and the durability contract would not hold.
  {
    auto stmt = statement("PRAGMA journal_mode = WAL", "open");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    const int rc = q.step();
    if (rc != SQLITE_ROW) return db_error("set WAL journal mode");
    const std::string mode = q.text(0);
    if (mode != "wal") return fail("spool " + path_ + ": journal mode is " + mode + ", not wal");
  }
  statements_.clear();
  if (auto r = exec("PRAGMA synchronous = FULL", "set synchronous=FULL"); !r) return r;
  if (auto r = exec("PRAGMA foreign_keys = ON", "enable foreign keys"); !r) return r;
  if (auto r = migrate(); !r) return r;
  if (::mkdir(bodies_.c_str(), 0700) != 0 && errno != EEXIST)
    return file_error(bodies_, "create the bodies directory", errno);
  remove_orphans();
  return {};
}

Result<void> SqliteSpool::migrate() {
  Transaction tx(*this);
  if (auto r = tx.begin(true); !r) return r;
  int version = 0;
  {
    auto stmt = statement("PRAGMA user_version", "open");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    if (q.step() != SQLITE_ROW) return db_error("read schema version");
    version = static_cast<int>(q.int64(0));
  }
  statements_.clear();
  if (version > kSchemaVersion) {
    return fail("spool " + path_ + ": schema version " + std::to_string(version) +
                    " is newer than this danemta's (" + std::to_string(kSchemaVersion) + ")",
                Severity::permanent);
  }
  if (version == 0) {
    if (auto r = exec(kSchemaV1, "create schema"); !r) return r;
    version = 1;
  }
  if (version == 1) {
    if (auto r = exec(kSchemaV2, "migrate schema to version 2"); !r) return r;
    version = 2;
  }
  if (version == 2) {
    if (auto r = exec(kSchemaV3, "migrate schema to version 3"); !r) return r;
    version = 3;
  }
  if (version == 3) {
    if (auto r = exec(kSchemaV4, "migrate schema to version 4"); !r) return r;
    version = 4;
  }
  if (version == 4) {
    if (auto r = exec(kSchemaV5, "migrate schema to version 5"); !r) return r;
    version = 5;
  }
  if (version == 5) {
    if (auto r = exec(kSchemaV6, "migrate schema to version 6"); !r) return r;
  }
  return tx.commit();
}

void SqliteSpool::remove_orphans() {
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  std::vector<std::string> old;
  for (const auto& entry : std::filesystem::directory_iterator(bodies_, ec)) {
    std::error_code time_ec;
    const auto written = entry.last_write_time(time_ec);
    if (!time_ec && now - written > kOrphanAge) old.push_back(entry.path().filename().string());
  }
  std::lock_guard lock(mutex_);
  auto stmt = statement("SELECT 1 FROM messages WHERE id = ?1 AND body_file = 1");
  if (!stmt) return;
  for (const std::string& name : old) {
    Query q(*stmt);
    q.bind(1, name);
    if (q.step() == SQLITE_DONE) ::unlink((bodies_ + "/" + name).c_str());
  }
}

// Unlinks the body file of each message, if it has one (a missing file is
// no error: most texts are inline, and asking the row would read the text).
void SqliteSpool::remove_body_files(const std::vector<std::string>& ids) {
  for (const std::string& id : ids) ::unlink((bodies_ + "/" + id).c_str());
}

Result<std::unique_ptr<Draft>> SqliteSpool::draft() {
  std::string id;
  {
    std::lock_guard lock(id_mutex_);
    id = new_id();
  }
  return std::unique_ptr<Draft>(std::make_unique<SqliteDraft>(bodies_, std::move(id), inline_max_));
}

Result<std::unique_ptr<TextSource>> SqliteSpool::reader(const std::string& message_id) {
  std::string text;
  std::size_t size = 0;
  {
    std::lock_guard lock(mutex_);
    auto stmt = statement("SELECT body_file, data, size FROM messages WHERE id = ?1");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    q.bind(1, message_id);
    const int rc = q.step();
    if (rc == SQLITE_DONE) return usage_error("read: no message " + message_id);
    if (rc != SQLITE_ROW) return db_error("read");
    if (q.int64(0) == 0)
      return std::unique_ptr<TextSource>(std::make_unique<MemoryReader>(q.blob(1)));
    size = static_cast<std::size_t>(q.int64(2));
  }
  const std::string file = bodies_ + "/" + message_id;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return file_error(file, "open", errno);
  return std::unique_ptr<TextSource>(std::make_unique<FileReader>(file, fd, size));
}

// Time-sortable and unique: 13 hex digits of microseconds since the epoch
// (enough until 2112) and 4 random hex digits; enqueue() retries on the rare
// collision.
std::string SqliteSpool::new_id() {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto micros = static_cast<std::uint64_t>(now);
  std::uint64_t random = rng_();
  std::string id(17, '0');
  for (int i = 12; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kDigits[micros & 0xf];
    micros >>= 4;
  }
  for (std::size_t i = 13; i < 17; ++i) {
    id[i] = kDigits[random & 0xf];
    random >>= 4;
  }
  return id;
}

Result<std::string> SqliteSpool::enqueue(const NewMessage& message) {
  auto d = draft();
  if (!d) return tl::unexpected(d.error());
  if (auto r = (*d)->append(message.data); !r) return tl::unexpected(r.error());
  return enqueue(message, std::move(*d));
}

Result<std::string> SqliteSpool::enqueue(const NewMessage& message, std::unique_ptr<Draft> text) {
  auto* d = dynamic_cast<SqliteDraft*>(text.get());
  if (d == nullptr) return usage_error("enqueue: a draft from another spool");
  if (message.recipients.empty()) return usage_error("enqueue: no recipients");
  std::vector<std::string> domains;
  domains.reserve(message.recipients.size());
  for (const std::string& address : message.recipients) {
    const auto at = address.rfind('@');
    if (at == std::string::npos || at + 1 == address.size()) {
      return usage_error("enqueue: recipient without a domain: \"" + address + "\"");
    }
    domains.push_back(normalize_domain(std::string_view(address).substr(at + 1)));
  }
  // The text is on stable storage before the row that names it commits.
  if (auto r = d->sync(); !r) return tl::unexpected(r.error());

  GroupWrite write;
  write.work = [this, d, &message, &domains]() -> Result<void> {
    auto insert_message = statement(
        "INSERT INTO messages (id, mail_from, data, size, received_at, received_from, "
        "body_file, tls_report, body_8bitmime, smtputf8, received_ms) VALUES (?1, ?2, ?3, ?4, "
        "?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!insert_message) return tl::unexpected(insert_message.error());
    for (int attempt = 0;; ++attempt) {
      Query q(*insert_message);
      q.bind(1, d->id())
          .bind(2, message.mail_from)
          .bind_blob(3, d->in_file() ? std::string_view() : std::string_view(d->memory()))
          .bind(4, static_cast<std::int64_t>(d->size()))
          .bind(5, message.received_at)
          .bind(6, message.received_from)
          .bind(7, static_cast<std::int64_t>(d->in_file() ? 1 : 0))
          .bind(8, static_cast<std::int64_t>(message.tls_report ? 1 : 0))
          .bind(9, static_cast<std::int64_t>(message.body_8bitmime ? 1 : 0))
          .bind(10, static_cast<std::int64_t>(message.smtputf8 ? 1 : 0))
          .bind(11, message.received_ms);
      const int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_CONSTRAINT_PRIMARYKEY || attempt + 1 == kIdAttempts) {
        return db_error("enqueue: insert message");
      }
      std::string id;
      {
        std::lock_guard id_lock(id_mutex_);
        id = new_id();
      }
      if (auto r = d->rename_to(std::move(id)); !r) return tl::unexpected(r.error());
    }

    auto insert_recipient = statement(
        "INSERT INTO recipients (message_id, idx, address, domain, state, next_attempt_at) "
        "VALUES (?1, ?2, ?3, ?4, 'pending', ?5)");
    if (!insert_recipient) return tl::unexpected(insert_recipient.error());
    for (std::size_t i = 0; i < message.recipients.size(); ++i) {
      Query q(*insert_recipient);
      q.bind(1, d->id())
          .bind(2, static_cast<std::int64_t>(i))
          .bind(3, message.recipients[i])
          .bind(4, domains[i])
          .bind(5, message.received_at);
      if (q.step() != SQLITE_DONE) return db_error("enqueue: insert recipient");
    }
    return {};
  };
  write.committed = [d]() { d->keep(); };
  if (auto r = in_group(write); !r) return tl::unexpected(r.error());
  return d->id();
}

Result<std::vector<Job>> SqliteSpool::due(Time now, std::size_t limit,
                                          const std::vector<std::string>& busy) {
  std::vector<Job> jobs;
  if (limit == 0) return jobs;
  const std::unordered_set<std::string> skip(busy.begin(), busy.end());

  std::lock_guard lock(mutex_);
  auto stmt = statement(
      "SELECT r.message_id, r.domain, r.idx, r.address, r.attempts, m.mail_from, m.received_at, "
      "m.tls_report, m.body_8bitmime, m.smtputf8, r.delay_warned, m.received_ms FROM recipients r "
      "JOIN messages m ON m.id = r.message_id "
      "WHERE r.state = 'pending' AND r.held = 0 AND r.next_attempt_at <= ?1 "
      "ORDER BY m.received_at, m.id, r.domain, r.idx");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, now);
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("due");
    std::string message_id = q.text(0);
    if (skip.contains(message_id)) continue;
    std::string domain = q.text(1);
    if (jobs.empty() || jobs.back().message_id != message_id || jobs.back().domain != domain) {
      if (jobs.size() == limit) break;
      Job job;
      job.message_id = std::move(message_id);
      job.domain = std::move(domain);
      job.mail_from = q.text(5);
      job.received_at = q.int64(6);
      job.tls_report = q.int64(7) != 0;
      job.body_8bitmime = q.int64(8) != 0;
      job.smtputf8 = q.int64(9) != 0;
      job.received_ms = q.int64(11);
      jobs.push_back(std::move(job));
    }
    Job& job = jobs.back();
    job.recipient_indexes.push_back(static_cast<std::size_t>(q.int64(2)));
    job.recipients.push_back(q.text(3));
    job.delay_warned.push_back(q.int64(10) != 0);
    job.attempts = std::max(job.attempts, static_cast<int>(q.int64(4)));
  }
  return jobs;
}

Result<std::optional<Time>> SqliteSpool::next_due() {
  std::lock_guard lock(mutex_);
  auto stmt =
      statement("SELECT MIN(next_attempt_at) FROM recipients WHERE state = 'pending' AND held = 0");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  if (q.step() != SQLITE_ROW) return db_error("next_due");
  if (q.is_null(0)) return std::optional<Time>();
  return std::optional<Time>(q.int64(0));
}

Result<std::string> SqliteSpool::data(const std::string& message_id) {
  auto r = reader(message_id);
  if (!r) return tl::unexpected(r.error());
  std::string out;
  out.reserve((*r)->size());
  for (;;) {
    auto n = (*r)->read(out, 1 << 20);
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) return out;
  }
}

Result<bool> SqliteSpool::exists(const std::string& message_id) {
  auto stmt = statement("SELECT 1 FROM messages WHERE id = ?1");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, message_id);
  const int rc = q.step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_error("look up message");
}

Result<bool> SqliteSpool::record(const std::string& message_id,
                                 const std::vector<RecipientUpdate>& updates, Time now) {
  bool finished = false;
  GroupWrite write;
  write.work = [this, &message_id, &updates, now, &finished]() -> Result<void> {
    {
      auto found = exists(message_id);
      if (!found) return tl::unexpected(found.error());
      if (!*found) return usage_error("record: no message " + message_id);
    }
    // A delivered or bounced recipient keeps when it became so in
    // next_attempt_at (never 0) and is no longer held.
    auto update = statement(
        "UPDATE recipients SET state = ?3, next_attempt_at = ?4, last_dsn = ?5, "
        "last_diagnostic = ?6, last_outcome = ?7, attempts = attempts + 1, "
        "delay_warned = MAX(delay_warned, ?8), held = CASE WHEN ?3 = 'pending' THEN held ELSE 0 "
        "END WHERE message_id = ?1 AND idx = ?2");
    if (!update) return tl::unexpected(update.error());
    for (const RecipientUpdate& u : updates) {
      Query q(*update);
      q.bind(1, message_id)
          .bind(2, static_cast<std::int64_t>(u.index))
          .bind(3, state_text(u.state))
          .bind(4, u.state == RecipientState::pending ? u.next_attempt_at : std::max<Time>(now, 1))
          .bind(5, u.dsn)
          .bind(6, u.diagnostic)
          .bind(7, u.outcome)
          .bind(8, static_cast<std::int64_t>(u.delay_warned ? 1 : 0));
      if (q.step() != SQLITE_DONE) return db_error("record");
      if (sqlite3_changes(db_.get()) == 0) {
        return usage_error("record: message " + message_id + " has no recipient " +
                           std::to_string(u.index));
      }
    }
    {
      auto stmt = statement(
          "SELECT NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ?1 AND +state = "
          "'pending')");
      if (!stmt) return tl::unexpected(stmt.error());
      Query q(*stmt);
      q.bind(1, message_id);
      if (q.step() != SQLITE_ROW) return db_error("record");
      finished = q.int64(0) != 0;
    }
    return {};
  };
  if (auto r = in_group(write); !r) return tl::unexpected(r.error());
  return finished;
}

Result<RecipientStatus> SqliteSpool::read_recipient(const Query& q, int c) {
  RecipientStatus r;
  r.address = q.text(c);
  r.domain = q.text(c + 1);
  const std::string state = q.text(c + 2);
  if (!parse_state(state, r.state)) {
    return fail("spool " + path_ + ": unknown recipient state \"" + state + "\"");
  }
  r.attempts = static_cast<int>(q.int64(c + 3));
  r.next_attempt_at = q.int64(c + 4);
  r.last_dsn = q.text(c + 5);
  r.last_diagnostic = q.text(c + 6);
  r.last_outcome = q.text(c + 7);
  r.held = q.int64(c + 8) != 0;
  return r;
}

// The columns read_recipient() reads, in its order.
#define DANEMTA_RECIPIENT_COLUMNS                                             \
  "r.address, r.domain, r.state, r.attempts, r.next_attempt_at, r.last_dsn, " \
  "r.last_diagnostic, r.last_outcome, r.held"
// The columns read_message() reads, in its order.
#define DANEMTA_MESSAGE_COLUMNS \
  "m.id, m.mail_from, m.received_at, m.received_from, m.size, m.received_ms"

MessageInfo read_message(const Query& q) {
  MessageInfo m;
  m.id = q.text(0);
  m.mail_from = q.text(1);
  m.received_at = q.int64(2);
  m.received_from = q.text(3);
  m.size = static_cast<std::size_t>(q.int64(4));
  m.received_ms = q.int64(5);
  return m;
}

// A finished message finished when its last recipient did (see kSchemaV6).
void set_finished_at(MessageInfo& m) {
  m.finished_at = 0;
  if (!m.finished()) return;
  for (const RecipientStatus& r : m.recipients)
    m.finished_at = std::max(m.finished_at, r.next_attempt_at);
}

Result<std::vector<RecipientStatus>> SqliteSpool::recipients_of(const std::string& message_id) {
  auto stmt = statement("SELECT " DANEMTA_RECIPIENT_COLUMNS
                        " FROM recipients r WHERE r.message_id = ?1 ORDER BY r.idx");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  q.bind(1, message_id);
  std::vector<RecipientStatus> out;
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("read recipients");
    auto r = read_recipient(q, 0);
    if (!r) return tl::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

Result<std::optional<MessageInfo>> SqliteSpool::info(const std::string& message_id) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (auto r = tx.begin(false); !r) return tl::unexpected(r.error());
  MessageInfo m;
  {
    auto stmt = statement("SELECT " DANEMTA_MESSAGE_COLUMNS
                          " FROM messages m"
                          " WHERE m.id = ?1");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    q.bind(1, message_id);
    const int rc = q.step();
    if (rc == SQLITE_DONE) return std::optional<MessageInfo>();
    if (rc != SQLITE_ROW) return db_error("info");
    m = read_message(q);
  }
  auto recipients = recipients_of(message_id);
  if (!recipients) return tl::unexpected(recipients.error());
  m.recipients = std::move(*recipients);
  set_finished_at(m);
  if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
  return std::optional<MessageInfo>(std::move(m));
}

// One pass over messages and their recipients, in order. Unfinished ones
// are found from their pending recipients (the recipients_due index), so
// finished messages cost nothing however many there are.
Result<std::vector<MessageInfo>> SqliteSpool::list(bool finished_too) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (auto r = tx.begin(false); !r) return tl::unexpected(r.error());
  std::vector<MessageInfo> out;
  auto stmt = finished_too
                  ? statement("SELECT " DANEMTA_MESSAGE_COLUMNS ", " DANEMTA_RECIPIENT_COLUMNS
                              " FROM messages m"
                              " JOIN recipients r ON r.message_id = m.id "
                              "ORDER BY m.received_at, m.id, r.idx")
                  : statement("SELECT " DANEMTA_MESSAGE_COLUMNS ", " DANEMTA_RECIPIENT_COLUMNS
                              " FROM messages m"
                              " JOIN recipients r ON r.message_id = m.id WHERE m.id IN "
                              "(SELECT message_id FROM recipients WHERE state = 'pending') "
                              "ORDER BY m.received_at, m.id, r.idx");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("list");
    if (out.empty() || out.back().id != q.text(0)) out.push_back(read_message(q));
    auto r = read_recipient(q, 6);
    if (!r) return tl::unexpected(r.error());
    out.back().recipients.push_back(std::move(*r));
  }
  if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
  for (MessageInfo& m : out) set_finished_at(m);
  return out;
}

Result<Counts> SqliteSpool::counts() {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (auto r = tx.begin(false); !r) return tl::unexpected(r.error());
  Counts c;
  auto stmt = statement(
      "SELECT (SELECT COUNT(DISTINCT message_id) FROM recipients WHERE state = 'pending'), "
      "(SELECT COUNT(*) FROM messages), "
      "(SELECT COUNT(DISTINCT message_id) FROM recipients WHERE state = 'pending' AND held = 1 "
      "AND message_id NOT IN (SELECT message_id FROM recipients WHERE state = 'pending' AND "
      "held = 0))");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  if (q.step() != SQLITE_ROW) return db_error("count messages");
  c.unfinished = static_cast<std::size_t>(q.int64(0));
  c.finished = static_cast<std::size_t>(q.int64(1)) - c.unfinished;
  c.held = static_cast<std::size_t>(q.int64(2));
  if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
  return c;
}

Result<std::vector<SqliteSpool::Selected>> SqliteSpool::select_pending(
    const Selector& selector, std::vector<std::string>& missing, std::vector<std::string>* kept) {
  std::vector<Selected> out;
  // By id: every pending recipient of the message.
  const std::set<std::string> ids(selector.ids.begin(), selector.ids.end());
  {
    auto stmt = statement(
        "SELECT idx, held, next_attempt_at FROM recipients "
        "WHERE message_id = ?1 AND +state = 'pending' ORDER BY idx");
    if (!stmt) return tl::unexpected(stmt.error());
    for (const std::string& id : ids) {
      auto found = exists(id);
      if (!found) return tl::unexpected(found.error());
      if (!*found) {
        missing.push_back(id);
        continue;
      }
      Query q(*stmt);
      q.bind(1, id);
      for (;;) {
        const int rc = q.step();
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return db_error("select recipients");
        out.push_back({id, q.int64(0), q.int64(1) != 0, q.int64(2)});
      }
    }
  }
  if (!selector.all && selector.domains.empty() && selector.addresses.empty()) return out;
  // By domain or address: every pending recipient (the queue's live part) is
  // matched here, so that the comparison is exactly Selector::matches. A
  // message with pending recipients both selected and not is `kept` when
  // the caller asks for that.
  Selector rest = selector;
  rest.ids.clear();
  auto stmt = statement(
      "SELECT message_id, idx, held, next_attempt_at, address, domain FROM recipients "
      "WHERE state = 'pending' ORDER BY message_id, idx");
  if (!stmt) return tl::unexpected(stmt.error());
  Query q(*stmt);
  std::vector<Selected> matched;
  std::set<std::string> has_other;  // messages with a pending recipient not selected
  for (;;) {
    const int rc = q.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return db_error("select recipients");
    std::string id = q.text(0);
    if (ids.contains(id)) continue;  // taken whole above
    if (rest.matches(id, q.text(4), q.text(5)))
      matched.push_back({std::move(id), q.int64(1), q.int64(2) != 0, q.int64(3)});
    else
      has_other.insert(std::move(id));
  }
  for (Selected& s : matched) {
    if (kept != nullptr && has_other.contains(s.message_id)) {
      if (kept->empty() || kept->back() != s.message_id) kept->push_back(s.message_id);
      continue;
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const Selected& a, const Selected& b) {
    return std::tie(a.message_id, a.idx) < std::tie(b.message_id, b.idx);
  });
  return out;
}

Result<Changes> SqliteSpool::change(QueueAction action, const Selector& selector, Time now) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (auto r = tx.begin(true); !r) return tl::unexpected(r.error());
  Changes changes;
  auto selected = select_pending(selector, changes.missing, nullptr);
  if (!selected) return tl::unexpected(selected.error());
  auto update = statement(
      "UPDATE recipients SET held = ?3, next_attempt_at = ?4 WHERE message_id = ?1 AND idx = ?2");
  if (!update) return tl::unexpected(update.error());
  for (const Selected& s : *selected) {
    bool held = s.held;
    Time next = s.next_attempt_at;
    switch (action) {
      case QueueAction::hold:
        held = true;
        break;
      case QueueAction::release:
        if (s.held) next = now;
        held = false;
        break;
      case QueueAction::requeue:
        if (!s.held && next > now) next = now;
        break;
    }
    if (held == s.held && next == s.next_attempt_at) continue;
    Query q(*update);
    q.bind(1, s.message_id)
        .bind(2, s.idx)
        .bind(3, static_cast<std::int64_t>(held ? 1 : 0))
        .bind(4, next);
    if (q.step() != SQLITE_DONE) return db_error(to_string(action));
    if (changes.messages.empty() || changes.messages.back().first != s.message_id)
      changes.messages.emplace_back(s.message_id, 0);
    ++changes.messages.back().second;
  }
  if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
  return changes;
}

Result<bool> SqliteSpool::remove(const std::string& message_id) {
  Selector one;
  one.ids = {message_id};
  auto removal = remove(one);
  if (!removal) return tl::unexpected(removal.error());
  return !removal->removed.empty();
}

Result<Removal> SqliteSpool::remove(const Selector& selector) {
  Removal removal;
  std::vector<std::string> files;
  {
    std::lock_guard lock(mutex_);
    Transaction tx(*this);
    if (auto r = tx.begin(true); !r) return tl::unexpected(r.error());
    std::set<std::string> doomed;
    if (selector.all) {
      auto stmt = statement("SELECT id FROM messages");
      if (!stmt) return tl::unexpected(stmt.error());
      Query q(*stmt);
      for (;;) {
        const int rc = q.step();
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return db_error("remove");
        doomed.insert(q.text(0));
      }
      for (const std::string& id : selector.ids)
        if (!doomed.contains(id)) removal.missing.push_back(id);
    } else {
      // Selected by id: the whole message, whatever its state.
      for (const std::string& id :
           std::set<std::string>(selector.ids.begin(), selector.ids.end())) {
        auto found = exists(id);
        if (!found) return tl::unexpected(found.error());
        if (*found)
          doomed.insert(id);
        else
          removal.missing.push_back(id);
      }
      if (!selector.domains.empty() || !selector.addresses.empty()) {
        Selector rest = selector;
        rest.ids.clear();
        std::vector<std::string> ignored;
        auto selected = select_pending(rest, ignored, &removal.kept);
        if (!selected) return tl::unexpected(selected.error());
        for (const Selected& s : *selected) doomed.insert(s.message_id);
      }
    }
    auto erase = statement("DELETE FROM messages WHERE id = ?1");
    if (!erase) return tl::unexpected(erase.error());
    for (const std::string& id : doomed) {
      Query q(*erase);
      q.bind(1, id);
      if (q.step() != SQLITE_DONE) return db_error("remove");
      removal.removed.push_back(id);
    }
    files = removal.removed;
    if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
  }
  // Files go only once their rows are gone: a crash in between leaves an
  // orphan that the next open removes, never a row without its text.
  remove_body_files(files);
  return removal;
}

// Finished messages are found through recipients_due: recipients
// delivered or bounced at or before `finished_by` (never held), whose
// message has no recipient pending and none finished later.
Result<std::size_t> SqliteSpool::purge_finished(Time finished_by, std::size_t limit) {
  std::size_t purged = 0;
  for (;;) {
    const std::size_t batch = std::min(limit - purged, kPurgeBatch);
    if (batch == 0) break;
    std::vector<std::string> removed;
    {
      std::lock_guard lock(mutex_);
      Transaction tx(*this);
      if (auto r = tx.begin(true); !r) return tl::unexpected(r.error());
      {
        auto stmt = statement(
            "SELECT DISTINCT r.message_id FROM recipients r WHERE r.state IN ('delivered', "
            "'bounced') AND r.held = 0 AND r.next_attempt_at <= ?1 AND NOT EXISTS (SELECT 1 FROM "
            "recipients o WHERE o.message_id = r.message_id AND (+o.state = 'pending' OR "
            "+o.next_attempt_at > ?1)) LIMIT ?2");
        if (!stmt) return tl::unexpected(stmt.error());
        Query q(*stmt);
        q.bind(1, finished_by).bind(2, static_cast<std::int64_t>(batch));
        for (;;) {
          const int rc = q.step();
          if (rc == SQLITE_DONE) break;
          if (rc != SQLITE_ROW) return db_error("purge finished messages");
          removed.push_back(q.text(0));
        }
      }
      auto erase = statement("DELETE FROM messages WHERE id = ?1");
      if (!erase) return tl::unexpected(erase.error());
      for (const std::string& id : removed) {
        Query q(*erase);
        q.bind(1, id);
        if (q.step() != SQLITE_DONE) return db_error("purge finished messages");
      }
      if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
    }
    // Files go only once their rows are gone (see remove()).
    remove_body_files(removed);
    purged += removed.size();
    if (removed.size() < batch) break;
  }
  return purged;
}

}  // namespace

Result<std::unique_ptr<Spool>> open_sqlite_spool(const std::string& path, std::size_t inline_max) {
  auto spool = std::make_unique<SqliteSpool>(path, inline_max);
  if (auto r = spool->open(); !r) return tl::unexpected(r.error());
  return std::unique_ptr<Spool>(std::move(spool));
}

Result<QueueCounts> SqliteSpool::counts(Time now, std::size_t top) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (auto r = tx.begin(false); !r) return tl::unexpected(r.error());
  QueueCounts out;
  {
    auto stmt = statement(
        "SELECT state, state = 'pending' AND next_attempt_at > ?1, COUNT(*) FROM recipients "
        "GROUP BY 1, 2");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    q.bind(1, now);
    for (;;) {
      const int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return db_error("counts");
      const std::string state = q.text(0);
      const bool later = q.int64(1) != 0;
      const auto n = static_cast<std::size_t>(q.int64(2));
      if (state == "delivered")
        out.delivered += n;
      else if (state == "bounced")
        out.bounced += n;
      else
        (later ? out.deferred : out.due) += n;
    }
  }
  {
    auto stmt = statement(
        "SELECT COUNT(*), MIN(received_at) FROM messages WHERE EXISTS "
        "(SELECT 1 FROM recipients r WHERE r.message_id = messages.id AND r.state = 'pending')");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    if (q.step() != SQLITE_ROW) return db_error("counts");
    out.messages = static_cast<std::size_t>(q.int64(0));
    if (!q.is_null(1)) out.oldest_pending = q.int64(1);
  }
  {
    auto stmt = statement(
        "SELECT domain, COUNT(*) FROM recipients WHERE state = 'pending' GROUP BY domain "
        "ORDER BY 2 DESC, 1");
    if (!stmt) return tl::unexpected(stmt.error());
    Query q(*stmt);
    for (;;) {
      const int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return db_error("counts");
      ++out.destinations;
      if (out.top_destinations.size() < top)
        out.top_destinations.emplace_back(q.text(0), static_cast<std::size_t>(q.int64(1)));
    }
  }
  if (auto r = tx.commit(); !r) return tl::unexpected(r.error());
  return out;
}

}  // namespace danemta::queue
