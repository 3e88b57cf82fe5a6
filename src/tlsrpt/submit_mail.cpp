// The report mail of RFC 8460 section 5.3.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <utility>

#include "base/system.hpp"
#include "tlsrpt/submit.hpp"

namespace danemta::tlsrpt {

namespace {

constexpr std::size_t kBase64Line = 76;     // RFC 2045 section 6.8: at most 76 characters
constexpr std::size_t kBase64Input = 57;    // bytes that encode to one 76-character line
constexpr std::size_t kPreferredLine = 78;  // RFC 5322 section 2.1.1

// A value that goes into a header field or a quoted-string: no control
// characters (so no CR/LF that could inject fields), no quote or backslash.
bool safe_field_value(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

// The report id reduced to atext (RFC 5322 section 3.2.3) for a msg-id.
std::string atext_only(std::string_view s) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~.";
  std::string out;
  for (const char c : s) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += (alnum || kSpecials.find(c) != std::string_view::npos) ? c : '_';
  }
  while (!out.empty() && out.front() == '.') out.erase(0, 1);
  while (!out.empty() && out.back() == '.') out.pop_back();
  std::string collapsed;
  for (const char c : out) {
    if (c == '.' && !collapsed.empty() && collapsed.back() == '.') continue;
    collapsed += c;
  }
  return collapsed.empty() ? "report" : collapsed;
}

// Base64 (RFC 2045 section 6.8) in CRLF-terminated lines of 76 characters.
std::string base64_lines(std::string_view data) {
  std::string out;
  std::array<unsigned char, kBase64Line + 1> line{};
  for (std::size_t i = 0; i < data.size(); i += kBase64Input) {
    const std::size_t n = std::min(kBase64Input, data.size() - i);
    const int len = EVP_EncodeBlock(
        line.data(), reinterpret_cast<const unsigned char*>(data.data() + i), static_cast<int>(n));
    out.append(reinterpret_cast<const char*>(line.data()), static_cast<std::size_t>(len));
    out += "\r\n";
  }
  return out;
}

// "Name: value" with the value folded at its spaces (RFC 5322 section 2.2.3)
// so that lines stay near 78 characters where the words allow it.
std::string field(std::string_view name, std::string_view value) {
  std::string out(name);
  out += ':';
  std::size_t line_len = out.size();
  std::size_t pos = 0;
  while (pos <= value.size()) {
    const std::size_t space = value.find(' ', pos);
    const std::size_t end = space == std::string_view::npos ? value.size() : space;
    const std::string_view word = value.substr(pos, end - pos);
    if (line_len + 1 + word.size() > kPreferredLine && line_len > name.size() + 1) {
      out += "\r\n";
      line_len = 0;
    }
    out += ' ';
    out += word;
    line_len += 1 + word.size();
    if (space == std::string_view::npos) break;
    pos = space + 1;
  }
  out += "\r\n";
  return out;
}

}  // namespace

Result<std::string> report_email(const ReportMail& mail, const ReportInput& report,
                                 const std::string& gzipped_json, const DkimKey& key) {
  for (const auto& [what, value] :
       {std::pair<std::string_view, std::string_view>{"From address", mail.from},
        {"To address", mail.to},
        {"submitter", mail.submitter},
        {"policy domain", report.policy_domain},
        {"report id", report.report_id}}) {
    if (!safe_field_value(value) || value.find(' ') != std::string_view::npos) {
      return fail(
          "TLS report mail: unusable " + std::string(what) + " \"" + std::string(value) + "\"",
          Severity::permanent);
    }
  }
  const std::string filename = report_filename(mail.submitter, report);
  if (!safe_field_value(filename)) {
    return fail("TLS report mail: unusable file name \"" + filename + "\"", Severity::permanent);
  }

  // Only base64 and fixed text follow a boundary line, and "_" is neither in
  // the base64 alphabet nor in that text: the boundary cannot occur in the
  // content (RFC 2046 section 5.1.1).
  const std::string boundary = "=_danemta_tlsrpt_" + std::to_string(mail.now);

  // Section 5.3: the Subject, TLS-Report-Domain, TLS-Report-Submitter,
  // multipart/report (RFC 6522) with report-type "tlsrpt".
  std::string m;
  m += field("From", mail.from);
  m += field("To", mail.to);
  m += field("Subject", "Report Domain: " + report.policy_domain + " Submitter: " + mail.submitter +
                            " Report-ID: <" + report.report_id + ">");
  m += field("Date", rfc5322_date(mail.now));
  m += field("Message-ID", "<" + atext_only(report.report_id) + "." + std::to_string(mail.now) +
                               "@" + atext_only(mail.submitter) + ">");
  m += field("MIME-Version", "1.0");
  m += field("TLS-Report-Domain", report.policy_domain);
  m += field("TLS-Report-Submitter", mail.submitter);
  m += field("Content-Type",
             "multipart/report; report-type=\"tlsrpt\"; boundary=\"" + boundary + "\"");
  m += "\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Type: text/plain; charset=us-ascii\r\n";
  m += "Content-Transfer-Encoding: 7bit\r\n";
  m += "\r\n";
  m += "This is an aggregate TLS report from " + mail.submitter + "\r\n";
  m += "\r\n";

  // Section 5.3: the gzipped JSON as application/tlsrpt+gzip, named as in 5.1.
  m += "--" + boundary + "\r\n";
  m += "Content-Type: application/tlsrpt+gzip\r\n";
  m += "Content-Transfer-Encoding: base64\r\n";
  m += field("Content-Disposition", "attachment; filename=\"" + filename + "\"");
  m += "\r\n";
  m += base64_lines(gzipped_json);
  m += "\r\n";
  m += "--" + boundary + "--\r\n";

  return dkim_sign(m, key);
}

}  // namespace danemta::tlsrpt
