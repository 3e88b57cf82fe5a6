// In-memory test PKI for the lab: keys, CA/leaf/self-signed certificates and the
// TLSA records that name them (RFC 6698 2.1, RFC 7671), computed here with plain
// OpenSSL so that tests do not trust the code under test to compute its own records.
//
// Every generator throws std::runtime_error (with the OpenSSL error queue text) when
// OpenSSL fails; they are for tests and lab scripts, not for production.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace danemta::lab {

enum class KeyType { rsa2048, ecdsa_p256 };

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// A fresh private key. RSA-2048 costs ~0.1-0.5 s (more under ASan); prefer ECDSA in tests.
PkeyPtr make_key(KeyType type);

// Validity relative to now, in seconds: notBefore = now + not_before, notAfter = now +
// not_after. Negative values are in the past.
struct Validity {
  long not_before = -3600;
  long not_after = 365L * 86400;
};
// Expired a day ago, issued two years ago.
inline constexpr Validity kExpired{-2 * 365L * 86400, -86400};

// A certificate with its private key. Copies share the OpenSSL objects (reference counts).
class Cert {
 public:
  Cert(X509Ptr cert, PkeyPtr key);
  Cert(const Cert& other);
  Cert& operator=(const Cert& other);
  Cert(Cert&&) noexcept = default;
  Cert& operator=(Cert&&) noexcept = default;
  ~Cert() = default;

  X509* x509() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }

  std::string cert_pem() const;
  std::string key_pem() const;                  // PKCS#8, unencrypted
  std::vector<unsigned char> cert_der() const;  // TLSA selector 0
  std::vector<unsigned char> spki_der() const;  // TLSA selector 1 (SubjectPublicKeyInfo)
  std::string subject_cn() const;

 private:
  X509Ptr cert_;
  PkeyPtr key_;
};

// A CA certificate (basicConstraints critical CA:TRUE, keyUsage keyCertSign+cRLSign,
// subject CN=`name`). Self-signed root when `issuer` is null, else an intermediate signed
// by `issuer`.
Cert make_ca(const std::string& name, KeyType type, Validity validity = {},
             const Cert* issuer = nullptr);

// A server certificate signed by `issuer`: CN = names.front(), subjectAltName = every
// name (DNS:, or IP: for a literal address), CA:FALSE, extendedKeyUsage serverAuth.
// `names` must not be empty.
Cert make_leaf(const std::vector<std::string>& names, KeyType type, Validity validity,
               const Cert& issuer);

// Like make_leaf, but signed with its own key (issuer = subject); what DANE-EE(3) servers
// commonly present.
Cert make_self_signed(const std::vector<std::string>& names, KeyType type, Validity validity = {});

// What a server presents: the leaf, then intermediates (issuer order). `root` is the
// trust anchor of a private CA; it is sent too only when `send_root` is set.
struct Chain {
  Cert leaf;
  std::vector<Cert> intermediates;
  std::optional<Cert> root;
  bool send_root = false;

  // Certificates presented in the handshake, in order.
  std::vector<Cert> presented() const;
  // PEM of presented(), concatenated (a "fullchain" file).
  std::string chain_pem() const;
  // The leaf's private key.
  std::string key_pem() const { return leaf.key_pem(); }
  // The certificate that issued the leaf, when it is not self-signed: the first
  // intermediate, else the root. The natural DANE-TA(2) target that is in the chain.
  const Cert* issuer() const;
};

// A self-signed leaf (no CA); names as in make_leaf.
Chain self_signed(const std::vector<std::string>& names, KeyType type = KeyType::ecdsa_p256);

// root "danemta lab root CA" -> intermediate "danemta lab intermediate CA" -> leaf.
// An expired certificate gets kExpired as its validity.
Chain private_ca(const std::vector<std::string>& names, KeyType type = KeyType::ecdsa_p256,
                 bool expired_leaf = false, bool expired_intermediate = false);

// TLSA RDATA in presentation form, "U S M <lower-case hex>" (RFC 6698 2.2).
// selector 0 = DER certificate, 1 = DER SubjectPublicKeyInfo; mtype 0 = full data,
// 1 = SHA-256, 2 = SHA-512. Throws std::invalid_argument for other selector/mtype values;
// `usage` is copied as given (0..255).
std::string tlsa_rdata(const Cert& cert, int usage, int selector, int mtype);

// Lower-case hex of the association data only (no "U S M" prefix).
std::string tlsa_data_hex(const Cert& cert, int selector, int mtype);

// Writes `content` to `path` (truncating); throws std::runtime_error on failure.
void write_file(const std::filesystem::path& path, const std::string& content);

// Files written by write_chain_files, absolute paths.
struct ChainFiles {
  std::filesystem::path chain;              // <stem>.crt: chain_pem()
  std::filesystem::path key;                // <stem>.key: key_pem(), mode 0600
  std::filesystem::path leaf;               // <stem>-leaf.crt: the leaf alone
  std::optional<std::filesystem::path> ca;  // <stem>-ca.crt: the root, when there is one
};

// Writes the chain's PEM files into `dir` (which must exist).
ChainFiles write_chain_files(const Chain& chain, const std::filesystem::path& dir,
                             const std::string& stem = "server");

}  // namespace danemta::lab
