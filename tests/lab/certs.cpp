#include "lab/certs.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <array>
#include <fstream>
#include <stdexcept>

namespace danemta::lab {
namespace {

struct BioFree {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct X509NameFree {
  void operator()(X509_NAME* p) const noexcept { X509_NAME_free(p); }
};
struct X509ExtFree {
  void operator()(X509_EXTENSION* p) const noexcept { X509_EXTENSION_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void fail(const std::string& what) {
  std::string msg = "lab certs: " + what;
  while (unsigned long e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    msg += ": ";
    msg += buf.data();
  }
  throw std::runtime_error(msg);
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

template <typename F>
std::vector<unsigned char> to_der(F&& i2d, const char* what) {
  unsigned char* out = nullptr;
  int n = i2d(&out);
  if (n <= 0) fail(what);
  std::vector<unsigned char> der(out, out + n);
  OPENSSL_free(out);
  return der;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, X509ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

bool is_ip_literal(const std::string& name) {
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, name.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buf.data()) == 1;
}

std::string san_value(const std::vector<std::string>& names) {
  std::string san;
  for (const auto& n : names) {
    if (!san.empty()) san += ',';
    san += (is_ip_literal(n) ? "IP:" : "DNS:") + n;
  }
  return san;
}

// A certificate for `key` with subject CN=`cn`, issued by `issuer` (null = itself),
// without extensions and unsigned.
X509Ptr make_tbs(const std::string& cn, EVP_PKEY* key, const Cert* issuer, Validity v) {
  X509Ptr cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");

  std::array<unsigned char, 16> serial{};
  check(RAND_bytes(serial.data(), static_cast<int>(serial.size())) == 1, "RAND_bytes");
  serial[0] &= 0x7f;  // positive, RFC 5280 4.1.2.2
  serial[0] |= 0x01;
  std::unique_ptr<BIGNUM, BnFree> bn(
      BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  check(bn != nullptr, "BN_bin2bn");
  check(BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) != nullptr,
        "BN_to_ASN1_INTEGER");

  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), v.not_before) != nullptr,
        "X509_gmtime_adj");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), v.not_after) != nullptr, "X509_gmtime_adj");

  std::unique_ptr<X509_NAME, X509NameFree> name(X509_NAME_new());
  check(name != nullptr, "X509_NAME_new");
  check(X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) == 1,
        "X509_NAME_add_entry_by_txt");
  check(X509_set_subject_name(cert.get(), name.get()) == 1, "X509_set_subject_name");
  X509_NAME* issuer_name = issuer ? X509_get_subject_name(issuer->x509()) : name.get();
  check(X509_set_issuer_name(cert.get(), issuer_name) == 1, "X509_set_issuer_name");
  check(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
  check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");
}

std::string hex(const std::vector<unsigned char>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

std::vector<unsigned char> digest(const EVP_MD* md, const std::vector<unsigned char>& data) {
  std::vector<unsigned char> out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  check(EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) == 1, "EVP_Digest");
  out.resize(len);
  return out;
}

Cert make_server_cert(const std::vector<std::string>& names, KeyType type, Validity validity,
                      const Cert* issuer) {
  if (names.empty()) throw std::invalid_argument("lab certs: a leaf needs at least one name");
  PkeyPtr key = make_key(type);
  X509Ptr cert = make_tbs(names.front(), key.get(), issuer, validity);
  X509* issuer_cert = issuer ? issuer->x509() : cert.get();
  add_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), issuer_cert, NID_key_usage,
          type == KeyType::rsa2048 ? "critical,digitalSignature,keyEncipherment"
                                   : "critical,digitalSignature");
  add_ext(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(cert.get(), issuer_cert, NID_subject_alt_name, san_value(names));
  add_ext(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  sign(cert.get(), issuer ? issuer->key() : key.get());
  return Cert(std::move(cert), std::move(key));
}

}  // namespace

PkeyPtr make_key(KeyType type) {
  PkeyPtr key;
  switch (type) {
    case KeyType::rsa2048:
      key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048)));
      break;
    case KeyType::ecdsa_p256:
      key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
      break;
  }
  check(key != nullptr, "EVP_PKEY_Q_keygen");
  return key;
}

Cert::Cert(X509Ptr cert, PkeyPtr key) : cert_(std::move(cert)), key_(std::move(key)) {
  if (!cert_ || !key_) throw std::invalid_argument("lab certs: Cert needs a cert and a key");
}

Cert::Cert(const Cert& other) {
  X509_up_ref(other.cert_.get());
  cert_.reset(other.cert_.get());
  EVP_PKEY_up_ref(other.key_.get());
  key_.reset(other.key_.get());
}

Cert& Cert::operator=(const Cert& other) {
  if (this != &other) {
    Cert copy(other);
    *this = std::move(copy);
  }
  return *this;
}

std::string Cert::cert_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_X509(bio.get(), cert_.get()) == 1, "PEM_write_bio_X509");
  return bio_string(bio.get());
}

std::string Cert::key_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                        nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return bio_string(bio.get());
}

std::vector<unsigned char> Cert::cert_der() const {
  return to_der([&](unsigned char** out) { return i2d_X509(cert_.get(), out); }, "i2d_X509");
}

std::vector<unsigned char> Cert::spki_der() const {
  return to_der(
      [&](unsigned char** out) { return i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert_.get()), out); },
      "i2d_X509_PUBKEY");
}

std::string Cert::subject_cn() const {
  std::array<char, 256> buf{};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert_.get()), NID_commonName, buf.data(),
                                    static_cast<int>(buf.size()));
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

Cert make_ca(const std::string& name, KeyType type, Validity validity, const Cert* issuer) {
  PkeyPtr key = make_key(type);
  X509Ptr cert = make_tbs(name, key.get(), issuer, validity);
  X509* issuer_cert = issuer ? issuer->x509() : cert.get();
  add_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  sign(cert.get(), issuer ? issuer->key() : key.get());
  return Cert(std::move(cert), std::move(key));
}

Cert make_leaf(const std::vector<std::string>& names, KeyType type, Validity validity,
               const Cert& issuer) {
  return make_server_cert(names, type, validity, &issuer);
}

Cert make_self_signed(const std::vector<std::string>& names, KeyType type, Validity validity) {
  return make_server_cert(names, type, validity, nullptr);
}

std::vector<Cert> Chain::presented() const {
  std::vector<Cert> out{leaf};
  out.insert(out.end(), intermediates.begin(), intermediates.end());
  if (send_root && root) out.push_back(*root);
  return out;
}

std::string Chain::chain_pem() const {
  std::string pem;
  for (const auto& c : presented()) pem += c.cert_pem();
  return pem;
}

const Cert* Chain::issuer() const {
  if (!intermediates.empty()) return &intermediates.front();
  if (root) return &*root;
  return nullptr;
}

Chain self_signed(const std::vector<std::string>& names, KeyType type) {
  return Chain{make_self_signed(names, type), {}, std::nullopt, false};
}

Chain private_ca(const std::vector<std::string>& names, KeyType type, bool expired_leaf,
                 bool expired_intermediate) {
  Validity ca_validity{-2 * 3600, 10L * 365 * 86400};
  Cert root = make_ca("danemta lab root CA", type, ca_validity);
  Cert intermediate = make_ca("danemta lab intermediate CA", type,
                              expired_intermediate ? kExpired : ca_validity, &root);
  Cert leaf = make_leaf(names, type, expired_leaf ? kExpired : Validity{}, intermediate);
  return Chain{std::move(leaf), {std::move(intermediate)}, std::move(root), false};
}

std::string tlsa_data_hex(const Cert& cert, int selector, int mtype) {
  std::vector<unsigned char> data;
  switch (selector) {
    case 0:
      data = cert.cert_der();
      break;
    case 1:
      data = cert.spki_der();
      break;
    default:
      throw std::invalid_argument("tlsa_data_hex: selector must be 0 or 1");
  }
  switch (mtype) {
    case 0:
      return hex(data);
    case 1:
      return hex(digest(EVP_sha256(), data));
    case 2:
      return hex(digest(EVP_sha512(), data));
    default:
      throw std::invalid_argument("tlsa_data_hex: matching type must be 0, 1 or 2");
  }
}

std::string tlsa_rdata(const Cert& cert, int usage, int selector, int mtype) {
  std::string data = tlsa_data_hex(cert, selector, mtype);
  return std::to_string(usage) + ' ' + std::to_string(selector) + ' ' + std::to_string(mtype) +
         ' ' + data;
}

void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("lab certs: cannot write " + path.string());
}

ChainFiles write_chain_files(const Chain& chain, const std::filesystem::path& dir,
                             const std::string& stem) {
  const auto base = std::filesystem::absolute(dir);
  ChainFiles files{base / (stem + ".crt"), base / (stem + ".key"), base / (stem + "-leaf.crt"),
                   std::nullopt};
  write_file(files.chain, chain.chain_pem());
  write_file(files.key, chain.key_pem());
  std::filesystem::permissions(
      files.key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  write_file(files.leaf, chain.leaf.cert_pem());
  if (chain.root) {
    files.ca = base / (stem + "-ca.crt");
    write_file(*files.ca, chain.root->cert_pem());
  }
  return files;
}

}  // namespace danemta::lab
