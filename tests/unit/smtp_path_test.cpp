// parse_path (RFC 5321 4.1.2 paths, RFC 6531 UTF-8) and the DATA encoder and
// decoder (RFC 5321 4.5.2).
#include "smtp/path.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "smtp/data.hpp"

namespace danemta::smtp {
namespace {

using Kind = PathError::Kind;

struct Good {
  std::string input;
  PathKind kind;
  std::string mailbox;
  std::string local_part;
  std::string domain;
  std::string domain_lower;
  std::string rest;
};

const std::string k64(64, 'l');
const std::string k65(65, 'l');
// 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 octets.
const std::string k255 = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                         std::string(63, 'c') + "." + std::string(63, 'd');
const std::string k256 = "e" + k255;

TEST(SmtpPath, AcceptedPaths) {
  const std::vector<Good> cases = {
      {"<a@b.example>", PathKind::forward, "a@b.example", "a", "b.example", "b.example", ""},
      {"<A.B-c+tag@Mail.Example.COM> SIZE=10", PathKind::reverse, "A.B-c+tag@Mail.Example.COM",
       "A.B-c+tag", "Mail.Example.COM", "mail.example.com", " SIZE=10"},
      {"<!#$%&'*+-/=?^_`{|}~@x.example>", PathKind::forward, "!#$%&'*+-/=?^_`{|}~@x.example",
       "!#$%&'*+-/=?^_`{|}~", "x.example", "x.example", ""},
      // Source routes are dropped (RFC 5321 4.1.1.3, appendix C).
      {"<@relay.example:r@y.example>", PathKind::forward, "r@y.example", "r", "y.example",
       "y.example", ""},
      {"<@a.example,@B.example:r@y.example> NOTIFY=NEVER", PathKind::forward, "r@y.example", "r",
       "y.example", "y.example", " NOTIFY=NEVER"},
      // Quoted local parts stay byte for byte, with spaces, @, >, : and escapes.
      {R"(<"a b>c"@d.example>)", PathKind::forward, R"("a b>c"@d.example)", R"("a b>c")",
       "d.example", "d.example", ""},
      {R"(<"a@b"@y.example>)", PathKind::forward, R"("a@b"@y.example)", R"("a@b")", "y.example",
       "y.example", ""},
      {R"(<"x\"y\\z"@q.example>)", PathKind::forward, R"("x\"y\\z"@q.example)", R"("x\"y\\z")",
       "q.example", "q.example", ""},
      // A quoted local part that looks like a source route and parameters:
      // without a leading "@" it is one mailbox, kept whole.
      {R"(<"a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example>)", PathKind::forward,
       R"("a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example)",
       R"("a:x> NOTIFY=SUCCESS ORCPT=rfc822;x")", "cap.example", "cap.example", ""},
      // RFC 6531: UTF-8 in local parts and domain labels.
      {"<j\xC3\xB6rg@b\xC3\xBC\x63her.example>", PathKind::forward,
       "j\xC3\xB6rg@b\xC3\xBC\x63her.example", "j\xC3\xB6rg", "b\xC3\xBC\x63her.example",
       "b\xC3\xBC\x63her.example", ""},
      {"<\"\xE2\x82\xAC \xF0\x9F\x93\xA7\"@xn--bcher-kva.Example>", PathKind::forward,
       "\"\xE2\x82\xAC \xF0\x9F\x93\xA7\"@xn--bcher-kva.Example",
       "\"\xE2\x82\xAC \xF0\x9F\x93\xA7\"", "xn--bcher-kva.Example", "xn--bcher-kva.example", ""},
      {"<a@localhost>", PathKind::forward, "a@localhost", "a", "localhost", "localhost", ""},
      {"<a@1-2.3com>", PathKind::forward, "a@1-2.3com", "a", "1-2.3com", "1-2.3com", ""},
      // Limits: exactly 64 / 255 octets; the path exactly 256.
      {"<" + k64 + "@x.example>", PathKind::forward, k64 + "@x.example", k64, "x.example",
       "x.example", ""},
      {"<\"" + std::string(62, 'q') + "\"@x.example>", PathKind::forward,
       "\"" + std::string(62, 'q') + "\"@x.example", "\"" + std::string(62, 'q') + "\"",
       "x.example", "x.example", ""},
  };
  for (const Good& c : cases) {
    SCOPED_TRACE(c.input);
    const auto p = parse_path(c.input, c.kind);
    ASSERT_TRUE(p) << p.error().detail;
    EXPECT_EQ(p->mailbox, c.mailbox);
    EXPECT_EQ(p->local_part, c.local_part);
    EXPECT_EQ(p->domain, c.domain);
    EXPECT_EQ(p->domain_lower, c.domain_lower);
    EXPECT_EQ(p->rest, c.rest);
    EXPECT_FALSE(p->null);
    EXPECT_FALSE(p->postmaster);
    EXPECT_FALSE(p->address_literal);
  }
}

TEST(SmtpPath, LengthLimitsAtTheirEdges) {
  // A 255-octet domain is valid, but "<a@" + it + ">" is over the path
  // limit: the domain rule is checked on its own, then through paths.
  std::string why;
  EXPECT_TRUE(valid_domain(k255, &why)) << why;
  EXPECT_FALSE(valid_domain(k256, &why));
  EXPECT_EQ(why, "domain longer than 255 octets");
  EXPECT_TRUE(valid_domain(std::string(63, 'x') + ".example"));
  EXPECT_FALSE(valid_domain(std::string(64, 'x') + ".example", &why));
  EXPECT_EQ(why, "domain label longer than 63 octets");

  // Path: "<" + local + "@" + domain + ">" of exactly 256 and 257 octets.
  const std::string domain254 = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                std::string(63, 'c') + "." + std::string(62, 'd');
  ASSERT_EQ(domain254.size(), 254u);
  // 256 = 1 + local + 1 + domain + 1 with domain 190 and local 63.
  const std::string domain190 =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(62, 'c');
  ASSERT_EQ(domain190.size(), 190u);
  const std::string path256 = "<" + std::string(63, 'l') + "@" + domain190 + ">";
  ASSERT_EQ(path256.size(), 256u);
  EXPECT_TRUE(parse_path(path256, PathKind::forward));
  const std::string path257 = "<" + k64 + "@" + domain190 + ">";
  ASSERT_EQ(path257.size(), 257u);
  const auto long_path = parse_path(path257, PathKind::forward);
  ASSERT_FALSE(long_path);
  EXPECT_EQ(long_path.error().kind, Kind::too_long);

  const auto p = parse_path("<a@" + domain254 + ">", PathKind::forward);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, Kind::too_long);
  // The domain's own limit comes first when the domain is over 255.
  const auto d = parse_path("<a@" + k256 + ">", PathKind::forward);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().kind, Kind::too_long);
  EXPECT_EQ(d.error().detail, "domain longer than 255 octets");
  // Local part: 64 accepted (above), 65 refused, quoted ones count their quotes.
  const auto l = parse_path("<" + k65 + "@x.example>", PathKind::forward);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().kind, Kind::too_long);
  EXPECT_EQ(l.error().detail, "local part longer than 64 octets");
  const auto q = parse_path("<\"" + std::string(63, 'q') + "\"@x.example>", PathKind::forward);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().kind, Kind::too_long);
}

struct Bad {
  std::string input;
  PathKind kind;
  Kind error;
};

TEST(SmtpPath, RefusedPaths) {
  const std::vector<Bad> cases = {
      {"", PathKind::forward, Kind::syntax},
      {"a@b.example", PathKind::forward, Kind::syntax},
      {"<a@b.example", PathKind::forward, Kind::syntax},
      {"<a@b.example>x", PathKind::forward, Kind::syntax},
      {"<a@b.example>>", PathKind::forward, Kind::syntax},
      {R"(<"a@b.example>)", PathKind::forward, Kind::syntax},
      // The smuggling case: the source route would be `@"a`, which is no
      // Domain; no reading makes "@..." a mailbox.
      {R"(<@"a:x> NOTIFY=SUCCESS ORCPT=rfc822;x"@cap.example>)", PathKind::forward,
       Kind::source_route},
      {"<@y.example>", PathKind::forward, Kind::source_route},
      {"<@:a@y.example>", PathKind::forward, Kind::source_route},
      {"<@a.example,b.example:r@y.example>", PathKind::forward, Kind::source_route},
      {"<@a..example:r@y.example>", PathKind::forward, Kind::source_route},
      {"<@a.example;r@y.example>", PathKind::forward, Kind::source_route},
      {"<>", PathKind::forward, Kind::local_part},
      {"<nodomain>", PathKind::forward, Kind::local_part},
      {"<nodomain>", PathKind::reverse, Kind::local_part},
      {"<a b@y.example>", PathKind::forward, Kind::local_part},
      {"<.a@y.example>", PathKind::forward, Kind::local_part},
      {"<a.@y.example>", PathKind::forward, Kind::local_part},
      {"<a..b@y.example>", PathKind::forward, Kind::local_part},
      {"<a(b)@y.example>", PathKind::forward, Kind::local_part},
      {"<a\x01@y.example>", PathKind::forward, Kind::local_part},
      {"<\"a\x01\"@y.example>", PathKind::forward, Kind::local_part},
      {"<\"a\\\x01\"@y.example>", PathKind::forward, Kind::local_part},
      {"<\"a\"b@y.example>", PathKind::forward, Kind::local_part},
      {"<\xC3@y.example>", PathKind::forward, Kind::local_part},          // truncated UTF-8
      {"<\xC0\xAF@y.example>", PathKind::forward, Kind::local_part},      // overlong
      {"<\xED\xA0\x80@y.example>", PathKind::forward, Kind::local_part},  // surrogate
      {"<\"\xFF\"@y.example>", PathKind::forward, Kind::local_part},
      {"<a@b@y.example>", PathKind::forward, Kind::domain},
      {"<a@>", PathKind::forward, Kind::domain},
      {"<a@.y.example>", PathKind::forward, Kind::domain},
      {"<a@y.example.>", PathKind::forward, Kind::domain},
      {"<a@y..example>", PathKind::forward, Kind::domain},
      {"<a@-y.example>", PathKind::forward, Kind::domain},
      {"<a@y-.example>", PathKind::forward, Kind::domain},
      {"<a@y_z.example>", PathKind::forward, Kind::domain},
      {"<a@y.exa mple>", PathKind::forward, Kind::domain},
      {"<a@y.\xC3.example>", PathKind::forward, Kind::domain},
      {"<a@[]>", PathKind::forward, Kind::domain},
      {"<a@[1.2.3]>", PathKind::forward, Kind::domain},
      {"<a@[1.2.3.256]>", PathKind::forward, Kind::domain},
      {"<a@[1.2.3.4]x>", PathKind::forward, Kind::domain},
      {"<a@[nocolon]>", PathKind::forward, Kind::domain},
      {"<a@[1.2.3.4>", PathKind::forward, Kind::syntax},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.input);
    const auto p = parse_path(c.input, c.kind);
    ASSERT_FALSE(p) << p->mailbox;
    EXPECT_EQ(p.error().kind, c.error) << p.error().detail;
    EXPECT_FALSE(p.error().detail.empty());
  }
}

TEST(SmtpPath, NullPostmasterAndLiterals) {
  const auto null = parse_path("<> BODY=8BITMIME", PathKind::reverse);
  ASSERT_TRUE(null);
  EXPECT_TRUE(null->null);
  EXPECT_EQ(null->mailbox, "");
  EXPECT_EQ(null->rest, " BODY=8BITMIME");

  const auto pm = parse_path("<PostMaster>", PathKind::forward);
  ASSERT_TRUE(pm);
  EXPECT_TRUE(pm->postmaster);
  EXPECT_EQ(pm->mailbox, "PostMaster");
  EXPECT_FALSE(parse_path("<postmaster>", PathKind::reverse));
  const auto pm_domain = parse_path("<postmaster@y.example>", PathKind::forward);
  ASSERT_TRUE(pm_domain);
  EXPECT_FALSE(pm_domain->postmaster);

  for (const std::string literal : {"[192.0.2.1]", "[IPv6:2001:db8::1]", "[x-tag:content]"}) {
    SCOPED_TRACE(literal);
    const auto p = parse_path("<a@" + literal + ">", PathKind::forward);
    ASSERT_TRUE(p) << p.error().detail;
    EXPECT_TRUE(p->address_literal);
    EXPECT_EQ(p->domain, literal);
    EXPECT_EQ(p->mailbox, "a@" + literal);
  }
}

TEST(SmtpPath, AcceptedMailboxesRoundTrip) {
  for (const std::string input :
       {"<@r.example:\"a b\"@x.example>", "<\"\\\"\"@x.example>", "<a.b@X.example>"}) {
    const auto p = parse_path(input, PathKind::forward);
    ASSERT_TRUE(p);
    const auto again = parse_path("<" + p->mailbox + ">", PathKind::forward);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->mailbox, p->mailbox);
  }
}

// --- DATA ---------------------------------------------------------------------

std::string decode(std::string_view wire, std::size_t step, std::size_t max, bool* done,
                   std::size_t* consumed) {
  DataDecoder d(max);
  *consumed = 0;
  while (*consumed < wire.size() && !d.done()) {
    const std::string_view piece = wire.substr(*consumed, step);
    const std::size_t used = d.feed(piece);
    *consumed += used;
    if (used < piece.size()) break;
  }
  *done = d.done();
  return d.take();
}

TEST(SmtpData, EncoderAndDecoderRoundTrip) {
  struct Case {
    std::string text;
    std::string wire;  // without the final ".CRLF"
    std::string decoded;
  };
  const std::vector<Case> cases = {
      {"", "", ""},
      {"x", "x\r\n", "x\r\n"},
      {".", "..\r\n", ".\r\n"},
      {".\r\n", "..\r\n", ".\r\n"},
      {"a\nb\rc\r\n.d\n", "a\r\nb\r\nc\r\n..d\r\n", "a\r\nb\r\nc\r\n.d\r\n"},
      {"\r\n.\r\n", "\r\n..\r\n", "\r\n.\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string wire = encode_data(c.text);
    EXPECT_EQ(wire, c.wire + ".\r\n");
    for (const std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{1000}}) {
      bool done = false;
      std::size_t consumed = 0;
      EXPECT_EQ(decode(wire, step, 1000, &done, &consumed), c.decoded);
      EXPECT_TRUE(done);
      EXPECT_EQ(consumed, wire.size());
    }
  }
}

TEST(SmtpData, DecoderStopsOnlyAtCrlfDotCrlf) {
  bool done = false;
  std::size_t consumed = 0;
  const std::string wire = "a\n.\r\nb\r\n.\nc\r\n.\r\nNEXT";
  EXPECT_EQ(decode(wire, 3, 1000, &done, &consumed), "a\r\n\r\nb\r\n\r\nc\r\n");
  EXPECT_TRUE(done);
  EXPECT_EQ(wire.substr(consumed), "NEXT");
  EXPECT_EQ(decode("0123456789\r\n.\r\n", 4, 5, &done, &consumed), "");
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace danemta::smtp
