// Typed DNS answers as the rest of danemta sees them. No I/O here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace danemta::dns {

// The validator's verdict on one answer (RFC 4033 section 5). indeterminate is a
// lookup that produced no verdict (SERVFAIL without a validation failure,
// timeout, resolver error): it is never read as "no records".
enum class Security { secure, insecure, bogus, indeterminate };

std::string_view to_string(Security s);

enum class RrType : std::uint16_t {
  A = 1,
  CNAME = 5,
  MX = 15,
  TXT = 16,
  AAAA = 28,
  DNSKEY = 48,  // only for the resolver's own health probe; records are not kept
  TLSA = 52,
};

std::string_view to_string(RrType t);

struct MxRecord {
  std::uint16_t preference = 0;
  std::string exchange;  // normalized (lower case, no trailing dot); "" is the root: a null MX
};

struct TlsaRecord {
  std::uint8_t usage = 0;
  std::uint8_t selector = 0;
  std::uint8_t mtype = 0;
  std::vector<std::uint8_t> data;

  friend bool operator==(const TlsaRecord&, const TlsaRecord&) = default;
};

// "3 1 1 abcd..." (presentation form, lower-case hex).
std::string to_string(const TlsaRecord& r);

struct CnameLink {
  std::string owner;      // normalized
  std::string target;     // normalized
  std::uint32_t ttl = 0;  // the CNAME record's
};

struct Answer {
  std::string qname;  // normalized, as asked
  RrType qtype = RrType::A;

  Security security = Security::indeterminate;
  int rcode = 0;          // DNS RCODE: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN
  bool nxdomain = false;  // the name does not exist
  bool havedata = false;  // records of qtype exist (false with rcode 0 is NODATA)
  // The smallest TTL of the records of qtype; for NXDOMAIN and NODATA the
  // negative TTL (RFC 2308 section 5: the smaller of the SOA's TTL and its
  // MINIMUM field), 0 when the response carries no SOA. The aliases on the
  // way have their own (cname_chain).
  std::uint32_t ttl = 0;

  // Validator reason for a bogus answer, or the lookup error for an
  // indeterminate one. Empty otherwise.
  std::string why;

  // CNAME links followed from qname, in order; empty when qname is not an alias.
  std::vector<CnameLink> cname_chain;
  std::string canonical_name;  // normalized; equals qname when there is no alias

  // Records of qtype, parsed. Only the vector matching qtype is filled.
  std::vector<MxRecord> mx;
  std::vector<std::string> addresses;  // A and AAAA in text form
  std::vector<TlsaRecord> tlsa;
  std::vector<std::string> txt;  // each TXT RR's strings concatenated

  // A record of qtype whose RDATA could not be parsed makes the whole answer
  // indeterminate; the parse error is kept here as well as in `why`.
  std::string malformed;

  // Set on an indeterminate answer when danemta's own resolver was not
  // working at the time (the probe of the root's DNSKEY RRset failed too:
  // forwarders or root unreachable, trust anchor not primed). It then says
  // nothing about the name asked (DESIGN.md section 8).
  bool local_failure = false;

  // A lookup that answered authoritatively: records or a proven absence.
  bool answered() const { return security == Security::secure || security == Security::insecure; }
};

}  // namespace danemta::dns
