// The AUTH credential file (auth/credentials.hpp): what it accepts, what it
// refuses and why, and crypt(3) verification.
#include "auth/credentials.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace danemta::auth {
namespace {

// A real sha512-crypt hash of "secret" (openssl passwd -6 -salt abc secret).
constexpr const char* kSha512Secret =
    "$6$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/r6niK9YB2mdvgY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1";

TEST(Credentials, MadeEntriesVerify) {
  auto line = make_entry("alice@example.org", "correct horse");
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_EQ(line->rfind("alice@example.org:$y$", 0), 0u) << *line << ": yescrypt by default";
  auto other = make_entry("alice@example.org", "correct horse");
  ASSERT_TRUE(other);
  EXPECT_NE(*line, *other) << "a fresh salt each time";

  auto creds = Credentials::parse("# users\n\n" + *line + "\nbob:" + kSha512Secret + "\r\n");
  ASSERT_TRUE(creds) << creds.error().message;
  EXPECT_EQ(creds->size(), 2u);
  EXPECT_TRUE(creds->verify("alice@example.org", "correct horse"));
  EXPECT_FALSE(creds->verify("alice@example.org", "correct horse "));
  EXPECT_FALSE(creds->verify("alice@example.org", ""));
  EXPECT_FALSE(creds->verify("Alice@example.org", "correct horse")) << "names are exact";
  EXPECT_TRUE(creds->verify("bob", "secret"));
  EXPECT_FALSE(creds->verify("bob", "secre"));
  EXPECT_FALSE(creds->verify("carol", "secret")) << "unknown user";
  EXPECT_FALSE(Credentials::parse("")->verify("bob", "secret")) << "no users at all";
}

TEST(Credentials, EntriesRefuseBadInput) {
  EXPECT_FALSE(make_entry("", "pw"));
  EXPECT_FALSE(make_entry("a:b", "pw"));
  EXPECT_FALSE(make_entry("a b", "pw"));
  EXPECT_FALSE(make_entry("alice", ""));
  EXPECT_FALSE(make_entry("alice", "a\nb"));
  EXPECT_FALSE(make_entry("alice", std::string(1025, 'p')));
  EXPECT_FALSE(make_entry(std::string(257, 'u'), "pw"));
}

TEST(Credentials, FileMistakesNameTheLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"alice", "credentials:1: expected \"user:hash\""},
      {"# c\nalice:", "credentials:2: user alice: no hash after the user name"},
      {":" + std::string(kSha512Secret), "credentials:1: the user name must be"},
      {"a b:" + std::string(kSha512Secret), "credentials:1: the user name must be"},
      {"alice:$6$abc$x y",
       "credentials:1: expected \"user:hash\" or \"user:hash:senders\" (white space"},
      {"alice:abNANd1rDfiNc", "user alice: not a crypt(3) hash"},
      {"alice:$1$abc$iCQ2D3nhptRYi27fDYv2s1", "user alice: hash method too weak"},
      {"alice:$y$j9T$hmGBoskXKrWf1Q3rh3vVr1", "user alice: a salt without its hash"},
      {"alice:$9$whatever$0123456789012345678901234", "user alice: not a hash crypt(3) knows"},
      {"bob:" + std::string(kSha512Secret) + "\nbob:" + kSha512Secret,
       "credentials:2: user bob is listed twice"},
  };
  for (const auto& [text, expected] : cases) {
    auto c = Credentials::parse(text);
    ASSERT_FALSE(c) << text;
    EXPECT_NE(c.error().message.find(expected), std::string::npos) << text << "\n"
                                                                   << c.error().message;
    EXPECT_EQ(c.error().severity, Severity::permanent);
  }
}

TEST(Credentials, SenderListsRestrictWhoAUserSendsAs) {
  const std::string h = kSha512Secret;
  auto c = Credentials::parse("open:" + h + "\nlisted:" + h +
                              ":Noreply@Example.org,@alerts.example.org,<>\nnone:" + h +
                              ":only@example.org\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->verify("listed", "secret"));  // the list does not disturb the hash
  EXPECT_TRUE(c->may_send_as("open", "anyone@anywhere.example"));
  EXPECT_TRUE(c->may_send_as("open", ""));
  EXPECT_TRUE(c->may_send_as("listed", "noreply@example.org"));
  EXPECT_TRUE(c->may_send_as("listed", "NOREPLY@EXAMPLE.ORG"));
  EXPECT_TRUE(c->may_send_as("listed", "pager@Alerts.Example.org"));
  EXPECT_TRUE(c->may_send_as("listed", ""));
  EXPECT_FALSE(c->may_send_as("listed", "ceo@example.org"));
  EXPECT_FALSE(c->may_send_as("listed", "x@evil-alerts.example.org"));
  EXPECT_FALSE(c->may_send_as("listed", "x@sub.alerts.example.org"));
  EXPECT_FALSE(c->may_send_as("listed", "alerts.example.org"));
  EXPECT_FALSE(c->may_send_as("none", ""));
  EXPECT_FALSE(c->may_send_as("nobody", "only@example.org"));

  const std::pair<std::string, std::string> bad[] = {
      {"a:" + h + ":", "user a: an empty sender list"},
      {"a:" + h + ":x@y,,z@w", "user a: sender \"\" is not"},
      {"a:" + h + ":nodomain", "user a: sender \"nodomain\" is not"},
      {"a:" + h + ":a@", "user a: sender \"a@\" is not"},
      {"a:" + h + ":a@b@c", "user a: sender \"a@b@c\" is not"},
      {"a:" + h + ":<a@b>", "user a: sender \"<a@b>\" is not"},
      {"a:" + h + ":a@b c", "user a: sender \"a@b c\" is not"},
  };
  for (const auto& [text, expected] : bad) {
    auto r = Credentials::parse(text);
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.error().message.find(expected), std::string::npos) << text << "\n"
                                                                   << r.error().message;
  }
}

TEST(Credentials, FileMustBePrivate) {
  const std::string dir = testing::TempDir() + "/credentials_test_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/credentials";
  std::ofstream(path) << "bob:" << kSha512Secret << "\n";
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto c = Credentials::load(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->contains("bob"));

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  c = Credentials::load(path);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("readable or writable by others (mode 0644)"), std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().message.find("chmod o-rwx " + path), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0602), 0);
  EXPECT_FALSE(Credentials::load(path)) << "writable by others";

  c = Credentials::load(dir);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("not a regular file"), std::string::npos);
  c = Credentials::load(dir + "/missing");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("cannot read credentials file " + dir + "/missing"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace danemta::auth
