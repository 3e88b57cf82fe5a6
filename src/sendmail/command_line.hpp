// The sendmail command line that applications use (Sendmail's and
// Postfix's flag syntax), parsed by hand: flags cluster ("-ti"), a flag's
// argument may be joined or separate ("-fme@x" or "-f me@x"), operands and
// flags may be mixed, and "--" ends the flags. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace danemta::sendmail {

// sysexits.h values, the exit statuses applications expect of sendmail.
inline constexpr int kExUsage = 64;        // EX_USAGE: the command line is wrong
inline constexpr int kExDataErr = 65;      // EX_DATAERR: the message or an address is wrong
inline constexpr int kExNoUser = 67;       // EX_NOUSER: a recipient was refused for good
inline constexpr int kExUnavailable = 69;  // EX_UNAVAILABLE: the relay refuses for good
inline constexpr int kExSoftware = 70;     // EX_SOFTWARE: an internal error
inline constexpr int kExIoErr = 74;        // EX_IOERR: standard input could not be read
inline constexpr int kExTempFail = 75;     // EX_TEMPFAIL: try again later
inline constexpr int kExConfig = 78;       // EX_CONFIG: the configuration is wrong

enum class Mode {
  deliver,     // -bm (the default): submit the message on standard input
  queue_list,  // -bp, or invoked as mailq: `danemta queue list`
  flush,       // -q alone: `danemta queue flush`
};

struct Options {
  Mode mode = Mode::deliver;
  bool extract = false;  // -t: recipients from To/Cc/Bcc (or Resent-To/Cc/Bcc)
  bool dot_ends = true;  // false with -i, -oi, -O IgnoreDots: a lone "." is text
  bool verbose = false;  // -v: print the relay's reply
  // -f / -r: the envelope sender; "" (given as "" or "<>") is the null
  // sender. Unset: the invoking user at the configured domain.
  std::optional<std::string> sender;
  std::string full_name;                // -F: the display name of an added From: field
  std::string config_path;              // -C: the danemta configuration file
  std::vector<std::string> recipients;  // operands
  // Flags accepted for compatibility that change nothing, as given.
  std::vector<std::string> ignored;
};

// Parses argv after the program name. Errors (exit kExUsage) say which flag
// is wrong and why: an unknown flag, a missing argument, a mode danemta
// does not offer (-bs, -bd, -bi, -bv, -bt, -qINTERVAL...) with what to use
// instead.
Result<Options> parse_command_line(const std::vector<std::string>& args);

}  // namespace danemta::sendmail
