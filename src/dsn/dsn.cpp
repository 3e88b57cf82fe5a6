#include "dsn/dsn.hpp"
#include "base/system.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <string_view>

namespace danemta::dsn {

namespace {

constexpr std::size_t kPreferredLine = 78;  // RFC 5322 section 2.1.1: SHOULD
constexpr std::size_t kMaxLine = 998;       // RFC 5322 section 2.1.1: MUST, without CRLF
constexpr std::size_t kMaxPiece = 900;      // a longer word is split to fit kMaxLine
constexpr std::size_t kTextWidth = 76;      // human-readable part
constexpr std::size_t kMaxHeaderSection = 64 * 1024;
constexpr std::size_t kMaxBoundarySeed = 24;  // RFC 2046 section 5.1.1: boundary <= 70

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U;
}

// One code point of UTF-8 at s[i], advancing i past it. An invalid sequence
// (bad lead byte, truncated, overlong, surrogate, above U+10FFFF) yields
// nullopt and advances one byte.
std::optional<char32_t> next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80U) {
    ++i;
    return static_cast<char32_t>(b0);
  }
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0U) == 0xC0U) {
    len = 2;
    cp = static_cast<char32_t>(b0 & 0x1FU);
    min = 0x80;
  } else if ((b0 & 0xF0U) == 0xE0U) {
    len = 3;
    cp = static_cast<char32_t>(b0 & 0x0FU);
    min = 0x800;
  } else if ((b0 & 0xF8U) == 0xF0U) {
    len = 4;
    cp = static_cast<char32_t>(b0 & 0x07U);
    min = 0x10000;
  } else {
    ++i;
    return std::nullopt;
  }
  if (s.size() - i < len) {
    ++i;
    return std::nullopt;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (!is_continuation(s[i + k])) {
      ++i;
      return std::nullopt;
    }
    cp = (cp << 6) | static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3FU);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return std::nullopt;
  }
  i += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_control(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp < 0xA0);
}

// RFC 6533 section 3 embedded-unicode-char: "\x{HEXPOINT}".
void append_embedded(std::string& out, char32_t cp) {
  std::array<char, 16> buf{};
  std::snprintf(buf.data(), buf.size(), "\\x{%X}", static_cast<unsigned>(cp));
  out += buf.data();
}

// Single spaces between words, none at either end.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  bool space = false;
  for (const char c : s) {
    if (c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

enum class Form {
  utf8,   // valid UTF-8 (RFC 6532 header text, the utf-8 text part)
  ascii,  // 7-bit: non-ASCII as RFC 6533 embedded-unicode-char
  xtext,  // RFC 6533 section 3 utf-8-addr-xtext: only QCHAR literal
};

// One line of text for a header field or a line of the text part: every
// control character (CR and LF included, so nothing can start a new header
// field) becomes a space, runs of spaces collapse, invalid UTF-8 becomes '?'.
std::string one_line(std::string_view s, Form form) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto cp = next_code_point(s, i);
    if (!cp) {
      out += '?';
    } else if (form == Form::xtext) {
      // QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e
      if (*cp > 0x20 && *cp < 0x7F && *cp != '+' && *cp != '=' && *cp != '\\') {
        out += static_cast<char>(*cp);
      } else {
        append_embedded(out, *cp);
      }
    } else if (is_control(*cp)) {
      out += ' ';
    } else if (*cp >= 0x80 && form == Form::ascii) {
      append_embedded(out, *cp);
    } else {
      append_utf8(out, *cp);
    }
  }
  return form == Form::xtext ? out : collapse_spaces(out);
}

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80U) return false;
  }
  return true;
}

// The length of the longest prefix of s[off..] with at most max octets that
// does not split a UTF-8 sequence.
std::size_t piece_length(std::string_view s, std::size_t off, std::size_t max) {
  std::size_t n = std::min(max, s.size() - off);
  while (n > 1 && off + n < s.size() && is_continuation(s[off + n])) --n;
  return n;
}

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) {
    if (!is_continuation(c)) ++n;
  }
  return n;
}

// "Name: value" folded at spaces (RFC 5322 section 2.2.3) to lines of at most
// kPreferredLine octets where the words allow it; a word longer than
// kMaxPiece is split, so no line exceeds kMaxLine. value is one line.
std::string fold_field(std::string_view name, std::string_view value) {
  std::string out(name);
  out += ':';
  std::size_t line_length = out.size();
  bool line_has_word = false;
  const std::string words = collapse_spaces(value);
  std::size_t pos = 0;
  while (pos < words.size()) {
    std::size_t end = words.find(' ', pos);
    if (end == std::string::npos) end = words.size();
    const std::string_view word = std::string_view(words).substr(pos, end - pos);
    for (std::size_t off = 0; off < word.size();) {
      const std::size_t n = piece_length(word, off, kMaxPiece);
      if (line_has_word && line_length + 1 + n > kPreferredLine) {
        out += "\r\n";
        line_length = 0;
      }
      out += ' ';
      out += word.substr(off, n);
      line_length += 1 + n;
      line_has_word = true;
      off += n;
    }
    pos = end + 1;
  }
  out += "\r\n";
  return out;
}

// Text wrapped to kTextWidth columns, each line indented; a line break in
// text (CR, LF or CRLF) starts a new line, other controls become spaces.
std::string wrap(std::string_view text, std::size_t indent) {
  std::string out;
  const std::string prefix(indent, ' ');
  const std::size_t width = kTextWidth - indent;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t eol = text.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string line = one_line(text.substr(pos, eol - pos), Form::utf8);
    std::string current;
    std::size_t columns = 0;
    std::size_t wpos = 0;
    while (wpos < line.size()) {
      std::size_t wend = line.find(' ', wpos);
      if (wend == std::string::npos) wend = line.size();
      std::string_view word = std::string_view(line).substr(wpos, wend - wpos);
      while (!word.empty()) {
        std::string_view piece = word;
        if (code_points(word) > width) {
          std::size_t n = 0;
          for (std::size_t k = 0; k < width && n < word.size(); ++k) {
            ++n;
            while (n < word.size() && is_continuation(word[n])) ++n;
          }
          piece = word.substr(0, n);
        }
        const std::size_t piece_columns = code_points(piece);
        if (columns > 0 && columns + 1 + piece_columns > width) {
          out += prefix + current + "\r\n";
          current.clear();
          columns = 0;
        }
        if (columns > 0) {
          current += ' ';
          ++columns;
        }
        current += piece;
        columns += piece_columns;
        word.remove_prefix(piece.size());
      }
      wpos = wend + 1;
    }
    if (!current.empty()) out += prefix + current + "\r\n";
    if (eol == text.size()) break;
    pos = eol + 1;
  }
  return out;
}

// RFC 2045 section 6.7 for CRLF text: lines of at most 76 characters.
std::string quoted_printable(std::string_view text) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    std::size_t column = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const auto c = static_cast<unsigned char>(line[i]);
      const bool last = i + 1 == line.size();
      std::string token;
      if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) {
        token = static_cast<char>(c);
      } else {
        token = {'=', kHex[c >> 4], kHex[c & 0x0FU]};
      }
      if (column + token.size() > 75) {
        out += "=\r\n";
        column = 0;
      }
      out += token;
      column += token.size();
    }
    out += "\r\n";
    pos = eol + 2;
  }
  return out;
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// A host name usable as the domain of an addr-spec and a msg-id (RFC 5322
// section 3.4.1 dot-atom): letters, digits, '-' and single inner dots.
std::string host_atom(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (is_alnum(c) || c == '-') {
      out += c;
    } else if (c == '.' && !out.empty() && out.back() != '.') {
      out += c;
    }
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out.empty() ? "localhost" : out;
}

std::string alnum_only(std::string_view s, std::size_t max) {
  std::string out;
  for (const char c : s) {
    if (out.size() == max) break;
    if (is_alnum(c)) out += c;
  }
  return out;
}

// RFC 3463 section 2: class "." subject "." detail; class 2, 4 or 5.
bool valid_status(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  std::size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++digits;
    }
    if (digits < 1 || digits > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

std::string status_of(const FailedRecipient& r) {
  if (valid_status(r.status)) return r.status;
  return r.action == Action::failed ? "5.0.0" : "4.0.0";
}

bool same_explanation(const FailedRecipient& a, const FailedRecipient& b) {
  return a.action == b.action && status_of(a) == status_of(b) && a.remote_mta == b.remote_mta &&
         a.diagnostic == b.diagnostic && a.diagnostic_is_smtp == b.diagnostic_is_smtp &&
         a.outcome == b.outcome && a.summary == b.summary && a.fix == b.fix &&
         a.last_attempt == b.last_attempt;
}

struct Group {
  const FailedRecipient* first;
  std::vector<std::string> addresses;
};

// Recipients with the same explanation, in order of first appearance.
std::vector<Group> group_recipients(const std::vector<FailedRecipient>& recipients) {
  std::vector<Group> groups;
  for (const FailedRecipient& r : recipients) {
    Group* found = nullptr;
    for (Group& g : groups) {
      if (same_explanation(*g.first, r)) {
        found = &g;
        break;
      }
    }
    if (found == nullptr) {
      groups.push_back(Group{&r, {}});
      found = &groups.back();
    }
    found->addresses.push_back(r.address);
  }
  return groups;
}

bool any_with(const std::vector<FailedRecipient>& recipients, Action action) {
  for (const FailedRecipient& r : recipients) {
    if (r.action == action) return true;
  }
  return false;
}

std::string sentence(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out.back() != '.') out += '.';
  return out;
}

std::string text_part(const BounceInput& in, const std::vector<Group>& groups) {
  const bool any_failed = any_with(in.recipients, Action::failed);
  const bool any_delayed = any_with(in.recipients, Action::delayed);
  bool any_outcome = false;
  for (const FailedRecipient& r : in.recipients) {
    if (!r.fix.empty()) any_outcome = true;
  }
  std::string out;
  out += wrap("This is the mail delivery system at " + one_line(in.reporting_mta, Form::utf8) + ".",
              0);
  out += "\r\n";
  if (any_failed) {
    std::string lead = "Your message could not be delivered to one or more recipients.";
    if (any_delayed) {
      lead +=
          " Delivery to the others is still being retried; nothing needs to be done for "
          "them yet.";
    }
    out += wrap(lead, 0);
  } else {
    out += wrap(
        "Your message has not been delivered yet to one or more recipients. It is still being "
        "retried, and nothing needs to be done by you yet. You will get another notice if "
        "delivery finally fails.",
        0);
  }
  out += "\r\n";
  std::string arrival = "The message arrived here on " + rfc5322_date(in.arrival_date);
  if (!in.original_id.empty()) arrival += " with queue id " + one_line(in.original_id, Form::utf8);
  arrival += ". Its headers are attached at the end of this report.";
  out += wrap(arrival, 0);
  out += "\r\n";
  if (any_outcome) {
    out += wrap(
        "Where a fix is listed below, the problem is in the receiving domain's set-up, not in "
        "your message: please forward this report to that domain's administrator (usually "
        "postmaster@ followed by the domain name).",
        0);
    out += "\r\n";
  }
  for (const Action action : {Action::failed, Action::delayed}) {
    if (!any_with(in.recipients, action)) continue;
    out += action == Action::failed ? "Delivery failed permanently for:\r\n"
                                    : "Delivery delayed, still being retried, for:\r\n";
    out += "\r\n";
    for (const Group& g : groups) {
      const FailedRecipient& r = *g.first;
      if (r.action != action) continue;
      for (const std::string& address : g.addresses) {
        out += wrap("<" + one_line(address, Form::utf8) + ">", 2);
      }
      std::string status = "Status: " + status_of(r);
      if (!r.outcome.empty()) status += " (" + one_line(r.outcome, Form::utf8) + ")";
      out += wrap(status, 4);
      if (!r.remote_mta.empty()) out += wrap("Mail server: " + r.remote_mta, 4);
      if (r.last_attempt != 0) out += wrap("Last attempt: " + rfc5322_date(r.last_attempt), 4);
      if (!r.summary.empty()) out += wrap("What happened: " + sentence(r.summary), 4);
      if (!r.diagnostic.empty()) {
        if (r.diagnostic_is_smtp) {
          out += "    The receiving server said:\r\n";
          out += wrap(r.diagnostic, 6);
        } else {
          out += wrap((r.summary.empty() ? "Reason: " : "Details: ") + r.diagnostic, 4);
        }
      }
      if (!r.fix.empty()) {
        out += "    What the receiving domain's administrator must fix:\r\n";
        out += wrap(r.fix, 6);
      }
      out += "\r\n";
    }
  }
  return out;
}

// The unfolded Message-ID field body of a header section, or "".
std::string message_id(std::string_view headers) {
  std::string value;
  bool in_field = false;
  std::size_t pos = 0;
  while (pos < headers.size()) {
    std::size_t eol = headers.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = headers.size();
    const std::string_view line = headers.substr(pos, eol - pos);
    pos = eol + 2;
    if (in_field) {
      if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
        value += line;
        continue;
      }
      break;
    }
    constexpr std::string_view kName = "message-id:";
    if (line.size() >= kName.size()) {
      bool match = true;
      for (std::size_t i = 0; i < kName.size(); ++i) {
        const char c = line[i];
        const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (lower != kName[i]) match = false;
      }
      if (match) {
        value = line.substr(kName.size());
        in_field = true;
      }
    }
  }
  return one_line(value, Form::ascii);
}

std::string address_field(std::string_view address) {
  // RFC 3464 section 2.3.2 address-type; RFC 6533 section 3 for non-ASCII.
  if (is_ascii(address)) return "rfc822; " + one_line(address, Form::ascii);
  return "utf-8; " + one_line(address, Form::xtext);
}

std::string delivery_status_part(const BounceInput& in) {
  // RFC 3464 section 2.2: per-message fields, extension fields last.
  std::string out = fold_field("Reporting-MTA", "dns; " + one_line(in.reporting_mta, Form::ascii));
  if (in.arrival_date != 0) out += fold_field("Arrival-Date", rfc5322_date(in.arrival_date));
  if (!in.original_id.empty()) {
    out += fold_field("X-danemta-Queue-ID", one_line(in.original_id, Form::ascii));
  }
  const std::string id = message_id(header_section(in.original_headers));
  if (!id.empty()) out += fold_field("X-Original-Message-ID", id);
  // RFC 3464 section 2.3: one block per recipient, each after an empty line.
  for (const FailedRecipient& r : in.recipients) {
    out += "\r\n";
    out += fold_field("Final-Recipient", address_field(r.address));
    out += fold_field("Action", r.action == Action::failed ? "failed" : "delayed");
    out += fold_field("Status", status_of(r));
    if (!r.remote_mta.empty()) {
      out += fold_field("Remote-MTA", "dns; " + one_line(r.remote_mta, Form::ascii));
    }
    // RFC 3464 section 2.3.6: diagnostic-type "smtp" for a server's reply,
    // an "X-" type for this relay's own decision.
    if (r.diagnostic_is_smtp && !r.diagnostic.empty()) {
      out += fold_field("Diagnostic-Code", "smtp; " + one_line(r.diagnostic, Form::ascii));
    } else if (!r.outcome.empty() || !r.diagnostic.empty()) {
      std::string value = "X-danemta; " + one_line(r.outcome, Form::ascii);
      if (!r.outcome.empty() && !r.diagnostic.empty()) value += ":";
      value += " " + one_line(r.diagnostic, Form::ascii);
      out += fold_field("Diagnostic-Code", value);
    }
    if (r.last_attempt != 0) {
      out += fold_field("Last-Attempt-Date", rfc5322_date(r.last_attempt));
    }
  }
  return out;
}

}  // namespace

std::string header_section(const std::string& message) {
  std::string out;
  std::size_t pos = 0;
  while (pos < message.size()) {
    std::size_t eol = message.find('\n', pos);
    const std::size_t next = eol == std::string::npos ? message.size() : eol + 1;
    if (eol == std::string::npos) eol = message.size();
    std::string line = message.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    // A bare CR or a NUL would break the CRLF line structure of the report.
    for (char& c : line) {
      if (c == '\r' || c == '\0') c = ' ';
    }
    // Lines over the RFC 5322 limit continue on lines that start with a space.
    std::string folded;
    for (std::size_t off = 0; off < line.size();) {
      const std::size_t n = piece_length(line, off, off == 0 ? kMaxLine : kMaxLine - 1);
      if (off != 0) folded += ' ';
      folded.append(line, off, n);
      folded += "\r\n";
      off += n;
    }
    if (out.size() + folded.size() > kMaxHeaderSection) break;
    out += folded;
    pos = next;
  }
  return out;
}

std::string make_bounce(const BounceInput& input) {
  const std::vector<Group> groups = group_recipients(input.recipients);
  const std::string text = text_part(input, groups);
  const bool text_ascii = is_ascii(text);
  const std::string status = delivery_status_part(input);
  const std::string headers = header_section(input.original_headers);
  const bool headers_ascii = is_ascii(headers);

  const std::string host = host_atom(input.reporting_mta);
  const std::string seed = alnum_only(input.boundary_seed, kMaxBoundarySeed);
  std::string boundary = "=_danemta_" + std::to_string(input.now) + "_" + seed;
  for (int n = 1;
       text.find(boundary) != std::string::npos || status.find(boundary) != std::string::npos ||
       headers.find(boundary) != std::string::npos;
       ++n) {
    boundary = "=_danemta_" + std::to_string(input.now) + "_" + seed + "_" + std::to_string(n);
  }

  const bool failed = any_with(input.recipients, Action::failed) || input.recipients.empty();
  std::string out;
  out += fold_field("From", "Mail Delivery System <MAILER-DAEMON@" + host + ">");
  out += fold_field("To", "<" + one_line(input.original_sender, Form::utf8) + ">");
  out += fold_field("Subject", failed ? "Undelivered Mail Returned to Sender"
                                      : "Delayed Mail (still being retried)");
  out += fold_field("Date", rfc5322_date(input.now));
  out += fold_field("Message-ID", "<" + std::to_string(input.now) + "." +
                                      (seed.empty() ? std::string("dsn") : seed + ".dsn") + "@" +
                                      host + ">");
  out += fold_field("Auto-Submitted", "auto-replied");  // RFC 3834 section 5
  out += fold_field("MIME-Version", "1.0");
  // RFC 6522 section 3.
  out += fold_field("Content-Type",
                    "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
  out += "\r\n";
  out += "This is a MIME-encapsulated message.\r\n";
  out += "\r\n--" + boundary + "\r\n";
  out += "Content-Description: Notification\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += text_ascii ? "Content-Transfer-Encoding: 7bit\r\n"
                    : "Content-Transfer-Encoding: quoted-printable\r\n";
  out += "\r\n";
  out += text_ascii ? text : quoted_printable(text);
  out += "\r\n--" + boundary + "\r\n";
  out += "Content-Description: Delivery report\r\n";
  out += "Content-Type: message/delivery-status\r\n";
  out += "\r\n";
  out += status;
  out += "\r\n--" + boundary + "\r\n";
  out += "Content-Description: Undelivered message headers\r\n";
  out += "Content-Type: text/rfc822-headers\r\n";
  if (!headers_ascii) out += "Content-Transfer-Encoding: 8bit\r\n";
  out += "\r\n";
  out += headers;
  out += "\r\n--" + boundary + "--\r\n";
  return out;
}

}  // namespace danemta::dsn
