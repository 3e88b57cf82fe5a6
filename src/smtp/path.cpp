#include "smtp/path.hpp"

#include <cstdint>
#include <utility>

namespace danemta::smtp {

namespace {

using Kind = PathError::Kind;

tl::unexpected<PathError> error(Kind kind, std::string detail) {
  return tl::unexpected<PathError>(PathError{kind, std::move(detail)});
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_high(char c) {
  return static_cast<unsigned char>(c) >= 0x80;
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// RFC 5322 3.2.3 atext.
bool is_atext(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  for (const char a : std::string_view("!#$%&'*+-/=?^_`{|}~")) {
    if (c == a) return true;
  }
  return false;
}

// RFC 5321 4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126.
bool is_qtext(char c) {
  return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629 section 4,
// UTF8-2 / UTF8-3 / UTF8-4), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
  };
  const auto tail = [&](std::size_t k) { return b(k) >= 0x80 && b(k) <= 0xBF; };
  const unsigned c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return tail(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned hi = c == 0xED ? 0x9F : 0xBF;
    return (b(1) >= lo && b(1) <= hi && tail(2)) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
    return (b(1) >= lo && b(1) <= hi && tail(2) && tail(3)) ? 4 : 0;
  }
  return 0;
}

bool valid_label(std::string_view label, std::string* detail) {
  const auto why = [&](const char* d) {
    if (detail) *detail = d;
    return false;
  };
  if (label.empty()) return why("empty domain label");
  if (label.size() > kMaxDomainLabel) return why("domain label longer than 63 octets");
  if (label.front() == '-' || label.back() == '-') {
    return why("domain label starts or ends with a hyphen");
  }
  for (std::size_t i = 0; i < label.size(); ++i) {
    const char c = label[i];
    if (is_alpha(c) || is_digit(c) || c == '-') continue;
    if (is_high(c)) {
      const std::size_t n = utf8_length(label, i);
      if (n == 0) return why("invalid UTF-8 in domain");
      i += n - 1;
      continue;
    }
    return why("invalid character in domain");
  }
  return true;
}

// Octets that may appear in a Domain (the scan stops at anything else).
bool is_domain_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || is_high(c);
}

// RFC 5321 4.1.3 address-literal, after "[": dcontent (%d33-90 / %d94-126)
// up to "]". IPv4 literals are checked as dotted quads; others only for the
// general form `tag ":" dcontent`.
bool valid_address_literal(std::string_view inner) {
  if (inner.empty()) return false;
  for (const char c : inner) {
    if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']') return false;
  }
  if (is_digit(inner.front())) {
    int parts = 0;
    std::size_t i = 0;
    while (i <= inner.size()) {
      std::size_t j = i;
      unsigned value = 0;
      while (j < inner.size() && is_digit(inner[j]) && j - i < 3) {
        value = value * 10 + static_cast<unsigned>(inner[j] - '0');
        ++j;
      }
      if (j == i || value > 255) return false;
      ++parts;
      if (j == inner.size()) break;
      if (inner[j] != '.') return false;
      i = j + 1;
    }
    return parts == 4;
  }
  const auto colon = inner.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == inner.size()) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    if (!is_alpha(inner[i]) && !is_digit(inner[i]) && inner[i] != '-') return false;
  }
  return inner[colon - 1] != '-';
}

// Scans a Domain at s[i]; returns its end (the first octet that cannot be
// part of it).
std::size_t scan_domain(std::string_view s, std::size_t i) {
  while (i < s.size() && is_domain_char(s[i])) ++i;
  return i;
}

}  // namespace

bool valid_domain(std::string_view domain, std::string* detail) {
  if (domain.empty()) {
    if (detail) *detail = "empty domain";
    return false;
  }
  if (domain.size() > kMaxDomain) {
    if (detail) *detail = "domain longer than 255 octets";
    return false;
  }
  for (;;) {
    const auto dot = domain.find('.');
    if (!valid_label(domain.substr(0, dot), detail)) return false;
    if (dot == std::string_view::npos) return true;
    domain.remove_prefix(dot + 1);
  }
}

tl::expected<Path, PathError> parse_path(std::string_view s, PathKind kind) {
  if (s.empty() || s.front() != '<') return error(Kind::syntax, "path must start with <");
  std::size_t i = 1;
  Path path;
  const auto finish = [&](std::size_t close) -> tl::expected<Path, PathError> {
    // s[close] is ">".
    if (close + 1 > kMaxPath) return error(Kind::too_long, "path longer than 256 octets");
    path.rest = s.substr(close + 1);
    if (!path.rest.empty() && path.rest.front() != ' ') {
      return error(Kind::syntax, "text after > without a space");
    }
    return std::move(path);
  };

  if (s.size() > 1 && s[1] == '>') {
    if (kind != PathKind::reverse) return error(Kind::local_part, "empty path");
    path.null = true;
    return finish(1);
  }
  if (kind == PathKind::forward) {
    constexpr std::string_view kPostmaster = "<postmaster>";
    bool match = s.size() >= kPostmaster.size();
    for (std::size_t k = 0; match && k < kPostmaster.size(); ++k) {
      match = ascii_lower(s[k]) == kPostmaster[k];
    }
    if (match) {
      path.postmaster = true;
      path.local_part = std::string(s.substr(1, kPostmaster.size() - 2));
      path.mailbox = path.local_part;
      return finish(kPostmaster.size() - 1);
    }
  }

  // The source route (RFC 5321 4.1.2 A-d-l), dropped.
  if (i < s.size() && s[i] == '@') {
    for (;;) {
      ++i;  // "@"
      const std::size_t end = scan_domain(s, i);
      std::string why;
      if (!valid_domain(s.substr(i, end - i), &why)) {
        return error(Kind::source_route, "bad source route: " + why);
      }
      i = end;
      if (i < s.size() && s[i] == ',' && i + 1 < s.size() && s[i + 1] == '@') {
        ++i;
        continue;
      }
      if (i < s.size() && s[i] == ':') {
        ++i;
        break;
      }
      return error(Kind::source_route, "bad source route");
    }
  }

  // Local-part.
  const std::size_t local_begin = i;
  if (i < s.size() && s[i] == '"') {
    ++i;
    for (;;) {
      if (i >= s.size()) return error(Kind::syntax, "unterminated quoted string");
      const char c = s[i];
      if (c == '"') {
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= s.size() || s[i + 1] < 32 || s[i + 1] > 126) {
          return error(Kind::local_part, "bad quoted pair in local part");
        }
        i += 2;
      } else if (is_qtext(c)) {
        ++i;
      } else if (is_high(c)) {
        const std::size_t n = utf8_length(s, i);
        if (n == 0) return error(Kind::local_part, "invalid UTF-8 in local part");
        i += n;
      } else {
        return error(Kind::local_part, "invalid character in quoted local part");
      }
    }
  } else {
    bool atom_empty = true;
    for (; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '.') {
        if (atom_empty) return error(Kind::local_part, "empty atom in local part");
        atom_empty = true;
      } else if (is_atext(c)) {
        atom_empty = false;
      } else if (is_high(c)) {
        const std::size_t n = utf8_length(s, i);
        if (n == 0) return error(Kind::local_part, "invalid UTF-8 in local part");
        i += n - 1;
        atom_empty = false;
      } else {
        break;
      }
    }
    if (atom_empty) {
      return error(Kind::local_part,
                   i == local_begin ? "empty local part" : "local part ends with a dot");
    }
  }
  const std::size_t local_end = i;
  if (i >= s.size()) return error(Kind::syntax, "missing >");
  if (s[i] != '@') {
    return error(Kind::local_part,
                 s[i] == '>' ? "missing @domain" : "invalid character in local part");
  }
  if (local_end - local_begin > kMaxLocalPart) {
    return error(Kind::too_long, "local part longer than 64 octets");
  }
  ++i;

  // Domain / address-literal.
  const std::size_t domain_begin = i;
  if (i < s.size() && s[i] == '[') {
    const auto close = s.find(']', i);
    if (close == std::string_view::npos) return error(Kind::syntax, "missing ]");
    if (!valid_address_literal(s.substr(i + 1, close - i - 1))) {
      return error(Kind::domain, "bad address literal");
    }
    path.address_literal = true;
    i = close + 1;
  } else {
    i = scan_domain(s, i);
    if (i >= s.size()) return error(Kind::syntax, "missing >");
    if (s[i] != '>') return error(Kind::domain, "invalid character in domain");
    if (i - domain_begin > kMaxDomain) {
      return error(Kind::too_long, "domain longer than 255 octets");
    }
    std::string why;
    if (!valid_domain(s.substr(domain_begin, i - domain_begin), &why)) {
      return error(Kind::domain, why);
    }
  }
  if (i >= s.size()) return error(Kind::syntax, "missing >");
  if (s[i] != '>') return error(Kind::domain, "text after the address literal");

  path.local_part = std::string(s.substr(local_begin, local_end - local_begin));
  path.domain = std::string(s.substr(domain_begin, i - domain_begin));
  path.domain_lower = path.domain;
  for (char& c : path.domain_lower) c = ascii_lower(c);
  path.mailbox = path.local_part + "@" + path.domain;
  return finish(i);
}

}  // namespace danemta::smtp
