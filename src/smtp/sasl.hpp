// The client's side of SMTP AUTH (RFC 4954) as the server reads it: the AUTH
// command line, base64 responses and the PLAIN (RFC 4616) and LOGIN
// mechanisms' messages. Pure: no I/O, no credentials.
//
// Decisions:
// - Base64 is RFC 4648 section 4 strictly (RFC 4954 section 4: a response
//   that is not valid base64 is refused with 501 5.5.2): the standard
//   alphabet, length a multiple of 4, "=" padding only at the end and only as
//   much as the length needs, no white space, and the unused bits of the last
//   symbol zero (so one text decodes from exactly one encoding).
// - "=" alone is an empty response (RFC 4954 section 4), "*" a cancellation.
// - PLAIN is "authzid NUL authcid NUL passwd" (RFC 4616 section 2): exactly
//   two NULs, authcid and passwd not empty. An authzid other than empty or
//   the authcid asks to act as someone else, which danemta does not offer:
//   the caller refuses it like a wrong password.
// - LOGIN (draft-murchison-sasl-login) sends the user name and the password
//   as two base64 responses; an initial response on the AUTH line is the
//   user name.
// - A user name or password is at most kMaxSaslField octets and holds no
//   NUL, CR or LF (crypt(3) takes C strings; a log line must stay one line).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace danemta::smtp {

inline constexpr std::size_t kMaxSaslField = 1024;

// RFC 4648 section 4 base64, strict as above; nullopt when malformed.
std::optional<std::string> decode_base64_strict(std::string_view text);
// Standard base64 with padding, no line breaks.
std::string encode_base64(std::string_view data);

enum class Mechanism { plain, login };

// "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", split: the mechanism (case-insensitive)
// and the initial response as written (still base64; "=" for empty).
struct AuthCommand {
  enum class Problem {
    none,
    syntax,       // no mechanism, or more than two words: 501 5.5.4
    unsupported,  // a mechanism other than PLAIN and LOGIN: 504 5.5.4
  };
  Problem problem = Problem::none;
  Mechanism mechanism = Mechanism::plain;
  std::optional<std::string> initial_response;
};
// `arg` is what follows "AUTH " on the command line.
AuthCommand parse_auth_command(std::string_view arg);

// What a client's response is, before decoding.
enum class ResponseKind { data, cancel };
ResponseKind response_kind(std::string_view line);

// A response's octets: "=" is empty; otherwise strict base64. nullopt when
// malformed.
std::optional<std::string> decode_response(std::string_view line);

struct Credentials {
  std::string user;
  std::string password;
};

// Why a PLAIN or LOGIN message was refused (for the log; never the password).
enum class CredentialProblem {
  none,
  malformed,      // not "authzid NUL authcid NUL passwd", or an empty part
  bad_character,  // NUL, CR or LF in a user name or password
  too_long,       // a part over kMaxSaslField
  authzid,        // authorization identity other than the user (not offered)
};
std::string_view to_string(CredentialProblem p);

struct ParsedCredentials {
  CredentialProblem problem = CredentialProblem::none;
  Credentials credentials;  // user set whenever it could be read
};

// The decoded PLAIN message (RFC 4616 section 2).
ParsedCredentials parse_plain(std::string_view message);
// LOGIN's two decoded responses.
ParsedCredentials check_login(std::string user, std::string password);

// A user name as it may appear in a log line or in a Received: field's
// comment: printable ASCII other than '(', ')' and '\' kept, every other
// octet replaced by '?', cut to 64 octets.
std::string printable_user(std::string_view user);

}  // namespace danemta::smtp
