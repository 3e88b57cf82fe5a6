// DNS wire format (RFC 1035 section 4) for the answers libunbound returns, and
// the mapping of a libunbound result to a dns::Answer. Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "dns/answer.hpp"
#include "dns/resolver.hpp"

namespace danemta::dns {

namespace wire {

using Bytes = std::span<const std::uint8_t>;

// RFC 1035 section 4.1.1.
struct Header {
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  int rcode = 0;  // low 4 bits of flags
  std::uint16_t qdcount = 0;
  std::uint16_t ancount = 0;
  std::uint16_t nscount = 0;
  std::uint16_t arcount = 0;
};

// One resource record of the answer section (RFC 1035 section 4.1.3). The
// RDATA stays in the packet: names inside it may be compressed against it.
struct Record {
  std::string owner;  // normalized presentation form; "" is the root
  std::uint16_t type = 0;
  std::uint16_t rclass = 0;
  std::uint32_t ttl = 0;
  std::size_t rdata_offset = 0;  // into the packet
  std::uint16_t rdlength = 0;    // rdata_offset + rdlength <= packet size
};

struct Message {
  Header header;
  std::vector<Record> answers;
};

// Reads the domain name at `offset`, following compression pointers (RFC 1035
// section 4.1.4), and advances `offset` past the name's bytes at that position.
// The bytes read in place must lie before `limit`; a pointer must point
// strictly before the label it replaces (so no loops) and inside the packet.
// Labels are at most 63 octets and the name at most 255 (RFC 1035 section
// 2.3.4). Result: lower case, labels joined by '.', no trailing dot, "" for
// the root; '.', '\\' and bytes outside printable ASCII escaped as \DDD
// (RFC 1035 section 5.1).
Result<std::string> read_name(Bytes packet, std::size_t& offset, std::size_t limit);

// Header, question section skipped, answer section records. Authority and
// additional sections are not read.
Result<Message> parse_message(Bytes packet);

// The negative-caching TTL of an NXDOMAIN or NODATA response (RFC 2308
// section 5): the smallest of the TTL and the MINIMUM field of each SOA
// record (class IN) in the authority section. nullopt when the section has
// no SOA or the packet does not parse up to its end.
std::optional<std::uint32_t> negative_ttl(Bytes packet);

// RDATA parsers (record from parse_message over the same packet). Errors say
// what is wrong with the RDATA without naming the record.
Result<std::string> parse_a(Bytes packet, const Record& rr);      // RFC 1035 3.4.1
Result<std::string> parse_aaaa(Bytes packet, const Record& rr);   // RFC 3596 2.2
Result<MxRecord> parse_mx(Bytes packet, const Record& rr);        // RFC 1035 3.3.9, RFC 7505
Result<std::string> parse_cname(Bytes packet, const Record& rr);  // RFC 1035 3.3.1
Result<TlsaRecord> parse_tlsa(Bytes packet, const Record& rr);    // RFC 6698 2.1
// The RR's character-strings (RFC 1035 3.3.14) concatenated.
Result<std::string> parse_txt(Bytes packet, const Record& rr);

}  // namespace wire

// What libunbound returned for one query (struct ub_result and the callback's
// err), copied so that the mapping to an Answer is a pure function.
struct RawResult {
  int err = 0;           // ub_callback err; nonzero: no result
  std::string err_text;  // ub_strerror(err) when err != 0
  int rcode = 0;         // DNS RCODE
  bool secure = false;
  bool bogus = false;
  bool nxdomain = false;
  bool havedata = false;
  std::string why_bogus;
  std::vector<std::uint8_t> packet;  // ub_result->answer_packet
};

// The validator's verdict and the parsed records for `q`:
//   secure -> secure; bogus -> bogus (why = why_bogus);
//   err != 0, or an RCODE other than NOERROR/NXDOMAIN without a verdict ->
//   indeterminate (why says what happened); otherwise insecure.
// NXDOMAIN and NODATA keep the verdict. A record of qtype (or a CNAME on the
// chain) that does not parse, or a packet that does not parse, makes a secure
// or insecure answer indeterminate with `malformed` and `why` set.
Answer build_answer(const Query& q, const RawResult& raw);

// An indeterminate Answer for `q` that never reached the validator (timeout,
// resolver failure); `why` says what happened.
Answer indeterminate_answer(const Query& q, std::string why);

// Telling a broken destination from a broken local resolver (DESIGN.md
// section 8). When a lookup fails (bogus or indeterminate), the resolver
// asks probe_query(): the root's DNSKEY RRset, which validation needs for
// every answer and which is secure whenever the forwarders (or the root
// servers) answer and the trust anchor matches.
Query probe_query();
bool needs_probe(const std::vector<Answer>& answers);

// A probe that came back secure leaves `answers` alone: the failures are the
// destination's. Otherwise the resolver itself is not working, so every
// failed answer becomes indeterminate with local_failure set and a `why`
// that names the local resolver and keeps the original reason.
void apply_probe(std::vector<Answer>& answers, const Answer& probe);

}  // namespace danemta::dns
