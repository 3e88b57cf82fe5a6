#include "mime/header.hpp"

#include <algorithm>
#include <cstdio>

#include "base/system.hpp"
#include "base/text.hpp"
#include "mime/downgrade.hpp"

namespace danemta::mime {

namespace {

// RFC 5322 3.6.8 ftext: printable US-ASCII except ":".
bool ftext(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 33 && u <= 126 && c != ':';
}

bool wsp(char c) {
  return c == ' ' || c == '\t';
}

// RFC 5322 3.2.3 atext, plus RFC 6532's UTF-8 octets.
bool atext(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// The name of a line classified as a field: up to the colon, without the
// white space before it.
std::string_view field_name(std::string_view line) {
  std::size_t colon = line.find(':');
  std::string_view name = line.substr(0, colon);
  while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
  return name;
}

// The field body after the colon with every line end removed: inside a
// field each one precedes a space or tab (RFC 5322 2.2.3).
std::string unfold(std::string_view raw) {
  std::string_view body = raw.substr(raw.find(':') + 1);
  std::string out;
  out.reserve(body.size());
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\n') continue;
    if (body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n') continue;
    out += body[i];
  }
  return out;
}

struct Token {
  enum class Kind { atom, quoted, literal, special, end };
  Kind kind = Kind::end;
  std::string text;

  bool word() const { return kind == Kind::atom || kind == Kind::quoted; }
  bool is(char c) const { return kind == Kind::special && text[0] == c; }
  std::string describe() const { return kind == Kind::end ? "the end" : "\"" + text + "\""; }
};

// RFC 5322 3.2: atoms, quoted strings (kept with quotes and backslashes),
// domain literals and specials; comments and white space separate tokens
// and are dropped.
Result<std::vector<Token>> tokenize(std::string_view v) {
  std::vector<Token> out;
  std::size_t i = 0;
  const std::size_t n = v.size();
  while (i < n) {
    const char c = v[i];
    if (wsp(c) || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '(') {
      int depth = 0;
      do {
        if (v[i] == '\\') {
          ++i;
        } else if (v[i] == '(') {
          ++depth;
        } else if (v[i] == ')') {
          --depth;
        }
        ++i;
      } while (i < n && depth > 0);
      if (depth > 0) return fail("a comment \"(...\" is not closed", Severity::permanent);
    } else if (c == '"' || c == '[') {
      const char close = c == '"' ? '"' : ']';
      const std::size_t start = i++;
      while (i < n && v[i] != close) i += v[i] == '\\' ? 2 : 1;
      if (i >= n)
        return fail(c == '"' ? "a quoted string is not closed" : "a domain literal is not closed",
                    Severity::permanent);
      ++i;
      out.push_back({c == '"' ? Token::Kind::quoted : Token::Kind::literal,
                     std::string(v.substr(start, i - start))});
    } else if (atext(c)) {
      const std::size_t start = i;
      while (i < n && atext(v[i])) ++i;
      out.push_back({Token::Kind::atom, std::string(v.substr(start, i - start))});
    } else if (std::string_view("<>@,;:.").find(c) != std::string_view::npos) {
      out.push_back({Token::Kind::special, std::string(1, c)});
      ++i;
    } else {
      char shown[8];
      std::snprintf(shown, sizeof shown, "0x%02x", static_cast<unsigned char>(c));
      return fail(std::string("unexpected character ") +
                      (c > 32 && c < 127 ? "\"" + std::string(1, c) + "\"" : shown),
                  Severity::permanent);
    }
  }
  return out;
}

// RFC 5322 3.4 address-list over the tokens, with the obsolete forms of
// section 4.4 (empty elements, source routes, CFWS around dots).
class AddressParser {
 public:
  explicit AddressParser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Result<void> list(std::vector<Mailbox>& out) {
    while (true) {
      while (peek().is(',')) ++p_;
      if (at_end()) return {};
      if (auto r = address(out); !r) return r;
      if (at_end()) return {};
      if (!peek().is(',')) return expected("\",\" between addresses");
    }
  }

 private:
  const Token& peek() const { return p_ < t_.size() ? t_[p_] : end_; }
  bool at_end() const { return p_ >= t_.size(); }
  tl::unexpected<Error> expected(const std::string& what) const {
    return fail("expected " + what + ", found " + peek().describe(), Severity::permanent);
  }

  // A group when a ":" comes before any "<", "@", ",", ";" or ">" (dots
  // may be part of its name: "Dr. Who:").
  bool group_ahead() const {
    for (std::size_t k = p_; k < t_.size(); ++k) {
      if (t_[k].kind != Token::Kind::special || t_[k].is('.')) continue;
      return t_[k].is(':');
    }
    return false;
  }
  // A name-addr when a "<" comes before the next "," or ";".
  bool angle_ahead() const {
    for (std::size_t k = p_; k < t_.size(); ++k) {
      if (t_[k].is('<')) return true;
      if (t_[k].is(',') || t_[k].is(';')) return false;
    }
    return false;
  }

  Result<void> address(std::vector<Mailbox>& out) {
    if (!group_ahead()) {
      auto m = mailbox();
      if (!m) return tl::unexpected(m.error());
      out.push_back(std::move(*m));
      return {};
    }
    // group = display-name ":" [group-list] ";" (RFC 5322 3.4)
    std::size_t words = 0;
    while (!peek().is(':')) {
      if (!peek().word() && !peek().is('.')) return expected("a group name before \":\"");
      words += peek().word() ? 1 : 0;
      ++p_;
    }
    if (words == 0) return expected("a group name before \":\"");
    ++p_;
    while (true) {
      while (peek().is(',')) ++p_;
      if (peek().is(';')) {
        ++p_;
        return {};
      }
      // A group left open at the end of the field: its members so far.
      if (at_end()) return {};
      auto m = mailbox();
      if (!m) return tl::unexpected(m.error());
      out.push_back(std::move(*m));
      if (!peek().is(',') && !peek().is(';') && !at_end())
        return expected("\",\" or \";\" in a group");
    }
  }

  Result<Mailbox> mailbox() {
    if (!angle_ahead()) return addr_spec();
    // name-addr = [display-name] angle-addr. Words, dots and "@" (an
    // unquoted address used as a name) may form the display name.
    while (!peek().is('<')) {
      if (!peek().word() && !peek().is('.') && !peek().is('@'))
        return expected("a display name before \"<\"");
      ++p_;
    }
    ++p_;
    if (peek().is('>')) return fail("an empty address \"<>\"", Severity::permanent);
    if (peek().is('@')) {
      // obs-route: "@a,@b:" before the address, dropped.
      while (!at_end() && !peek().is(':')) {
        if (!peek().is('@') && !peek().is(',') && !peek().is('.') &&
            peek().kind != Token::Kind::atom && peek().kind != Token::Kind::literal)
          return expected("a source route \"@domain,...:\"");
        ++p_;
      }
      if (at_end()) return expected("\":\" after a source route");
      ++p_;
    }
    auto m = addr_spec();
    if (!m) return m;
    if (!peek().is('>')) return expected("\">\" after the address");
    ++p_;
    return m;
  }

  Result<Mailbox> addr_spec() {
    Mailbox m;
    if (!peek().word()) return expected("an address");
    m.local_part = peek().text;
    ++p_;
    while (peek().is('.')) {
      ++p_;
      if (!peek().word()) return expected("a word after \".\" in the local part");
      m.local_part += "." + peek().text;
      ++p_;
    }
    if (!peek().is('@')) return m;
    ++p_;
    if (peek().kind == Token::Kind::literal) {
      m.domain = peek().text;
      ++p_;
      return m;
    }
    if (peek().kind != Token::Kind::atom) return expected("a domain after \"@\"");
    m.domain = peek().text;
    ++p_;
    while (peek().is('.')) {
      ++p_;
      if (peek().kind != Token::Kind::atom) return expected("a label after \".\" in the domain");
      m.domain += "." + peek().text;
      ++p_;
    }
    return m;
  }

  std::vector<Token> t_;
  std::size_t p_ = 0;
  Token end_;
};

}  // namespace

LineStart classify_line(std::string_view s) {
  if (s.empty()) return LineStart::undecided;
  if (s[0] == '\n') return LineStart::blank;
  if (s[0] == '\r') {
    if (s.size() == 1) return LineStart::undecided;
    return s[1] == '\n' ? LineStart::blank : LineStart::other;
  }
  if (wsp(s[0])) return LineStart::continuation;
  // The colon must come within the first kMaxFieldName + 1 octets.
  const std::size_t n = std::min(s.size(), kMaxFieldName + 1);
  std::size_t i = 0;
  while (i < n && ftext(s[i])) ++i;
  if (i == 0) return LineStart::other;
  while (i < n && wsp(s[i])) ++i;
  if (i < n) return s[i] == ':' ? LineStart::field : LineStart::other;
  return s.size() > kMaxFieldName ? LineStart::other : LineStart::undecided;
}

HeaderSection parse_header(std::string_view m) {
  HeaderSection h;
  std::size_t pos = 0;
  h.end = h.body = m.size();
  while (pos < m.size()) {
    const std::size_t eol = m.find('\n', pos);
    const std::size_t next = eol == std::string_view::npos ? m.size() : eol + 1;
    const std::string_view line = m.substr(pos, next - pos);
    LineStart kind = classify_line(line);
    if (kind == LineStart::undecided) kind = LineStart::other;  // the text ends inside it
    if (kind == LineStart::continuation && h.fields.empty()) kind = LineStart::other;
    if (kind == LineStart::blank || kind == LineStart::other) {
      h.end = pos;
      h.blank_line = kind == LineStart::blank;
      h.body = h.blank_line ? next : pos;
      break;
    }
    if (kind == LineStart::field) {
      HeaderField f;
      f.name = field_name(line);
      f.offset = pos;
      f.raw = line;
      h.fields.push_back(std::move(f));
    } else {
      HeaderField& last = h.fields.back();
      last.raw = m.substr(last.offset, next - last.offset);
    }
    pos = next;
  }
  for (HeaderField& f : h.fields) f.value = unfold(f.raw);
  return h;
}

bool has_field(const HeaderSection& header, std::string_view name) {
  return std::any_of(header.fields.begin(), header.fields.end(),
                     [name](const HeaderField& f) { return iequals(f.name, name); });
}

Result<std::vector<Mailbox>> address_list(std::string_view value) {
  auto tokens = tokenize(value);
  if (!tokens) return tl::unexpected(tokens.error());
  std::vector<Mailbox> out;
  AddressParser parser(std::move(*tokens));
  if (auto r = parser.list(out); !r) return tl::unexpected(r.error());
  return out;
}

std::string display_name(std::string_view name) {
  std::string clean;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    clean += (u < 32 || u == 127) ? ' ' : c;
  }
  const std::string_view text = trim(clean);
  if (text.empty()) return "";
  const bool ascii = std::none_of(text.begin(), text.end(),
                                  [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  if (!ascii) {
    // RFC 2047 section 2: encoded words of at most 75 characters (45
    // octets give 60 of base64), never splitting a UTF-8 sequence.
    std::string out;
    std::size_t at = 0;
    while (at < text.size()) {
      std::size_t len = std::min<std::size_t>(45, text.size() - at);
      while (at + len < text.size() && len > 0 &&
             (static_cast<unsigned char>(text[at + len]) & 0xC0) == 0x80)
        --len;
      if (len == 0) len = std::min<std::size_t>(45, text.size() - at);
      if (!out.empty()) out += ' ';
      out += "=?UTF-8?B?" + encode_base64(text.substr(at, len)) + "?=";
      at += len;
    }
    return out;
  }
  bool atoms = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ' ') {
      if (text[i - 1] == ' ') atoms = false;  // keeps runs of spaces as written
    } else if (!atext(text[i])) {
      atoms = false;
    }
  }
  if (atoms) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string message_id(std::int64_t now, std::uint64_t random, std::string_view host) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random));
  return "<" + utc_time(now, "%Y%m%dT%H%M%S") + "." + hex + "@" + std::string(host) + ">";
}

void HeaderCompleter::enter_body(std::string& out, bool add_blank_line) {
  // The empty line keeps the body the body after added fields; with none
  // added the text stays as it was.
  for (const Field& f : wanted_) out += f.text;
  if (add_blank_line && !wanted_.empty()) out += "\r\n";
  wanted_.clear();
  out += hold_;
  hold_.clear();
  body_ = true;
}

void HeaderCompleter::feed(std::string_view in, std::string& out) {
  // Enough octets to classify any line (classify_line never needs more).
  constexpr std::size_t kHold = kMaxFieldName + 2;
  while (!in.empty()) {
    if (body_) {
      out.append(in);
      return;
    }
    const std::size_t eol = in.find('\n');
    if (in_line_) {
      if (eol == std::string_view::npos) {
        out.append(in);
        return;
      }
      out.append(in.substr(0, eol + 1));
      in.remove_prefix(eol + 1);
      in_line_ = false;
      continue;
    }
    const std::size_t take =
        std::min(eol == std::string_view::npos ? in.size() : eol + 1, kHold - hold_.size());
    hold_.append(in.substr(0, take));
    in.remove_prefix(take);
    LineStart kind = classify_line(hold_);
    if (kind == LineStart::continuation && !any_field_) kind = LineStart::other;
    switch (kind) {
      case LineStart::undecided:
        break;
      case LineStart::field: {
        const std::string_view name = field_name(hold_);
        wanted_.erase(std::remove_if(wanted_.begin(), wanted_.end(),
                                     [name](const Field& f) { return iequals(f.name, name); }),
                      wanted_.end());
        any_field_ = true;
        [[fallthrough]];
      }
      case LineStart::continuation:
        in_line_ = hold_.back() != '\n';
        out += hold_;
        hold_.clear();
        break;
      case LineStart::blank:
        enter_body(out, false);
        break;
      case LineStart::other:
        enter_body(out, true);
        break;
    }
  }
}

void HeaderCompleter::finish(std::string& out) {
  if (body_) return;
  if (!hold_.empty()) {
    // The text ended inside an undecided line: it is the body.
    enter_body(out, true);
    return;
  }
  // A last field without its line end gets one before the added fields.
  if (in_line_ && !wanted_.empty()) out += "\r\n";
  in_line_ = false;
  enter_body(out, false);
}

}  // namespace danemta::mime
