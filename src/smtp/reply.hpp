// SMTP replies (RFC 5321 section 4.2): an incremental, bounded parser and the
// EHLO capability list. Pure: no I/O, no Boost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace danemta::smtp {

// One complete reply. `lines` holds the text after "NNN-" / "NNN " of each
// line (CR/LF stripped), so a bare "250" gives one empty line.
struct Reply {
  int code = 0;
  // RFC 3463 / RFC 2034 enhanced status code ("5.1.1") from the start of the
  // first line's text, only when its class digit equals the reply's first
  // digit; empty otherwise. It stays in `lines` too.
  std::string enhanced;
  std::vector<std::string> lines;

  bool positive() const { return code >= 200 && code < 400; }   // 2yz, 3yz
  bool transient() const { return code >= 400 && code < 500; }  // 4yz
  bool permanent() const { return code >= 500 && code < 600; }  // 5yz
  // The reply as sent, lines joined with '\n' ("250-a\n250 b"), no final newline.
  std::string to_string() const;
};

enum class ReplyError {
  line_too_long,      // a line exceeds ReplyLimits::max_line_bytes
  too_many_lines,     // a reply exceeds ReplyLimits::max_lines
  reply_too_large,    // a reply's lines exceed ReplyLimits::max_reply_bytes in total
  bad_code,           // a line does not start with three digits
  code_out_of_range,  // the code is outside 200-599
  bad_separator,      // the fourth character is neither '-', ' ' nor the end of the line
  code_mismatch,      // a continuation line carries a different code (RFC 5321 4.2.1)
};

std::string_view to_string(ReplyError e);

// RFC 5321 4.5.3.1.5 allows 512 bytes per reply line; real servers exceed it,
// so the defaults are lenient but bounded.
struct ReplyLimits {
  std::size_t max_line_bytes = 4096;  // without the line ending
  std::size_t max_lines = 256;
  std::size_t max_reply_bytes = 64 * 1024;  // sum of line lengths in one reply
};

// Feed bytes as they arrive; complete replies queue up in order (several
// replies in one read happen with PIPELINING, RFC 2920). Lines end with CRLF
// or a bare LF. The first error is sticky: the stream cannot be resynchronised,
// so the caller must drop the connection. Memory held is bounded by the limits
// plus the replies not yet taken with next().
class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {}) : limits_(limits) {}

  // Consumes all of `bytes` (or stops at the first error).
  void feed(std::string_view bytes);
  // The oldest complete reply, if any.
  std::optional<Reply> next();

  std::optional<ReplyError> error() const { return error_; }
  // Complete replies waiting in next().
  std::size_t ready() const { return replies_.size(); }
  // True when bytes of an unfinished reply are held (a partial line or the
  // first lines of a multi-line reply).
  bool partial() const { return !line_.empty() || !current_.lines.empty(); }
  // Forgets everything, errors included (e.g. after the TLS handshake,
  // RFC 3207 section 4.2).
  void reset();

 private:
  void take_line(std::string_view line);
  void set_error(ReplyError e);

  ReplyLimits limits_;
  std::string line_;  // the unfinished line
  Reply current_;     // the unfinished multi-line reply
  std::size_t current_bytes_ = 0;
  std::deque<Reply> replies_;
  std::optional<ReplyError> error_;
};

// The EHLO reply's service extensions (RFC 5321 4.1.1.1: the first line is
// the server's name, each further line is "keyword [params]", keywords are
// case-insensitive).
struct Capabilities {
  bool starttls = false;             // RFC 3207
  bool pipelining = false;           // RFC 2920
  bool size = false;                 // RFC 1870
  bool eightbitmime = false;         // RFC 6152
  bool smtputf8 = false;             // RFC 6531
  bool chunking = false;             // RFC 3030
  bool enhancedstatuscodes = false;  // RFC 2034
  bool dsn = false;                  // RFC 3461
  // RFC 1870 section 4: the SIZE parameter; 0 when absent, unparseable or 0
  // ("no fixed maximum").
  std::uint64_t size_limit = 0;
};

Capabilities parse_ehlo(const Reply& reply);

}  // namespace danemta::smtp
