// The header section of an RFC 5322 message: its fields (section 2.2),
// address lists (section 3.4), and a streaming pass that adds the fields a
// message lacks at the end of its header section, as Postfix's cleanup does
// for Date: and Message-ID:. Pure: no I/O.
//
// One rule decides where the header section ends, for the parser and the
// streaming pass alike: it is the lines from the start of the message that
// are fields ("name:" with a name of printable ASCII other than ":", and
// the obsolete white space before the colon of section 4.5) or their
// continuation lines (starting with a space or a tab). The first empty line
// ends it and starts the body; so does the first line that is neither (the
// body then starts with that line), and the end of the message. Line ends
// are CRLF or a bare LF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"

namespace danemta::mime {

// A field name longer than this (the line length limit of RFC 5322 2.1.1)
// makes the line not a field.
inline constexpr std::size_t kMaxFieldName = 998;

// What a line at the start of a message is, judged from its first octets.
enum class LineStart {
  field,         // "Name:" (the name may be followed by spaces or tabs before ":")
  continuation,  // starts with a space or a tab: more of the field before, if any
  blank,         // CRLF or LF alone: the end of the header section
  other,         // anything else: not part of a header section
  undecided,     // a prefix of a field name or of CRLF: more octets are needed
};

// `line` is the start of a line (up to its line end, or fewer octets).
// `undecided` only while more octets could still change the verdict; a
// caller at the end of the text takes it as `other`.
LineStart classify_line(std::string_view line);

struct HeaderField {
  std::string_view name;   // as written: no colon, no white space before it
  std::string_view raw;    // the whole field, continuation lines and last line end included
  std::size_t offset = 0;  // of `raw` in the message
  // The field body after the colon, unfolded (RFC 5322 2.2.3: each line end
  // before a space or tab removed; the last line end removed).
  std::string value;
};

struct HeaderSection {
  std::vector<HeaderField> fields;
  // Offset just past the last field: the empty line, the first body line,
  // or the end of the message.
  std::size_t end = 0;
  // Offset of the body: after the empty line when there is one, else `end`.
  std::size_t body = 0;
  bool blank_line = false;  // the section ended with an empty line
};

// The header section of `message` by the rule above.
HeaderSection parse_header(std::string_view message);

// Whether the section has a field named `name` (ASCII case-insensitive).
bool has_field(const HeaderSection& header, std::string_view name);

// An addr-spec (RFC 5322 3.4.1) as found in a header field.
struct Mailbox {
  // Dot-separated words as written, quoted strings with their quotes and
  // backslashes (comments and white space between words dropped).
  std::string local_part;
  // After the "@"; "" when the address has none (an unqualified address
  // such as "root", which a local submitter qualifies with its domain).
  std::string domain;

  // "local@domain", or the local part alone when unqualified.
  std::string address() const { return domain.empty() ? local_part : local_part + "@" + domain; }
  friend bool operator==(const Mailbox&, const Mailbox&) = default;
};

// The mailboxes of an unfolded address-list field body (RFC 5322 3.4: To,
// Cc, Bcc, Resent-*), in order: display names, comments and the obsolete
// source route are dropped, groups ("undisclosed-recipients:;") give their
// members, empty list elements are skipped (section 4.4). Encoded words
// (RFC 2047) are display-name text and left alone. A display name must be
// words (atoms, quoted strings, dots); anything the grammar cannot read is
// an error naming what was expected, never a guess.
Result<std::vector<Mailbox>> address_list(std::string_view value);

// A display name as an RFC 5322 phrase: as it is when it is atoms separated
// by single spaces, a quoted string when it is other printable ASCII, RFC
// 2047 "B" encoded words (UTF-8) when it holds other octets. Line ends and
// other control characters become spaces.
std::string display_name(std::string_view name);

// "<20261201T123456.0123456789abcdef@host>": a Message-ID (RFC 5322 3.6.4)
// unique by the time, a random number and the host name.
std::string message_id(std::int64_t now, std::uint64_t random, std::string_view host);

// Adds fields a message lacks at the end of its header section while the
// text streams through: each output octet is an input octet, in order, plus
// the missing fields. They go just before the empty line that ends the
// section, or before the first body line (then followed by an empty line,
// so the body stays the body), or after the last field when the message
// has no body. A message that lacks none of them passes unchanged. Only the start of the current
// line is held back (at most kMaxFieldName + a few octets); in the body, input goes straight
// through.
class HeaderCompleter {
 public:
  struct Field {
    std::string name;  // compared ASCII case-insensitively with the message's fields
    std::string text;  // the whole field to add, ending in CRLF
  };
  explicit HeaderCompleter(std::vector<Field> wanted) : wanted_(std::move(wanted)) {}

  // Appends to `out` what can be passed on after `in`.
  void feed(std::string_view in, std::string& out);
  // The message ended: appends the rest to `out`. Call once, after the last feed().
  void finish(std::string& out);
  // Past the header section: feed() copies its input unchanged.
  bool in_body() const { return body_; }

 private:
  void enter_body(std::string& out, bool add_blank_line);

  std::vector<Field> wanted_;
  std::string hold_;      // the start of the current line while it is undecided
  bool in_line_ = false;  // passing the rest of a field line through
  bool any_field_ = false;
  bool body_ = false;
};

}  // namespace danemta::mime
