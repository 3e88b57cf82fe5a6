#include "tls/context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace danemta::tls {

Result<void> configure_client_context(ssl_ctx_st* ctx) {
  if (SSL_CTX_dane_enable(ctx) <= 0) return fail("SSL_CTX_dane_enable failed");
  if (SSL_CTX_dane_mtype_set(ctx, EVP_sha256(), 1, 1) <= 0 ||
      SSL_CTX_dane_mtype_set(ctx, EVP_sha512(), 2, 2) <= 0)
    return fail("SSL_CTX_dane_mtype_set failed");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  // Session tickets would let a resumed session skip DANE verification of
  // a chain whose TLSA records changed since; every session is full.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
  return {};
}

SessionFacts session_facts(ssl_st* ssl) {
  SessionFacts f;
  f.protocol = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) f.cipher = SSL_CIPHER_get_name(c);
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) f.sni = sni;
  f.chain = summarize_chain(SSL_get_peer_cert_chain(ssl));
  f.verify_result = SSL_get_verify_result(ssl);
  if (f.verify_result != X509_V_OK) f.verify_error = X509_verify_cert_error_string(f.verify_result);
  return f;
}

}  // namespace danemta::tls
