#include "dane/tlsa_data.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace danemta::dane {

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

}  // namespace

std::optional<std::string> full_data_problem(const dns::TlsaRecord& r) {
  if (r.mtype != 0 || r.selector > 1) return std::nullopt;
  if (r.data.empty()) return "empty certificate association data";
  const unsigned char* p = r.data.data();
  const auto length = static_cast<long>(r.data.size());
  if (r.selector == 0) {
    std::unique_ptr<X509, X509Free> cert(d2i_X509(nullptr, &p, length));
    if (!cert) return "full data is not a DER certificate";
    if (p != r.data.data() + r.data.size()) return "full data has bytes after the DER certificate";
    if (X509_get0_pubkey(cert.get()) == nullptr)
      return "the certificate's public key cannot be read";
    return std::nullopt;
  }
  std::unique_ptr<EVP_PKEY, PkeyFree> key(d2i_PUBKEY(nullptr, &p, length));
  if (!key) return "full data is not a DER SubjectPublicKeyInfo";
  if (p != r.data.data() + r.data.size())
    return "full data has bytes after the DER SubjectPublicKeyInfo";
  return std::nullopt;
}

}  // namespace danemta::dane
