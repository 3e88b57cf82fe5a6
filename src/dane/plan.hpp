// RFC 7672 destination planning as a pure function over DNS answers.
//
// plan() never does I/O. Given the answers gathered so far it either returns
// the complete DestinationPlan or the queries it still needs; the caller
// resolves those and calls it again (plan_destination() does that loop over
// a dns::Resolver). The same code path serves delivery and `danemta check`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "dane/outcome.hpp"
#include "dns/answer.hpp"
#include "dns/resolver.hpp"

namespace danemta::dane {

class AnswerSet {
 public:
  void add(dns::Answer a);
  const dns::Answer* find(std::string_view name, dns::RrType type) const;
  std::size_t size() const { return answers_.size(); }

 private:
  std::map<dns::Query, dns::Answer> answers_;
};

// What TLS the client must achieve with one host (RFC 7672 section 2.2).
enum class Requirement {
  dane,           // STARTTLS mandatory, the chain must match a usable TLSA record
  encrypt,        // STARTTLS mandatory, any certificate (secure TLSA, none usable; or policy)
  opportunistic,  // STARTTLS if offered, any certificate, plaintext if not offered
  unusable,       // the host must not be used; see HostPlan::failure
};

std::string_view to_string(Requirement r);

struct TlsaVerdict {
  dns::TlsaRecord record;
  bool usable = false;
  std::string note;  // why it is (not) used
};

struct HostPlan {
  std::string name;  // the MX exchange (or the domain for an implicit MX)
  std::uint16_t preference = 0;

  // Address lookups (A then AAAA), joined.
  std::vector<std::string> addresses;
  dns::Security address_security = dns::Security::indeterminate;
  std::string expanded_name;  // CNAME-expanded name; empty when `name` is not an alias
  bool cname_first_link_secure = false;

  // TLSA base domains in the order they are tried, and the outcome.
  std::vector<std::string> tlsa_candidates;
  std::string tlsa_base_domain;  // base domain whose TLSA RRset is used; empty if none
  std::string tlsa_owner;        // "_25._tcp.<base domain>"
  std::optional<dns::Security> tlsa_security;
  std::vector<TlsaVerdict> tlsa;             // every record found, with its verdict
  std::vector<dns::TlsaRecord> usable_tlsa;  // the ones to give to OpenSSL
  std::vector<std::string> reference_names;  // for DANE-TA(2) name checks

  Requirement requirement = Requirement::unusable;
  bool mx_secure = false;          // DANE match is "dane-verified" if true, "dane-trusted" if not
  std::optional<Outcome> failure;  // set iff requirement == unusable
  std::string reason;              // operator-readable explanation of the requirement

  // RFC 7672 section 8.1: SNI is the TLSA base domain (or the host name when
  // there is none).
  const std::string& sni() const { return tlsa_base_domain.empty() ? name : tlsa_base_domain; }
};

struct DestinationPlan {
  std::string domain;
  config::TlsPolicy policy = config::TlsPolicy::dane;
  std::uint16_t port = 25;
  bool ipv4 = true;  // PlanOptions: the address families looked up
  bool ipv6 = true;

  dns::Security mx_security = dns::Security::indeterminate;
  std::vector<dns::MxRecord> mx_records;  // as published
  bool implicit_mx = false;               // no MX RRset: the domain itself is the mail host
  bool null_mx = false;

  std::vector<HostPlan> hosts;  // MX preference order; TLSA never reorders

  // Set when no host can be used (or the destination itself failed).
  std::optional<Outcome> failure;
  std::string reason;

  std::vector<std::string> notes;  // anything odd an operator should know
};

struct PlanOptions {
  config::TlsPolicy policy = config::TlsPolicy::dane;
  std::uint16_t port = 25;
  // false: the domain given to plan() is a next hop the operator configured
  // ([transport] "[host]"): it is the only host and no MX records are looked
  // up. Its name comes from the configuration, not from DNS, so it counts as
  // a secure MX name (a DANE match is dane-verified).
  bool mx_lookup = true;
  // The next hop is an IP address ([transport] "[192.0.2.1]"): no DNS at all,
  // hence no TLSA records; `policy` decides between opportunistic and
  // mandatory TLS (dane-only cannot be met).
  bool address_literal = false;
  // The address families to deliver over ([delivery] inet_protocols): the
  // other family's address records are not looked up.
  bool ipv4 = true;
  bool ipv6 = true;
};

struct PlanStep {
  std::vector<dns::Query> missing;  // still needed; empty when `plan` is complete
  DestinationPlan plan;
  bool complete() const { return missing.empty(); }
};

PlanStep plan(std::string_view domain, const AnswerSet& answers, const PlanOptions& options);

// The TLSA owner name for a base domain and port: "_25._tcp.mx.example.org".
std::string tlsa_owner(std::string_view base_domain, std::uint16_t port);

// RFC 7672 section 3.1 and RFC 7671 section 9: which of an RRset's records
// are usable for SMTP, with digest agility applied.
std::vector<TlsaVerdict> judge_tlsa(const std::vector<dns::TlsaRecord>& rrset);

// Drives plan() over a resolver until complete, querying each round's
// missing names concurrently. `done` gets the plan and every answer seen.
void plan_destination(dns::Resolver& resolver, std::string domain, PlanOptions options,
                      std::function<void(DestinationPlan, AnswerSet)> done);

}  // namespace danemta::dane
