// The one failure table (DESIGN.md section 5): every way a delivery to a
// destination can fail, with its TLS-RPT result type (RFC 8460 section 4.3)
// and the enhanced status codes (RFC 3463) used while retrying and in the
// final NDR. NDRs, logs, TLS-RPT and `danemta check` all read it from here.
#pragma once

#include <optional>
#include <string_view>

namespace danemta::dane {

enum class Outcome {
  dnssec_invalid,             // a lookup was bogus (the validator's verdict)
  dns_failed,                 // a lookup failed without a validation verdict
  local_dns_failed,           // danemta's own resolver or forwarders did not answer at all
  domain_not_found,           // the destination domain does not exist (NXDOMAIN)
  no_address,                 // no MX host has an address
  connection_failed,          // no MX host could be reached or held a session
  starttls_not_supported,     // TLS mandatory but STARTTLS absent or handshake failed
  certificate_expired,        // DANE-TA chain with an expired certificate
  tlsa_invalid,               // no usable TLSA record matched
  certificate_host_mismatch,  // DANE-TA matched, no reference name did
  dane_required,              // dane-only policy and the host has no usable TLSA
  validation_failure,         // any other TLS failure
  null_mx,                    // RFC 7505 null MX: the domain accepts no mail
};

struct OutcomeInfo {
  std::string_view name;            // short, stable name for logs and JSON
  std::string_view tlsrpt_result;   // RFC 8460 result-type; empty: not reported
  std::string_view transient_code;  // while the message is retried; empty: never retried
  std::string_view permanent_code;  // in the final NDR
  bool retry;                       // false: bounce at once
  std::string_view summary;         // what happened, one line
  std::string_view fix;             // what the receiving domain's admin must do
};

const OutcomeInfo& info(Outcome o);

// A failure of the destination's DNSSEC or TLS policy (as opposed to an
// unreachable server or a missing record): these are what TLS-RPT reports
// and what `danemta check` refuses to call healthy.
bool policy_failure(Outcome o);

// The outcome whose OutcomeInfo::name is `name` ("tlsa-invalid").
std::optional<Outcome> outcome_named(std::string_view name);

// The status code to use now: transient while retrying, permanent at the end.
std::string_view code(Outcome o, bool final_attempt);

}  // namespace danemta::dane
