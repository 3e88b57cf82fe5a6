// The reverse- and forward-path of MAIL FROM and RCPT TO (RFC 5321 4.1.2),
// parsed by the grammar, with RFC 6531 UTF-8 in local parts and domains.
// Pure: no I/O.
//
//   Path         = "<" [ A-d-l ":" ] Mailbox ">"
//   A-d-l        = At-domain *( "," At-domain )      ; source route
//   At-domain    = "@" Domain
//   Mailbox      = Local-part "@" ( Domain / address-literal )
//   Local-part   = Dot-string / Quoted-string
//   Dot-string   = Atom *( "." Atom )                ; Atom = 1*atext
//   Quoted-string = DQUOTE *( qtextSMTP / "\" %d32-126 ) DQUOTE
//   Domain       = sub-domain *( "." sub-domain )    ; Let-dig [Ldh-str]
//
// Decisions:
// - A source route is parsed by the grammar (every At-domain must be a valid
//   Domain) and dropped (RFC 5321 4.1.1.3, appendix C). So
//   `<@"a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example>` is refused: `"a` is
//   no Domain, and no other reading makes "@..." a Mailbox (a local part
//   never starts with "@"). Nothing that was inside the brackets ever ends
//   up in the parameters, nor parameters in the mailbox.
// - Non-ASCII octets must be well-formed UTF-8 (RFC 6531 3.3, UTF8-non-ascii);
//   they are allowed in atoms, quoted strings and domain labels (as U-labels,
//   not checked further against IDNA).
// - Address literals (`[192.0.2.1]`, `[IPv6:...]`) are parsed and reported
//   (Path::address_literal); the server refuses them (553 5.1.2) because
//   danemta routes by DNS only, so that DNSSEC and DANE (RFC 7672) apply to
//   every hop. The parser does not decide that policy.
// - Limits of RFC 5321 4.5.3.1: local part 64 octets, domain 255, path 256
//   (the whole "<...>" as written, source route included).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace danemta::smtp {

inline constexpr std::size_t kMaxLocalPart = 64;    // RFC 5321 4.5.3.1.1
inline constexpr std::size_t kMaxDomain = 255;      // RFC 5321 4.5.3.1.2
inline constexpr std::size_t kMaxPath = 256;        // RFC 5321 4.5.3.1.3
inline constexpr std::size_t kMaxDomainLabel = 63;  // RFC 1035 2.3.4

struct Path {
  // The mailbox as it goes to the next hop, without the brackets: the source
  // route removed, the local part byte for byte as written (quotes and
  // escapes kept), "@", the domain as written. "" for the null reverse-path.
  std::string mailbox;
  std::string local_part;    // as written, quotes included
  std::string domain;        // as written ("[...]" for an address literal)
  std::string domain_lower;  // `domain` with ASCII letters lower-cased: for routing
  bool address_literal = false;
  bool null = false;        // "<>" (reverse-path only)
  bool postmaster = false;  // RCPT's "<Postmaster>" without a domain (4.1.1.3)
  // What follows ">": "" or starting with a space (the parameters). Points
  // into the parsed input.
  std::string_view rest;
};

struct PathError {
  enum class Kind {
    syntax,        // not "<...>" followed by nothing or a space
    source_route,  // the A-d-l is not valid
    local_part,    // bad local part (or no "@domain")
    domain,        // bad domain or address literal
    too_long,      // over a limit of RFC 5321 4.5.3.1
  };
  Kind kind = Kind::syntax;
  std::string detail;  // short, ASCII, for a reply text: "empty domain label"
};

enum class PathKind {
  reverse,  // MAIL FROM: "<>" allowed
  forward,  // RCPT TO: "<Postmaster>" allowed
};

// Parses the path at the start of `s` (its first character must be "<").
tl::expected<Path, PathError> parse_path(std::string_view s, PathKind kind);

// True when `domain` is a valid Domain by the rules above (labels of
// letters, digits, hyphens and UTF-8, no label empty, over 63 octets or
// starting or ending with "-", at most 255 octets); `detail` says why not.
bool valid_domain(std::string_view domain, std::string* detail = nullptr);

}  // namespace danemta::smtp
