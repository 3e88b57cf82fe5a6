// The trust anchor file: DS and DNSKEY records in zone-file syntax (RFC 1035
// section 5.1), checked before libunbound reads it. libunbound reads the file
// only when the first query starts and then fails every lookup, so each
// message would be deferred; a mistake found here is a start-up error that
// names the file, the line and the field. Pure: no I/O except
// read_trust_anchor_file.
//
// Accepted: one record per entry, `OWNER [TTL] [IN] TYPE RDATA` with TTL and
// class in either order (RFC 1035 section 5.1), TYPE DS (RFC 4034 section 5.3)
// or DNSKEY (RFC 4034 section 2.2); comments from ';' to the end of the line;
// parentheses continuing an entry over several lines; an entry starting with
// white space reusing the previous owner; `$ORIGIN` (absolute name) and `$TTL`.
// Refused: `$INCLUDE`, other record types and classes, relative owner names
// without `$ORIGIN`, and a file with no record at all.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace danemta::dns {

enum class AnchorType { ds, dnskey };

struct TrustAnchor {
  int line = 0;       // where the entry starts (1-based)
  std::string owner;  // absolute, presentation form as written ("." for the root)
  AnchorType type = AnchorType::ds;
  std::uint8_t algorithm = 0;  // RFC 4034 appendix A.1 number
  // DS (RFC 4034 section 5.1): key tag, digest type and digest.
  std::uint16_t key_tag = 0;  // for DNSKEY: computed as in RFC 4034 appendix B
  std::uint8_t digest_type = 0;
  std::vector<std::uint8_t> digest;
  // DNSKEY (RFC 4034 section 2.1): flags, protocol (always 3) and public key.
  std::uint16_t flags = 0;
  std::vector<std::uint8_t> public_key;
};

// Parses the text of a trust anchor file. `file_name` goes into the error
// messages: "trust anchor file NAME line N: WHAT". Errors are permanent.
Result<std::vector<TrustAnchor>> parse_trust_anchors(std::string_view text,
                                                     std::string_view file_name);

// Reads and parses the file at `path`; an unreadable file or a directory is
// an error naming the path.
Result<std::vector<TrustAnchor>> read_trust_anchor_file(const std::string& path);

}  // namespace danemta::dns
