// Acknowledged = durable (DESIGN.md section 8): a child process enqueues
// messages and reports each id only after enqueue() returned; the parent
// SIGKILLs it mid-stream and reopens the spool. Every reported message must be
// there, whole; no message may be there in part.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <string>

#include "queue/spool.hpp"

namespace danemta::queue {
namespace {

constexpr int kRecipients = 3;

NewMessage numbered_message(int n) {
  NewMessage m;
  m.mail_from = "sender" + std::to_string(n) + "@example.net";
  for (int r = 0; r < kRecipients; ++r) {
    m.recipients.push_back("rcpt" + std::to_string(r) + "-" + std::to_string(n) + "@d" +
                           std::to_string(r % 2) + ".example");
  }
  m.data =
      "Message-ID: <" + std::to_string(n) + "@example.net>\r\n\r\n" +
      std::string(static_cast<std::size_t>(1000 + n * 37 % 5000), static_cast<char>('a' + n % 26)) +
      "\r\n";
  m.received_at = 1'700'000'000 + n;
  m.received_from = "[127.0.0.1]";
  return m;
}

// Child: enqueue forever from `first`, writing "<n> <id>\n" after each
// enqueue() returned. Never returns.
[[noreturn]] void child(const std::string& path, int first, int fd) {
  auto spool = open_sqlite_spool(path);
  if (!spool) _exit(2);
  for (int n = first;; ++n) {
    auto id = (*spool)->enqueue(numbered_message(n));
    if (!id) _exit(3);
    const std::string line = std::to_string(n) + " " + *id + "\n";
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
  }
}

// Starts a child, reads `acknowledged` complete lines, kills it with SIGKILL.
// Returns number -> id of every acknowledged message.
std::map<int, std::string> run_and_kill(const std::string& path, int first, int acknowledged) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child(path, first, fds[1]);
  }
  close(fds[1]);
  EXPECT_GT(pid, 0);

  std::map<int, std::string> acked;
  std::string buffer;
  char chunk[256];
  while (static_cast<int>(acked.size()) < acknowledged) {
    const ssize_t n = read(fds[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    for (auto eol = buffer.find('\n'); eol != std::string::npos; eol = buffer.find('\n')) {
      const std::string line = buffer.substr(0, eol);
      buffer.erase(0, eol + 1);
      const auto space = line.find(' ');
      acked.emplace(std::stoi(line.substr(0, space)), line.substr(space + 1));
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child ended on its own, status " << status;
  close(fds[0]);
  return acked;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path() / "danemta-queue-kill-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(QueueDurability, AcknowledgedMessagesSurviveSigkill) {
  TempDir dir;
  const std::string path = (dir.path() / "spool.db").string();
  std::map<int, std::string> acked;
  int next = 0;
  // Several kills at different points, each on the spool the previous one left.
  for (int acknowledged : {7, 31, 64}) {
    auto round = run_and_kill(path, next, acknowledged);
    ASSERT_EQ(static_cast<int>(round.size()), acknowledged);
    acked.insert(round.begin(), round.end());
    next += 10'000;
  }

  auto spool = open_sqlite_spool(path);
  ASSERT_TRUE(spool) << spool.error().message;
  for (const auto& [n, id] : acked) {
    auto info = (*spool)->info(id);
    ASSERT_TRUE(info) << info.error().message;
    ASSERT_TRUE(info->has_value()) << "acknowledged message " << n << " (" << id << ") lost";
    const NewMessage expected = numbered_message(n);
    const MessageInfo& m = **info;
    EXPECT_EQ(m.mail_from, expected.mail_from);
    EXPECT_EQ(m.received_at, expected.received_at);
    EXPECT_EQ(m.size, expected.data.size());
    ASSERT_EQ(m.recipients.size(), expected.recipients.size());
    for (std::size_t r = 0; r < m.recipients.size(); ++r) {
      EXPECT_EQ(m.recipients[r].address, expected.recipients[r]);
      EXPECT_EQ(m.recipients[r].state, RecipientState::pending);
    }
    auto data = (*spool)->data(id);
    ASSERT_TRUE(data) << data.error().message;
    EXPECT_EQ(*data, expected.data) << n;
  }

  // Unacknowledged messages may be there too, but only whole (one transaction).
  auto all = (*spool)->list(true);
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_GE(all->size(), acked.size());
  for (const MessageInfo& m : *all) {
    EXPECT_EQ(m.recipients.size(), static_cast<std::size_t>(kRecipients)) << m.id;
  }

  // The spool still works after the crashes.
  auto more = (*spool)->enqueue(numbered_message(99'999));
  EXPECT_TRUE(more) << more.error().message;
}

}  // namespace
}  // namespace danemta::queue
