// The command counts of one SMTP server session, summarised in the shape of
// Postfix smtpd's end-of-session line so that Postfix log tooling reads it:
//   disconnect from unknown[192.0.2.1] ehlo=2 starttls=1 mail=1 rcpt=1/2 data=1 quit=1 commands=7/8
// Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace danemta::smtp {

class CommandTally {
 public:
  // One command, by its name in lower case ("ehlo", "rcpt"; "unknown" for a
  // line that is no command the server knows), and whether it succeeded: its
  // final reply was 2xx (a refusal, a 421, or a session that ended inside
  // the command's exchange is a failure).
  void count(std::string_view name, bool succeeded);

  // " name=N" per command in order of first use, "N" when all succeeded,
  // "S/T" (successes/total) otherwise; then " commands=S/T" over all of
  // them, "commands=N" when all succeeded, "commands=0/0" for none. With a
  // leading space.
  std::string summary() const;

 private:
  struct Entry {
    std::string name;
    std::size_t succeeded = 0;
    std::size_t total = 0;
  };
  std::vector<Entry> entries_;
};

}  // namespace danemta::smtp
