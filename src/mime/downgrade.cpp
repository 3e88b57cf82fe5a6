#include "mime/downgrade.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace danemta::mime {

namespace {

// RFC 5322 section 2.1.1 and RFC 2045 section 2.7: at most 998 octets between line ends.
constexpr std::size_t kMaxLine = 998;
// RFC 2045 section 6.7 (5) and 6.8: encoded lines of at most 76 characters.
constexpr std::size_t kEncodedLine = 76;
// Nesting of multiparts and message/rfc822 parts beyond this is refused, so
// that a hostile message cannot exhaust the stack.
constexpr int kMaxDepth = 40;

using Converted = tl::expected<std::string, DowngradeFailure>;

tl::unexpected<DowngradeFailure> unconvertible(std::string reason) {
  return tl::unexpected<DowngradeFailure>(
      DowngradeFailure{DowngradeError::unconvertible, "5.6.3", std::move(reason)});
}

tl::unexpected<DowngradeFailure> utf8_header() {
  return tl::unexpected<DowngradeFailure>(
      DowngradeFailure{DowngradeError::utf8_header, "5.6.7",
                       "the message has non-ASCII header fields (RFC 6532) and the next hop "
                       "does not support SMTPUTF8"});
}

// One line of `text` from `pos`: its content ends at `end` (before CRLF or a
// bare LF), the next line starts at `next`.
struct Line {
  std::size_t end;
  std::size_t next;
};

Line line_at(std::string_view text, std::size_t pos) {
  const std::size_t lf = text.find('\n', pos);
  if (lf == std::string_view::npos) return {text.size(), text.size()};
  const std::size_t end = lf > pos && text[lf - 1] == '\r' ? lf - 1 : lf;
  return {end, lf + 1};
}

bool has_long_line(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const Line l = line_at(text, pos);
    if (l.end - pos > kMaxLine) return true;
    pos = l.next;
  }
  return false;
}

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// RFC 5322 section 2.2 field-name (printable ASCII but ":"), then optional
// white space (obsolete syntax, section 4.5) and ":".
std::size_t field_name_length(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && line[n] > ' ' && line[n] < 127 && line[n] != ':') ++n;
  if (n == 0) return 0;
  std::size_t colon = n;
  while (colon < line.size() && is_wsp(line[colon])) ++colon;
  return colon < line.size() && line[colon] == ':' ? n : 0;
}

struct Field {
  std::string name;  // lower case
  std::size_t begin = 0;
  std::size_t end = 0;  // after the line end of its last line
  std::string value;    // unfolded, after the ":"
};

// A header section and where the body starts. The header ends at the first
// empty line, or leniently at the first line that is neither a field nor a
// continuation (then the body starts on that line, without a blank line).
struct Entity {
  std::vector<Field> fields;
  std::size_t header_end = 0;
  std::size_t body_begin = 0;
};

Entity split_entity(std::string_view text) {
  Entity e;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Line l = line_at(text, pos);
    const std::string_view line = text.substr(pos, l.end - pos);
    if (line.empty()) {
      e.header_end = pos;
      e.body_begin = l.next;
      return e;
    }
    if (is_wsp(line[0]) && !e.fields.empty()) {
      e.fields.back().end = l.next;
      e.fields.back().value += line;
    } else if (const std::size_t n = field_name_length(line); n != 0) {
      Field f;
      f.name = lower(line.substr(0, n));
      f.begin = pos;
      f.end = l.next;
      f.value = std::string(line.substr(line.find(':') + 1));
      e.fields.push_back(std::move(f));
    } else {
      break;
    }
    pos = l.next;
  }
  e.header_end = pos;
  e.body_begin = pos;
  return e;
}

const Field* find_field(const Entity& e, std::string_view name) {
  for (const Field& f : e.fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// Skips white space and RFC 5322 comments (nested parentheses).
void skip_cfws(std::string_view s, std::size_t& i) {
  while (i < s.size()) {
    if (is_wsp(s[i]) || s[i] == '\r' || s[i] == '\n') {
      ++i;
    } else if (s[i] == '(') {
      int depth = 0;
      while (i < s.size()) {
        const char c = s[i++];
        if (c == '\\') {
          if (i < s.size()) ++i;  // a quoted-pair
        } else if (c == '(') {
          ++depth;
        } else if (c == ')' && --depth == 0) {
          break;
        }
      }
    } else {
      return;
    }
  }
}

// RFC 2045 section 5.1 token.
bool is_token_char(char c) {
  constexpr std::string_view kTspecials = "()<>@,;:\\\"/[]?=";
  return c > ' ' && c < 127 && kTspecials.find(c) == std::string_view::npos;
}

std::string read_token(std::string_view s, std::size_t& i) {
  const std::size_t start = i;
  while (i < s.size() && is_token_char(s[i])) ++i;
  return std::string(s.substr(start, i - start));
}

struct ContentType {
  std::string type;      // "text", lower case
  std::string subtype;   // "plain", lower case
  std::string boundary;  // empty when absent
};

// RFC 2045 section 5.1 Content-Type; nullopt when the type/subtype does not
// parse (the part then counts as text/plain, section 5.2). Parameters after
// one that does not parse are ignored.
std::optional<ContentType> parse_content_type(std::string_view v) {
  ContentType ct;
  std::size_t i = 0;
  skip_cfws(v, i);
  ct.type = lower(read_token(v, i));
  skip_cfws(v, i);
  if (ct.type.empty() || i >= v.size() || v[i] != '/') return std::nullopt;
  ++i;
  skip_cfws(v, i);
  ct.subtype = lower(read_token(v, i));
  if (ct.subtype.empty()) return std::nullopt;
  for (;;) {
    skip_cfws(v, i);
    if (i >= v.size() || v[i] != ';') break;
    ++i;
    skip_cfws(v, i);
    const std::string attribute = lower(read_token(v, i));
    skip_cfws(v, i);
    if (attribute.empty() || i >= v.size() || v[i] != '=') break;
    ++i;
    skip_cfws(v, i);
    std::string value;
    if (i < v.size() && v[i] == '"') {
      ++i;
      bool closed = false;
      while (i < v.size()) {
        if (v[i] == '\\' && i + 1 < v.size()) {
          value += v[i + 1];
          i += 2;
        } else if (v[i] == '"') {
          ++i;
          closed = true;
          break;
        } else if (v[i] != '\r' && v[i] != '\n') {
          value += v[i++];
        } else {
          ++i;
        }
      }
      if (!closed) break;
    } else {
      value = read_token(v, i);
    }
    if (attribute == "boundary") ct.boundary = value;
  }
  return ct;
}

// The Content-Transfer-Encoding mechanism in lower case, "" when absent.
std::string transfer_encoding(const Entity& e) {
  const Field* f = find_field(e, "content-transfer-encoding");
  if (f == nullptr) return "";
  std::size_t i = 0;
  skip_cfws(f->value, i);
  const std::string mechanism = lower(read_token(f->value, i));
  return mechanism.empty() ? "unparsable" : mechanism;
}

// RFC 2045 section 6.1: the identity encodings, which say what the octets
// are rather than how they are encoded.
bool is_identity(std::string_view cte) {
  return cte.empty() || cte == "7bit" || cte == "8bit" || cte == "binary";
}

// RFC 2046 section 5.1.1: "--" boundary, then for the close delimiter "--",
// then only transport padding (linear white space).
enum class Delimiter { none, part, close };

Delimiter delimiter_kind(std::string_view line, std::string_view boundary) {
  if (line.size() < boundary.size() + 2 || !line.starts_with("--") ||
      line.substr(2, boundary.size()) != boundary) {
    return Delimiter::none;
  }
  std::string_view rest = line.substr(boundary.size() + 2);
  Delimiter kind = Delimiter::part;
  if (rest.starts_with("--")) {
    kind = Delimiter::close;
    rest.remove_prefix(2);
  }
  for (const char c : rest) {
    if (!is_wsp(c)) return Delimiter::none;
  }
  return kind;
}

Converted convert_entity(std::string_view text, bool is_message, bool digest_child, bool at_end,
                         int depth);

// A multipart body (RFC 2046 section 5.1.1): each body part converted, the
// preamble, delimiter lines and epilogue kept. `at_end` says the body ends
// the whole message text.
Converted convert_multipart(std::string_view body, std::string_view boundary, bool digest,
                            bool at_end, int depth) {
  struct Found {
    std::size_t begin;  // the delimiter line
    std::size_t next;   // the line after it
    Delimiter kind;
  };
  std::vector<Found> delimiters;
  for (std::size_t pos = 0; pos < body.size();) {
    const Line l = line_at(body, pos);
    const Delimiter kind = delimiter_kind(body.substr(pos, l.end - pos), boundary);
    if (kind != Delimiter::none) {
      delimiters.push_back({pos, l.next, kind});
      if (kind == Delimiter::close) break;
    }
    pos = l.next;
  }
  if (delimiters.empty()) {
    return unconvertible("a multipart body has no boundary delimiter line (RFC 2046 5.1.1)");
  }
  // RFC 2046 section 5.1.1: the preamble and epilogue are not part of any
  // body part and have no declared encoding; 8-bit text there has no 7-bit form.
  const std::string_view preamble = body.substr(0, delimiters.front().begin);
  const std::string_view epilogue = delimiters.back().kind == Delimiter::close
                                        ? body.substr(delimiters.back().next)
                                        : std::string_view();
  if (is_8bit(preamble) || is_8bit(epilogue) || has_long_line(preamble) ||
      has_long_line(epilogue)) {
    return unconvertible(
        "a multipart preamble or epilogue holds 8-bit text or overlong lines, which have no "
        "7-bit form");
  }

  std::string out(body.substr(0, delimiters.front().next));
  for (std::size_t i = 0; i < delimiters.size(); ++i) {
    if (delimiters[i].kind == Delimiter::close) break;
    const std::size_t begin = delimiters[i].next;
    const bool last = i + 1 == delimiters.size();
    std::size_t end = body.size();
    if (!last) {
      // The line end before a delimiter belongs to the delimiter.
      end = delimiters[i + 1].begin;
      if (end > begin && body[end - 1] == '\n') --end;
      if (end > begin && body[end - 1] == '\r') --end;
    }
    // Leniently, a last part without a close delimiter runs to the end.
    auto part =
        convert_entity(body.substr(begin, end - begin), false, digest, at_end && last, depth + 1);
    if (!part) return part;
    out += *part;
    if (!last) out += body.substr(end, delimiters[i + 1].next - end);
  }
  out += epilogue;
  return out;
}

// Replaces each Content-Transfer-Encoding field by one naming `cte` (at the
// first one's place, else after the last field) and appends `extra` fields.
// An empty `cte` keeps the fields as they are.
std::string rewrite_header(std::string_view text, const Entity& e, std::string_view cte,
                           std::string_view extra) {
  const std::string replacement = "Content-Transfer-Encoding: " + std::string(cte) + "\r\n";
  std::string out;
  std::size_t pos = 0;
  bool placed = cte.empty();
  for (const Field& f : e.fields) {
    if (f.name != "content-transfer-encoding" || cte.empty()) continue;
    out += text.substr(pos, f.begin - pos);
    if (!placed) out += replacement;
    placed = true;
    pos = f.end;
  }
  out += text.substr(pos, e.header_end - pos);
  if (!placed) out += replacement;
  out += extra;
  // The blank line as it was, or one where the body followed the fields directly.
  if (e.body_begin > e.header_end) {
    out += text.substr(e.header_end, e.body_begin - e.header_end);
  } else {
    out += "\r\n";
  }
  return out;
}

// `is_message`: the entity is a whole message (the top level or the content
// of a message/rfc822 part), so it may need MIME-Version and Content-Type.
Converted convert_entity(std::string_view text, bool is_message, bool digest_child, bool at_end,
                         int depth) {
  if (depth > kMaxDepth) return unconvertible("the MIME structure is nested too deeply");
  const Entity e = split_entity(text);
  const std::string_view header = text.substr(0, e.header_end);
  if (is_8bit(header)) return utf8_header();
  if (has_long_line(header)) {
    return unconvertible("a header line is longer than 998 octets (RFC 5322 2.1.1)");
  }
  const std::string_view body = text.substr(e.body_begin);
  if (!is_8bit(body) && !has_long_line(body)) return std::string(text);

  const Field* ct_field = find_field(e, "content-type");
  std::optional<ContentType> ct;
  if (ct_field != nullptr) ct = parse_content_type(ct_field->value);
  if (!ct) {
    ct = digest_child ? ContentType{"message", "rfc822", ""} : ContentType{"text", "plain", ""};
  }
  const std::string cte = transfer_encoding(e);

  std::string extra;
  if (is_message && find_field(e, "mime-version") == nullptr) extra += "MIME-Version: 1.0\r\n";

  if (ct->type == "multipart" || (ct->type == "message" && ct->subtype == "rfc822")) {
    // RFC 2045 section 6.4 and RFC 2046 section 5.2.1: composite types allow
    // only the identity encodings, so their parts are converted instead.
    if (!is_identity(cte)) {
      return unconvertible("a " + ct->type + "/" + ct->subtype + " part is encoded as " + cte +
                           " (RFC 2045 6.4) and holds 8-bit octets");
    }
    Converted inner;
    if (ct->type == "multipart") {
      if (ct->boundary.empty()) {
        return unconvertible("a multipart part has no boundary parameter (RFC 2046 5.1.1)");
      }
      inner = convert_multipart(body, ct->boundary, ct->subtype == "digest", at_end, depth);
    } else {
      inner = convert_entity(body, true, false, at_end, depth + 1);
    }
    if (!inner) return inner;
    // Its content is 7-bit now: a field saying 8bit or binary becomes 7bit.
    const bool relabel = cte == "8bit" || cte == "binary";
    return rewrite_header(text, e, relabel ? "7bit" : "", extra) + *inner;
  }
  if (ct->type == "message") {
    // RFC 2046 sections 5.2.2.1 and 5.2.3.1: these are 7bit only.
    return unconvertible("a " + ct->type + "/" + ct->subtype +
                         " part holds 8-bit octets, which it may not (RFC 2046 5.2)");
  }
  if (!is_identity(cte)) {
    return unconvertible("a part encoded as " + cte +
                         " holds 8-bit octets or overlong lines, so it cannot be decoded");
  }
  if (is_message && ct_field == nullptr) {
    // RFC 1428 section 3: the charset of unlabelled 8-bit text is unknown.
    extra += "Content-Type: text/plain; charset=unknown-8bit\r\n";
  }
  std::string encoded;
  if (ct->type == "text") {
    encoded = encode_quoted_printable(body);
    // A soft line break decodes to nothing and ends the text with a line end.
    if (at_end && !encoded.ends_with("\r\n")) encoded += "=\r\n";
    return rewrite_header(text, e, "quoted-printable", extra) + encoded;
  }
  encoded = encode_base64(body);
  if (at_end) encoded += "\r\n";
  return rewrite_header(text, e, "base64", extra) + encoded;
}

constexpr std::string_view kHex = "0123456789ABCDEF";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

bool is_8bit(std::string_view text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

tl::expected<std::string, DowngradeFailure> to_7bit(std::string_view message) {
  if (!is_8bit(message)) return std::string(message);
  auto out = convert_entity(message, true, false, true, 0);
  if (out && (is_8bit(*out) || has_long_line(*out))) {
    return unconvertible("the message has lines that cannot be converted to 7-bit MIME");
  }
  return out;
}

std::string encode_quoted_printable(std::string_view data) {
  std::string out;
  out.reserve(data.size() + data.size() / 4);
  std::size_t pos = 0;
  for (;;) {
    const std::size_t crlf = data.find("\r\n", pos);
    const std::string_view line =
        data.substr(pos, crlf == std::string_view::npos ? std::string_view::npos : crlf - pos);
    std::size_t column = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const auto c = static_cast<unsigned char>(line[i]);
      const bool last = i + 1 == line.size();
      // RFC 2045 6.7 rules (2) and (3): printable ASCII but "=" as is, and
      // white space unless it would end an encoded line.
      const bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
      std::size_t width = literal ? 1 : 3;
      // Rule (5): 76 characters, the last of a broken line being the "=".
      if (column + width > (last ? kEncodedLine : kEncodedLine - 1)) {
        out += "=\r\n";
        column = 0;
      }
      // A "." opening a line is escaped, so that no line of the part is a
      // lone "." whatever later handles it.
      if (literal && !(c == '.' && column == 0)) {
        out += static_cast<char>(c);
      } else {
        out += '=';
        out += kHex[c >> 4];
        out += kHex[c & 15];
        width = 3;
      }
      column += width;
    }
    if (crlf == std::string_view::npos) break;
    out += "\r\n";
    pos = crlf + 2;
  }
  return out;
}

std::string encode_base64(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4 + data.size() / 57 * 2);
  std::size_t column = 0;
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, data.size() - i);
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (n > 1) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    if (n > 2) v |= static_cast<unsigned char>(data[i + 2]);
    if (column == kEncodedLine) {
      out += "\r\n";
      column = 0;
    }
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += n > 1 ? kBase64[(v >> 6) & 63] : '=';
    out += n > 2 ? kBase64[v & 63] : '=';
    column += 4;
  }
  return out;
}

std::optional<std::string> decode_quoted_printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '=') {
      out += text[i];
    } else if (text.substr(i + 1, 2) == "\r\n") {
      i += 2;
    } else if (i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  std::uint32_t bits = 0;
  std::size_t count = 0;
  std::size_t padding = 0;
  for (const char c : text) {
    if (c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const std::size_t v = kBase64.find(c);
    if (v == std::string_view::npos || padding != 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count % 4 == 0) {
      out += static_cast<char>((bits >> 16) & 255);
      out += static_cast<char>((bits >> 8) & 255);
      out += static_cast<char>(bits & 255);
      bits = 0;
    }
  }
  switch (count % 4) {
    case 0:
      if (padding != 0) return std::nullopt;
      break;
    case 2:
      if (padding != 2) return std::nullopt;
      out += static_cast<char>((bits >> 4) & 255);
      break;
    case 3:
      if (padding != 1) return std::nullopt;
      out += static_cast<char>((bits >> 10) & 255);
      out += static_cast<char>((bits >> 2) & 255);
      break;
    default:
      return std::nullopt;
  }
  return out;
}

}  // namespace danemta::mime
