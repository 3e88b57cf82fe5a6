// OpenSSL DANE glue: applies a HostPlan's requirement to an SSL connection
// before the handshake and judges the finished handshake (RFC 7672
// sections 3.1-3.2, RFC 7671). OpenSSL types are forward-declared.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "dane/outcome.hpp"
#include "dane/plan.hpp"
#include "tls/context.hpp"

struct ssl_st;

namespace danemta::dane {

// How well the peer was authenticated (logged as tls=...).
enum class Authentication {
  dane_verified,              // chain matched a TLSA record, MX RRset secure
  dane_trusted,               // chain matched, but the MX RRset was insecure
  mandatory_unauthenticated,  // TLS required, certificate not checked
  opportunistic,              // TLS used when offered, certificate not checked
  none,                       // no TLS
};

std::string_view to_string(Authentication a);

// Sets SNI (the TLSA base domain), the minimum protocol (TLS 1.2 where TLS
// is mandatory) and, for DANE hosts, SSL_dane_enable with the usable TLSA
// records and reference names. An unusable host is an error.
Result<void> prepare_ssl(ssl_st* ssl, const HostPlan& host);

struct TlsVerdict {
  Authentication authentication = Authentication::none;
  std::optional<Outcome> failure;  // set: the session must not carry mail
  std::string reason;
  int matched_depth = -1;                  // chain depth of the matching certificate
  std::optional<dns::TlsaRecord> matched;  // the TLSA record that matched
  tls::SessionFacts facts;
};

// Judges a completed handshake against the host's requirement.
TlsVerdict judge_session(ssl_st* ssl, const HostPlan& host);

// The outcome when STARTTLS is missing or the handshake fails. Mandatory TLS
// (DANE or encrypt) gives starttls-not-supported; opportunistic TLS has none
// (the caller may continue in clear, RFC 7435).
std::optional<Outcome> tls_unavailable_outcome(const HostPlan& host);

}  // namespace danemta::dane
