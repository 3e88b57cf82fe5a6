// queue::Spool on a real SQLite file (a fresh directory per test) and the
// retry schedule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "queue/spool.hpp"

namespace danemta::queue {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path() / "danemta-queue-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "spool.db").string();
    reopen();
  }
  void TearDown() override {
    spool_.reset();
    std::filesystem::remove_all(dir_);
  }

  void reopen() {
    spool_.reset();
    auto s = open_sqlite_spool(path_);
    ASSERT_TRUE(s) << s.error().message;
    spool_ = std::move(*s);
  }

  std::string enqueue(std::vector<std::string> recipients, Time received_at = 1000,
                      std::string data = "Subject: t\r\n\r\nbody\r\n") {
    NewMessage m;
    m.mail_from = "sender@example.net";
    m.recipients = std::move(recipients);
    m.data = std::move(data);
    m.received_at = received_at;
    m.received_from = "[127.0.0.1]";
    auto id = spool_->enqueue(m);
    EXPECT_TRUE(id) << id.error().message;
    return id ? *id : std::string();
  }

  MessageInfo info(const std::string& id) {
    auto i = spool_->info(id);
    EXPECT_TRUE(i) << i.error().message;
    EXPECT_TRUE(i && i->has_value()) << id;
    return i && i->has_value() ? **i : MessageInfo{};
  }

  std::vector<Job> due(Time now, std::size_t limit = 100, std::vector<std::string> busy = {}) {
    auto jobs = spool_->due(now, limit, busy);
    EXPECT_TRUE(jobs) << jobs.error().message;
    return jobs ? *jobs : std::vector<Job>{};
  }

  void record(const std::string& id, std::vector<RecipientUpdate> updates) {
    auto r = spool_->record(id, updates);
    EXPECT_TRUE(r) << r.error().message;
  }

  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<Spool> spool_;
};

RecipientUpdate deferred(std::size_t index, Time next) {
  return {index, RecipientState::pending, next, "4.7.323", "TLSA lookup failed", "tlsa-bogus"};
}
RecipientUpdate delivered(std::size_t index) {
  return {index, RecipientState::delivered, 0, "2.0.0", "250 2.0.0 Ok: queued", ""};
}
RecipientUpdate bounced(std::size_t index) {
  return {index, RecipientState::bounced, 0, "5.1.1", "550 5.1.1 no such user", ""};
}

std::vector<std::string> message_ids(const std::vector<Job>& jobs) {
  std::vector<std::string> out;
  for (const Job& j : jobs) out.push_back(j.message_id);
  return out;
}

TEST_F(QueueTest, EnqueueStoresMessageAndRecipients) {
  std::string data = "Subject: x\r\n\r\n";
  data.push_back('\0');
  data += "binary\xff\r\n";
  const std::string id =
      enqueue({"a@Example.ORG", "b@example.org", "c\"@\"x@Other.Example."}, 1234, data);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(c) != 0; })) << id;

  MessageInfo m = info(id);
  EXPECT_EQ(m.id, id);
  EXPECT_EQ(m.mail_from, "sender@example.net");
  EXPECT_EQ(m.received_at, 1234);
  EXPECT_EQ(m.received_from, "[127.0.0.1]");
  EXPECT_EQ(m.size, data.size());
  EXPECT_FALSE(m.finished());
  ASSERT_EQ(m.recipients.size(), 3u);
  EXPECT_EQ(m.recipients[0].address, "a@Example.ORG");
  EXPECT_EQ(m.recipients[0].domain, "example.org");
  EXPECT_EQ(m.recipients[2].domain, "other.example");
  for (const RecipientStatus& r : m.recipients) {
    EXPECT_EQ(r.state, RecipientState::pending);
    EXPECT_EQ(r.attempts, 0);
    EXPECT_EQ(r.next_attempt_at, 1234);
    EXPECT_EQ(r.last_dsn, "");
  }

  auto body = spool_->data(id);
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ(*body, data);

  auto all = spool_->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].id, id);
  EXPECT_EQ((*all)[0].recipients.size(), 3u);
}

TEST_F(QueueTest, EmptyBodyAndNullReversePath) {
  NewMessage m;
  m.recipients = {"postmaster@example.org"};
  auto id = spool_->enqueue(m);
  ASSERT_TRUE(id) << id.error().message;
  auto body = spool_->data(*id);
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ(*body, "");
  EXPECT_EQ(info(*id).mail_from, "");
}

TEST_F(QueueTest, IdsAreUniqueAndSortByTime) {
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(enqueue({"a@example.org"}));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  for (std::size_t i = 1; i < ids.size(); ++i) {
    EXPECT_LE(ids[i - 1].substr(0, 13), ids[i].substr(0, 13));
  }
}

TEST_F(QueueTest, EnqueueRejectsBadRecipientsPermanently) {
  NewMessage m;
  m.data = "x";
  auto none = spool_->enqueue(m);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().severity, Severity::permanent);

  m.recipients = {"ok@example.org", "no-at-sign"};
  auto no_at = spool_->enqueue(m);
  ASSERT_FALSE(no_at);
  EXPECT_EQ(no_at.error().severity, Severity::permanent);
  EXPECT_THAT(no_at.error().message, HasSubstr("no-at-sign"));

  m.recipients = {"empty-domain@"};
  EXPECT_FALSE(spool_->enqueue(m));

  auto all = spool_->list();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

TEST_F(QueueTest, DueGroupsByMessageAndDomainOldestFirst) {
  const std::string newer = enqueue({"x@b.example", "y@a.example", "z@B.example"}, 2000);
  const std::string older = enqueue({"p@c.example"}, 1000);

  std::vector<Job> jobs = due(5000);
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].message_id, older);
  EXPECT_EQ(jobs[0].domain, "c.example");
  EXPECT_EQ(jobs[0].received_at, 1000);
  EXPECT_EQ(jobs[0].mail_from, "sender@example.net");

  EXPECT_EQ(jobs[1].message_id, newer);
  EXPECT_EQ(jobs[1].domain, "a.example");
  EXPECT_THAT(jobs[1].recipient_indexes, ElementsAre(1u));
  EXPECT_THAT(jobs[1].recipients, ElementsAre("y@a.example"));

  EXPECT_EQ(jobs[2].message_id, newer);
  EXPECT_EQ(jobs[2].domain, "b.example");
  EXPECT_THAT(jobs[2].recipient_indexes, ElementsAre(0u, 2u));
  EXPECT_THAT(jobs[2].recipients, ElementsAre("x@b.example", "z@B.example"));
  EXPECT_EQ(jobs[2].attempts, 0);
}

TEST_F(QueueTest, DueHonoursTimeLimitAndBusy) {
  const std::string a = enqueue({"a@one.example", "a@two.example"}, 100);
  const std::string b = enqueue({"b@one.example"}, 200);
  const std::string c = enqueue({"c@one.example"}, 300);

  EXPECT_TRUE(due(99).empty());
  EXPECT_THAT(message_ids(due(200)), ElementsAre(a, a, b));
  EXPECT_THAT(message_ids(due(1000, 2)), ElementsAre(a, a));
  EXPECT_THAT(message_ids(due(1000, 1)), ElementsAre(a));
  EXPECT_TRUE(due(1000, 0).empty());
  EXPECT_THAT(message_ids(due(1000, 2, {a})), ElementsAre(b, c));
  EXPECT_THAT(message_ids(due(1000, 10, {a, c})), ElementsAre(b));

  // A deferred recipient is not due before its next attempt.
  record(a, {deferred(0, 5000), deferred(1, 4000)});
  EXPECT_THAT(message_ids(due(1000)), ElementsAre(b, c));
  std::vector<Job> later = due(4000);
  ASSERT_EQ(later.size(), 3u);
  EXPECT_EQ(later[0].message_id, a);
  EXPECT_EQ(later[0].domain, "two.example");
  EXPECT_EQ(later[0].attempts, 1);
  EXPECT_EQ(due(5000).size(), 4u);

  auto next = spool_->next_due();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, std::optional<Time>(200));
}

TEST_F(QueueTest, RecordDeliveredDeferredBouncedAndCountsAttempts) {
  const std::string id = enqueue({"a@example.org", "b@example.org", "c@example.org"});

  record(id, {deferred(0, 2000), deferred(1, 2000), deferred(2, 2000)});
  record(id, {delivered(0), deferred(1, 3000), bounced(2)});

  MessageInfo m = info(id);
  ASSERT_EQ(m.recipients.size(), 3u);
  EXPECT_EQ(m.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(m.recipients[0].attempts, 2);
  EXPECT_EQ(m.recipients[0].last_dsn, "2.0.0");
  EXPECT_EQ(m.recipients[0].last_diagnostic, "250 2.0.0 Ok: queued");
  EXPECT_EQ(m.recipients[1].state, RecipientState::pending);
  EXPECT_EQ(m.recipients[1].attempts, 2);
  EXPECT_EQ(m.recipients[1].next_attempt_at, 3000);
  EXPECT_EQ(m.recipients[1].last_dsn, "4.7.323");
  EXPECT_EQ(m.recipients[1].last_outcome, "tlsa-bogus");
  EXPECT_EQ(m.recipients[2].state, RecipientState::bounced);
  EXPECT_EQ(m.recipients[2].last_dsn, "5.1.1");
  EXPECT_FALSE(m.finished());

  std::vector<Job> jobs = due(3000);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_THAT(jobs[0].recipient_indexes, ElementsAre(1u));
  EXPECT_EQ(jobs[0].attempts, 2);

  record(id, {delivered(1)});
  m = info(id);
  EXPECT_EQ(m.recipients[1].attempts, 3);
  EXPECT_TRUE(m.finished());
  EXPECT_TRUE(due(1'000'000).empty());
  auto next = spool_->next_due();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, std::nullopt);
}

TEST_F(QueueTest, RecordRejectsUnknownMessageOrIndexAndChangesNothing) {
  const std::string id = enqueue({"a@example.org", "b@example.org"});

  auto unknown = spool_->record("NOSUCHID", {delivered(0)});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().severity, Severity::permanent);

  auto bad_index = spool_->record(id, {delivered(0), delivered(7)});
  ASSERT_FALSE(bad_index);
  EXPECT_EQ(bad_index.error().severity, Severity::permanent);
  EXPECT_THAT(bad_index.error().message, HasSubstr("7"));

  MessageInfo m = info(id);
  EXPECT_EQ(m.recipients[0].state, RecipientState::pending);
  EXPECT_EQ(m.recipients[0].attempts, 0);

  auto missing = spool_->data("NOSUCHID");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().severity, Severity::permanent);
  auto no_info = spool_->info("NOSUCHID");
  ASSERT_TRUE(no_info);
  EXPECT_FALSE(no_info->has_value());
}

TEST_F(QueueTest, TwoDomainsOneDeliveredOneDeferred) {
  const std::string id = enqueue({"a@one.example", "b@two.example", "c@one.example"}, 100);
  std::vector<Job> jobs = due(100);
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_EQ(jobs[0].domain, "one.example");
  ASSERT_EQ(jobs[1].domain, "two.example");

  record(id, {delivered(0), delivered(2)});
  record(id, {deferred(1, 400)});

  EXPECT_TRUE(due(399).empty());
  jobs = due(400);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].domain, "two.example");
  EXPECT_THAT(jobs[0].recipients, ElementsAre("b@two.example"));
  EXPECT_EQ(jobs[0].attempts, 1);
  EXPECT_FALSE(info(id).finished());

  auto purged = spool_->purge_finished();
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 0u);
}

TEST_F(QueueTest, FlushMakesPendingRecipientsDueNow) {
  const std::string a = enqueue({"a@one.example", "a@two.example", "a@three.example"}, 100);
  const std::string b = enqueue({"b@one.example"}, 100);
  record(a, {deferred(0, 9000), deferred(1, 9000), delivered(2)});
  record(b, {deferred(0, 9000)});
  EXPECT_TRUE(due(500).empty());

  auto one = spool_->flush(a, 500);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(*one, 2u);
  EXPECT_THAT(message_ids(due(500)), ElementsAre(a, a));
  EXPECT_EQ(info(a).recipients[2].state, RecipientState::delivered);

  auto again = spool_->flush(a, 500);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);

  auto all = spool_->flush("", 600);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, 1u);
  EXPECT_THAT(message_ids(due(600)), ElementsAre(a, a, b));

  auto none = spool_->flush("NOSUCHID", 600);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
}

TEST_F(QueueTest, RemoveDeletesMessageAndRecipients) {
  const std::string a = enqueue({"a@one.example", "b@two.example"});
  const std::string b = enqueue({"c@one.example"});
  auto removed = spool_->remove(a);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  auto gone = spool_->info(a);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  EXPECT_THAT(message_ids(due(10'000)), ElementsAre(b));
  EXPECT_FALSE(spool_->record(a, {delivered(0)}));

  auto again = spool_->remove(a);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_F(QueueTest, PurgeFinishedKeepsMessagesWithPendingRecipients) {
  const std::string done = enqueue({"a@one.example", "b@two.example"}, 100);
  const std::string half = enqueue({"c@one.example", "d@two.example"}, 200);
  const std::string fresh = enqueue({"e@one.example"}, 300);
  record(done, {delivered(0), bounced(1)});
  record(half, {delivered(0)});

  EXPECT_TRUE(info(done).finished());
  auto purged = spool_->purge_finished();
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_EQ(*purged, 1u);

  auto all = spool_->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, half);
  EXPECT_EQ((*all)[0].recipients.size(), 2u);
  EXPECT_EQ((*all)[1].id, fresh);
  EXPECT_FALSE(spool_->data(done));
}

TEST_F(QueueTest, EverythingSurvivesReopening) {
  const std::string a = enqueue({"a@one.example", "b@two.example"}, 100, "message a\r\n");
  const std::string b = enqueue({"c@three.example"}, 200, "message b\r\n");
  record(a, {delivered(0), deferred(1, 700)});
  reopen();

  auto all = spool_->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  MessageInfo m = info(a);
  ASSERT_EQ(m.recipients.size(), 2u);
  EXPECT_EQ(m.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(m.recipients[1].state, RecipientState::pending);
  EXPECT_EQ(m.recipients[1].next_attempt_at, 700);
  EXPECT_EQ(m.recipients[1].attempts, 1);
  EXPECT_EQ(m.recipients[1].last_outcome, "tlsa-bogus");
  EXPECT_EQ(*spool_->data(a), "message a\r\n");
  EXPECT_EQ(*spool_->data(b), "message b\r\n");
  EXPECT_THAT(message_ids(due(200)), ElementsAre(b));
  EXPECT_THAT(message_ids(due(700)), ElementsAre(a, b));

  // A second open of the same file sees the same queue (schema not recreated).
  auto second = open_sqlite_spool(path_);
  ASSERT_TRUE(second) << second.error().message;
  auto listed = (*second)->list();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 2u);
}

TEST_F(QueueTest, ConcurrentWritersFromThreadsAndASecondConnection) {
  auto other = open_sqlite_spool(path_);
  ASSERT_TRUE(other) << other.error().message;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> ids(4);
  for (std::size_t t = 0; t < ids.size(); ++t) {
    Spool* spool = t % 2 == 0 ? spool_.get() : other->get();
    std::vector<std::string>* out = &ids[t];
    threads.emplace_back([spool, out] {
      NewMessage m;
      m.recipients = {"a@example.org", "b@example.net"};
      m.data = "x\r\n";
      for (int i = 0; i < 20; ++i) {
        auto id = spool->enqueue(m);
        if (id) out->push_back(*id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> unique;
  for (const auto& v : ids) {
    EXPECT_EQ(v.size(), 20u);
    unique.insert(v.begin(), v.end());
  }
  EXPECT_EQ(unique.size(), 80u);
  auto all = spool_->list();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 80u);
}

TEST_F(QueueTest, MissingDirectoryIsAClearError) {
  const std::string path = (dir_ / "no-such-dir" / "spool.db").string();
  auto s = open_sqlite_spool(path);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message, HasSubstr(path));
  EXPECT_THAT(s.error().message, HasSubstr("unable to open"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "no-such-dir"));
}

TEST_F(QueueTest, DirectoryAsPathIsAClearError) {
  auto s = open_sqlite_spool(dir_.string());
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message, HasSubstr(dir_.string()));
}

TEST_F(QueueTest, FileThatIsNotADatabaseIsAClearError) {
  const std::filesystem::path path = dir_ / "not-a-db";
  {
    std::ofstream out(path);
    out << std::string(4096, 'x');
  }
  auto s = open_sqlite_spool(path.string());
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message, HasSubstr(path.string()));
  EXPECT_THAT(s.error().message, HasSubstr("not a database"));
}

TEST_F(QueueTest, NewerSchemaVersionIsRefused) {
  spool_.reset();
  // user_version is the big-endian 32-bit word at offset 60 of the database
  // header (https://www.sqlite.org/fileformat.html); closing the last
  // connection checkpointed the WAL into the file.
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file);
    file.seekp(60);
    const char version[4] = {0, 0, 0, 99};
    file.write(version, sizeof version);
  }
  auto s = open_sqlite_spool(path_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().severity, Severity::permanent);
  EXPECT_THAT(s.error().message, HasSubstr("99"));
}

TEST_F(QueueTest, MailParametersAreKept) {
  NewMessage m;
  m.mail_from = "sender@example.net";
  m.recipients = {"a@example.org"};
  m.data = "Subject: t\r\n\r\nbody\r\n";
  m.received_at = 1000;
  m.body_8bitmime = true;
  m.smtputf8 = true;
  auto id = spool_->enqueue(m);
  ASSERT_TRUE(id) << id.error().message;
  enqueue({"b@example.org"});
  reopen();
  std::vector<Job> jobs = due(5000);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_TRUE(jobs[0].body_8bitmime);
  EXPECT_TRUE(jobs[0].smtputf8);
  EXPECT_FALSE(jobs[1].body_8bitmime);
  EXPECT_FALSE(jobs[1].smtputf8);
}

TEST_F(QueueTest, SchemaTwoSpoolIsMigratedToFive) {
  const std::string id = enqueue({"a@example.org"});
  spool_.reset();
  // Back to the version 2 layout, as an older danemta left it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db,
                              "ALTER TABLE messages DROP COLUMN received_ms;"
                              "ALTER TABLE recipients DROP COLUMN delay_warned;"
                              "ALTER TABLE messages DROP COLUMN smtputf8;"
                              "ALTER TABLE messages DROP COLUMN body_8bitmime;"
                              "PRAGMA user_version = 2;",
                              nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  reopen();
  std::vector<Job> jobs = due(5000);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].message_id, id);
  EXPECT_FALSE(jobs[0].smtputf8);
  NewMessage m;
  m.mail_from = "sender@example.net";
  m.recipients = {"b@example.org"};
  m.data = "Subject: t\r\n\r\nbody\r\n";
  m.received_at = 1000;
  m.smtputf8 = true;
  ASSERT_TRUE(spool_->enqueue(m));
  jobs = due(5000);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_TRUE(jobs[0].smtputf8 || jobs[1].smtputf8);
}

TEST_F(QueueTest, ArrivalToTheMillisecondReachesTheJob) {
  NewMessage m;
  m.mail_from = "sender@example.net";
  m.recipients = {"r@example.org"};
  m.data = "Subject: t\r\n\r\nbody\r\n";
  m.received_at = 1795984651;
  m.received_ms = 1795984651123;
  auto id = spool_->enqueue(m);
  ASSERT_TRUE(id) << id.error().message;
  reopen();
  std::vector<Job> jobs = due(1795984651);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].received_at, 1795984651);
  EXPECT_EQ(jobs[0].received_ms, 1795984651123);
}

// A spool written by a danemta before schema version 3 (no arrival in
// milliseconds) opens, keeps its messages, and reports their arrival as
// unknown (0), so the log counts from the second.
TEST_F(QueueTest, VersionTwoSpoolIsMigrated) {
  spool_.reset();
  std::filesystem::remove(path_);
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, sqlite3_close);
    const char* v2 = R"sql(
CREATE TABLE messages (id TEXT PRIMARY KEY NOT NULL, mail_from TEXT NOT NULL, data BLOB NOT NULL,
  size INTEGER NOT NULL, received_at INTEGER NOT NULL, received_from TEXT NOT NULL,
  body_file INTEGER NOT NULL DEFAULT 0, tls_report INTEGER NOT NULL DEFAULT 0);
CREATE TABLE recipients (message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'bounced')),
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
  last_dsn TEXT NOT NULL DEFAULT '', last_diagnostic TEXT NOT NULL DEFAULT '',
  last_outcome TEXT NOT NULL DEFAULT '', PRIMARY KEY (message_id, idx)) WITHOUT ROWID;
CREATE INDEX recipients_due ON recipients(state, next_attempt_at);
CREATE INDEX messages_age ON messages(received_at, id);
INSERT INTO messages (id, mail_from, data, size, received_at, received_from)
  VALUES ('OLD1', 's@example.net', 'Subject: old', 12, 1000, '[127.0.0.1]');
INSERT INTO recipients (message_id, idx, address, domain, state, next_attempt_at)
  VALUES ('OLD1', 0, 'r@example.org', 'example.org', 'pending', 1000);
PRAGMA user_version = 2;
)sql";
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db.get(), v2, nullptr, nullptr, &error), SQLITE_OK) << error;
  }
  reopen();
  std::vector<Job> jobs = due(1000);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].message_id, "OLD1");
  EXPECT_EQ(jobs[0].received_at, 1000);
  EXPECT_EQ(jobs[0].received_ms, 0);
  // New messages keep their milliseconds next to the old one.
  NewMessage m;
  m.mail_from = "sender@example.net";
  m.recipients = {"r@example.org"};
  m.data = "Subject: new\r\n\r\n";
  m.received_at = 1001;
  m.received_ms = 1001250;
  ASSERT_TRUE(spool_->enqueue(m));
  jobs = due(1001);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[1].received_ms, 1001250);
}

TEST(RetryDelay, DoublesFromFiveMinutesToAnHour) {
  EXPECT_EQ(retry_delay(1, 0.5), 300);
  EXPECT_EQ(retry_delay(2, 0.5), 600);
  EXPECT_EQ(retry_delay(3, 0.5), 1200);
  EXPECT_EQ(retry_delay(4, 0.5), 2400);
  EXPECT_EQ(retry_delay(5, 0.5), 3600);
  EXPECT_EQ(retry_delay(6, 0.5), 3600);
  EXPECT_EQ(retry_delay(1000, 0.5), 3600);
  EXPECT_EQ(retry_delay(0, 0.5), 300);
  EXPECT_EQ(retry_delay(-3, 0.5), 300);
}

TEST(RetryDelay, JitterStaysWithinItsFraction) {
  EXPECT_EQ(retry_delay(1, 0.0), 270);
  EXPECT_EQ(retry_delay(1, 1.0), 330);
  EXPECT_EQ(retry_delay(5, 0.0), 3240);
  EXPECT_EQ(retry_delay(5, 1.0), 3960);
  EXPECT_EQ(retry_delay(5, 0.0, 300, 3600, 0.0), 3600);
  EXPECT_EQ(retry_delay(3, 0.25, 300, 3600, 0.5), 900);
  for (int attempts = 1; attempts <= 8; ++attempts) {
    for (double r = 0.0; r < 1.0; r += 0.05) {
      const Time base = retry_delay(attempts, 0.5);
      const Time d = retry_delay(attempts, r);
      EXPECT_GE(d, base - base / 10);
      EXPECT_LE(d, base + base / 10);
    }
  }
}

TEST(RetryDelay, ConfiguredBackoff) {
  EXPECT_EQ(retry_delay(1, 0.5, 10, 60), 10);
  EXPECT_EQ(retry_delay(3, 0.5, 10, 60), 40);
  EXPECT_EQ(retry_delay(9, 0.5, 10, 60), 60);
  EXPECT_EQ(retry_delay(1, 0.0, 1, 1), 1) << "a floor below the first delay never raises it";
}

TEST(RetryDelay, NeverBelowAMinute) {
  EXPECT_EQ(retry_delay(1, 0.0, 300, 3600, 1.0), 60);
  EXPECT_EQ(retry_delay(1, 0.0, 300, 3600, 5.0), 60);
  EXPECT_EQ(retry_delay(1, -1.0, 300, 3600, 1.0), 60);
  EXPECT_EQ(retry_delay(1, 2.0, 300, 3600, 1.0), 600);
}

TEST(RecipientState, Names) {
  EXPECT_EQ(to_string(RecipientState::pending), "pending");
  EXPECT_EQ(to_string(RecipientState::delivered), "delivered");
  EXPECT_EQ(to_string(RecipientState::bounced), "bounced");
}

// Texts over the inline limit go to body files as they are appended; reading
// them back gives the same bytes; deleting the message removes the file.
TEST_F(QueueTest, LargeTextsStreamToBodyFiles) {
  spool_.reset();
  auto opened = open_sqlite_spool(path_, 64);
  ASSERT_TRUE(opened) << opened.error().message;
  spool_ = std::move(*opened);
  const std::filesystem::path bodies = path_ + "-bodies";
  ASSERT_TRUE(std::filesystem::is_directory(bodies));
  EXPECT_EQ(std::filesystem::status(bodies).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);

  std::string big;
  for (int i = 0; i < 5000; ++i) big += "line " + std::to_string(i) + "\r\n";
  auto draft = spool_->draft();
  ASSERT_TRUE(draft) << draft.error().message;
  for (std::size_t at = 0; at < big.size(); at += 1000)
    ASSERT_TRUE((*draft)->append(std::string_view(big).substr(at, 1000)));
  EXPECT_EQ((*draft)->size(), big.size());
  NewMessage m;
  m.mail_from = "a@example.net";
  m.recipients = {"b@example.org"};
  auto id = spool_->enqueue(m, std::move(*draft));
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_TRUE(std::filesystem::exists(bodies / *id));
  EXPECT_EQ(info(*id).size, big.size());

  auto data = spool_->data(*id);
  ASSERT_TRUE(data) << data.error().message;
  EXPECT_EQ(*data, big);
  auto reader = spool_->reader(*id);
  ASSERT_TRUE(reader) << reader.error().message;
  std::string pieces;
  for (;;) {
    auto n = (*reader)->read(pieces, 777);
    ASSERT_TRUE(n);
    if (*n == 0) break;
  }
  EXPECT_EQ(pieces, big);

  const std::string small = enqueue({"c@example.org"}, 1000, "Subject: s\r\n\r\nx\r\n");
  EXPECT_FALSE(std::filesystem::exists(bodies / small)) << "small texts stay in the database";
  EXPECT_EQ(*spool_->data(small), "Subject: s\r\n\r\nx\r\n");

  ASSERT_TRUE(spool_->remove(*id));
  EXPECT_FALSE(std::filesystem::exists(bodies / *id));
}

TEST_F(QueueTest, DraftNotEnqueuedLeavesNoFileAndPurgeRemovesBodyFiles) {
  spool_.reset();
  auto opened = open_sqlite_spool(path_, 8);
  ASSERT_TRUE(opened);
  spool_ = std::move(*opened);
  const std::filesystem::path bodies = path_ + "-bodies";
  {
    auto draft = spool_->draft();
    ASSERT_TRUE(draft);
    ASSERT_TRUE((*draft)->append("more than eight bytes"));
    EXPECT_FALSE(std::filesystem::is_empty(bodies));
  }
  EXPECT_TRUE(std::filesystem::is_empty(bodies)) << "an abandoned draft is discarded";

  const std::string id = enqueue({"b@example.org"}, 1000, "Subject: long enough\r\n\r\nbody\r\n");
  EXPECT_TRUE(std::filesystem::exists(bodies / id));
  record(id, {{0, RecipientState::delivered, 0, "2.0.0", "250 ok", ""}});
  auto purged = spool_->purge_finished();
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 1u);
  EXPECT_TRUE(std::filesystem::is_empty(bodies));
}

TEST_F(QueueTest, DraftFromAnotherSpoolIsRefused) {
  class Other final : public Draft {
   public:
    Result<void> append(std::string_view) override { return {}; }
    std::size_t size() const override { return 0; }
  };
  NewMessage m;
  m.recipients = {"b@example.org"};
  auto id = spool_->enqueue(m, std::make_unique<Other>());
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().severity, Severity::permanent);
}

}  // namespace
}  // namespace danemta::queue
