#include "tls/certs.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "base/text.hpp"

namespace danemta::tls {

void X509Free::operator()(x509_st* x) const {
  X509_free(x);
}

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};

std::string name_text(X509_NAME* name) {
  if (!name) return "";
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string time_text(const ASN1_TIME* t, std::int64_t* epoch) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  if (epoch) *epoch = static_cast<std::int64_t>(timegm(&tm));
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// RFC 6698 section 2.1.3: 0 = the data itself, 1 = SHA2-256, 2 = SHA2-512.
Result<std::vector<std::uint8_t>> apply_mtype(std::vector<std::uint8_t> data, int mtype) {
  const EVP_MD* md = nullptr;
  switch (mtype) {
    case 0:
      return data;
    case 1:
      md = EVP_sha256();
      break;
    case 2:
      md = EVP_sha512();
      break;
    default:
      return fail("matching type must be 0, 1 or 2", Severity::permanent);
  }
  std::vector<std::uint8_t> digest(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &len, md, nullptr) != 1)
    return fail("digest failed: " + openssl_error());
  digest.resize(len);
  return digest;
}

}  // namespace

CertSummary summarize(x509_st* cert) {
  CertSummary s;
  s.subject = name_text(X509_get_subject_name(cert));
  s.issuer = name_text(X509_get_issuer_name(cert));
  s.self_issued = X509_check_issued(cert, cert) == X509_V_OK;
  s.not_before = time_text(X509_get0_notBefore(cert), nullptr);
  s.not_after = time_text(X509_get0_notAfter(cert), &s.not_after_epoch);

  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = gn->d.dNSName;
      s.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                               static_cast<std::size_t>(ASN1_STRING_length(dns)));
    }
  }

  if (auto spki = association_data(cert, 1, 1)) s.spki_sha256 = to_hex(*spki);
  if (auto der = association_data(cert, 0, 0)) s.cert_der = std::move(*der);
  if (auto der = association_data(cert, 1, 0)) s.spki_der = std::move(*der);
  s.is_ca = X509_check_ca(cert) != 0;
  if (EVP_PKEY* key = X509_get0_pubkey(cert)) {
    int bits = EVP_PKEY_get_bits(key);
    if (EVP_PKEY_is_a(key, "RSA")) {
      s.key = "RSA " + std::to_string(bits);
    } else if (EVP_PKEY_is_a(key, "EC")) {
      char group[64] = {};
      std::size_t len = 0;
      EVP_PKEY_get_group_name(key, group, sizeof group, &len);
      s.key = std::string("EC ") + group;
    } else {
      s.key = std::string(EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?") + " " +
              std::to_string(bits);
    }
  }
  return s;
}

Result<std::vector<std::uint8_t>> association_data(x509_st* cert, int selector, int mtype) {
  unsigned char* der = nullptr;
  int len = -1;
  if (selector == 0)
    len = i2d_X509(cert, &der);
  else if (selector == 1)
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  else
    return fail("selector must be 0 (certificate) or 1 (public key)", Severity::permanent);
  if (len < 0) return fail("cannot encode certificate: " + openssl_error());
  std::vector<std::uint8_t> data(der, der + len);
  OPENSSL_free(der);

  return apply_mtype(std::move(data), mtype);
}

Result<dns::TlsaRecord> make_tlsa(x509_st* cert, int usage, int selector, int mtype) {
  auto data = association_data(cert, selector, mtype);
  if (!data) return tl::unexpected(data.error());
  return dns::TlsaRecord{static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector),
                         static_cast<std::uint8_t>(mtype), std::move(*data)};
}

Result<std::vector<X509Ptr>> load_pem_chain(const std::string& path) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return fail("cannot read " + path + ": " + std::strerror(errno), Severity::permanent);
  std::vector<X509Ptr> chain;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    chain.push_back(std::move(cert));
  }
  unsigned long err = ERR_peek_last_error();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE &&
                    !chain.empty())) {
    std::string why = openssl_error();
    return fail(path + ": not a PEM certificate file (" + why + ")", Severity::permanent);
  }
  ERR_clear_error();
  if (chain.empty()) return fail(path + ": no PEM certificate found", Severity::permanent);
  return chain;
}

Result<std::vector<X509Ptr>> parse_pem_chain(std::string_view pem, const std::string& what) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return fail("out of memory reading " + what, Severity::permanent);
  std::vector<X509Ptr> chain;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    chain.push_back(std::move(cert));
  }
  ERR_clear_error();
  if (chain.empty()) return fail(what + ": no PEM certificate found", Severity::permanent);
  return chain;
}

bool matches(const CertSummary& cert, const dns::TlsaRecord& record) {
  const std::vector<std::uint8_t>& der = record.selector == 0 ? cert.cert_der : cert.spki_der;
  if (record.selector > 1 || der.empty()) return false;
  auto data = apply_mtype(der, record.mtype);
  return data && *data == record.data;
}

bool names_match(const CertSummary& cert, const std::vector<std::string>& names) {
  for (const std::string& raw : cert.dns_names) {
    std::string id = normalize_domain(raw);
    for (const std::string& name : names) {
      if (id == name) return true;
      if (id.size() > 2 && id[0] == '*' && id[1] == '.') {
        auto dot = name.find('.');
        if (dot != std::string::npos && dot > 0 && name.substr(dot + 1) == id.substr(2))
          return true;
      }
    }
  }
  return false;
}

std::vector<CertSummary> summarize_chain(stack_st_X509* chain) {
  std::vector<CertSummary> out;
  if (!chain) return out;
  for (int i = 0; i < sk_X509_num(chain); ++i) out.push_back(summarize(sk_X509_value(chain, i)));
  return out;
}

}  // namespace danemta::tls
