// What a TLSA record's certificate association data must be for the record
// to be usable (RFC 6698 section 2.1.4, RFC 7671 section 5). Pure: it parses
// bytes and does no I/O; the OpenSSL types stay in the .cpp file, so the
// planner that calls it stays free of them.
#pragma once

#include <optional>
#include <string>

#include "dns/answer.hpp"

namespace danemta::dane {

// Why full data (matching type 0) cannot be used, or nullopt when it can:
// selector 0 needs exactly one DER certificate with a public key, selector 1
// exactly one DER SubjectPublicKeyInfo. These are the records
// SSL_dane_tlsa_add refuses; judging them here makes them unusable records
// in the plan (RFC 7672 section 2.2: a secure RRset with none usable gives
// mandatory unauthenticated TLS), instead of a failure after STARTTLS.
// Records of other matching types or unknown selectors: nullopt.
std::optional<std::string> full_data_problem(const dns::TlsaRecord& r);

}  // namespace danemta::dane
