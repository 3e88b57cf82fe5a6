#include "smtp/sasl.hpp"

#include <array>
#include <cstdint>

namespace danemta::smtp {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of a base64 symbol, or -1.
constexpr std::array<int, 256> make_values() {
  std::array<int, 256> v{};
  for (int& x : v) x = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i)
    v[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int>(i);
  return v;
}
constexpr std::array<int, 256> kValues = make_values();

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

bool usable(std::string_view s) {
  for (const char c : s)
    if (c == '\0' || c == '\r' || c == '\n') return false;
  return true;
}

ParsedCredentials checked(std::string user, std::string password) {
  ParsedCredentials p;
  if (user.empty() || password.empty()) {
    p.problem = CredentialProblem::malformed;
  } else if (user.size() > kMaxSaslField || password.size() > kMaxSaslField) {
    p.problem = CredentialProblem::too_long;
  } else if (!usable(user) || !usable(password)) {
    p.problem = CredentialProblem::bad_character;
  }
  if (user.size() <= kMaxSaslField && usable(user)) p.credentials.user = std::move(user);
  if (p.problem == CredentialProblem::none) p.credentials.password = std::move(password);
  return p;
}

}  // namespace

std::optional<std::string> decode_base64_strict(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  const std::size_t symbols = text.size() - padding;
  std::uint32_t bits = 0;
  int count = 0;
  for (std::size_t i = 0; i < symbols; ++i) {
    const int v = kValues[static_cast<unsigned char>(text[i])];
    if (v < 0) return std::nullopt;  // outside the alphabet, or '=' inside
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out += static_cast<char>((bits >> 16) & 0xff);
      out += static_cast<char>((bits >> 8) & 0xff);
      out += static_cast<char>(bits & 0xff);
      bits = 0;
      count = 0;
    }
  }
  // RFC 4648 section 3.5: the pad bits of the last symbol are zero.
  if (padding == 2) {
    if ((bits & 0x0f) != 0) return std::nullopt;
    out += static_cast<char>((bits >> 4) & 0xff);
  } else if (padding == 1) {
    if ((bits & 0x03) != 0) return std::nullopt;
    out += static_cast<char>((bits >> 10) & 0xff);
    out += static_cast<char>((bits >> 2) & 0xff);
  }
  return out;
}

std::string encode_base64(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t n =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8) |
        static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  const std::size_t rest = data.size() - i;
  if (rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

AuthCommand parse_auth_command(std::string_view arg) {
  AuthCommand c;
  const auto space = arg.find(' ');
  const std::string_view mechanism = arg.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? std::string_view() : arg.substr(space);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  if (mechanism.empty() || rest.find(' ') != std::string_view::npos) {
    c.problem = AuthCommand::Problem::syntax;
    return c;
  }
  if (iequals(mechanism, "PLAIN")) {
    c.mechanism = Mechanism::plain;
  } else if (iequals(mechanism, "LOGIN")) {
    c.mechanism = Mechanism::login;
  } else {
    c.problem = AuthCommand::Problem::unsupported;
    return c;
  }
  if (!rest.empty()) c.initial_response = std::string(rest);
  return c;
}

ResponseKind response_kind(std::string_view line) {
  return line == "*" ? ResponseKind::cancel : ResponseKind::data;
}

std::optional<std::string> decode_response(std::string_view line) {
  if (line == "=") return std::string();
  if (line.empty()) return std::nullopt;
  return decode_base64_strict(line);
}

std::string_view to_string(CredentialProblem p) {
  switch (p) {
    case CredentialProblem::none:
      return "none";
    case CredentialProblem::malformed:
      return "malformed response";
    case CredentialProblem::bad_character:
      return "control character in the user name or password";
    case CredentialProblem::too_long:
      return "user name or password too long";
    case CredentialProblem::authzid:
      return "authorization identity not allowed";
  }
  return "malformed response";
}

ParsedCredentials parse_plain(std::string_view message) {
  const auto first = message.find('\0');
  const auto second = first == std::string_view::npos ? first : message.find('\0', first + 1);
  if (second == std::string_view::npos) {
    ParsedCredentials p;
    p.problem = CredentialProblem::malformed;
    return p;
  }
  const std::string_view authzid = message.substr(0, first);
  const std::string_view authcid = message.substr(first + 1, second - first - 1);
  const std::string_view password = message.substr(second + 1);
  ParsedCredentials p = checked(std::string(authcid), std::string(password));
  // A third NUL makes the password unusable: checked() refuses it.
  if (p.problem == CredentialProblem::none && !authzid.empty() && authzid != authcid) {
    p.problem = CredentialProblem::authzid;
    p.credentials.password.clear();
  }
  return p;
}

ParsedCredentials check_login(std::string user, std::string password) {
  return checked(std::move(user), std::move(password));
}

std::string printable_user(std::string_view user) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (const char c : user.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    const bool keep = u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '\\';
    out += keep ? c : '?';
  }
  return out;
}

}  // namespace danemta::smtp
