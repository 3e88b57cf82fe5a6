// libFuzzer target: what a client's AUTH sends (smtp/sasl.hpp) and the
// credential file (auth/credentials.hpp), on arbitrary bytes. Checks their
// contracts: strict base64 decodes only what encodes back to the same text;
// accepted PLAIN and LOGIN credentials are usable (non-empty, bounded, no
// NUL, CR or LF) and re-encode to the same message; a parsed credential
// file holds valid user names only. The first byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/credentials.hpp"
#include "smtp/sasl.hpp"

namespace {

using namespace danemta;

void check_usable(const smtp::Credentials& c) {
  for (const std::string* s : {&c.user, &c.password}) {
    if (s->empty() || s->size() > smtp::kMaxSaslField) __builtin_trap();
    if (s->find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) __builtin_trap();
  }
}

void base64(std::string_view text) {
  if (const auto decoded = smtp::decode_base64_strict(text)) {
    if (smtp::encode_base64(*decoded) != text) __builtin_trap();  // one encoding per text
  }
  const std::string encoded = smtp::encode_base64(text);
  const auto back = smtp::decode_base64_strict(encoded);
  if (!back || *back != text) __builtin_trap();
  const auto response = smtp::decode_response(text);
  if (text == "=" && (!response || !response->empty())) __builtin_trap();
}

void plain(std::string_view message) {
  const smtp::ParsedCredentials p = smtp::parse_plain(message);
  if (p.problem != smtp::CredentialProblem::none) {
    if (!p.credentials.password.empty()) __builtin_trap();  // never kept when refused
    return;
  }
  check_usable(p.credentials);
  // The same credentials as a fresh message parse the same.
  const std::string again =
      std::string(1, '\0') + p.credentials.user + '\0' + p.credentials.password;
  const smtp::ParsedCredentials q = smtp::parse_plain(again);
  if (q.problem != smtp::CredentialProblem::none || q.credentials.user != p.credentials.user ||
      q.credentials.password != p.credentials.password)
    __builtin_trap();
}

void login(std::string_view input) {
  const auto split = input.find('\n');
  const std::string user(input.substr(0, split));
  const std::string password(split == std::string_view::npos ? "" : input.substr(split + 1));
  const smtp::ParsedCredentials p = smtp::check_login(user, password);
  if (p.problem == smtp::CredentialProblem::none) check_usable(p.credentials);
}

void command(std::string_view arg) {
  const smtp::AuthCommand c = smtp::parse_auth_command(arg);
  if (c.problem != smtp::AuthCommand::Problem::none && c.initial_response) __builtin_trap();
  if (c.initial_response && c.initial_response->find(' ') != std::string::npos) __builtin_trap();
  const std::string user = smtp::printable_user(arg);
  if (user.size() > 64 || user.find_first_of("() \\\r\n") != std::string::npos) __builtin_trap();
}

void credentials(std::string_view text) {
  const auto parsed = auth::Credentials::parse(text);
  if (!parsed) {
    if (parsed.error().message.empty()) __builtin_trap();
    return;
  }
  std::size_t lines = 1;
  for (const char c : text) lines += c == '\n' ? 1 : 0;
  if (parsed->size() > lines) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0:
      base64(input);
      break;
    case 1:
      plain(input);
      break;
    case 2:
      login(input);
      break;
    case 3:
      command(input);
      break;
    default:
      credentials(input);
      break;
  }
  return 0;
}
