#include "dane/outcome.hpp"

namespace danemta::dane {

namespace {

// The codes 4/5.7.321-325 are those Exchange Online uses for the same
// failures, so admins who know those NDRs recognise them.
constexpr OutcomeInfo kDnssecInvalid{
    "dnssec-invalid",
    "dnssec-invalid",
    "4.7.324",
    "5.7.324",
    true,
    "DNSSEC validation of the destination's DNS records failed",
    "Fix the DNSSEC signatures of the zone named in the reason (expired or missing "
    "RRSIGs, a DS record in the parent zone that matches no DNSKEY, or records changed "
    "after signing), then check with `danemta check`."};

constexpr OutcomeInfo kDnsFailed{
    "dns-failed",
    "",
    "4.4.312",
    "5.4.312",
    true,
    "a DNS query for the destination failed (no answer, SERVFAIL or timeout)",
    "Make sure every authoritative server of the zone named in the reason answers "
    "queries for it, including over TCP and for DNSSEC records."};

// DESIGN.md section 8: a resolver that cannot reach its forwarders (or the
// root) fails every lookup; that is the sending relay's fault, so the text
// speaks to its admin and nobody asks the receiving domain to fix anything.
// Same codes as dns-failed (the lookup did fail), never in TLS-RPT.
constexpr OutcomeInfo kLocalDnsFailed{
    "local-dns-failed",
    "",
    "4.4.312",
    "5.4.312",
    true,
    "the sending relay's own DNS resolver is not answering (the forwarders configured in "
    "[dns] or the root name servers are unreachable, or the trust anchor cannot be "
    "validated): the destination's records were not looked at",
    "Nothing for the receiving domain. The sending relay's administrator must make the "
    "local resolver work: check that the forwarders in the [dns] section answer DNSSEC "
    "queries from this host (or, without forwarders, that the root name servers are "
    "reachable) and that the trust anchor is current."};

constexpr OutcomeInfo kDomainNotFound{"domain-not-found",
                                      "",
                                      "",
                                      "5.1.2",
                                      false,
                                      "the destination domain does not exist in DNS",
                                      "Check the spelling of the address; a domain that "
                                      "should receive mail must exist in DNS."};

constexpr OutcomeInfo kNoAddress{
    "no-address",
    "",
    "4.4.4",
    "5.4.4",
    true,
    "no mail server of the destination has an IPv4 or IPv6 address",
    "Publish A or AAAA records for the MX hosts (or for the domain, when it has no MX)."};

constexpr OutcomeInfo kConnectionFailed{
    "connection-failed",
    "",
    "4.4.1",
    "5.4.1",
    true,
    "no mail server of the destination could be reached, or each dropped the session",
    "Make sure the MX hosts accept connections on port 25 from the sending relay."};

constexpr OutcomeInfo kStarttls{
    "starttls-not-supported",
    "starttls-not-supported",
    "4.7.321",
    "5.7.321",
    true,
    "the destination publishes DANE or requires TLS, but the server did not complete STARTTLS",
    "Enable STARTTLS on every MX host listed with TLSA records, with a certificate that "
    "matches them, or remove the TLSA records before turning TLS off."};

constexpr OutcomeInfo kCertExpired{
    "certificate-expired",
    "certificate-expired",
    "4.7.322",
    "5.7.322",
    true,
    "a certificate in the server's DANE-TA chain has expired",
    "Renew the server certificate (or the intermediate named) and keep the TLSA 2 x x "
    "record matching the issuing CA."};

constexpr OutcomeInfo kTlsaInvalid{
    "tlsa-invalid",
    "tlsa-invalid",
    "4.7.323",
    "5.7.323",
    true,
    "no TLSA record of the server matches its certificate chain",
    "Publish a TLSA record for the certificate the server presents now (`danemta tlsa "
    "--connect HOST --starttls`), keep the old one until every server has rolled over, "
    "and wait for the old TTL to expire before changing certificates."};

constexpr OutcomeInfo kHostMismatch{
    "certificate-host-mismatch",
    "certificate-host-mismatch",
    "4.7.325",
    "5.7.325",
    true,
    "the certificate chains to the DANE-TA trust anchor but names none of the expected hosts",
    "Issue the server certificate with the MX host name (the TLSA base domain) in its "
    "subjectAltName."};

constexpr OutcomeInfo kDaneRequired{
    "dane-required",
    "dane-required",
    "4.7.326",
    "5.7.326",
    true,
    "the sender's policy requires DANE for this domain, and the server has no usable TLSA records",
    "Publish DNSSEC-signed TLSA records (usage 2 or 3) for every MX host."};

constexpr OutcomeInfo kValidationFailure{
    "validation-failure",
    "validation-failure",
    "4.7.5",
    "5.7.5",
    true,
    "the TLS session with the server failed",
    "Check the server's TLS configuration (protocol versions, ciphers, certificate chain)."};

constexpr OutcomeInfo kNullMx{"null-mx",
                              "",
                              "",
                              "5.1.10",
                              false,
                              "the destination domain publishes a null MX: it accepts no mail",
                              "Nothing to fix if the domain is not meant to receive mail "
                              "(RFC 7505); otherwise replace the null MX with real MX records."};

}  // namespace

const OutcomeInfo& info(Outcome o) {
  switch (o) {
    case Outcome::dnssec_invalid:
      return kDnssecInvalid;
    case Outcome::dns_failed:
      return kDnsFailed;
    case Outcome::local_dns_failed:
      return kLocalDnsFailed;
    case Outcome::domain_not_found:
      return kDomainNotFound;
    case Outcome::no_address:
      return kNoAddress;
    case Outcome::connection_failed:
      return kConnectionFailed;
    case Outcome::starttls_not_supported:
      return kStarttls;
    case Outcome::certificate_expired:
      return kCertExpired;
    case Outcome::tlsa_invalid:
      return kTlsaInvalid;
    case Outcome::certificate_host_mismatch:
      return kHostMismatch;
    case Outcome::dane_required:
      return kDaneRequired;
    case Outcome::validation_failure:
      return kValidationFailure;
    case Outcome::null_mx:
      return kNullMx;
  }
  return kValidationFailure;
}

std::optional<Outcome> outcome_named(std::string_view name) {
  for (Outcome o : {Outcome::dnssec_invalid, Outcome::dns_failed, Outcome::local_dns_failed,
                    Outcome::domain_not_found, Outcome::no_address, Outcome::connection_failed,
                    Outcome::starttls_not_supported, Outcome::certificate_expired,
                    Outcome::tlsa_invalid, Outcome::certificate_host_mismatch,
                    Outcome::dane_required, Outcome::validation_failure, Outcome::null_mx})
    if (info(o).name == name) return o;
  return std::nullopt;
}

bool policy_failure(Outcome o) {
  switch (o) {
    case Outcome::dnssec_invalid:
    case Outcome::starttls_not_supported:
    case Outcome::certificate_expired:
    case Outcome::tlsa_invalid:
    case Outcome::certificate_host_mismatch:
    case Outcome::dane_required:
    case Outcome::validation_failure:
      return true;
    case Outcome::dns_failed:
    case Outcome::local_dns_failed:
    case Outcome::domain_not_found:
    case Outcome::no_address:
    case Outcome::connection_failed:
    case Outcome::null_mx:
      return false;
  }
  return true;
}

std::string_view code(Outcome o, bool final_attempt) {
  const OutcomeInfo& i = info(o);
  if (final_attempt || !i.retry) return i.permanent_code;
  return i.transient_code;
}

}  // namespace danemta::dane
