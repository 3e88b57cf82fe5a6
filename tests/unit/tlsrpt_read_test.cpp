// Reading received TLS reports (RFC 8460): the JSON as real senders write
// it, its gzip (a bomb included), report mails in their MIME variants, and
// the summary over many reports; and danemta's own report mail read back.
#define ZLIB_CONST
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

#include "tlsrpt/received.hpp"
#include "tlsrpt/submit.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// RFC 8460 Appendix B, as a sender would write it (mx-host an array).
const std::string kAppendixB = R"({
  "organization-name": "Company-X",
  "date-range": {
    "start-datetime": "2016-04-01T00:00:00Z",
    "end-datetime": "2016-04-01T23:59:59Z"
  },
  "contact-info": "sts-reporting@company-x.example",
  "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1", "mode: testing",
                        "mx: *.mail.company-y.example", "max_age: 86400"],
      "policy-domain": "company-y.example",
      "mx-host": ["*.mail.company-y.example"]
    },
    "summary": {
      "total-successful-session-count": 5326,
      "total-failure-session-count": 303
    },
    "failure-details": [{
      "result-type": "certificate-expired",
      "sending-mta-ip": "2001:db8:abcd:0012::1",
      "receiving-mx-hostname": "mx1.mail.company-y.example",
      "failed-session-count": 100
    }, {
      "result-type": "starttls-not-supported",
      "sending-mta-ip": "2001:db8:abcd:0013::1",
      "receiving-mx-hostname": "mx2.mail.company-y.example",
      "receiving-ip": "203.0.113.56",
      "failed-session-count": 200,
      "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
    }, {
      "result-type": "validation-failure",
      "sending-mta-ip": "198.51.100.62",
      "receiving-ip": "203.0.113.58",
      "receiving-mx-hostname": "mx-backup.mail.company-y.example",
      "failed-session-count": 3,
      "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    }]
  }]
})";

std::string gz(const std::string& s) {
  auto z = gzip(s);
  EXPECT_TRUE(z) << z.error().message;
  return z ? *z : std::string();
}

std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  std::string lines;
  for (std::size_t i = 0; i < out.size(); i += 76) lines += out.substr(i, 76) + "\r\n";
  return lines;
}

// A minimal report with one policy and the given policy and summary bodies.
std::string report_with(const std::string& policy, const std::string& rest,
                        const std::string& id = "r1") {
  return R"({"organization-name":"Org","contact-info":"c@org.example","report-id":")" + id +
         R"(","date-range":{"start-datetime":"2026-11-28T00:00:00Z","end-datetime":"2026-11-28T23:59:59Z"},"policies":[{"policy":)" +
         policy + "," + rest + "}]}";
}

const std::string kPolicy =
    R"({"policy-type":"tlsa","policy-string":["3 1 1 AA"],"policy-domain":"d.example","mx-host":["mx.d.example"]})";

// ---- the JSON ---------------------------------------------------------------

TEST(TlsrptRead, AppendixBReport) {
  auto r = read_report(kAppendixB);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->organization_name, "Company-X");
  EXPECT_EQ(r->contact_info, "sts-reporting@company-x.example");
  EXPECT_EQ(r->report_id, "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
  ASSERT_TRUE(r->has_range);
  EXPECT_EQ(r->begin, 1459468800);
  EXPECT_EQ(r->end, 1459468800 + 86399);
  ASSERT_EQ(r->policies.size(), 1u);
  const ReceivedPolicy& p = r->policies[0];
  EXPECT_EQ(p.policy_type, "sts");
  EXPECT_EQ(p.policy_domain, "company-y.example");
  EXPECT_THAT(p.mx_hosts, ElementsAre("*.mail.company-y.example"));
  EXPECT_EQ(p.policy_strings.size(), 4u);
  EXPECT_EQ(p.successful, 5326);
  EXPECT_EQ(p.failed, 303);
  ASSERT_EQ(p.failures.size(), 3u);
  EXPECT_EQ(p.failures[0].result_type, "certificate-expired");
  EXPECT_EQ(p.failures[0].sending_mta_ip, "2001:db8:abcd:0012::1");
  EXPECT_EQ(p.failures[0].receiving_mx_hostname, "mx1.mail.company-y.example");
  EXPECT_EQ(p.failures[0].failed_session_count, 100);
  EXPECT_EQ(p.failures[1].receiving_ip, "203.0.113.56");
  EXPECT_EQ(p.failures[2].failure_reason_code, "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED");
  EXPECT_EQ(p.failures[2].failed_session_count, 3);
  EXPECT_THAT(r->notes, IsEmpty()) << "unknown fields (additional-information) pass silently";
}

TEST(TlsrptRead, MxHostAsAString) {
  auto r = read_report(report_with(
      R"({"policy-type":"tlsa","policy-domain":"d.example","mx-host":"MX.D.example."})",
      R"("summary":{"total-successful-session-count":1,"total-failure-session-count":0})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_THAT(r->policies[0].mx_hosts, ElementsAre("mx.d.example"));
  EXPECT_THAT(r->notes, ElementsAre("mx-host given as a string, not an array"));
}

TEST(TlsrptRead, MissingOptionalFields) {
  // No policy-string, no mx-host, no failure-details, no sending-mta-ip.
  auto r = read_report(report_with(
      R"({"policy-type":"no-policy-found","policy-domain":"d.example"})",
      R"("summary":{"total-successful-session-count":7,"total-failure-session-count":2})"));
  ASSERT_TRUE(r) << r.error().message;
  const ReceivedPolicy& p = r->policies[0];
  EXPECT_THAT(p.policy_strings, IsEmpty());
  EXPECT_THAT(p.mx_hosts, IsEmpty());
  EXPECT_THAT(p.failures, IsEmpty());
  EXPECT_EQ(p.successful, 7);
  EXPECT_EQ(p.failed, 2);

  auto d = read_report(report_with(
      kPolicy, R"("summary":{"total-successful-session-count":0,"total-failure-session-count":4},
                  "failure-details":[{"result-type":"tlsa-invalid","failed-session-count":4}])"));
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_EQ(d->policies[0].failures.size(), 1u);
  EXPECT_EQ(d->policies[0].failures[0].sending_mta_ip, "");
  EXPECT_EQ(d->policies[0].failures[0].failed_session_count, 4);
}

TEST(TlsrptRead, MissingRequiredTextIsNotedNotFatal) {
  auto r = read_report(
      R"({"policies":[{"policy":{"policy-domain":"d.example"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->has_range);
  EXPECT_EQ(r->organization_name, "");
  EXPECT_THAT(r->notes, ElementsAre("no organization-name", "no contact-info", "no report-id",
                                    "no date-range", "no policy-type"));
}

TEST(TlsrptRead, UnknownFieldsEverywhere) {
  auto r = read_report(
      R"({"x-vendor":{"deep":[1,2,{"a":null}]},"organization-name":"O","contact-info":"c","report-id":"i",)"
      R"("date-range":{"start-datetime":"2026-11-28T00:00:00Z","end-datetime":"2026-11-28T23:59:59Z","tz":"UTC"},)"
      R"("policies":[{"policy":{"policy-type":"tlsa","policy-domain":"d.example","x":1},"x-extra":true,)"
      R"("summary":{"total-successful-session-count":3,"total-failure-session-count":0,"other":"y"}}]})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].successful, 3);
  EXPECT_THAT(r->notes, IsEmpty());
}

TEST(TlsrptRead, CountsAsStringsAndWholeFloats) {
  auto r = read_report(report_with(
      kPolicy,
      R"("summary":{"total-successful-session-count":"12","total-failure-session-count":" 5 "},
         "failure-details":[{"result-type":"tlsa-invalid","failed-session-count":5.0}])"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].successful, 12);
  EXPECT_EQ(r->policies[0].failed, 5);
  EXPECT_EQ(r->policies[0].failures[0].failed_session_count, 5);
  EXPECT_THAT(r->notes,
              ElementsAre("counts written as strings", "counts written with a fraction (\".0\")"));
}

TEST(TlsrptRead, PolicyStringAsAStringAndPolicyTypeCase) {
  auto r = read_report(report_with(
      R"({"policy-type":"TLSA","policy-string":"3 1 1 AA","policy-domain":"D.Example"})",
      R"("summary":{"total-successful-session-count":1,"total-failure-session-count":0})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].policy_type, "tlsa");
  EXPECT_EQ(r->policies[0].policy_domain, "d.example");
  EXPECT_THAT(r->policies[0].policy_strings, ElementsAre("3 1 1 AA"));
}

TEST(TlsrptRead, DateTimeVariants) {
  Time t = 0;
  EXPECT_TRUE(parse_rfc3339("2016-04-01T00:00:00Z", t));
  EXPECT_EQ(t, 1459468800);
  EXPECT_TRUE(parse_rfc3339("2016-04-01t02:00:00.123+02:00", t));
  EXPECT_EQ(t, 1459468800);
  EXPECT_TRUE(parse_rfc3339("2016-03-31 19:00:00-05:00", t));
  EXPECT_EQ(t, 1459468800);
  EXPECT_TRUE(parse_rfc3339("2016-12-31T23:59:60Z", t));
  EXPECT_EQ(t, 1483228799);
  for (const char* bad :
       {"2016-04-01", "2016-04-01T00:00:00", "2016-02-30T00:00:00Z", "2016-04-01T24:00:00Z",
        "2016-04-01T00:00:00+2:00", "", "2016-04-01T00:00:00.Z", "2016-04-01T00:00:00Zjunk"})
    EXPECT_FALSE(parse_rfc3339(bad, t)) << bad;
}

// ---- malformed ----------------------------------------------------------------

void expect_error(const std::string& input, const std::string& says) {
  auto r = read_report(input);
  ASSERT_FALSE(r) << input;
  EXPECT_THAT(r.error().message, HasSubstr(says)) << input;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << "one line";
}

TEST(TlsrptRead, MalformedReportsSayWhatAndWhere) {
  expect_error("", "empty file");
  expect_error("{\"organization-name\": \"x\"", "not valid JSON: parse error at line 1");
  expect_error("[1,2]", "the report is a JSON array, not an object");
  expect_error(R"({"organization-name":"O"})", "policies: missing");
  expect_error(R"({"policies":{}})", "policies: expected an array, found object");
  expect_error(report_with(kPolicy, R"("summary":{"total-successful-session-count":1})"),
               "policies[0].summary.total-failure-session-count: missing");
  expect_error(report_with(kPolicy, R"("summary":{"total-successful-session-count":-1,)"
                                    R"("total-failure-session-count":0})"),
               "policies[0].summary.total-successful-session-count: negative (-1)");
  expect_error(report_with(kPolicy, R"("summary":{"total-successful-session-count":"ten",)"
                                    R"("total-failure-session-count":0})"),
               "\"ten\" is not a session count");
  expect_error(report_with(kPolicy, R"("summary":{"total-successful-session-count":1.5,)"
                                    R"("total-failure-session-count":0})"),
               "1.5 is not a session count");
  expect_error(report_with(kPolicy, R"("summary":{"total-successful-session-count":1,)"
                                    R"("total-failure-session-count":1},"failure-details":[{}])"),
               "policies[0].failure-details[0].failed-session-count: missing");
  expect_error(report_with(R"({"mx-host":[1]})", R"("summary":{})"),
               "policies[0].policy.mx-host[0]: expected a string, found number");
  expect_error(R"({"policies":[{"summary":{}}]})", "policies[0].policy: missing");
  expect_error(R"({"date-range":{"start-datetime":"yesterday"},"policies":[]})",
               "date-range.start-datetime: \"yesterday\" is not an RFC 3339 date-time");
  // What the input said is quoted on one printable line.
  expect_error(R"({"date-range":{"start-datetime":"a\nb\u001b[31m"},"policies":[]})",
               "date-range.start-datetime: \"a?b?[31m\" is not an RFC 3339 date-time");
  expect_error(R"({"organization-name":7,"policies":[]})",
               "organization-name: expected a string, found number");
  expect_error("{\"organization-name\":\"\xff\",\"policies\":[]}", "not valid JSON");
  expect_error(std::string("{\"policies\":[]}\0junk", 20),
               "not valid JSON: a NUL byte at offset 15");
  expect_error("hello world\n", "neither a TLS report (JSON or gzip) nor a mail message");
}

TEST(TlsrptRead, NestingAndSizeLimits) {
  std::string deep =
      R"({"x":)" + std::string(40, '[') + std::string(40, ']') + R"(,"policies":[]})";
  expect_error(deep, "JSON nested deeper than 32 levels");
  // Brackets inside strings do not count.
  auto ok =
      read_report(R"({"x":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[[[","policies":[]})");
  EXPECT_TRUE(ok) << ok.error().message;

  ReadLimits small;
  small.max_values = 100;
  std::string many = R"({"x":[)";
  for (int i = 0; i < 200; ++i) many += "0,";
  many += R"(0],"policies":[]})";
  auto r = read_report(many, small);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("more than 100 values"));

  small = ReadLimits{};
  small.max_json_bytes = 1000;
  r = read_report(std::string(2000, ' ') + "{}", small);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("report larger than 1000 bytes"));
}

// ---- gzip ------------------------------------------------------------------------

TEST(TlsrptRead, GzippedReport) {
  auto r = read_report(gz(kAppendixB));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].failed, 303);
  // Two gzip members one after the other are one stream (RFC 1952 2.2).
  const std::string half = kAppendixB.substr(0, 200);
  auto two = gunzip(gz(half) + gz(kAppendixB.substr(200)), 1 << 20);
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(*two, kAppendixB);
}

TEST(TlsrptRead, BrokenGzip) {
  const std::string z = gz(kAppendixB);
  auto truncated = read_report(z.substr(0, z.size() / 2));
  ASSERT_FALSE(truncated);
  EXPECT_THAT(truncated.error().message, HasSubstr("gzip data ends early (truncated)"));
  std::string corrupt = z;
  corrupt[12] = static_cast<char>(corrupt[12] ^ 0x55);
  corrupt[13] = static_cast<char>(corrupt[13] ^ 0x55);
  auto bad = read_report(corrupt);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("gzip"));
  auto gzipped_garbage = read_report(gz("this is not json"));
  ASSERT_FALSE(gzipped_garbage);
  EXPECT_THAT(gzipped_garbage.error().message, HasSubstr("not valid JSON"));
}

// 128 MiB of zeros after "{" in a few hundred KB of gzip: reading stops at the
// 16 MiB cap instead of inflating it all.
TEST(TlsrptRead, GzipBombStopsAtTheCap) {
  z_stream zs{};
  // Run-length matches only: zeros compress about 1000:1 in little time.
  ASSERT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_RLE), Z_OK);
  std::string bomb;
  const std::string chunk = "{" + std::string(1 << 20, '\0');
  std::vector<char> out(1 << 16);
  for (int i = 0; i < 128; ++i) {
    zs.next_in = reinterpret_cast<const Bytef*>(chunk.data() + (i == 0 ? 0 : 1));
    zs.avail_in = static_cast<uInt>(chunk.size() - (i == 0 ? 0 : 1));
    const int flush = i == 127 ? Z_FINISH : Z_NO_FLUSH;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(out.data());
      zs.avail_out = static_cast<uInt>(out.size());
      deflate(&zs, flush);
      bomb.append(out.data(), out.size() - zs.avail_out);
    } while (zs.avail_out == 0);
  }
  deflateEnd(&zs);
  ASSERT_LT(bomb.size(), 1u << 20);
  auto r = read_report(bomb);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("decompresses to more than 16 MiB (the limit)"));
  auto g = gunzip(bomb, 1000);
  ASSERT_FALSE(g);
  EXPECT_THAT(g.error().message, HasSubstr("more than 1000 bytes"));
}

// ---- report mails (section 5.3) -------------------------------------------------------

// A report mail with line ends `eol`, the boundary written `boundary_param`
// (quoted or not) and the attachment's transfer encoding `cte`.
std::string mail(const std::string& eol, const std::string& boundary_param, const std::string& cte,
                 const std::string& type, const std::string& payload_encoded) {
  const std::string b = "=_b0und.ary";
  std::string m;
  for (const std::string& line :
       {std::string("From: tlsrpt@sender.example"), std::string("To: reports@d.example"),
        std::string("Subject: Report Domain: d.example Submitter: sender.example"),
        std::string("MIME-Version: 1.0"), std::string("TLS-Report-Domain: d.example"),
        "Content-Type: multipart/report; report-type=tlsrpt;" + eol +
            "\tboundary=" + boundary_param,
        std::string(""), std::string("This is a MIME message (preamble)."), "--" + b,
        std::string("Content-Type: text/plain"), std::string(""),
        std::string("An aggregate TLS report."), "--" + b + "  ", "Content-Type: " + type,
        "Content-Transfer-Encoding: " + cte,
        std::string("Content-Disposition: attachment; filename=\"s!d.example!1!2.json.gz\""),
        std::string("")})
    m += line + eol;
  std::string payload = payload_encoded;
  if (eol == "\n") {
    std::string lf;
    for (char c : payload)
      if (c != '\r') lf += c;
    payload = lf;
  }
  m += payload;
  if (!payload.empty() && payload.back() != '\n') m += eol;
  m += "--" + b + "--" + eol + "epilogue" + eol;
  return m;
}

TEST(TlsrptRead, MailVariants) {
  const std::string z = gz(kAppendixB);
  struct Case {
    const char* name;
    std::string text;
  };
  const std::vector<Case> cases = {
      {"CRLF, quoted boundary",
       mail("\r\n", "\"=_b0und.ary\"", "base64", "application/tlsrpt+gzip", b64(z))},
      {"LF only", mail("\n", "\"=_b0und.ary\"", "base64", "application/tlsrpt+gzip", b64(z))},
      {"unquoted boundary (with \"=\", as some senders write it), BASE64 in capitals",
       mail("\r\n", "=_b0und.ary", "BASE64", "application/tlsrpt+gzip", b64(z))},
      {"type in capitals, comment", mail("\r\n", "\"=_b0und.ary\" (the boundary)", "Base64 ",
                                         "Application/TLSRPT+GZIP; name=\"r.json.gz\"", b64(z))},
      {"json attachment, 7bit",
       mail("\r\n", "\"=_b0und.ary\"", "7bit", "application/tlsrpt+json", kAppendixB + "\r\n")},
      {"json attachment, quoted-printable",
       mail("\r\n", "\"=_b0und.ary\"", "quoted-printable", "application/tlsrpt+json",
            "{\"organization-name\": \"Company=2DX\", =\r\n" +
                kAppendixB.substr(kAppendixB.find("\"date-range\"")))},
      {"octet-stream named .json.gz",
       mail("\r\n", "\"=_b0und.ary\"", "base64", "application/octet-stream", b64(z))},
  };
  for (const Case& c : cases) {
    auto r = read_report(c.text);
    ASSERT_TRUE(r) << c.name << ": " << r.error().message;
    EXPECT_EQ(r->organization_name, "Company-X") << c.name;
    ASSERT_EQ(r->policies.size(), 1u) << c.name;
    EXPECT_EQ(r->policies[0].successful, 5326) << c.name;
    EXPECT_EQ(r->policies[0].failed, 303) << c.name;
    ASSERT_EQ(r->policies[0].failures.size(), 3u) << c.name;
  }
  auto octet = read_report(cases.back().text);
  ASSERT_TRUE(octet);
  EXPECT_THAT(octet->notes, ElementsAre("the report attachment is application/octet-stream, not "
                                        "application/tlsrpt+*"));
}

TEST(TlsrptRead, ReportInsideAForwardedMultipart) {
  const std::string inner =
      mail("\r\n", "\"=_b0und.ary\"", "base64", "application/tlsrpt+gzip", b64(gz(kAppendixB)));
  const std::string outer =
      "From: admin@d.example\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
      "Content-Type: text/plain\r\n\r\nForwarded report below.\r\n--outer\r\n"
      "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"=_b0und.ary\"\r\n\r\n" +
      inner.substr(inner.find("This is a MIME")) + "\r\n--outer--\r\n";
  auto r = read_report(outer);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].failed, 303);
}

TEST(TlsrptRead, MboxSeparatorLineBeforeTheMail) {
  auto r = read_report(
      "From tlsrpt@sender.example Tue Dec  1 10:00:00 2026\n" +
      mail("\n", "\"=_b0und.ary\"", "base64", "application/tlsrpt+gzip", b64(gz(kAppendixB))));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].failed, 303);
}

TEST(TlsrptRead, SinglePartReportMail) {
  const std::string m =
      "From: a@b.example\nContent-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: "
      "base64\n\n" +
      b64(gz(kAppendixB));
  auto r = read_report(m);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->policies[0].successful, 5326);
}

TEST(TlsrptRead, MailsThatAreNotReports) {
  const std::string dsn =
      "From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; "
      "report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
      "failed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--b--\r\n";
  expect_error(dsn,
               "not a TLS report mail (multipart/report; report-type=delivery-status): no "
               "application/tlsrpt+gzip or application/tlsrpt+json part");
  expect_error("From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n",
               "not a TLS report mail (no Content-Type)");
  expect_error("From: a@b.example\r\nContent-Type: multipart/report; report-type=tlsrpt\r\n\r\nx",
               "multipart/report without a boundary parameter");
  expect_error("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno parts",
               "boundary \"zz\" not found");
  expect_error(mail("\r\n", "\"=_b0und.ary\"", "x-uuencode", "application/tlsrpt+gzip", "begin"),
               "the application/tlsrpt+gzip part has an unknown Content-Transfer-Encoding "
               "\"x-uuencode\"");
  expect_error(mail("\r\n", "\"=_b0und.ary\"", "base64", "application/tlsrpt+gzip", b64("junk")),
               "the application/tlsrpt+gzip attachment: not valid JSON");
}

TEST(TlsrptRead, MimeNestingAndPartLimits) {
  std::string deep = "From: a@b.example\r\n";
  for (int i = 0; i < 12; ++i)
    deep += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
            std::to_string(i) + "\r\n";
  deep += "Content-Type: text/plain\r\n\r\nx\r\n";
  expect_error(deep, "MIME multiparts nested deeper than 8");

  std::string many = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 300; ++i) many += "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n";
  many += "--b--\r\n";
  expect_error(many, "more than 200 MIME parts");
}

// ---- danemta's own report, read back ------------------------------------------------

TEST(TlsrptRead, DanemtasOwnReportMailReadsBack) {
  ReportInput in;
  in.organization_name = "Sender Org";
  in.contact_info = "postmaster@sender.example";
  in.report_id = "2026-11-28_d.example_0123abcd@sender.example";
  in.begin = 1795824000;
  in.end = in.begin + 86400;
  in.policy_domain = "d.example";
  for (int i = 0; i < 5; ++i) {
    SessionResult ok;
    ok.policy_domain = "d.example";
    ok.policy_type = PolicyType::tlsa;
    ok.policy_strings = {"3 1 1 AABB"};
    ok.mx_host = "mx1.d.example";
    ok.success = true;
    in.results.push_back(ok);
  }
  for (int i = 0; i < 3; ++i) {
    SessionResult bad;
    bad.policy_domain = "d.example";
    bad.policy_type = PolicyType::tlsa;
    bad.policy_strings = {"3 1 1 CCDD"};
    bad.mx_host = "mx2.d.example";
    bad.result_type = "tlsa-invalid";
    bad.sending_mta_ip = "192.0.2.1";
    bad.receiving_mx_hostname = "mx2.d.example";
    bad.receiving_ip = "192.0.2.25";
    in.results.push_back(bad);
  }
  const std::string json = report_json(in);

  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(EVP_RSA_gen(2048), EVP_PKEY_free);
  ASSERT_TRUE(pkey);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr),
            1);
  char* pem = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &pem);
  const DkimKey key{"sender.example", "rpt", std::string(pem, static_cast<std::size_t>(len))};
  auto m = report_email(
      ReportMail{"tlsrpt@sender.example", "r@d.example", "sender.example", in.end + 3600}, in,
      gz(json), key);
  ASSERT_TRUE(m) << m.error().message;

  for (const std::string& bytes : {json, gz(json), *m}) {
    auto r = read_report(bytes);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->organization_name, "Sender Org");
    EXPECT_EQ(r->report_id, in.report_id);
    EXPECT_EQ(r->begin, in.begin);
    EXPECT_EQ(r->end, in.end - 1);
    ASSERT_EQ(r->policies.size(), 2u);
    EXPECT_THAT(r->policies[0].mx_hosts, ElementsAre("mx1.d.example"));
    EXPECT_EQ(r->policies[0].successful, 5);
    EXPECT_EQ(r->policies[0].failed, 0);
    EXPECT_THAT(r->policies[1].mx_hosts, ElementsAre("mx2.d.example"));
    EXPECT_EQ(r->policies[1].successful, 0);
    EXPECT_EQ(r->policies[1].failed, 3);
    ASSERT_EQ(r->policies[1].failures.size(), 1u);
    EXPECT_EQ(r->policies[1].failures[0].failed_session_count, 3);
    EXPECT_EQ(r->policies[1].failures[0].receiving_ip, "192.0.2.25");
    EXPECT_THAT(r->notes, IsEmpty());
  }
}

// ---- the summary ----------------------------------------------------------------------

TEST(TlsrptSummary, AddsUpPerOrganisationPolicyAndResultType) {
  const auto report = [](const std::string& org, const std::string& id, const std::string& day,
                         const std::string& mx, int ok, int failed, const std::string& ip) {
    return R"({"organization-name":")" + org + R"(","contact-info":"c@)" + org +
           R"(","report-id":")" + id + R"(","date-range":{"start-datetime":")" + day +
           R"(T00:00:00Z","end-datetime":")" + day +
           R"(T23:59:59Z"},"policies":[{"policy":{"policy-type":"tlsa","policy-domain":"d.example","mx-host":)" +
           mx + R"(},"summary":{"total-successful-session-count":)" + std::to_string(ok) +
           R"(,"total-failure-session-count":)" + std::to_string(failed) +
           R"(},"failure-details":[{"result-type":"tlsa-invalid","sending-mta-ip":")" + ip +
           R"(","receiving-mx-hostname":"mx.d.example","failed-session-count":)" +
           std::to_string(failed) + "}]}]}";
  };
  Summariser s;
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"a.json", report("Big", "1", "2026-11-28", R"(["mx.d.example"])", 10, 2, "192.0.2.1")},
      {"b.json", report("Big", "2", "2026-11-27", R"("mx.d.example")", 5, 1, "192.0.2.1")},
      {"c.eml", report("Big", "1", "2026-11-28", R"(["mx.d.example"])", 10, 2, "192.0.2.1")},
      {"d.json", report("Big", "3", "2026-11-29", R"(["mx.d.example"])", 1, 4, "192.0.2.2")},
      {"e.json", report("Alt", "x", "2026-11-28", R"(["mx.d.example"])", 7, 0, "")},
  };
  for (const auto& [file, text] : inputs) {
    auto r = read_report(text);
    ASSERT_TRUE(r) << r.error().message;
    s.add(*r, file);
  }
  const Summary sum = s.summary();
  EXPECT_EQ(sum.reports, 4u);
  ASSERT_EQ(sum.duplicates.size(), 1u);
  EXPECT_EQ(sum.duplicates[0].report_id, "1");
  EXPECT_EQ(sum.duplicates[0].source, "c.eml");
  EXPECT_EQ(sum.duplicates[0].first_source, "a.json");

  ASSERT_EQ(sum.organizations.size(), 2u);
  EXPECT_EQ(sum.organizations[0].organization_name, "Alt");
  const OrganizationSummary& big = sum.organizations[1];
  EXPECT_EQ(big.organization_name, "Big");
  EXPECT_EQ(big.contact_info, "c@Big");
  EXPECT_EQ(big.reports.size(), 3u);
  Time from = 0, to = 0;
  ASSERT_TRUE(parse_rfc3339("2026-11-27T00:00:00Z", from));
  ASSERT_TRUE(parse_rfc3339("2026-11-29T23:59:59Z", to));
  EXPECT_EQ(big.begin, from);
  EXPECT_EQ(big.end, to);
  // mx-host as a string and as an array are the same policy.
  ASSERT_EQ(big.policies.size(), 1u);
  const PolicyRow& p = big.policies[0];
  EXPECT_EQ(p.policy_type, "tlsa");
  EXPECT_THAT(p.mx_hosts, ElementsAre("mx.d.example"));
  EXPECT_EQ(p.successful, 16);
  EXPECT_EQ(p.failed, 7);
  ASSERT_EQ(p.failures.size(), 2u);
  EXPECT_EQ(p.failures[0].sending_mta_ip, "192.0.2.1");
  EXPECT_EQ(p.failures[0].sessions, 3);
  EXPECT_EQ(p.failures[1].sending_mta_ip, "192.0.2.2");
  EXPECT_EQ(p.failures[1].sessions, 4);
  EXPECT_THAT(big.notes, ElementsAre("mx-host given as a string, not an array"));
}

TEST(TlsrptSummary, CountsSaturateInsteadOfOverflowing) {
  const std::string huge =
      report_with(kPolicy,
                  R"("summary":{"total-successful-session-count":9223372036854775807,)"
                  R"("total-failure-session-count":0})",
                  "");
  Summariser s;
  for (int i = 0; i < 3; ++i) {
    auto r = read_report(huge);
    ASSERT_TRUE(r) << r.error().message;
    s.add(*r, "f");
  }
  const Summary sum = s.summary();
  EXPECT_EQ(sum.reports, 3u) << "no report-id: never a duplicate";
  EXPECT_EQ(sum.organizations[0].policies[0].successful, 9223372036854775807);
}

}  // namespace
}  // namespace danemta::tlsrpt
