#include "tls/context.hpp"

#include <cstdint>
#include <memory>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/text.hpp"

namespace danemta::tls {

namespace {

// OpenSSL's first queued error as text (the queue is emptied).
std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : "OpenSSL error " + std::to_string(e);
}

}  // namespace

Result<ServerCertificate> configure_server_context(ssl_ctx_st* ctx, const std::string& cert_file,
                                                   const std::string& key_file) {
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return fail("cannot set the minimum TLS version: " + openssl_reason(), Severity::permanent);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    return fail("certificate file " + cert_file + ": " + openssl_reason(), Severity::permanent);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("key file " + key_file + ": " + openssl_reason(), Severity::permanent);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("key file " + key_file + " does not belong to the certificate in " + cert_file +
                    ": " + openssl_reason(),
                Severity::permanent);
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf == nullptr)
    return fail("certificate file " + cert_file + ": no certificate", Severity::permanent);
  ServerCertificate out;
  out.leaf = summarize(leaf);
  auto digest = association_data(leaf, 0, 1);
  if (!digest) return tl::unexpected(digest.error());
  out.sha256 = to_hex(*digest);
  STACK_OF(X509)* chain = nullptr;
  if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != nullptr)
    out.chain_size = static_cast<std::size_t>(sk_X509_num(chain));
  return out;
}

Result<std::vector<ServerCertificate>> configure_server_context(
    ssl_ctx_st* ctx, const std::vector<ServerKeyPair>& pairs) {
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return fail("cannot set the minimum TLS version: " + openssl_reason(), Severity::permanent);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  std::vector<ServerCertificate> out;
  for (const ServerKeyPair& pair : pairs) {
    auto chain = parse_pem_chain(pair.chain_pem, pair.name);
    if (!chain) return tl::unexpected(chain.error());
    std::unique_ptr<BIO, void (*)(BIO*)> bio(
        BIO_new_mem_buf(pair.key_pem.data(), static_cast<int>(pair.key_pem.size())), BIO_free_all);
    EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (raw == nullptr)
      return fail("key of " + pair.name + ": " + openssl_reason(), Severity::permanent);
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(raw, EVP_PKEY_free);
    X509* leaf = (*chain)[0].get();
    if (X509_check_private_key(leaf, key.get()) != 1)
      return fail(
          "the key does not belong to the certificate of " + pair.name + ": " + openssl_reason(),
          Severity::permanent);
    STACK_OF(X509)* rest = sk_X509_new_null();
    for (std::size_t i = 1; i < chain->size(); ++i) sk_X509_push(rest, (*chain)[i].get());
    const int ok = SSL_CTX_use_cert_and_key(ctx, leaf, key.get(), rest, 1);
    sk_X509_free(rest);
    if (ok != 1) return fail(pair.name + ": " + openssl_reason(), Severity::permanent);
    ServerCertificate c;
    c.leaf = summarize(leaf);
    auto digest = association_data(leaf, 0, 1);
    if (!digest) return tl::unexpected(digest.error());
    c.sha256 = to_hex(*digest);
    c.chain_size = chain->size() - 1;
    out.push_back(std::move(c));
  }
  return out;
}

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
  // A session waiting for a reply, or parked for reuse, gives its 16 KiB
  // read and write buffers back (bench/README.md, "Many sessions").
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
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
