// The rollover guard's rules (docs/adr/0007-rollover-guard.md): which of two
// certificate chains an inbound MX may serve, given the TLSA RRsets
// published at its MX names and when each matching record was first seen.
// Pure: no I/O, the clock is a parameter.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dns/answer.hpp"
#include "tls/certs.hpp"

namespace danemta::inbound {

// A certificate chain as the guard sees it, with the PEM it came from.
struct Chain {
  std::vector<tls::CertSummary> certs;  // leaf first
  std::string fingerprint;              // hex SHA2-256 of the DER leaf
  std::string chain_pem;
  std::string key_pem;
  const tls::CertSummary& leaf() const { return certs.front(); }
};

// Whether `record` authenticates `chain` the way a DANE sender uses it
// (RFC 7672 section 3.1): DANE-EE(3) the leaf, DANE-TA(2) a certificate
// after the leaf. PKIX usages (0, 1) do not count: senders ignore them.
bool matches(const Chain& chain, const dns::TlsaRecord& record);

// The records to publish for `chain`: "3 1 1" of the leaf and, when the
// chain has an issuer, "2 1 1" of the first one after the leaf.
std::vector<dns::TlsaRecord> records_for(const Chain& chain);

// One MX name's TLSA RRset as looked up (with DNSSEC validation).
struct Lookup {
  std::string mx_name;  // "mx1.example.org"
  std::string owner;    // "_25._tcp.mx1.example.org"
  // Usable records: a secure RRset. Otherwise `problem` says what was found
  // instead ("insecure", "bogus: ...", "lookup failed: ...", "no TLSA records").
  bool secure = false;
  std::string problem;
  std::uint32_t ttl = 0;
  std::vector<dns::TlsaRecord> records;
};

Lookup lookup_from(const std::string& mx_name, const dns::Answer& answer);

// When a record matching the candidate was first seen at an MX name, and
// the largest TTL its RRset was seen with. Kept across restarts.
struct Sighting {
  std::string mx_name;
  std::string record;  // "3 1 1 <hex>"
  std::int64_t first_seen = 0;
  std::uint32_t ttl = 0;
  friend bool operator==(const Sighting&, const Sighting&) = default;
};

// What the guard remembers of one certificate slot: the candidate it is
// waiting for (its fingerprint; empty: none) and its sightings.
struct SlotState {
  std::string candidate;
  std::vector<Sighting> seen;
  friend bool operator==(const SlotState&, const SlotState&) = default;
};

struct Params {
  std::chrono::seconds margin{300};
  std::chrono::seconds expiry_warning{14 * 86400};
};

struct NameStatus {
  std::string mx_name;
  std::string owner;
  std::string problem;  // the lookup's problem; empty: secure RRset
  bool served_published = false;
  bool candidate_published = false;
  std::int64_t ready_at = 0;  // when the candidate may be served here (0: not published)
};

struct Decision {
  bool switch_now = false;
  std::string why;  // for the log: why switch, or why not yet
  std::vector<NameStatus> names;
  bool served_published = false;  // a record matches the served chain at every name
  // The candidate is published everywhere; it may be served from ready_at.
  bool candidate_published = false;
  std::int64_t ready_at = 0;
  // The served certificate expires within the warning and no candidate can
  // be served (none, or not published long enough).
  bool expiring = false;
  std::string expiry_problem;
  // "_25._tcp.mx1.example.org. IN TLSA 3 1 1 <hex>" for each name that
  // lacks a record matching the candidate.
  std::vector<std::string> to_publish;
};

// Decides for one slot. `candidate` null: only the served chain (the state
// forgets its sightings). Updates `state` (candidate, sightings) with what
// `lookups` show at `now` (seconds since the epoch): a matching record seen
// for the first time is recorded, one no longer published is forgotten.
//
// The candidate is served when, at every MX name, a secure RRset holds a
// record matching it that has been seen for the RRset's TTL plus the margin
// plus one second (the clock counts whole seconds)
// (at once when that record also matches the served chain: it has been in
// every cache all along). It is also served at once when the served chain
// matches no record at some name while the candidate matches at every name.
// With no MX names the guard is off: the candidate is served at once.
Decision decide(const Chain& served, const Chain* candidate, const std::vector<Lookup>& lookups,
                SlotState& state, std::int64_t now, const Params& params);

}  // namespace danemta::inbound
