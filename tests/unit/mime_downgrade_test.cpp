// RFC 6152 downgrade of 8-bit messages to 7-bit MIME (mime/downgrade.hpp).
#include "mime/downgrade.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace danemta::mime {
namespace {

// Every line at most 998 octets and every octet below 0x80.
void expect_7bit(const std::string& s) {
  EXPECT_FALSE(is_8bit(s));
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t lf = s.find('\n', pos);
    if (lf == std::string::npos) lf = s.size();
    std::size_t end = lf > pos && s[lf - 1] == '\r' ? lf - 1 : lf;
    EXPECT_LE(end - pos, 998u) << "line at " << pos;
    pos = lf + 1;
  }
}

// The header section (up to the blank line) and the body of an entity.
struct Split {
  std::string header;
  std::string body;
};

Split split(std::string_view entity) {
  const std::size_t blank = entity.find("\r\n\r\n");
  if (blank == std::string_view::npos) return {std::string(entity), ""};
  return {std::string(entity.substr(0, blank + 2)), std::string(entity.substr(blank + 4))};
}

// The body parts between "--boundary" delimiter lines (RFC 2046 5.1.1).
std::vector<std::string> parts(std::string_view body, std::string_view boundary) {
  const std::string delimiter = "--" + std::string(boundary);
  std::vector<std::string> out;
  std::size_t at = body.find(delimiter);
  while (at != std::string_view::npos) {
    const std::size_t line_end = body.find("\r\n", at);
    if (line_end == std::string_view::npos || body.substr(at + delimiter.size(), 2) == "--") break;
    const std::size_t next = body.find("\r\n" + delimiter, line_end);
    if (next == std::string_view::npos) {
      out.emplace_back(body.substr(line_end + 2));
      break;
    }
    out.emplace_back(body.substr(line_end + 2, next - line_end - 2));
    at = next + 2;
  }
  return out;
}

// Decodes an entity's body by its Content-Transfer-Encoding field.
std::string decoded_body(std::string_view entity) {
  const Split s = split(entity);
  if (s.header.find("Content-Transfer-Encoding: quoted-printable\r\n") != std::string::npos) {
    auto d = decode_quoted_printable(s.body);
    EXPECT_TRUE(d.has_value());
    return d.value_or("");
  }
  if (s.header.find("Content-Transfer-Encoding: base64\r\n") != std::string::npos) {
    auto d = decode_base64(s.body);
    EXPECT_TRUE(d.has_value());
    return d.value_or("");
  }
  return s.body;
}

std::string convert(std::string_view message) {
  auto out = to_7bit(message);
  EXPECT_TRUE(out.has_value()) << (out ? "" : out.error().reason);
  if (!out) return "";
  expect_7bit(*out);
  return *out;
}

TEST(MimeDowngrade, SevenBitMessageIsUnchanged) {
  const std::string m = "From: a@example.org\r\nSubject: hello\r\n\r\nplain text\r\n.\r\n" +
                        std::string(1200, 'x') + "\r\n";
  EXPECT_FALSE(is_8bit(m));
  auto out = to_7bit(m);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, m);
}

TEST(MimeDowngrade, NonMimeEightBitTextBecomesQuotedPrintableUnknown8bit) {
  const std::string header = "From: a@example.org\r\nSubject: hello\r\n";
  const std::string body =
      "Gr\xc3\xbc\xc3\x9f"
      "e aus K\xc3\xb6ln\r\nzweite Zeile\r\n";
  const std::string m = header + "\r\n" + body;
  ASSERT_TRUE(is_8bit(m));
  const std::string out = convert(m);
  EXPECT_EQ(out, header +
                     "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=unknown-8bit\r\n\r\n"
                     "Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\nzweite Zeile\r\n");
  EXPECT_EQ(decoded_body(out), body);
}

TEST(MimeDowngrade, ContentTypeWithoutMimeVersionKeepsTheContentType) {
  const std::string m =
      "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9\r\n";
  const std::string out = convert(m);
  EXPECT_EQ(out,
            "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\ncaf=E9\r\n");
}

TEST(MimeDowngrade, MultipartAlternativeConvertsEachPartAndKeepsTheRest) {
  const std::string text =
      "Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9f"
      "e\r\n";
  const std::string html =
      "<p>Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9f"
      "e</p>\r\n";
  const std::string head =
      "From: a@example.org\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative;\r\n boundary=\"=_b 1\"\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\n";
  const std::string m = head +
                        "This is a MIME message.\r\n"
                        "--=_b 1\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: 8bit\r\n\r\n" +
                        text + "\r\n--=_b 1  \r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
                        html + "\r\n--=_b 1--\r\nepilogue\r\n";
  const std::string out = convert(m);
  const Split top = split(out);
  EXPECT_EQ(top.header,
            "From: a@example.org\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative;\r\n boundary=\"=_b 1\"\r\n"
            "Content-Transfer-Encoding: 7bit\r\n");
  EXPECT_TRUE(top.body.starts_with("This is a MIME message.\r\n--=_b 1\r\n"));
  EXPECT_TRUE(top.body.ends_with("\r\n--=_b 1--\r\nepilogue\r\n"));
  EXPECT_NE(top.body.find("\r\n--=_b 1  \r\n"), std::string::npos);
  const auto p = parts(top.body, "=_b 1");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(split(p[0]).header,
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n");
  EXPECT_EQ(decoded_body(p[0]), text);
  EXPECT_EQ(split(p[1]).header,
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n");
  EXPECT_EQ(decoded_body(p[1]), html);
}

std::string all_octets() {
  std::string s;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 256; ++i) s += static_cast<char>(i);
  }
  return s;
}

TEST(MimeDowngrade, BinaryAttachmentMarked8bitBecomesBase64) {
  const std::string data = all_octets();
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
      "--XX\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
      "--XX\r\nContent-Type: application/octet-stream\r\n"
      "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
      "Content-Transfer-Encoding:\r\n  8bit\r\n\r\n" +
      data + "\r\n--XX--\r\n";
  const std::string out = convert(m);
  const auto p = parts(split(out).body, "XX");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], "Content-Type: text/plain\r\n\r\nsee attachment");
  EXPECT_EQ(split(p[1]).header,
            "Content-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n");
  EXPECT_EQ(decoded_body(p[1]), data);
  const std::string b64 = split(p[1]).body;
  EXPECT_EQ(b64.find("\r\n"), 76u);
}

TEST(MimeDowngrade, NestedMultipartAndQuotedPrintablePartUntouched) {
  const std::string qp_part =
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\nK=C3=B6ln=\r\n ist sch=C3=B6n";
  const std::string inner_text = "\xe2\x82\xac 10\r\n";
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
      "--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
      "--inner\r\n" +
      qp_part + "\r\n--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + inner_text +
      "\r\n--inner--\r\n\r\n--outer\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n"
      "\r\n--outer--\r\n";
  const std::string out = convert(m);
  const auto outer = parts(split(out).body, "outer");
  ASSERT_EQ(outer.size(), 2u);
  EXPECT_EQ(split(outer[0]).header, "Content-Type: multipart/alternative; boundary=\"inner\"\r\n");
  const auto inner = parts(split(outer[0]).body, "inner");
  ASSERT_EQ(inner.size(), 2u);
  EXPECT_EQ(inner[0], qp_part);
  EXPECT_EQ(decoded_body(inner[1]), inner_text);
  EXPECT_EQ(decoded_body(outer[1]), "\x89PNG\r\n\x1a\n");
}

TEST(MimeDowngrade, MessageRfc822PartIsConvertedInsideAndStays7bit) {
  const std::string inner_body = "\xc3\xa9t\xc3\xa9\r\n";
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nforwarded:\r\n"
      "--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
      "From: c@example.org\r\nSubject: inner\r\n\r\n" +
      inner_body + "\r\n--b--\r\n";
  const std::string out = convert(m);
  const auto p = parts(split(out).body, "b");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], "Content-Type: text/plain\r\n\r\nforwarded:");
  const Split part = split(p[1]);
  EXPECT_EQ(part.header, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n");
  const Split inner = split(part.body);
  EXPECT_EQ(inner.header,
            "From: c@example.org\r\nSubject: inner\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=unknown-8bit\r\n");
  EXPECT_EQ(decoded_body(part.body), inner_body);
}

TEST(MimeDowngrade, MultipartDigestPartsDefaultToMessageRfc822) {
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
      "--d\r\n\r\nSubject: one\r\n\r\nna\xc3\xafve\r\n--d--\r\n";
  const std::string out = convert(m);
  const auto p = parts(split(out).body, "d");
  ASSERT_EQ(p.size(), 1u);
  // The part has no header; its content is a message converted on its own.
  EXPECT_TRUE(p[0].starts_with("\r\nSubject: one\r\nContent-Transfer-Encoding: quoted-printable"));
  EXPECT_EQ(decoded_body(p[0].substr(2)), "na\xc3\xafve");
}

TEST(MimeDowngrade, LongLinesAreBrokenWithSoftLineBreaks) {
  std::string line;
  for (int i = 0; i < 700; ++i) line += i % 7 == 0 ? "\xc3\xa4" : "ab";
  const std::string body = line + "\r\n" + std::string(2000, 'z') + "\r\n";
  const std::string out = convert("Subject: long\r\n\r\n" + body);
  const Split s = split(out);
  std::size_t pos = 0;
  while (pos < s.body.size()) {
    const std::size_t e = s.body.find("\r\n", pos);
    ASSERT_NE(e, std::string::npos);
    EXPECT_LE(e - pos, 76u);
    pos = e + 2;
  }
  EXPECT_EQ(decoded_body(out), body);
}

TEST(MimeDowngrade, SevenBitPartWithOverlongLineIsConvertedWhenTheMessageIs8bit) {
  const std::string long_part = std::string(1500, 'q');
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\n" +
      long_part + "\r\n--b\r\nContent-Type: text/plain\r\n\r\n\xff\r\n--b--\r\n";
  const std::string out = convert(m);
  const auto p = parts(split(out).body, "b");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(decoded_body(p[0]), long_part);
  EXPECT_EQ(decoded_body(p[1]), "\xff");
}

TEST(MimeDowngrade, TrailingWhitespaceAndEqualsSignsAreEncoded) {
  EXPECT_EQ(encode_quoted_printable("a = b  \r\ntab\t\r\n \r\n"),
            "a =3D b =20\r\ntab=09\r\n=20\r\n");
  const std::string body = "\xc3\xa4 trailing  \r\nx\t\r\n";
  EXPECT_EQ(decoded_body(convert("Subject: t\r\n\r\n" + body)), body);
}

TEST(MimeDowngrade, LoneDotAndFromLinesStaySafe) {
  const std::string body = "\xc3\xa4\r\n.\r\n..x\r\nFrom here\r\n";
  const std::string out = convert("Subject: t\r\n\r\n" + body);
  EXPECT_EQ(split(out).body, "=C3=A4\r\n=2E\r\n=2E.x\r\nFrom here\r\n");
  EXPECT_EQ(decoded_body(out), body);
}

TEST(MimeDowngrade, BareLineEndsAndBodyWithoutFinalLineEnd) {
  const std::string body = "a\rb\nc\xc3\xa4";
  const std::string out = convert("Subject: t\r\n\r\n" + body);
  EXPECT_EQ(split(out).body, "a=0Db=0Ac=C3=A4=\r\n");
  EXPECT_EQ(decoded_body(out), body);
}

TEST(MimeDowngrade, MissingCloseDelimiterIsTolerated) {
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: application/pdf\r\n\r\n%PDF\xe2\xe3\r\n";
  const std::string out = convert(m);
  const auto p = parts(split(out).body, "b");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(decoded_body(p[0]), "%PDF\xe2\xe3\r\n");
  EXPECT_TRUE(out.ends_with("\r\n"));
}

TEST(MimeDowngrade, UnparsableContentTypeCountsAsTextPlain) {
  // RFC 2045 section 5.2; here the type hides in an unclosed comment ending in a backslash.
  const std::string m = "MIME-Version: 1.0\r\nContent-Type:(multipart/\\\r\n\r\n\xc3\xa4\r\n";
  const std::string out = convert(m);
  EXPECT_EQ(split(out).header,
            "MIME-Version: 1.0\r\nContent-Type:(multipart/\\\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n");
  EXPECT_EQ(decoded_body(out), "\xc3\xa4\r\n");
}

TEST(MimeDowngrade, Utf8HeaderNeedsSmtputf8) {
  for (const std::string& m :
       {std::string("Subject: Gr\xc3\xbc\xc3\x9f"
                    "e\r\n\r\nbody\r\n"),
        std::string("From: j\xc3\xb6rg@example.org\r\n\r\nk\xc3\xb6ln\r\n"),
        std::string("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                    "--b\r\nContent-Disposition: attachment; filename=\"\xc3\xa4.txt\"\r\n\r\n"
                    "x\r\n--b--\r\n")}) {
    auto out = to_7bit(m);
    ASSERT_FALSE(out.has_value());
    EXPECT_EQ(out.error().kind, DowngradeError::utf8_header);
    EXPECT_EQ(out.error().status, "5.6.7");
    EXPECT_FALSE(out.error().reason.empty());
  }
}

TEST(MimeDowngrade, UnconvertibleStructuresBounceWith563) {
  const std::vector<std::string> cases = {
      // A part that claims base64 but holds raw 8-bit octets.
      "MIME-Version: 1.0\r\nContent-Type: application/zip\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\nUEsD\xff\r\n",
      // Multipart without a boundary parameter.
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n\xc3\xa4\r\n",
      // No delimiter line at all.
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\xc3\xa4\r\n",
      // 8-bit preamble.
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "pr\xc3\xa4\r\n--b\r\n\r\nx\r\n--b--\r\n",
      // message/partial is 7bit only.
      "MIME-Version: 1.0\r\nContent-Type: message/partial; id=1; number=1\r\n\r\n\xc3\xa4\r\n",
      // A header line longer than 998 octets.
      "X-Long: " + std::string(1000, 'a') + "\r\n\r\n\xc3\xa4\r\n",
  };
  for (const std::string& m : cases) {
    auto out = to_7bit(m);
    ASSERT_FALSE(out.has_value()) << m;
    EXPECT_EQ(out.error().kind, DowngradeError::unconvertible);
    EXPECT_EQ(out.error().status, "5.6.3");
    EXPECT_FALSE(out.error().reason.empty());
  }
}

TEST(MimeDowngrade, EncodersRoundTripAndDecodersRejectMalformedText) {
  const std::string data = all_octets() + "\r\n.\r\n  \r\n=\r\n";
  for (std::size_t n = 0; n < data.size(); n += 37) {
    const std::string piece = data.substr(0, n);
    EXPECT_EQ(decode_quoted_printable(encode_quoted_printable(piece)), piece);
    EXPECT_EQ(decode_base64(encode_base64(piece)), piece);
  }
  EXPECT_EQ(encode_base64("ab"), "YWI=");
  EXPECT_EQ(decode_base64("YQ=="), "a");
  EXPECT_FALSE(decode_base64("YQ=").has_value());
  EXPECT_FALSE(decode_base64("Y").has_value());
  EXPECT_FALSE(decode_base64("YQ==YQ==").has_value());
  EXPECT_FALSE(decode_base64("Y*==").has_value());
  EXPECT_FALSE(decode_quoted_printable("a=4").has_value());
  EXPECT_FALSE(decode_quoted_printable("a=G0").has_value());
}

}  // namespace
}  // namespace danemta::mime
