// smtp::CommandTally: the command counts of a server session's last log line,
// in the shape of Postfix smtpd's "disconnect from" line.
#include "smtp/tally.hpp"

#include <gtest/gtest.h>

namespace danemta::smtp {
namespace {

TEST(CommandTally, NoCommands) {
  EXPECT_EQ(CommandTally().summary(), " commands=0/0");
}

TEST(CommandTally, AllSucceededShowsOneNumber) {
  CommandTally t;
  for (const char* name : {"ehlo", "mail", "rcpt", "rcpt", "data", "quit"}) t.count(name, true);
  EXPECT_EQ(t.summary(), " ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6");
}

TEST(CommandTally, FailuresShowSuccessesOverTotalInOrderOfFirstUse) {
  CommandTally t;
  t.count("ehlo", true);
  t.count("starttls", true);
  t.count("ehlo", true);
  t.count("auth", true);
  t.count("mail", true);
  t.count("rcpt", true);
  t.count("rcpt", false);
  t.count("data", true);
  t.count("quit", true);
  EXPECT_EQ(t.summary(), " ehlo=2 starttls=1 auth=1 mail=1 rcpt=1/2 data=1 quit=1 commands=8/9");
}

TEST(CommandTally, OnlyFailures) {
  CommandTally t;
  t.count("unknown", false);
  t.count("mail", false);
  t.count("unknown", false);
  EXPECT_EQ(t.summary(), " unknown=0/2 mail=0/1 commands=0/3");
}

}  // namespace
}  // namespace danemta::smtp
