#include "dns/trust_anchor.hpp"

#include <gtest/gtest.h>

#include <string>

namespace danemta::dns {
namespace {

constexpr const char* kFile = "/x/root.key";

// The IANA root KSK-2017 DS, as built into the resolver.
constexpr const char* kIanaDs =
    ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n";

// What tests/lab/lab.py writes (". TTL IN DNSKEY ..."), with a key made by
// ldns-keygen; its key tag (from the file name K.+013+07550) is 7550.
constexpr const char* kLabDnskey =
    ". 300 IN DNSKEY 257 3 13 "
    "HwWUw2UTpVGn31hiCR4CEXs7BpXzHvHIW2DQ73W5seMgiH8ONpxc3x5IaE32Y5kqfl7oTVdC01SQQmOxx2D/XA==\n";

std::string error_of(const std::string& text) {
  auto r = parse_trust_anchors(text, kFile);
  if (r) return "(accepted)";
  EXPECT_EQ(r.error().severity, Severity::permanent);
  return r.error().message;
}

TEST(TrustAnchor, IanaRootDs) {
  auto r = parse_trust_anchors(kIanaDs, kFile);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const TrustAnchor& a = r->front();
  EXPECT_EQ(a.owner, ".");
  EXPECT_EQ(a.type, AnchorType::ds);
  EXPECT_EQ(a.key_tag, 20326);
  EXPECT_EQ(a.algorithm, 8);
  EXPECT_EQ(a.digest_type, 2);
  ASSERT_EQ(a.digest.size(), 32u);
  EXPECT_EQ(a.digest.front(), 0xE0);
  EXPECT_EQ(a.line, 1);
}

TEST(TrustAnchor, LabDnskey) {
  auto r = parse_trust_anchors(kLabDnskey, kFile);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const TrustAnchor& a = r->front();
  EXPECT_EQ(a.type, AnchorType::dnskey);
  EXPECT_EQ(a.flags, 257);
  EXPECT_EQ(a.algorithm, 13);
  EXPECT_EQ(a.public_key.size(), 64u) << "P-256 public key";
  EXPECT_EQ(a.key_tag, 7550) << "RFC 4034 appendix B";
}

TEST(TrustAnchor, RsaDnskeyKeyTag) {
  // ldns-keygen -a RSASHA256 -b 1024 -k example. (K example.+008+32237).
  auto r = parse_trust_anchors(
      "example.\tIN\tDNSKEY\t257 3 8 "
      "AwEAAd2Ye5Ta2Uj4iYSe2nMBox/KIII1PzkCyfM9/QuVHNepNKAAeKqwKzdCrxpr3YUuxh+usZzmcD3EATY+"
      "6wNw5ssx72xNEVeTVWv7p4gn9pOCUe6TdCOjjs2SP6+oN1hWwb7onjEcwh2COEfD+JMwV+"
      "kRaaI2fLMkr7mPit7gq8kl "
      ";{id = 32237 (ksk), size = 1024b}\n",
      kFile);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->front().owner, "example.");
  EXPECT_EQ(r->front().key_tag, 32237);
}

TEST(TrustAnchor, ZoneFileSyntax) {
  // Class before TTL, lower case, comments, a blank line, $TTL and $ORIGIN,
  // an indented entry reusing the owner, the digest split by white space and
  // parentheses spanning lines (RFC 1035 section 5.1, RFC 4034 section 5.3).
  auto r = parse_trust_anchors(
      "; root anchors\n"
      "$TTL 1d\n"
      "\n"
      ". in 172800 ds 20326 RSASHA256 2 E06D44B80B8F1D39A95C0B0D7C65D084 (\n"
      "      58E880409BBC683457104237C7F8EC8D ) ; KSK-2017\n"
      "   IN DS 38696 8 2 (\n"
      "      683D2D0ACB8C9B712A1948B27F741219\n"
      "      298D0A450D612C483AF444A4C0FB2B16 )\n"
      "$ORIGIN example.\n"
      "sub 3600 IN DNSKEY 257 3 13 ( HwWUw2UTpVGn31hiCR4CEXs7BpXzHvHIW2DQ73W5seMg\r\n"
      "  iH8ONpxc3x5IaE32Y5kqfl7oTVdC01SQQmOxx2D/XA== )\r\n"
      "@ IN DS 7550 13 1 0123456789abcdef0123456789ABCDEF01234567\n"
      "x IN DS 1 13 4 " +
          std::string(96, 'a') + "\n",
      kFile);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].key_tag, 20326);
  EXPECT_EQ((*r)[0].digest.size(), 32u);
  EXPECT_EQ((*r)[1].owner, ".");
  EXPECT_EQ((*r)[1].key_tag, 38696);
  EXPECT_EQ((*r)[1].line, 6);
  EXPECT_EQ((*r)[2].owner, "sub.example.");
  EXPECT_EQ((*r)[2].key_tag, 7550);
  EXPECT_EQ((*r)[3].owner, "example.");
  EXPECT_EQ((*r)[3].digest.size(), 20u);
  EXPECT_EQ((*r)[4].digest.size(), 48u);
}

TEST(TrustAnchor, ErrorsNameFileLineAndField) {
  EXPECT_EQ(error_of(". IN DS 20326 8 2 garbage\n"),
            "trust anchor file /x/root.key line 1: DS digest is not hex: garbage");
  const std::string short_digest = error_of(
      "; c\n. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC\n");
  EXPECT_NE(short_digest.find("line 2: DS digest of type 2 (SHA-256) must have 64 hex digits, "
                              "not 62"),
            std::string::npos)
      << short_digest;
  EXPECT_NE(error_of(". IN DS 20326 8 1 " + std::string(64, 'a')).find("40 hex digits"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS 70000 8 2 " + std::string(64, 'a')).find("DS key tag"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS -1 8 2 " + std::string(64, 'a')).find("DS key tag"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS 1 0 2 " + std::string(64, 'a')).find("DS algorithm"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS 1 NOSUCHALG 2 " + std::string(64, 'a')).find("DS algorithm"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS 1 8 3 " + std::string(64, 'a')).find("digest type 3"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS garbage\n").find("line 1: DS needs a key tag"), std::string::npos);
  EXPECT_NE(error_of(". IN DNSKEY 257 3 13 Hw!Uw2UTpVGn\n")
                .find("line 1: DNSKEY public key is "
                      "not base64: Hw!Uw2UTpVGn"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DNSKEY 257 3 13 HwWUw2U\n").find("not base64"), std::string::npos);
  EXPECT_NE(error_of(". IN DNSKEY 257 3 13 ====\n").find("not base64"), std::string::npos);
  EXPECT_NE(error_of(". IN DNSKEY 257 3 13 A=AA\n").find("not base64"), std::string::npos);
  EXPECT_NE(error_of(". IN DNSKEY 257 2 13 AAAA\n").find("protocol must be 3"), std::string::npos);
  EXPECT_NE(error_of(". IN DNSKEY 65536 3 13 AAAA\n").find("DNSKEY flags"), std::string::npos);
  EXPECT_EQ(error_of("; x\n. IN DNSKEY 1 3 13 AAAA\n"),
            "trust anchor file /x/root.key holds no usable trust anchor: line 2: DNSKEY flags 1 "
            "lack the Zone Key bit (256)");
  EXPECT_EQ(error_of(". IN DNSKEY 385 3 13 AAAA\n. IN DNSKEY 385 3 13 AAAB\n"),
            "trust anchor file /x/root.key holds no usable trust anchor: line 1: DNSKEY flags 385 "
            "have the REVOKE bit (128) set");
  EXPECT_NE(error_of(". IN DNSKEY 257 3 13\n").find("DNSKEY needs"), std::string::npos);
}

TEST(TrustAnchor, StructuralErrors) {
  EXPECT_NE(error_of(". CH DS 20326 8 2 " + std::string(64, 'a')).find("class CH is not IN"),
            std::string::npos);
  EXPECT_NE(error_of(". IN A 192.0.2.1\n").find("record type A is not DS or DNSKEY"),
            std::string::npos);
  EXPECT_NE(
      error_of("DS 20326 8 2 " + std::string(64, 'a')).find("line 1: the owner name is missing"),
      std::string::npos);
  EXPECT_NE(error_of("org IN DS 1 8 2 " + std::string(64, 'a')).find("relative"),
            std::string::npos);
  EXPECT_NE(error_of("$INCLUDE /etc/passwd\n").find("line 1: $INCLUDE is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("$GENERATE 1-2 x A 1\n").find("unknown directive"), std::string::npos);
  EXPECT_NE(error_of("$ORIGIN example\n").find("must end with '.'"), std::string::npos);
  EXPECT_NE(error_of("$TTL forever\n").find("$TTL"), std::string::npos);
  EXPECT_NE(error_of(". x IN DS").find("record type x"), std::string::npos);
  EXPECT_NE(error_of(". 1h30 IN DS 1 8 2 " + std::string(64, 'a')).find("TTL"), std::string::npos);
  EXPECT_NE(error_of("\n. IN DS 1 8 2 ( aa\n\n").find("line 2: '(' is never closed"),
            std::string::npos);
  EXPECT_NE(error_of(". IN DS 1 8 2 aa )\n").find("')' without '('"), std::string::npos);
  EXPECT_NE(error_of(". IN DS 1 8 2 ( ( aa ) )\n").find("inside parentheses"), std::string::npos);
  EXPECT_NE(error_of("  IN DS 1 8 2 aa\n").find("no owner name came before"), std::string::npos);
  EXPECT_NE(error_of(std::string(64, 'a') + ". IN DS 1 8 2 aa\n").find("63 octets"),
            std::string::npos);
  EXPECT_NE(error_of("a..b. IN DS 1 8 2 aa\n").find("empty label"), std::string::npos);
  EXPECT_NE(error_of(". \"IN\" DS\n").find("quoted"), std::string::npos);
}

// During a rollover RFC 5011 tools keep the revoked key next to its successor.
TEST(TrustAnchor, RevokedKeyNextToAUsableOne) {
  auto r = parse_trust_anchors(std::string(". IN DNSKEY 385 3 13 AAAA\n") + kLabDnskey, kFile);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->size(), 2u);
  EXPECT_TRUE(parse_trust_anchors(std::string(kIanaDs) + ". IN DNSKEY 1 3 8 AAAA\n", kFile));
}

TEST(TrustAnchor, EmptyOrCommentOnlyFileHoldsNoAnchor) {
  for (const char* text : {"", "\n\n", "; only a comment\n   ; another\n", "( ; x\n )\n"}) {
    EXPECT_EQ(error_of(text), "trust anchor file /x/root.key holds no DS or DNSKEY record") << text;
  }
  EXPECT_EQ(error_of("$TTL 300\n"), "trust anchor file /x/root.key holds no DS or DNSKEY record");
}

TEST(TrustAnchor, ErrorTextShowsOnlyPrintableBytes) {
  const std::string msg = error_of(std::string(". IN DS 1 8 2 zz\x01\xff", 18) + "\n");
  EXPECT_NE(msg.find("zz\\001\\255"), std::string::npos) << msg;
}

TEST(TrustAnchor, FileErrorsNameThePath) {
  auto missing = read_trust_anchor_file("/nonexistent/root.key");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/root.key"), std::string::npos);
  auto dir = read_trust_anchor_file("/tmp");
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().message, "trust anchor file /tmp: is a directory");
}

}  // namespace
}  // namespace danemta::dns
