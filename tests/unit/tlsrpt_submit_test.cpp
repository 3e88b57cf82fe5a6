// The TLS report mail (RFC 8460 section 5.3) and its DKIM signature (RFC
// 6376): the signature is checked by libopendkim in verify mode, with the
// public key served from a test key file (DKIM_QUERY_FILE) instead of DNS.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <gtest/gtest.h>

#include "tlsrpt/submit.hpp"

namespace danemta::tlsrpt {
namespace {

namespace fs = std::filesystem;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct LibClose {
  void operator()(DKIM_LIB* p) const noexcept { dkim_close(p); }
};
struct HandleFree {
  void operator()(DKIM* p) const noexcept { dkim_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using LibPtr = std::unique_ptr<DKIM_LIB, LibClose>;
using HandlePtr = std::unique_ptr<DKIM, HandleFree>;

void write(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::string private_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(n)};
}

std::string base64(const std::vector<unsigned char>& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unbase64(std::string_view text) {
  std::string compact;
  for (const char c : text) {
    if (c != '\r' && c != '\n') compact += c;
  }
  std::string out(compact.size() / 4 * 3 + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(compact.data()),
                                static_cast<int>(compact.size()));
  if (n < 0) return "<invalid base64>";
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (compact.size() >= 1 && compact.back() == '=') --len;
  if (compact.size() >= 2 && compact[compact.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

// "DKIM_STAT_OK" when the message carries a valid signature by the key in
// the test key file, with the covered header names.
struct Verdict {
  DKIM_STAT stat = DKIM_STAT_INTERNAL;
  std::string text;
  std::vector<std::string> signed_headers;  // those of `probe` that h= covers
};

Verdict verify(const std::string& message, const fs::path& key_file,
               const std::vector<std::string>& probe) {
  Verdict v;
  LibPtr lib(dkim_init(nullptr, nullptr));
  if (!lib) return v;
  dkim_query_t method = DKIM_QUERY_FILE;
  EXPECT_EQ(dkim_options(lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method),
            DKIM_STAT_OK);
  std::string path = key_file.string();
  EXPECT_EQ(dkim_options(lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, path.data(), path.size()),
            DKIM_STAT_OK);
  DKIM_STAT st = DKIM_STAT_OK;
  const std::string id = "verify";
  HandlePtr dkim(
      dkim_verify(lib.get(), reinterpret_cast<const unsigned char*>(id.c_str()), nullptr, &st));
  if (!dkim) return v;
  std::vector<unsigned char> wire(message.begin(), message.end());
  st = dkim_chunk(dkim.get(), wire.data(), wire.size());
  if (st == DKIM_STAT_OK) st = dkim_chunk(dkim.get(), nullptr, 0);
  if (st == DKIM_STAT_OK) st = dkim_eom(dkim.get(), nullptr);
  v.stat = st;
  v.text = dkim_getresultstr(st);
  if (const char* e = dkim_geterror(dkim.get()); e != nullptr) v.text += std::string(": ") + e;
  if (DKIM_SIGINFO* sig = dkim_getsignature(dkim.get()); sig != nullptr) {
    for (const auto& name : probe) {
      std::string copy = name;
      if (dkim_sig_hdrsigned(sig, reinterpret_cast<unsigned char*>(copy.data()))) {
        v.signed_headers.push_back(name);
      }
    }
  }
  return v;
}

// The header section as (name, unfolded value) pairs.
std::vector<std::pair<std::string, std::string>> header_fields(std::string_view headers) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos < headers.size()) {
    std::size_t end = headers.find("\r\n", pos);
    if (end == std::string_view::npos) end = headers.size();
    const std::string_view line = headers.substr(pos, end - pos);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      if (!out.empty()) out.back().second += std::string(line);
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string value(line.substr(colon + 1));
      if (!value.empty() && value.front() == ' ') value.erase(0, 1);
      out.emplace_back(std::string(line.substr(0, colon)), value);
    }
    pos = end + 2;
  }
  return out;
}

std::string field_value(const std::vector<std::pair<std::string, std::string>>& fields,
                        std::string_view name) {
  for (const auto& f : fields) {
    if (f.first == name) return f.second;
  }
  return "<missing " + std::string(name) + ">";
}

class SubmitMailTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = EVP_RSA_gen(2048);
    ASSERT_NE(key_, nullptr);
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(key_);
    key_ = nullptr;
  }

  void SetUp() override {
    std::array<char, 64> tmpl{};
    const std::string pattern = (fs::temp_directory_path() / "danemta-dkim-XXXXXX").string();
    ASSERT_LT(pattern.size(), tmpl.size());
    std::copy(pattern.begin(), pattern.end(), tmpl.begin());
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl.data();
    write(dir_ / "dkim.pem", private_pem(key_));

    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(key_, &der);
    ASSERT_GT(n, 0);
    std::vector<unsigned char> spki(der, der + n);
    OPENSSL_free(der);
    write(dir_ / "keys", "sel1._domainkey.sender.example v=DKIM1; k=rsa; p=" + base64(spki) + "\n");

    report_.organization_name = "Sender Org";
    report_.contact_info = "mailto:postmaster@sender.example";
    report_.report_id = "2026-11-28T00:00:00Z_recv.example";
    report_.begin = 1795824000;
    report_.end = 1795910400;
    report_.policy_domain = "recv.example";
    mail_.from = "tlsrpt-noreply@sender.example";
    mail_.to = "reports@recv.example";
    mail_.submitter = "sender.example";
    mail_.now = 1795913000;

    std::mt19937 rng(42);
    gz_ = "\x1f\x8b\x08";
    for (int i = 0; i < 1000; ++i) gz_ += static_cast<char>(rng() & 0xFF);
  }

  void TearDown() override { fs::remove_all(dir_); }

  DkimKey key() {
    auto k = load_dkim_key("sender.example", "sel1", (dir_ / "dkim.pem").string());
    EXPECT_TRUE(k) << k.error().message;
    return k ? *k : DkimKey{};
  }

  static inline EVP_PKEY* key_ = nullptr;
  fs::path dir_;
  ReportInput report_;
  ReportMail mail_;
  std::string gz_;
};

const std::vector<std::string> kRequired = {"from",
                                            "to",
                                            "subject",
                                            "date",
                                            "message-id",
                                            "mime-version",
                                            "content-type",
                                            "tls-report-domain",
                                            "tls-report-submitter"};

TEST_F(SubmitMailTest, SignatureVerifiesAndCoversTheRequiredFields) {
  auto mail = report_email(mail_, report_, gz_, key());
  ASSERT_TRUE(mail) << mail.error().message;
  ASSERT_EQ(mail->rfind("DKIM-Signature: ", 0), 0U);

  const Verdict v = verify(*mail, dir_ / "keys", kRequired);
  EXPECT_EQ(v.stat, DKIM_STAT_OK) << v.text;
  EXPECT_EQ(v.signed_headers, kRequired);

  const auto fields = header_fields(mail->substr(0, mail->find("\r\n\r\n") + 2));
  const std::string sig = field_value(fields, "DKIM-Signature");
  EXPECT_NE(sig.find("a=rsa-sha256"), std::string::npos) << sig;
  EXPECT_NE(sig.find("c=relaxed/relaxed"), std::string::npos) << sig;
  EXPECT_NE(sig.find("d=sender.example"), std::string::npos) << sig;
  EXPECT_NE(sig.find("s=sel1"), std::string::npos) << sig;
}

TEST_F(SubmitMailTest, TamperedBodyOrHeaderFailsVerification) {
  auto mail = report_email(mail_, report_, gz_, key());
  ASSERT_TRUE(mail) << mail.error().message;

  std::string body_changed = *mail;
  const auto text = body_changed.find("aggregate TLS report");
  ASSERT_NE(text, std::string::npos);
  body_changed[text] = 'A';
  EXPECT_NE(verify(body_changed, dir_ / "keys", {}).stat, DKIM_STAT_OK);

  std::string header_changed = *mail;
  const auto domain = header_changed.find("TLS-Report-Domain: recv.example");
  ASSERT_NE(domain, std::string::npos);
  header_changed.replace(domain, 31, "TLS-Report-Domain: evil.example");
  EXPECT_NE(verify(header_changed, dir_ / "keys", {}).stat, DKIM_STAT_OK);

  // Relaxed canonicalisation (RFC 6376 section 3.4.2): header name case and
  // whitespace runs do not matter.
  std::string relaxed = *mail;
  const auto subject = relaxed.find("\r\nSubject: ");
  ASSERT_NE(subject, std::string::npos);
  relaxed.replace(subject, 11, "\r\nsubject:   ");
  EXPECT_EQ(verify(relaxed, dir_ / "keys", {}).stat, DKIM_STAT_OK);
}

TEST_F(SubmitMailTest, MessageStructureFollowsRfc8460Section53) {
  auto mail = report_email(mail_, report_, gz_, key());
  ASSERT_TRUE(mail) << mail.error().message;
  const std::string& m = *mail;

  // CRLF everywhere, no line beyond 998 characters (RFC 5322 section 2.1.1).
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') {
      ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
    }
    if (m[i] == '\r') {
      ASSERT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i;
    }
  }
  for (std::size_t pos = 0; pos < m.size();) {
    const auto end = m.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - pos, 998U);
    pos = end + 2;
  }

  const auto header_end = m.find("\r\n\r\n");
  ASSERT_NE(header_end, std::string::npos);
  const auto fields = header_fields(m.substr(0, header_end + 2));
  EXPECT_EQ(field_value(fields, "From"), "tlsrpt-noreply@sender.example");
  EXPECT_EQ(field_value(fields, "To"), "reports@recv.example");
  EXPECT_EQ(field_value(fields, "Subject"),
            "Report Domain: recv.example Submitter: sender.example "
            "Report-ID: <2026-11-28T00:00:00Z_recv.example>");
  EXPECT_EQ(field_value(fields, "Date"), "Sun, 29 Nov 2026 00:43:20 +0000");
  EXPECT_EQ(field_value(fields, "MIME-Version"), "1.0");
  EXPECT_EQ(field_value(fields, "TLS-Report-Domain"), "recv.example");
  EXPECT_EQ(field_value(fields, "TLS-Report-Submitter"), "sender.example");
  const std::string msgid = field_value(fields, "Message-ID");
  EXPECT_EQ(msgid.front(), '<');
  EXPECT_EQ(msgid.back(), '>');
  EXPECT_NE(msgid.find("@sender.example>"), std::string::npos) << msgid;
  EXPECT_EQ(msgid.find(':'), std::string::npos) << msgid;

  const std::string ctype = field_value(fields, "Content-Type");
  EXPECT_EQ(ctype.rfind("multipart/report; report-type=\"tlsrpt\"; boundary=\"", 0), 0U) << ctype;
  const auto b0 = ctype.find("boundary=\"") + 10;
  const std::string boundary = ctype.substr(b0, ctype.find('"', b0) - b0);
  ASSERT_FALSE(boundary.empty());

  const std::string body = m.substr(header_end + 4);
  const std::string delim = "--" + boundary + "\r\n";
  const std::string close = "\r\n--" + boundary + "--\r\n";
  ASSERT_EQ(body.rfind(delim, 0), 0U) << body.substr(0, 200);
  ASSERT_GE(body.size(), close.size());
  ASSERT_EQ(body.substr(body.size() - close.size()), close);
  const auto second = body.find("\r\n" + delim);
  ASSERT_NE(second, std::string::npos);
  ASSERT_EQ(body.find("\r\n" + delim, second + 1), std::string::npos) << "more than two parts";

  const std::string text_part = body.substr(delim.size(), second - delim.size());
  EXPECT_NE(text_part.find("Content-Type: text/plain"), std::string::npos);
  EXPECT_NE(text_part.find("\r\n\r\nThis is an aggregate TLS report from sender.example"),
            std::string::npos)
      << text_part;

  const std::string report_part = body.substr(
      second + 2 + delim.size(), body.size() - close.size() - second - 2 - delim.size());
  const auto part_header_end = report_part.find("\r\n\r\n");
  ASSERT_NE(part_header_end, std::string::npos);
  const auto part_fields = header_fields(report_part.substr(0, part_header_end + 2));
  EXPECT_EQ(field_value(part_fields, "Content-Type"), "application/tlsrpt+gzip");
  EXPECT_EQ(field_value(part_fields, "Content-Transfer-Encoding"), "base64");
  EXPECT_EQ(field_value(part_fields, "Content-Disposition"),
            "attachment; filename=\"" + report_filename("sender.example", report_) + "\"");

  const std::string encoded = report_part.substr(part_header_end + 4);
  for (std::size_t pos = 0; pos < encoded.size();) {
    const auto end = encoded.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos);
    const bool last = end + 2 >= encoded.size();
    if (!last) {
      EXPECT_EQ(end - pos, 76U) << "base64 line at " << pos;
    }
    EXPECT_LE(end - pos, 76U);
    pos = end + 2;
  }
  EXPECT_EQ(unbase64(encoded), gz_);
}

TEST_F(SubmitMailTest, HeaderInjectionIsRefused) {
  ReportMail bad = mail_;
  bad.to = "reports@recv.example\r\nBcc: victim@example.org";
  auto mail = report_email(bad, report_, gz_, key());
  ASSERT_FALSE(mail);
  EXPECT_EQ(mail.error().severity, Severity::permanent);
  EXPECT_NE(mail.error().message.find("To address"), std::string::npos) << mail.error().message;
}

TEST_F(SubmitMailTest, LoadDkimKeyErrorsNameTheFile) {
  const std::string missing = (dir_ / "missing.pem").string();
  auto k = load_dkim_key("sender.example", "sel1", missing);
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find(missing), std::string::npos) << k.error().message;
  EXPECT_EQ(k.error().severity, Severity::permanent);

  const std::string garbage = (dir_ / "garbage.pem").string();
  write(garbage, "not a key\n");
  k = load_dkim_key("sender.example", "sel1", garbage);
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find(garbage), std::string::npos) << k.error().message;

  PkeyPtr ec(EVP_EC_gen("P-256"));
  ASSERT_TRUE(ec);
  const std::string ec_path = (dir_ / "ec.pem").string();
  write(ec_path, private_pem(ec.get()));
  k = load_dkim_key("sender.example", "sel1", ec_path);
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find(ec_path), std::string::npos) << k.error().message;
  EXPECT_NE(k.error().message.find("RSA"), std::string::npos) << k.error().message;

  auto good = load_dkim_key("sender.example", "sel1", (dir_ / "dkim.pem").string());
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(good->domain, "sender.example");
  EXPECT_EQ(good->selector, "sel1");
  EXPECT_NE(good->private_key_pem.find("PRIVATE KEY"), std::string::npos);
}

TEST_F(SubmitMailTest, SigningWithAnUnusableKeyIsAnError) {
  DkimKey bad{"sender.example", "sel1",
              "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"};
  auto mail = report_email(mail_, report_, gz_, bad);
  EXPECT_FALSE(mail);
}

}  // namespace
}  // namespace danemta::tlsrpt
