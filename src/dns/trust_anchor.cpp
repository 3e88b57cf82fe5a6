#include "dns/trust_anchor.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "base/text.hpp"

namespace danemta::dns {

namespace {

// One zone-file entry: the tokens of one line, or of several lines joined by
// parentheses (RFC 1035 section 5.1).
struct Entry {
  int line = 0;
  bool indented = false;  // starts with white space: the previous owner applies
  std::vector<std::string_view> tokens;
};

// A token as it may appear in an error message: printable ASCII only, short.
std::string shown(std::string_view token) {
  constexpr std::size_t kMax = 80;
  std::string out;
  for (char ch : token.substr(0, kMax)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c > 0x20 && c < 0x7f) {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03u", c);
      out += buf;
    }
  }
  if (token.size() > kMax) out += "...";
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Decimal without sign, at most `max`.
std::optional<std::uint32_t> parse_number(std::string_view s, std::uint32_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > max) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

// RFC 2181 section 8: 0..2^31-1 seconds; also the unit form ("1h30m", "2d").
bool valid_ttl(std::string_view s) {
  constexpr std::uint64_t kMax = 2147483647;
  if (s.empty() || !is_digit(s.front())) return false;
  std::uint64_t total = 0;
  std::uint64_t value = 0;
  bool digits = false;
  bool units = false;
  for (char c : s) {
    if (is_digit(c)) {
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
      if (value > kMax) return false;
      digits = true;
      continue;
    }
    if (!digits) return false;
    std::uint64_t factor = 0;
    switch (c) {
      case 's':
      case 'S':
        factor = 1;
        break;
      case 'm':
      case 'M':
        factor = 60;
        break;
      case 'h':
      case 'H':
        factor = 3600;
        break;
      case 'd':
      case 'D':
        factor = 86400;
        break;
      case 'w':
      case 'W':
        factor = 604800;
        break;
      default:
        return false;
    }
    total += value * factor;
    if (total > kMax) return false;
    value = 0;
    digits = false;
    units = true;
  }
  if (digits && units) return false;  // "1h30": a unit form ends with a unit
  total += value;
  return total <= kMax;
}

// RFC 4034 appendix A.1 and its successors' mnemonics.
std::optional<std::uint8_t> parse_algorithm(std::string_view s) {
  if (auto n = parse_number(s, 255)) {
    if (*n == 0) return std::nullopt;
    return static_cast<std::uint8_t>(*n);
  }
  static constexpr std::pair<const char*, std::uint8_t> kNames[] = {{"RSAMD5", 1},
                                                                    {"DH", 2},
                                                                    {"DSA", 3},
                                                                    {"ECC", 4},
                                                                    {"RSASHA1", 5},
                                                                    {"DSA-NSEC3-SHA1", 6},
                                                                    {"RSASHA1-NSEC3-SHA1", 7},
                                                                    {"RSASHA256", 8},
                                                                    {"RSASHA512", 10},
                                                                    {"ECC-GOST", 12},
                                                                    {"ECDSAP256SHA256", 13},
                                                                    {"ECDSAP384SHA384", 14},
                                                                    {"ED25519", 15},
                                                                    {"ED448", 16},
                                                                    {"INDIRECT", 252},
                                                                    {"PRIVATEDNS", 253},
                                                                    {"PRIVATEOID", 254}};
  const std::string u = upper(s);
  for (const auto& [name, number] : kNames)
    if (u == name) return number;
  return std::nullopt;
}

// Checks a domain name in presentation form (RFC 1035 section 5.1 escapes):
// labels of 1..63 octets, at most 255 octets in wire form. Empty: valid.
std::string name_error(std::string_view name, bool& absolute) {
  absolute = false;
  if (name == ".") {
    absolute = true;
    return {};
  }
  std::size_t wire = 1;  // the root label
  std::size_t label = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '.') {
      if (label == 0) return "empty label";
      wire += label + 1;
      label = 0;
      if (i + 1 == name.size()) absolute = true;
      continue;
    }
    if (c == '\\') {
      if (i + 1 >= name.size()) return "'\\' at the end";
      if (is_digit(name[i + 1])) {
        if (i + 3 >= name.size() || !parse_number(name.substr(i + 1, 3), 255))
          return "bad \\DDD escape";
        i += 3;
      } else {
        ++i;
      }
    }
    if (++label > 63) return "label longer than 63 octets";
  }
  if (label > 0) wire += label + 1;
  if (wire > 255) return "name longer than 255 octets";
  return {};
}

// RFC 4648 section 4, padded; white space was removed by the tokenizer.
bool from_base64(std::string_view text, std::vector<std::uint8_t>& out) {
  if (text.empty() || text.size() % 4 != 0) return false;
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    int v = -1;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (is_digit(c))
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=' && i + 2 >= text.size()) {
      ++pad;
      continue;
    }
    if (v < 0 || pad > 0) return false;  // a non-alphabet byte, or data after '='
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xffu));
    }
  }
  return !out.empty();
}

// RFC 4034 appendix B, over the DNSKEY RDATA in wire form.
std::uint16_t key_tag(const TrustAnchor& a) {
  if (a.algorithm == 1) {  // appendix B.1: from the RSA modulus
    const auto& k = a.public_key;
    if (k.size() < 3) return 0;
    return static_cast<std::uint16_t>((k[k.size() - 3] << 8) | k[k.size() - 2]);
  }
  std::vector<std::uint8_t> rdata = {static_cast<std::uint8_t>(a.flags >> 8),
                                     static_cast<std::uint8_t>(a.flags & 0xff), 3, a.algorithm};
  rdata.insert(rdata.end(), a.public_key.begin(), a.public_key.end());
  std::uint32_t ac = 0;
  for (std::size_t i = 0; i < rdata.size(); ++i)
    ac += (i & 1) ? rdata[i] : static_cast<std::uint32_t>(rdata[i]) << 8;
  ac += (ac >> 16) & 0xffff;
  return static_cast<std::uint16_t>(ac & 0xffff);
}

// Why a DNSKEY cannot anchor validation, or empty when it can.
std::string unusable_reason(const TrustAnchor& a) {
  if (a.type != AnchorType::dnskey) return {};
  const std::string where =
      "line " + std::to_string(a.line) + ": DNSKEY flags " + std::to_string(a.flags);
  // RFC 4034 section 2.1.1: without the Zone Key bit the key signs nothing
  // in the zone.
  if ((a.flags & 0x0100) == 0) return where + " lack the Zone Key bit (256)";
  // RFC 5011 section 2.1: a revoked key must not be used as a trust anchor.
  if ((a.flags & 0x0080) != 0) return where + " have the REVOKE bit (128) set";
  return {};
}

std::string joined(const std::vector<std::string_view>& tokens, std::size_t from) {
  std::string out;
  for (std::size_t i = from; i < tokens.size(); ++i) out += tokens[i];
  return out;
}

struct Reader {
  std::string_view file;

  tl::unexpected<Error> error(int line, const std::string& what) const {
    return fail(
        "trust anchor file " + std::string(file) + " line " + std::to_string(line) + ": " + what,
        Severity::permanent);
  }

  // Splits the text into entries (RFC 1035 section 5.1): ';' comments,
  // parentheses joining lines, '\' escaping the next character.
  Result<std::vector<Entry>> entries(std::string_view text) const {
    std::vector<Entry> out;
    Entry cur;
    int line = 1;
    bool line_start = true;
    bool in_paren = false;
    int paren_line = 0;
    auto flush = [&] {
      if (!cur.tokens.empty()) out.push_back(std::move(cur));
      cur = Entry{};
    };
    auto special = [](char c) {
      return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '(' || c == ')' ||
             c == '"';
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (line_start) {
        line_start = false;
        if (!in_paren) {
          cur.line = line;
          cur.indented = c == ' ' || c == '\t';
        }
      }
      if (c == '\n') {
        ++line;
        line_start = true;
        if (!in_paren) flush();
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\r') continue;
      if (c == ';') {
        while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
        continue;
      }
      if (c == '(') {
        if (in_paren) return error(line, "'(' inside parentheses");
        in_paren = true;
        paren_line = line;
        continue;
      }
      if (c == ')') {
        if (!in_paren) return error(line, "')' without '('");
        in_paren = false;
        continue;
      }
      if (c == '"') return error(line, "quoted text has no place in a DS or DNSKEY record");
      const std::size_t start = i;
      while (i < text.size() && !special(text[i])) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] != '\n') ++i;
        ++i;
      }
      cur.tokens.push_back(text.substr(start, i - start));
      --i;
    }
    if (in_paren) return error(paren_line, "'(' is never closed");
    flush();
    return out;
  }

  // An owner name made absolute with $ORIGIN.
  Result<std::string> owner(int line, std::string_view token, const std::string& origin) const {
    if (token == "@") {
      if (origin.empty()) return error(line, "'@' needs a $ORIGIN line before it");
      return origin;
    }
    bool absolute = false;
    if (auto e = name_error(token, absolute); !e.empty())
      return error(line, "owner name " + shown(token) + ": " + e);
    if (absolute) return std::string(token);
    const std::string u = upper(token);
    if (u == "DS" || u == "DNSKEY" || u == "IN")
      return error(line, "the owner name is missing (an entry starts with it, \".\" for the root)");
    if (origin.empty())
      return error(line, "owner name " + shown(token) +
                             " is relative (no final '.') and no $ORIGIN line came before");
    std::string name = std::string(token) + (origin == "." ? "." : "." + origin);
    if (auto e = name_error(name, absolute); !e.empty())
      return error(line, "owner name " + shown(token) + ": " + e);
    return name;
  }

  // RFC 4034 section 5.3: key tag, algorithm, digest type, digest (hex,
  // white space allowed inside).
  Result<void> ds(const Entry& e, std::size_t k, TrustAnchor& a) const {
    const auto& t = e.tokens;
    if (t.size() < k + 4)
      return error(e.line, "DS needs a key tag, an algorithm, a digest type and a digest");
    auto tag = parse_number(t[k], 65535);
    if (!tag) return error(e.line, "DS key tag is not a number 0..65535: " + shown(t[k]));
    a.key_tag = static_cast<std::uint16_t>(*tag);
    auto alg = parse_algorithm(t[k + 1]);
    if (!alg)
      return error(e.line,
                   "DS algorithm is not a number 1..255 or a known name: " + shown(t[k + 1]));
    a.algorithm = *alg;
    auto dt = parse_number(t[k + 2], 255);
    if (!dt) return error(e.line, "DS digest type is not a number: " + shown(t[k + 2]));
    std::size_t hex_digits = 0;
    const char* name = "";
    switch (*dt) {
      case 1:
        hex_digits = 40, name = "SHA-1";  // RFC 4034 section 5.1.4
        break;
      case 2:
        hex_digits = 64, name = "SHA-256";  // RFC 4509
        break;
      case 4:
        hex_digits = 96, name = "SHA-384";  // RFC 6605
        break;
      default:
        return error(e.line, "DS digest type " + std::to_string(*dt) +
                                 " is not supported (1 SHA-1, 2 SHA-256, 4 SHA-384)");
    }
    a.digest_type = static_cast<std::uint8_t>(*dt);
    const std::string hex = joined(t, k + 3);
    for (char c : hex) {
      const bool ok = is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!ok) return error(e.line, "DS digest is not hex: " + shown(hex));
    }
    if (hex.size() != hex_digits)
      return error(e.line, "DS digest of type " + std::to_string(*dt) + " (" + name +
                               ") must have " + std::to_string(hex_digits) + " hex digits, not " +
                               std::to_string(hex.size()));
    if (!from_hex(hex, a.digest)) return error(e.line, "DS digest is not hex: " + shown(hex));
    return {};
  }

  // RFC 4034 section 2.2: flags, protocol, algorithm, public key (base64,
  // white space allowed inside).
  Result<void> dnskey(const Entry& e, std::size_t k, TrustAnchor& a) const {
    const auto& t = e.tokens;
    if (t.size() < k + 4)
      return error(e.line, "DNSKEY needs flags, a protocol, an algorithm and a public key");
    auto flags = parse_number(t[k], 65535);
    if (!flags) return error(e.line, "DNSKEY flags are not a number 0..65535: " + shown(t[k]));
    a.flags = static_cast<std::uint16_t>(*flags);
    if (parse_number(t[k + 1], 255) != 3u)  // RFC 4034 section 2.1.2
      return error(e.line, "DNSKEY protocol must be 3, not " + shown(t[k + 1]));
    auto alg = parse_algorithm(t[k + 2]);
    if (!alg)
      return error(e.line,
                   "DNSKEY algorithm is not a number 1..255 or a known name: " + shown(t[k + 2]));
    a.algorithm = *alg;
    const std::string b64 = joined(t, k + 3);
    if (!from_base64(b64, a.public_key))
      return error(e.line, "DNSKEY public key is not base64: " + shown(b64));
    a.key_tag = key_tag(a);
    return {};
  }

  Result<std::vector<TrustAnchor>> parse(std::string_view text) const {
    auto split = entries(text);
    if (!split) return tl::unexpected(split.error());
    std::vector<TrustAnchor> out;
    bool any_usable = false;
    std::string first_unusable;  // why the first unusable anchor cannot be used
    std::string origin;
    std::string last_owner;
    for (const Entry& e : *split) {
      const auto& t = e.tokens;
      if (!e.indented && t[0].front() == '$') {
        const std::string directive = upper(t[0]);
        if (directive == "$INCLUDE")
          return error(e.line, "$INCLUDE is not supported in a trust anchor file");
        if (directive != "$ORIGIN" && directive != "$TTL")
          return error(e.line, "unknown directive " + shown(t[0]));
        if (t.size() != 2) return error(e.line, directive + " takes one value");
        if (directive == "$TTL") {
          if (!valid_ttl(t[1])) return error(e.line, "$TTL is not a TTL: " + shown(t[1]));
          continue;
        }
        bool absolute = false;
        if (auto err = name_error(t[1], absolute); !err.empty())
          return error(e.line, "$ORIGIN " + shown(t[1]) + ": " + err);
        if (!absolute) return error(e.line, "$ORIGIN must end with '.': " + shown(t[1]));
        origin = std::string(t[1]);
        continue;
      }
      TrustAnchor a;
      a.line = e.line;
      std::size_t k = 0;
      if (e.indented) {
        if (last_owner.empty())
          return error(e.line, "entry starts with white space but no owner name came before");
        a.owner = last_owner;
      } else {
        auto name = owner(e.line, t[0], origin);
        if (!name) return tl::unexpected(name.error());
        a.owner = *name;
        k = 1;
      }
      // [TTL] [class] or [class] [TTL] (RFC 1035 section 5.1).
      bool seen_ttl = false;
      bool seen_class = false;
      while (k < t.size()) {
        const std::string u = upper(t[k]);
        if (is_digit(t[k].front())) {
          if (seen_ttl) return error(e.line, "two TTLs: " + shown(t[k]));
          if (!valid_ttl(t[k])) return error(e.line, "TTL is not a TTL: " + shown(t[k]));
          seen_ttl = true;
        } else if (u == "IN" || u == "CH" || u == "HS" || u == "CS" || u.rfind("CLASS", 0) == 0) {
          if (seen_class) return error(e.line, "two classes: " + shown(t[k]));
          if (u != "IN" && u != "CLASS1")
            return error(e.line, "class " + shown(t[k]) + " is not IN");
          seen_class = true;
        } else {
          break;
        }
        ++k;
      }
      if (k >= t.size()) return error(e.line, "no record type (DS or DNSKEY)");
      const std::string type = upper(t[k]);
      if (type == "DS") {
        a.type = AnchorType::ds;
        if (auto r = ds(e, k + 1, a); !r) return tl::unexpected(r.error());
      } else if (type == "DNSKEY") {
        a.type = AnchorType::dnskey;
        if (auto r = dnskey(e, k + 1, a); !r) return tl::unexpected(r.error());
      } else {
        return error(e.line, "record type " + shown(t[k]) + " is not DS or DNSKEY");
      }
      last_owner = a.owner;
      if (const std::string why = unusable_reason(a); why.empty())
        any_usable = true;
      else if (first_unusable.empty())
        first_unusable = why;
      out.push_back(std::move(a));
    }
    if (out.empty())
      return fail("trust anchor file " + std::string(file) + " holds no DS or DNSKEY record",
                  Severity::permanent);
    // A revoked key next to its successor is normal during a rollover (files
    // kept by RFC 5011 tools list both); with no usable key at all, every
    // lookup would fail.
    if (!any_usable)
      return fail("trust anchor file " + std::string(file) +
                      " holds no usable trust anchor: " + first_unusable,
                  Severity::permanent);
    return out;
  }
};

}  // namespace

Result<std::vector<TrustAnchor>> parse_trust_anchors(std::string_view text,
                                                     std::string_view file_name) {
  return Reader{file_name}.parse(text);
}

Result<std::vector<TrustAnchor>> read_trust_anchor_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fail("cannot read trust anchor file " + path + ": " + std::strerror(errno),
                Severity::permanent);
  if (S_ISDIR(st.st_mode))
    return fail("trust anchor file " + path + ": is a directory", Severity::permanent);
  constexpr off_t kMaxSize = 1 << 20;
  if (st.st_size > kMaxSize)
    return fail("trust anchor file " + path + " is larger than 1 MiB", Severity::permanent);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail("cannot read trust anchor file " + path + ": " + std::strerror(errno),
                Severity::permanent);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    return fail("cannot read trust anchor file " + path + ": read error", Severity::permanent);
  return parse_trust_anchors(text, path);
}

}  // namespace danemta::dns
