// Submitting TLS reports (RFC 8460 section 5): by mail (5.3, DKIM-signed,
// RFC 6376) and by HTTPS POST (5.4).
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "base/result.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {

struct DkimKey {
  std::string domain;           // d=
  std::string selector;         // s=
  std::string private_key_pem;  // RSA (rsa-sha256) private key, PEM
};

// Loads the PEM file; errors name the file.
Result<DkimKey> load_dkim_key(const std::string& domain, const std::string& selector,
                              const std::string& pem_path);

// Signs a complete RFC 5322 message (CRLF line ends) with rsa-sha256,
// relaxed/relaxed canonicalisation, covering at least From, To, Subject,
// Date, Message-ID, MIME-Version, Content-Type, TLS-Report-Domain and
// TLS-Report-Submitter; returns the message with the DKIM-Signature field
// prepended.
Result<std::string> dkim_sign(const std::string& message, const DkimKey& key);

struct ReportMail {
  std::string from;       // "tlsrpt-noreply@sender.example"
  std::string to;         // the address of the mailto: rua
  std::string submitter;  // the sending organisation's domain (section 5.3)
  Time now = 0;
};

// The section 5.3 message: Subject "Report Domain: D Submitter: S
// Report-ID: <id>", TLS-Report-Domain and TLS-Report-Submitter fields,
// multipart/report; report-type="tlsrpt" with a short text/plain part and
// the report as application/tlsrpt+gzip (base64) named report_filename().
// DKIM-signed with `key`.
Result<std::string> report_email(const ReportMail& mail, const ReportInput& report,
                                 const std::string& gzipped_json, const DkimKey& key);

struct HttpsOptions {
  std::chrono::seconds timeout{60};
  // PEM file of trusted CAs; empty: the system's default trust store.
  std::string ca_file;
};

// POSTs the gzipped report to an https: rua URI with Content-Type
// application/tlsrpt+gzip, verifying the server's certificate and name.
// Success is any 2xx answer; anything else is an error carrying the status.
boost::asio::awaitable<Result<void>> https_post(std::string url, std::string gzipped_json,
                                                HttpsOptions options);

}  // namespace danemta::tlsrpt
