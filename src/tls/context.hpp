// SSL_CTX settings shared by every client connection, and the facts of a
// finished handshake. OpenSSL types are forward-declared.
#pragma once

#include <string>
#include <vector>

#include "base/result.hpp"
#include "tls/certs.hpp"

struct ssl_ctx_st;
struct ssl_st;

namespace danemta::tls {

// Enables DANE on a client SSL_CTX (SSL_CTX_dane_enable) and registers
// SHA2-256 (ordinal 1) and SHA2-512 (ordinal 2), so OpenSSL applies digest
// agility the same way the planner does (RFC 7671 section 9). Certificate
// verification is left to the caller's post-handshake check (peer chains
// are recorded even when they do not match).
Result<void> configure_client_context(ssl_ctx_st* ctx);

struct SessionFacts {
  std::string protocol;            // "TLSv1.3"
  std::string cipher;              // "TLS_AES_256_GCM_SHA384"
  std::string sni;                 // the server name the client sent
  std::vector<CertSummary> chain;  // as presented by the peer, leaf first
  long verify_result = 0;          // X509_V_OK or the verification error
  std::string verify_error;        // X509_verify_cert_error_string
  int verify_depth = -1;           // depth of the failing certificate, if known
};

SessionFacts session_facts(ssl_st* ssl);

}  // namespace danemta::tls
