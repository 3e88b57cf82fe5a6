// DKIM signing (RFC 6376) of TLS report mails with libopendkim.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <vector>

// dkim.h uses C's _Bool, which C++ (without GNU extensions) does not know; the
// two have the same representation on every ABI libopendkim supports.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include "tlsrpt/submit.hpp"

namespace danemta::tlsrpt {

namespace {

struct LibClose {
  void operator()(DKIM_LIB* lib) const noexcept { dkim_close(lib); }
};
struct HandleFree {
  void operator()(DKIM* dkim) const noexcept { dkim_free(dkim); }
};
struct BioFree {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* pkey) const noexcept { EVP_PKEY_free(pkey); }
};
using LibPtr = std::unique_ptr<DKIM_LIB, LibClose>;
using HandlePtr = std::unique_ptr<DKIM, HandleFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// The fields submit.hpp promises to cover (RFC 6376 section 5.4; RFC 8460
// section 5.3 names TLS-Report-Domain and TLS-Report-Submitter). Lower case:
// libopendkim matches names case-insensitively.
constexpr std::array<const char*, 10> kSignedHeaders = {"from",
                                                        "to",
                                                        "subject",
                                                        "date",
                                                        "message-id",
                                                        "mime-version",
                                                        "content-type",
                                                        "tls-report-domain",
                                                        "tls-report-submitter",
                                                        nullptr};

constexpr std::string_view kFieldName = "DKIM-Signature";

std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out.empty() ? "no OpenSSL detail" : out;
}

std::string stat_text(DKIM_STAT stat, DKIM* dkim) {
  std::string out = dkim_getresultstr(stat);
  if (dkim != nullptr) {
    if (const char* detail = dkim_geterror(dkim); detail != nullptr && *detail != '\0') {
      out += ": ";
      out += detail;
    }
  }
  return out;
}

// libopendkim folds the field with bare LF (milter convention); a message
// with CRLF line ends needs CRLF there too (RFC 5322 section 2.2.3).
std::string with_crlf(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += s[i];
  }
  return out;
}

// The PEM must hold an RSA private key of at least 1024 bits: rsa-sha256
// (RFC 6376 section 3.3) and RFC 8301 section 3.2, which forbids verifiers
// to accept shorter keys. Checked before libopendkim sees the key, whose
// own error path leaks.
Result<void> check_rsa_key(const std::string& pem) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return fail(openssl_errors(), Severity::permanent);
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    return fail("not a PEM private key (" + openssl_errors() + ")", Severity::permanent);
  }
  if (!EVP_PKEY_is_a(pkey.get(), "RSA")) {
    return fail("not an RSA key (rsa-sha256 needs one)", Severity::permanent);
  }
  if (EVP_PKEY_get_bits(pkey.get()) < 1024) {
    return fail("RSA key shorter than 1024 bits", Severity::permanent);
  }
  return {};
}

}  // namespace

Result<DkimKey> load_dkim_key(const std::string& domain, const std::string& selector,
                              const std::string& pem_path) {
  std::ifstream in(pem_path, std::ios::binary);
  if (!in) {
    return fail("DKIM key " + pem_path + ": cannot open: " + std::strerror(errno),
                Severity::permanent);
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = std::move(text).str();
  if (in.bad()) return fail("DKIM key " + pem_path + ": read error", Severity::permanent);

  if (auto checked = check_rsa_key(pem); !checked) {
    return fail("DKIM key " + pem_path + ": " + checked.error().message, Severity::permanent);
  }
  if (domain.empty() || selector.empty()) {
    return fail("DKIM key " + pem_path + ": domain and selector are required", Severity::permanent);
  }
  return DkimKey{domain, selector, std::move(pem)};
}

Result<std::string> dkim_sign(const std::string& message, const DkimKey& key) {
  if (auto checked = check_rsa_key(key.private_key_pem); !checked) {
    return fail("DKIM key for " + key.selector + "._domainkey." + key.domain + ": " +
                    checked.error().message,
                Severity::permanent);
  }
  LibPtr lib(dkim_init(nullptr, nullptr));
  if (!lib) return fail("DKIM: cannot initialise libopendkim");

  // The option takes the array itself (a char**), not its address.
  auto* hdrs = const_cast<char**>(kSignedHeaders.data());
  if (const DKIM_STAT st =
          dkim_options(lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, hdrs, sizeof hdrs);
      st != DKIM_STAT_OK) {
    return fail("DKIM: cannot set the signed header list: " + stat_text(st, nullptr));
  }

  // dkim_sign copies the key; it wants a NUL-terminated, writable buffer.
  std::vector<unsigned char> secret(key.private_key_pem.begin(), key.private_key_pem.end());
  secret.push_back('\0');
  const std::string id = "tlsrpt";
  DKIM_STAT st = DKIM_STAT_OK;
  HandlePtr dkim(dkim_sign(lib.get(), reinterpret_cast<const unsigned char*>(id.c_str()), nullptr,
                           secret.data(),
                           reinterpret_cast<const unsigned char*>(key.selector.c_str()),
                           reinterpret_cast<const unsigned char*>(key.domain.c_str()),
                           DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st));
  if (!dkim) return fail("DKIM: cannot start signing: " + stat_text(st, nullptr));

  std::vector<unsigned char> wire(message.begin(), message.end());
  st = dkim_chunk(dkim.get(), wire.data(), wire.size());
  if (st == DKIM_STAT_OK) st = dkim_chunk(dkim.get(), nullptr, 0);
  if (st != DKIM_STAT_OK)
    return fail("DKIM: cannot process the message: " + stat_text(st, dkim.get()));
  st = dkim_eom(dkim.get(), nullptr);
  if (st != DKIM_STAT_OK) return fail("DKIM: cannot sign: " + stat_text(st, dkim.get()));

  unsigned char* value = nullptr;
  std::size_t len = 0;
  st = dkim_getsighdr_d(dkim.get(), kFieldName.size() + 2, &value, &len);
  if (st != DKIM_STAT_OK || value == nullptr) {
    return fail("DKIM: no signature: " + stat_text(st, dkim.get()));
  }
  const std::string_view folded(reinterpret_cast<const char*>(value), len);
  std::string out;
  out.reserve(kFieldName.size() + 2 + len + 2 + message.size());
  out += kFieldName;
  out += ": ";
  out += with_crlf(folded);
  out += "\r\n";
  out += message;
  return out;
}

}  // namespace danemta::tlsrpt
