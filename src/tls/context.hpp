// SSL_CTX settings shared by every client connection, the server context of
// the relay's STARTTLS listeners, and the facts of a finished handshake.
// OpenSSL types are forward-declared.
#pragma once

#include <cstddef>
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

// The certificate a server context presents, as an operator checks it after
// a reload.
struct ServerCertificate {
  CertSummary leaf;
  std::string sha256;          // hex SHA2-256 of the DER leaf (its fingerprint)
  std::size_t chain_size = 0;  // certificates sent after the leaf
};

// Sets up a server SSL_CTX for STARTTLS (RFC 3207): TLS 1.2 at least, no
// compression, no renegotiation; the chain from `cert_file` (PEM, the leaf
// first, then its issuers) and the private key from `key_file` (PEM), which
// must belong to the leaf. Errors name the file and OpenSSL's reason, and
// are permanent; the context is then unusable (make a fresh one).
Result<ServerCertificate> configure_server_context(ssl_ctx_st* ctx, const std::string& cert_file,
                                                   const std::string& key_file);

// One certificate of a server that presents several (one per key type:
// RSA and ECDSA at once; OpenSSL picks by the client's signature
// algorithms), as PEM text.
struct ServerKeyPair {
  std::string chain_pem;  // leaf first, then its issuers
  std::string key_pem;
  std::string name;  // for errors ("/etc/danemta/rsa.pem")
};

// Like the file form, with every pair loaded into `ctx` (a later pair of the
// same key type replaces an earlier one). Returns what each presents.
Result<std::vector<ServerCertificate>> configure_server_context(
    ssl_ctx_st* ctx, const std::vector<ServerKeyPair>& pairs);

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
