// queue::Spool on a real SQLite file (a fresh directory per test) and the
// retry schedule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "queue/shape.hpp"
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

  // Records at `now` (when the message finishes, that is its finished_at);
  // returns whether the message is finished.
  bool record(const std::string& id, std::vector<RecipientUpdate> updates, Time now = 5000) {
    auto r = spool_->record(id, updates, now);
    EXPECT_TRUE(r) << r.error().message;
    return r && *r;
  }

  std::vector<MessageInfo> list(bool finished_too = true) {
    auto all = spool_->list(finished_too);
    EXPECT_TRUE(all) << all.error().message;
    return all ? *all : std::vector<MessageInfo>{};
  }

  Changes change(QueueAction action, Selector selector, Time now = 500) {
    auto c = spool_->change(action, selector, now);
    EXPECT_TRUE(c) << c.error().message;
    return c ? *c : Changes{};
  }

  std::size_t purge(Time finished_by = 1'000'000'000, std::size_t limit = SIZE_MAX) {
    auto n = spool_->purge_finished(finished_by, limit);
    EXPECT_TRUE(n) << n.error().message;
    return n ? *n : 0;
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

  auto all = spool_->list(true);
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

  auto all = spool_->list(true);
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

  auto unknown = spool_->record("NOSUCHID", {delivered(0)}, 5000);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().severity, Severity::permanent);

  auto bad_index = spool_->record(id, {delivered(0), delivered(7)}, 5000);
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
  EXPECT_EQ(info(id).finished_at, 0);

  EXPECT_EQ(purge(), 0u);
}

TEST_F(QueueTest, RequeueMakesPendingRecipientsDueNow) {
  const std::string a = enqueue({"a@one.example", "a@two.example", "a@three.example"}, 100);
  const std::string b = enqueue({"b@one.example"}, 100);
  record(a, {deferred(0, 9000), deferred(1, 9000), delivered(2)});
  record(b, {deferred(0, 9000)});
  EXPECT_TRUE(due(500).empty());

  Changes one = change(QueueAction::requeue, {.ids = {a}}, 500);
  ASSERT_EQ(one.messages.size(), 1u);
  EXPECT_EQ(one.messages[0], std::make_pair(a, std::size_t{2}));
  EXPECT_EQ(one.recipients(), 2u);
  EXPECT_THAT(message_ids(due(500)), ElementsAre(a, a));
  EXPECT_EQ(info(a).recipients[2].state, RecipientState::delivered);

  EXPECT_EQ(change(QueueAction::requeue, {.ids = {a}}, 500).recipients(), 0u)
      << "already due: unchanged";

  EXPECT_EQ(change(QueueAction::requeue, {.all = true}, 600).recipients(), 1u);
  EXPECT_THAT(message_ids(due(600)), ElementsAre(a, a, b));

  Changes none = change(QueueAction::requeue, {.ids = {"NOSUCHID"}}, 600);
  EXPECT_TRUE(none.messages.empty());
  EXPECT_THAT(none.missing, ElementsAre("NOSUCHID"));
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
  EXPECT_FALSE(spool_->record(a, {delivered(0)}, 5000));

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
  EXPECT_EQ(purge(), 1u);

  auto all = spool_->list(true);
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

  auto all = spool_->list(true);
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
  auto listed = (*second)->list(true);
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
  auto all = spool_->list(true);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 80u);
}

// Writes from many threads share commits (group commit); each keeps its own
// outcome: a failing write (unknown message, or a bad index after a good
// one) undoes only its own changes and the others in its group commit.
TEST_F(QueueTest, GroupCommitKeepsEachWritesOwnOutcome) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 40;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::vector<std::string>> problems(kThreads);
  Spool* spool = spool_.get();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([spool, ids = &ids[static_cast<std::size_t>(t)],
                          problems = &problems[static_cast<std::size_t>(t)]] {
      NewMessage m;
      m.recipients = {"a@example.org"};
      m.data = "x\r\n";
      m.received_at = 1000;
      for (int i = 0; i < kRounds; ++i) {
        auto id = spool->enqueue(m);
        if (!id) {
          problems->push_back("enqueue: " + id.error().message);
          continue;
        }
        ids->push_back(*id);
        // Recipient 0 delivered, then an index the message does not have:
        // all or nothing, so recipient 0 must stay pending.
        auto half = spool->record(*id, {delivered(0), delivered(5)}, 2000);
        if (half || half.error().severity != Severity::permanent)
          problems->push_back("a bad index was accepted or not permanent for " + *id);
        auto none = spool->record("NOSUCHMESSAGE" + std::to_string(i), {delivered(0)}, 2000);
        if (none) problems->push_back("an unknown message was recorded");
        auto done = spool->record(*id, {delivered(0)}, 2000);
        if (!done || !*done) problems->push_back("not finished: " + *id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> unique;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    EXPECT_THAT(problems[t], ::testing::IsEmpty());
    unique.insert(ids[t].begin(), ids[t].end());
  }
  ASSERT_EQ(unique.size(), static_cast<std::size_t>(kThreads * kRounds));
  reopen();  // what is on disk, not what a connection caches
  auto all = spool_->list(true);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), unique.size());
  for (const MessageInfo& mi : *all) {
    ASSERT_EQ(mi.recipients.size(), 1u);
    EXPECT_EQ(mi.recipients[0].state, RecipientState::delivered) << mi.id;
    EXPECT_EQ(mi.recipients[0].attempts, 1) << mi.id;  // the failed record changed nothing
  }
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

TEST_F(QueueTest, SchemaTwoSpoolIsMigratedToTheCurrentOne) {
  const std::string id = enqueue({"a@example.org"});
  spool_.reset();
  // Back to the version 2 layout, as an older danemta left it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db,
                              "DROP INDEX recipients_due;"
                              "CREATE INDEX recipients_due ON recipients(state, next_attempt_at);"
                              "ALTER TABLE recipients DROP COLUMN held;"
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

// A hold keeps recipients from delivery (due() and next_due() skip them)
// until released; requeue leaves them alone; an attempt already under way
// is recorded as usual and the hold stays.
TEST_F(QueueTest, HeldRecipientsAreNeverDueUntilReleased) {
  const std::string a = enqueue({"a@one.example", "a@two.example"}, 100);
  const std::string b = enqueue({"b@one.example"}, 200);
  Changes held = change(QueueAction::hold, {.ids = {a}}, 300);
  EXPECT_EQ(held.recipients(), 2u);
  EXPECT_THAT(message_ids(due(10'000)), ElementsAre(b));
  auto next = spool_->next_due();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, std::optional<Time>(200));
  MessageInfo m = info(a);
  EXPECT_TRUE(m.held());
  EXPECT_TRUE(m.held_in_part());
  EXPECT_TRUE(m.recipients[0].held);
  EXPECT_FALSE(info(b).held());
  EXPECT_EQ(change(QueueAction::hold, {.ids = {a}}, 300).recipients(), 0u) << "already held";

  // Requeue (flush) does not release.
  EXPECT_EQ(change(QueueAction::requeue, {.all = true}, 300).recipients(), 0u);
  EXPECT_THAT(message_ids(due(10'000)), ElementsAre(b));

  // The attempt that was under way when the hold came is recorded; the
  // deferred recipient stays held, the delivered one is done.
  EXPECT_FALSE(record(a, {delivered(0), deferred(1, 400)}));
  m = info(a);
  EXPECT_EQ(m.recipients[0].state, RecipientState::delivered);
  EXPECT_TRUE(m.recipients[1].held);
  EXPECT_TRUE(m.held());
  EXPECT_THAT(message_ids(due(10'000)), ElementsAre(b));

  // Release: off hold and due at once, whatever the backoff said.
  Changes released = change(QueueAction::release, {.ids = {a}}, 350);
  ASSERT_EQ(released.messages.size(), 1u);
  EXPECT_EQ(released.recipients(), 1u);
  EXPECT_THAT(message_ids(due(350)), ElementsAre(a, b));
  EXPECT_FALSE(info(a).held_in_part());
  EXPECT_EQ(change(QueueAction::release, {.all = true}, 350).recipients(), 0u);
}

// Selection by domain or address is exact: no suffix match, no substring;
// domains in any case, with or without a trailing dot; local parts as they are.
TEST_F(QueueTest, SelectorsMatchExactly) {
  const std::string a = enqueue({"user@example.org", "User@Example.ORG", "x@notexample.org",
                                 "y@mail.example.org", "z@example.org.uk"},
                                100);
  Changes by_domain = change(QueueAction::hold, {.domains = {"EXAMPLE.org."}}, 200);
  EXPECT_EQ(by_domain.recipients(), 2u);
  MessageInfo m = info(a);
  EXPECT_TRUE(m.recipients[0].held);
  EXPECT_TRUE(m.recipients[1].held);
  EXPECT_FALSE(m.recipients[2].held) << "notexample.org is another domain";
  EXPECT_FALSE(m.recipients[3].held) << "a subdomain is another domain";
  EXPECT_FALSE(m.recipients[4].held);
  EXPECT_FALSE(m.held());
  EXPECT_TRUE(m.held_in_part());

  Changes by_address = change(QueueAction::release, {.addresses = {"User@EXAMPLE.org"}}, 200);
  EXPECT_EQ(by_address.recipients(), 1u);
  m = info(a);
  EXPECT_TRUE(m.recipients[0].held) << "local parts compare exactly";
  EXPECT_FALSE(m.recipients[1].held);

  EXPECT_EQ(change(QueueAction::hold, {.domains = {"org"}}, 200).recipients(), 0u);
  EXPECT_EQ(change(QueueAction::hold, {.addresses = {"user@"}}, 200).recipients(), 0u);
  EXPECT_EQ(change(QueueAction::hold, {}, 200).recipients(), 0u) << "empty selects nothing";
}

TEST(Selector, SameRecipient) {
  EXPECT_TRUE(same_recipient("a@Example.ORG", "a@example.org"));
  EXPECT_TRUE(same_recipient("a@example.org.", "a@example.org"));
  EXPECT_FALSE(same_recipient("A@example.org", "a@example.org"));
  EXPECT_FALSE(same_recipient("a@example.org", "a@notexample.org"));
  EXPECT_FALSE(same_recipient("a@example.org", "ba@example.org"));
  EXPECT_TRUE(same_recipient("\"a@b\"@example.org", "\"a@b\"@example.org"));
  EXPECT_FALSE(same_recipient("a", "a"));
  Selector s{.domains = {"example.org"}};
  EXPECT_TRUE(s.matches("ID", "x@example.org", "example.org"));
  EXPECT_FALSE(s.matches("ID", "x@notexample.org", "notexample.org"));
  EXPECT_TRUE(Selector{.ids = {"ID"}}.matches("ID", "x@a.example", "a.example"));
  EXPECT_FALSE(Selector{}.matches("ID", "x@a.example", "a.example"));
}

// Delete by domain or address never loses mail for anyone else: a message
// goes only when all its pending recipients are selected; by id it goes
// whatever its state.
TEST_F(QueueTest, RemoveBySelectorKeepsMessagesWithOtherPendingRecipients) {
  const std::string only = enqueue({"a@bad.example", "b@BAD.example"}, 100);
  const std::string mixed = enqueue({"c@bad.example", "d@good.example"}, 110);
  const std::string rest_done = enqueue({"e@bad.example", "f@good.example"}, 120);
  const std::string finished = enqueue({"g@bad.example"}, 130);
  const std::string other = enqueue({"h@good.example"}, 140);
  record(rest_done, {delivered(1)});
  record(finished, {delivered(0)});

  auto removal = spool_->remove(Selector{.domains = {"bad.example"}});
  ASSERT_TRUE(removal) << removal.error().message;
  EXPECT_THAT(removal->removed, ElementsAre(only, rest_done));
  EXPECT_THAT(removal->kept, ElementsAre(mixed));
  EXPECT_TRUE(removal->missing.empty());
  EXPECT_FALSE(spool_->info(only)->has_value());
  EXPECT_TRUE(spool_->info(mixed)->has_value());
  EXPECT_TRUE(spool_->info(finished)->has_value()) << "nothing pending: not selected";

  removal = spool_->remove(Selector{.ids = {mixed, "NOSUCHID"}, .addresses = {"h@GOOD.example"}});
  ASSERT_TRUE(removal);
  EXPECT_THAT(removal->removed, ElementsAre(mixed, other));
  EXPECT_THAT(removal->missing, ElementsAre("NOSUCHID"));

  removal = spool_->remove(Selector{.all = true});
  ASSERT_TRUE(removal);
  EXPECT_THAT(removal->removed, ElementsAre(finished));
  EXPECT_TRUE(list().empty());
}

// finished_at is set by the record that finishes a message, and only then;
// the default listing leaves finished messages out.
TEST_F(QueueTest, FinishedMessagesCarryTheirTimeAndAreListedOnlyOnRequest) {
  const std::string a = enqueue({"a@one.example", "b@two.example"}, 100);
  const std::string b = enqueue({"c@one.example"}, 200);
  const std::string c = enqueue({"d@one.example"}, 300);
  EXPECT_FALSE(record(a, {delivered(0)}, 1000));
  EXPECT_EQ(info(a).finished_at, 0);
  EXPECT_TRUE(record(a, {bounced(1)}, 2000));
  EXPECT_EQ(info(a).finished_at, 2000);
  EXPECT_TRUE(record(b, {delivered(0)}, 3000));
  EXPECT_FALSE(record(c, {deferred(0, 9000)}, 3000));
  change(QueueAction::hold, {.ids = {c}});

  std::vector<MessageInfo> pending = list(false);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].id, c);
  EXPECT_EQ(pending[0].recipients.size(), 1u);
  std::vector<MessageInfo> all = list(true);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, a);
  EXPECT_EQ(all[0].recipients.size(), 2u);
  EXPECT_EQ(all[1].finished_at, 3000);
  auto counts = spool_->counts();
  ASSERT_TRUE(counts) << counts.error().message;
  EXPECT_EQ(counts->unfinished, 1u);
  EXPECT_EQ(counts->held, 1u);
  EXPECT_EQ(counts->finished, 2u);
}

// Retention: only messages finished at or before the cut-off go, oldest
// first, at most `limit` per call; pending ones never.
TEST_F(QueueTest, PurgeFinishedHonoursTheCutOffAndTheLimit) {
  std::vector<std::string> done;
  for (int i = 0; i < 5; ++i) {
    done.push_back(enqueue({"a@one.example"}, 100 + i));
    record(done.back(), {delivered(0)}, 1000 + 10 * (4 - i));  // the last finished first
  }
  const std::string pending = enqueue({"b@one.example", "c@two.example"}, 50);
  record(pending, {delivered(0)}, 900);

  EXPECT_EQ(purge(999), 0u);
  EXPECT_EQ(purge(1020, 2), 2u);
  EXPECT_FALSE(spool_->info(done[4])->has_value()) << "finished at 1000";
  EXPECT_FALSE(spool_->info(done[3])->has_value()) << "finished at 1010";
  EXPECT_TRUE(spool_->info(done[2])->has_value()) << "finished at 1020: over the limit";
  EXPECT_EQ(purge(1020), 1u);
  EXPECT_TRUE(spool_->info(done[1])->has_value()) << "finished at 1030: after the cut-off";
  EXPECT_EQ(purge(), 2u);
  ASSERT_EQ(list().size(), 1u);
  EXPECT_EQ(list()[0].id, pending);
}

TEST(Shape, BucketsByAgeAndDomainLikeQshape) {
  auto message = [](Time received_at, std::vector<std::pair<std::string, bool>> recipients) {
    MessageInfo m;
    m.received_at = received_at;
    for (auto& [domain, held] : recipients) {
      RecipientStatus r;
      r.address = "x@" + domain;
      r.domain = domain;
      r.held = held;
      m.recipients.push_back(r);
    }
    return m;
  };
  const Time now = 1'000'000;
  std::vector<MessageInfo> q = {
      message(now - 60, {{"a.example", false}, {"b.example", false}}),  // 1 min
      message(now - 299, {{"a.example", false}}),                       // under 5
      message(now - 300, {{"a.example", false}}),                       // 5: second bucket
      message(now - 1279 * 60, {{"b.example", false}}),                 // 1279 min
      message(now - 1280 * 60, {{"b.example", false}}),                 // 1280+
      message(now + 30, {{"c.example", false}}),                        // the future: new
      message(now - 60, {{"a.example", true}}),                         // held
  };
  RecipientStatus done;
  done.domain = "a.example";
  done.state = RecipientState::delivered;
  q[0].recipients.push_back(done);

  Shape s = shape(q, now);
  EXPECT_EQ(s.total.total, 7u);
  EXPECT_EQ(s.total.domain, "TOTAL");
  ASSERT_EQ(s.domains.size(), 3u);
  EXPECT_EQ(s.domains[0].domain, "a.example");
  EXPECT_EQ(s.domains[0].total, 3u);
  EXPECT_EQ(s.domains[0].counts[0], 2u);
  EXPECT_EQ(s.domains[0].counts[1], 1u);
  EXPECT_EQ(s.domains[1].domain, "b.example");
  EXPECT_EQ(s.domains[1].counts[0], 1u);
  EXPECT_EQ(s.domains[1].counts[8], 1u) << "1279 minutes: under 1280";
  EXPECT_EQ(s.domains[1].counts[9], 1u) << "1280 minutes: 1280+";
  EXPECT_EQ(s.domains[2].domain, "c.example");
  EXPECT_EQ(s.domains[2].counts[0], 1u);

  Shape held = shape(q, now, true);
  EXPECT_EQ(held.total.total, 1u);
  ASSERT_EQ(held.domains.size(), 1u);
  EXPECT_EQ(held.domains[0].domain, "a.example");
}

// A spool written by schema version 5 (before holds and finished times)
// opens: finished messages count as finished when they arrived (so the
// first retention pass may remove them), the others are unfinished and not
// held, and everything works on it.
TEST_F(QueueTest, VersionFiveSpoolIsMigratedToSix) {
  spool_.reset();
  std::filesystem::remove(path_);
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, sqlite3_close);
    const char* v5 = R"sql(
CREATE TABLE messages (id TEXT PRIMARY KEY NOT NULL, mail_from TEXT NOT NULL, data BLOB NOT NULL,
  size INTEGER NOT NULL, received_at INTEGER NOT NULL, received_from TEXT NOT NULL,
  body_file INTEGER NOT NULL DEFAULT 0, tls_report INTEGER NOT NULL DEFAULT 0,
  body_8bitmime INTEGER NOT NULL DEFAULT 0, smtputf8 INTEGER NOT NULL DEFAULT 0,
  received_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE recipients (message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'bounced')),
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
  last_dsn TEXT NOT NULL DEFAULT '', last_diagnostic TEXT NOT NULL DEFAULT '',
  last_outcome TEXT NOT NULL DEFAULT '', delay_warned INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (message_id, idx)) WITHOUT ROWID;
CREATE INDEX recipients_due ON recipients(state, next_attempt_at);
CREATE INDEX messages_age ON messages(received_at, id);
INSERT INTO messages (id, mail_from, data, size, received_at, received_from, received_ms)
  VALUES ('DONE', 's@example.net', 'Subject: done', 13, 1000, '[127.0.0.1]', 1000250),
         ('HALF', 's@example.net', 'Subject: half', 13, 1100, '[127.0.0.1]', 0),
         ('NEW', 's@example.net', 'Subject: new', 12, 1200, '[127.0.0.1]', 0);
INSERT INTO recipients (message_id, idx, address, domain, state, next_attempt_at, attempts)
  VALUES ('DONE', 0, 'a@example.org', 'example.org', 'delivered', 0, 1),
         ('DONE', 1, 'b@example.com', 'example.com', 'bounced', 0, 3),
         ('HALF', 0, 'c@example.org', 'example.org', 'delivered', 0, 1),
         ('HALF', 1, 'd@example.com', 'example.com', 'pending', 1500, 1),
         ('NEW', 0, 'e@example.org', 'example.org', 'pending', 1200, 0);
PRAGMA user_version = 5;
)sql";
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db.get(), v5, nullptr, nullptr, &error), SQLITE_OK) << error;
  }
  reopen();
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, sqlite3_close);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db.get(), "PRAGMA user_version", -1, &stmt, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(stmt, 0), 6);
    sqlite3_finalize(stmt);
  }
  EXPECT_EQ(info("DONE").finished_at, 1000);
  EXPECT_EQ(info("DONE").received_ms, 1000250);
  EXPECT_EQ(info("HALF").finished_at, 0);
  EXPECT_FALSE(info("HALF").recipients[1].held);
  std::vector<MessageInfo> pending = list(false);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].id, "HALF");
  EXPECT_EQ(pending[1].id, "NEW");
  EXPECT_THAT(message_ids(due(1500)), ElementsAre("HALF", "NEW"));

  change(QueueAction::hold, {.domains = {"example.com"}});
  EXPECT_THAT(message_ids(due(1500)), ElementsAre("NEW"));
  EXPECT_TRUE(record("NEW", {delivered(0)}, 1300));
  EXPECT_EQ(purge(1000), 1u) << "DONE, taken as finished when it arrived";
  EXPECT_EQ(purge(1299), 0u);
  EXPECT_EQ(purge(1300), 1u);
  ASSERT_EQ(list().size(), 1u);
  EXPECT_EQ(list()[0].id, "HALF");
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
  EXPECT_EQ(purge(), 1u);
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
