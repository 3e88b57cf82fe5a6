#include "dane/tls_glue.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace danemta::dane {

std::string_view to_string(Authentication a) {
  switch (a) {
    case Authentication::dane_verified:
      return "dane-verified";
    case Authentication::dane_trusted:
      return "dane-trusted";
    case Authentication::mandatory_unauthenticated:
      return "mandatory-unauthenticated";
    case Authentication::opportunistic:
      return "opportunistic";
    case Authentication::none:
      return "none";
  }
  return "none";
}

Result<void> prepare_ssl(ssl_st* ssl, const HostPlan& host) {
  // RFC 7672 section 8.1: SNI is the TLSA base domain (the host otherwise).
  if (SSL_set_tlsext_host_name(ssl, host.sni().c_str()) != 1)
    return fail("cannot set SNI " + host.sni());

  switch (host.requirement) {
    case Requirement::unusable:
      return fail("host " + host.name + " is not usable: " + host.reason);
    case Requirement::opportunistic:
      return {};
    case Requirement::encrypt:
      SSL_set_min_proto_version(ssl, TLS1_2_VERSION);
      return {};
    case Requirement::dane:
      break;
  }

  SSL_set_min_proto_version(ssl, TLS1_2_VERSION);
  if (SSL_dane_enable(ssl, host.tlsa_base_domain.c_str()) <= 0)
    return fail("SSL_dane_enable failed for " + host.tlsa_base_domain);
  // RFC 7672 section 3.1.1: DANE-EE(3) ignores names and validity.
  SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
  // RFC 7672 section 3.2.3: a wildcard only as the whole leftmost label.
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  for (const std::string& name : host.reference_names)
    if (name != host.tlsa_base_domain && SSL_add1_host(ssl, name.c_str()) != 1)
      return fail("cannot add reference name " + name);

  int added = 0;
  for (const dns::TlsaRecord& r : host.usable_tlsa) {
    int rc = SSL_dane_tlsa_add(ssl, r.usage, r.selector, r.mtype, r.data.data(), r.data.size());
    if (rc > 0) ++added;
  }
  // The planner passes only usable records, and judge_tlsa already refuses
  // what SSL_dane_tlsa_add refuses (dane/tlsa_data.hpp), so an RRset of only
  // such records is planned as mandatory unauthenticated TLS, not as DANE.
  // Should OpenSSL still accept none, the connection could not authenticate
  // anything: refuse rather than continue without DANE.
  if (added == 0) return fail("OpenSSL accepted none of the usable TLSA records");
  return {};
}

namespace {

Outcome classify_verify_error(long err) {
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return Outcome::certificate_expired;
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return Outcome::certificate_host_mismatch;
    case X509_V_ERR_DANE_NO_MATCH:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
      return Outcome::tlsa_invalid;
    default:
      return Outcome::validation_failure;
  }
}

}  // namespace

TlsVerdict judge_session(ssl_st* ssl, const HostPlan& host) {
  TlsVerdict v;
  v.facts = tls::session_facts(ssl);
  switch (host.requirement) {
    case Requirement::unusable:
      v.failure = host.failure.value_or(Outcome::validation_failure);
      v.reason = host.reason;
      return v;
    case Requirement::opportunistic:
      v.authentication = Authentication::opportunistic;
      v.reason = "opportunistic TLS, certificate not checked";
      return v;
    case Requirement::encrypt:
      v.authentication = Authentication::mandatory_unauthenticated;
      v.reason = "TLS mandatory, certificate not checked";
      return v;
    case Requirement::dane:
      break;
  }

  X509* mcert = nullptr;
  EVP_PKEY* mspki = nullptr;
  int depth = SSL_get0_dane_authority(ssl, &mcert, &mspki);
  long err = v.facts.verify_result;
  if (err == X509_V_OK && depth >= 0) {
    uint8_t usage = 0, selector = 0, mtype = 0;
    const unsigned char* data = nullptr;
    size_t dlen = 0;
    if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen) >= 0 && data)
      v.matched =
          dns::TlsaRecord{usage, selector, mtype, std::vector<std::uint8_t>(data, data + dlen)};
    v.matched_depth = depth;
    v.authentication =
        host.mx_secure ? Authentication::dane_verified : Authentication::dane_trusted;
    v.reason = "TLSA " + (v.matched ? dns::to_string(*v.matched) : std::string("record")) +
               " matched the certificate at depth " + std::to_string(depth);
    return v;
  }
  v.failure = err == X509_V_OK ? Outcome::tlsa_invalid : classify_verify_error(err);
  v.reason = err == X509_V_OK ? "no TLSA record matched"
                              : "DANE verification failed: " + v.facts.verify_error;
  if (*v.failure == Outcome::certificate_host_mismatch) {
    std::string names;
    for (const std::string& n : host.reference_names) names += (names.empty() ? "" : ", ") + n;
    v.reason += " (expected one of: " + names + ")";
  }
  return v;
}

std::optional<Outcome> tls_unavailable_outcome(const HostPlan& host) {
  switch (host.requirement) {
    case Requirement::dane:
    case Requirement::encrypt:
      return Outcome::starttls_not_supported;
    case Requirement::opportunistic:
      return std::nullopt;
    case Requirement::unusable:
      return host.failure.value_or(Outcome::validation_failure);
  }
  return Outcome::starttls_not_supported;
}

}  // namespace danemta::dane
