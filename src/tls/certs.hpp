// Certificates as operators see them, and TLSA association data (RFC 6698
// section 2.1). OpenSSL types are forward-declared: including this is cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dns/answer.hpp"

struct x509_st;
struct stack_st_X509;

namespace danemta::tls {

struct X509Free {
  void operator()(x509_st* x) const;
};
using X509Ptr = std::unique_ptr<x509_st, X509Free>;

struct CertSummary {
  std::string subject;
  std::string issuer;
  std::vector<std::string> dns_names;  // subjectAltName dNSName entries
  std::string not_before;              // "2026-11-29 12:00:00 UTC"
  std::string not_after;
  std::int64_t not_after_epoch = 0;  // seconds since the epoch (UTC)
  std::string spki_sha256;           // hex: the data of a "x 1 1" TLSA record
  std::string key;                   // "RSA 2048", "EC P-256", ...
  bool self_issued = false;
  bool is_ca = false;  // basicConstraints CA:TRUE
  // DER encodings, for matching TLSA records after the connection is gone.
  std::vector<std::uint8_t> cert_der;
  std::vector<std::uint8_t> spki_der;
};

// Whether a TLSA record's association data matches this certificate
// (selector and matching type applied; usage not considered).
bool matches(const CertSummary& cert, const dns::TlsaRecord& record);

// RFC 6125 section 6.4 as RFC 7672 section 3.2.3 applies it: a DNS-ID equal to
// one of `names`, or a wildcard standing for exactly the leftmost label.
bool names_match(const CertSummary& cert, const std::vector<std::string>& names);

CertSummary summarize(x509_st* cert);

// TLSA association data for `cert`: selector 0 = the DER certificate,
// 1 = the DER SubjectPublicKeyInfo; mtype 0 = as is, 1 = SHA2-256, 2 = SHA2-512.
Result<std::vector<std::uint8_t>> association_data(x509_st* cert, int selector, int mtype);

Result<dns::TlsaRecord> make_tlsa(x509_st* cert, int usage, int selector, int mtype);

// Every certificate in a PEM file, in file order (leaf first for a chain).
Result<std::vector<X509Ptr>> load_pem_chain(const std::string& path);
// The same from PEM text; `what` names it in errors.
Result<std::vector<X509Ptr>> parse_pem_chain(std::string_view pem, const std::string& what);

// The peer chain of a finished handshake as summaries (leaf first).
std::vector<CertSummary> summarize_chain(stack_st_X509* chain);

}  // namespace danemta::tls
