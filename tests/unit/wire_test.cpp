#include "dns/wire.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace danemta::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes name(std::string_view dotted) {
  Bytes out;
  while (!dotted.empty()) {
    auto dot = dotted.find('.');
    std::string_view label = dotted.substr(0, dot);
    out.push_back(static_cast<std::uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

Bytes ptr(std::uint16_t offset) {
  return {static_cast<std::uint8_t>(0xc0 | (offset >> 8)), static_cast<std::uint8_t>(offset)};
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes u16(std::uint16_t v) {
  return {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

constexpr std::uint16_t kQuestion = 12;  // offset of the question name

// A response: header, one question, then records appended with rr().
class Packet {
 public:
  Packet(std::string_view qname, RrType qtype, int rcode = 0) {
    bytes_ = cat({u16(0x1234), u16(static_cast<std::uint16_t>(0x8180 | rcode)), u16(1), u16(0),
                  u16(0), u16(0), name(qname), u16(static_cast<std::uint16_t>(qtype)), u16(1)});
  }
  Packet& rr(const Bytes& owner, RrType type, std::uint32_t ttl, const Bytes& rdata) {
    return raw_rr(owner, static_cast<std::uint16_t>(type), ttl, rdata,
                  static_cast<std::uint16_t>(rdata.size()));
  }
  Packet& raw_rr(const Bytes& owner, std::uint16_t type, std::uint32_t ttl, const Bytes& rdata,
                 std::uint16_t rdlength) {
    bytes_ = cat({bytes_, owner, u16(type), u16(1),
                  Bytes{static_cast<std::uint8_t>(ttl >> 24), static_cast<std::uint8_t>(ttl >> 16),
                        static_cast<std::uint8_t>(ttl >> 8), static_cast<std::uint8_t>(ttl)},
                  u16(rdlength), rdata});
    ++ancount_;
    bytes_[6] = static_cast<std::uint8_t>(ancount_ >> 8);
    bytes_[7] = static_cast<std::uint8_t>(ancount_);
    return *this;
  }
  // A record of the authority section (after every answer record).
  Packet& authority(const Bytes& owner, std::uint16_t type, std::uint32_t ttl, const Bytes& rdata) {
    bytes_ = cat({bytes_, owner, u16(type), u16(1), u32(ttl),
                  u16(static_cast<std::uint16_t>(rdata.size())), rdata});
    ++nscount_;
    bytes_[8] = static_cast<std::uint8_t>(nscount_ >> 8);
    bytes_[9] = static_cast<std::uint8_t>(nscount_);
    return *this;
  }
  std::size_t size() const { return bytes_.size(); }
  const Bytes& bytes() const { return bytes_; }

  static Bytes u32(std::uint32_t v) {
    return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
            static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
  }

 private:
  Bytes bytes_;
  std::uint16_t ancount_ = 0;
  std::uint16_t nscount_ = 0;
};

constexpr std::uint16_t kSoa = 6;

// SOA RDATA (RFC 1035 section 3.3.13) with the given MINIMUM.
Bytes soa(std::uint32_t minimum) {
  return cat({name("ns.example.org"), name("hostmaster.example.org"), Packet::u32(2026120101),
              Packet::u32(3600), Packet::u32(900), Packet::u32(604800), Packet::u32(minimum)});
}

RawResult secure(const Packet& p, bool havedata = true) {
  RawResult r;
  r.secure = true;
  r.havedata = havedata;
  r.packet = p.bytes();
  return r;
}

// --- parse_message / read_name -------------------------------------------------

TEST(Wire, ParsesHeaderQuestionAndAnswers) {
  Packet p("Example.ORG", RrType::A);
  p.rr(ptr(kQuestion), RrType::A, 300, {192, 0, 2, 1});
  auto m = wire::parse_message(p.bytes());
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->header.id, 0x1234);
  EXPECT_EQ(m->header.qdcount, 1);
  EXPECT_EQ(m->header.ancount, 1);
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(m->answers[0].owner, "example.org");
  EXPECT_EQ(m->answers[0].type, 1);
  EXPECT_EQ(m->answers[0].ttl, 300u);
  EXPECT_EQ(m->answers[0].rdlength, 4);
}

TEST(Wire, RejectsTruncatedHeader) {
  Bytes b{0x12, 0x34, 0x81, 0x80, 0};
  auto m = wire::parse_message(b);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message, "header is 5 bytes, need 12");
}

TEST(Wire, RejectsPointerToItself) {
  Bytes b = cat({u16(1), u16(0x8180), u16(1), u16(0), u16(0), u16(0), ptr(12), u16(1), u16(1)});
  auto m = wire::parse_message(b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("loop"), std::string::npos) << m.error().message;
}

TEST(Wire, RejectsPointerLoopThroughLabels) {
  // offset 12: label "a", then a pointer back to 12.
  Bytes b = cat({u16(1), u16(0x8180), u16(1), u16(0), u16(0), u16(0), Bytes{1, 'a'}, ptr(12),
                 u16(1), u16(1)});
  auto m = wire::parse_message(b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("loop"), std::string::npos) << m.error().message;
}

TEST(Wire, RejectsForwardPointer) {
  Packet p("example.org", RrType::A);
  const auto here = static_cast<std::uint16_t>(p.size());
  p.rr(ptr(static_cast<std::uint16_t>(here + 4)), RrType::A, 300, {192, 0, 2, 1});
  auto m = wire::parse_message(p.bytes());
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("not before"), std::string::npos) << m.error().message;
}

TEST(Wire, RejectsPointerOutOfRange) {
  Packet p("example.org", RrType::A);
  p.rr(ptr(0x3fff), RrType::A, 300, {192, 0, 2, 1});
  auto m = wire::parse_message(p.bytes());
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("outside the packet"), std::string::npos) << m.error().message;
}

TEST(Wire, RejectsLabelLongerThan63) {
  Bytes label(1, 64);
  label.insert(label.end(), 64, 'a');
  label.push_back(0);
  Bytes b = cat({u16(1), u16(0x8180), u16(1), u16(0), u16(0), u16(0), label, u16(1), u16(1)});
  auto m = wire::parse_message(b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("at most 63"), std::string::npos) << m.error().message;
}

TEST(Wire, RejectsNameLongerThan255) {
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  long_name.pop_back();  // 5 * 61 + 1 = 306 octets on the wire
  Packet p(long_name, RrType::A);
  auto m = wire::parse_message(p.bytes());
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("longer than 255"), std::string::npos) << m.error().message;
}

TEST(Wire, AcceptsNameOf255Octets) {
  // 3 * 64 + 62 + 1 = 255 octets.
  std::string n = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                  "." + std::string(61, 'd');
  Packet p(n, RrType::A);
  EXPECT_TRUE(wire::parse_message(p.bytes()));
}

TEST(Wire, EscapesSpecialOctetsInNames) {
  Bytes b = cat({Bytes{3, 'a', '.', 0x01}, Bytes{0}});
  std::size_t offset = 0;
  auto n = wire::read_name(b, offset, b.size());
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, "a\\046\\001");
  EXPECT_EQ(offset, b.size());
}

TEST(Wire, RejectsRdlengthBeyondPacket) {
  Packet p("example.org", RrType::A);
  p.raw_rr(ptr(kQuestion), 1, 300, {192, 0, 2, 1}, 40);
  auto m = wire::parse_message(p.bytes());
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("RDLENGTH 40"), std::string::npos) << m.error().message;

  Answer a = build_answer({"example.org", RrType::A}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_NE(a.malformed.find("answer packet: answer record 1: RDLENGTH 40"), std::string::npos)
      << a.malformed;
}

TEST(Wire, RejectsTruncatedRecordHeader) {
  Packet p("example.org", RrType::A);
  Bytes b = p.bytes();
  b[7] = 1;  // ANCOUNT 1 but no record
  b.insert(b.end(), {0xc0, 12, 0, 1});
  EXPECT_FALSE(wire::parse_message(b));
}

// --- RDATA ---------------------------------------------------------------------

TEST(Wire, A) {
  Packet p("example.org", RrType::A);
  p.rr(ptr(kQuestion), RrType::A, 300, {192, 0, 2, 1})
      .rr(ptr(kQuestion), RrType::A, 60, {198, 51, 100, 7});
  Answer a = build_answer({"example.org", RrType::A}, secure(p));
  EXPECT_EQ(a.security, Security::secure);
  EXPECT_TRUE(a.havedata);
  EXPECT_EQ(a.addresses, (std::vector<std::string>{"192.0.2.1", "198.51.100.7"}));
  EXPECT_EQ(a.ttl, 60u);
  EXPECT_EQ(a.canonical_name, "example.org");
  EXPECT_TRUE(a.cname_chain.empty());
  EXPECT_TRUE(a.malformed.empty());
}

TEST(Wire, AWithFiveBytesIsMalformed) {
  Packet p("example.org", RrType::A);
  p.rr(ptr(kQuestion), RrType::A, 300, {192, 0, 2, 1, 9});
  Answer a = build_answer({"example.org", RrType::A}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.malformed, "A record at example.org: RDATA is 5 bytes, need 4");
  EXPECT_EQ(a.why, a.malformed);
  EXPECT_TRUE(a.addresses.empty());
  EXPECT_FALSE(a.havedata);
}

TEST(Wire, Aaaa) {
  Packet p("example.org", RrType::AAAA);
  p.rr(ptr(kQuestion), RrType::AAAA, 300,
       {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  Answer a = build_answer({"example.org", RrType::AAAA}, secure(p));
  EXPECT_EQ(a.security, Security::secure);
  EXPECT_EQ(a.addresses, (std::vector<std::string>{"2001:db8::1"}));
}

TEST(Wire, AaaaWithFifteenBytesIsMalformed) {
  Packet p("example.org", RrType::AAAA);
  p.rr(ptr(kQuestion), RrType::AAAA, 300, Bytes(15, 1));
  Answer a = build_answer({"example.org", RrType::AAAA}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.malformed, "AAAA record at example.org: RDATA is 15 bytes, need 16");
}

TEST(Wire, MxWithCompressedExchange) {
  Packet p("example.org", RrType::MX);
  p.rr(ptr(kQuestion), RrType::MX, 300, cat({u16(10), Bytes{3, 'M', 'X', '1'}, ptr(kQuestion)}))
      .rr(ptr(kQuestion), RrType::MX, 300, cat({u16(20), name("mx2.example.net.")}));
  Answer a = build_answer({"example.org", RrType::MX}, secure(p));
  ASSERT_EQ(a.security, Security::secure) << a.why;
  ASSERT_EQ(a.mx.size(), 2u);
  EXPECT_EQ(a.mx[0].preference, 10);
  EXPECT_EQ(a.mx[0].exchange, "mx1.example.org");
  EXPECT_EQ(a.mx[1].preference, 20);
  EXPECT_EQ(a.mx[1].exchange, "mx2.example.net");
}

TEST(Wire, NullMx) {
  Packet p("example.org", RrType::MX);
  p.rr(ptr(kQuestion), RrType::MX, 300, cat({u16(0), Bytes{0}}));
  Answer a = build_answer({"example.org", RrType::MX}, secure(p));
  ASSERT_EQ(a.mx.size(), 1u);
  EXPECT_EQ(a.mx[0].preference, 0);
  EXPECT_EQ(a.mx[0].exchange, "");
}

TEST(Wire, MxTruncatedIsMalformed) {
  Packet p("example.org", RrType::MX);
  p.rr(ptr(kQuestion), RrType::MX, 300, u16(10));
  Answer a = build_answer({"example.org", RrType::MX}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.malformed, "MX record at example.org: RDATA is 2 bytes, need at least 3");

  // The exchange name runs past the RDATA into the next bytes.
  Packet q("example.org", RrType::MX);
  q.rr(ptr(kQuestion), RrType::MX, 300, cat({u16(10), Bytes{3, 'm', 'x'}}));
  Answer b = build_answer({"example.org", RrType::MX}, secure(q));
  EXPECT_EQ(b.security, Security::indeterminate);
  EXPECT_NE(b.malformed.find("MX record at example.org: exchange:"), std::string::npos)
      << b.malformed;
}

TEST(Wire, MxWithTrailingBytesIsMalformed) {
  Packet p("example.org", RrType::MX);
  p.rr(ptr(kQuestion), RrType::MX, 300, cat({u16(10), Bytes{0}, Bytes{7}}));
  Answer a = build_answer({"example.org", RrType::MX}, secure(p));
  EXPECT_EQ(a.malformed, "MX record at example.org: 1 bytes after the exchange name");
}

TEST(Wire, Tlsa) {
  Packet p("_25._tcp.mx.example.org", RrType::TLSA);
  Bytes digest(32, 0xab);
  p.rr(ptr(kQuestion), RrType::TLSA, 300, cat({Bytes{3, 1, 1}, digest}));
  Answer a = build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, secure(p));
  ASSERT_EQ(a.tlsa.size(), 1u);
  EXPECT_EQ(a.tlsa[0].usage, 3);
  EXPECT_EQ(a.tlsa[0].selector, 1);
  EXPECT_EQ(a.tlsa[0].mtype, 1);
  EXPECT_EQ(a.tlsa[0].data, digest);
}

// RFC 6698 section 2.1: empty association data parses; the planner judges it.
TEST(Wire, TlsaWithThreeBytesHasEmptyData) {
  Packet p("_25._tcp.mx.example.org", RrType::TLSA);
  p.rr(ptr(kQuestion), RrType::TLSA, 300, {3, 1, 1});
  Answer a = build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, secure(p));
  EXPECT_EQ(a.security, Security::secure) << a.why;
  EXPECT_TRUE(a.malformed.empty());
  ASSERT_EQ(a.tlsa.size(), 1u);
  EXPECT_EQ(a.tlsa[0].usage, 3);
  EXPECT_TRUE(a.tlsa[0].data.empty());
}

TEST(Wire, TlsaWithTwoBytesIsMalformed) {
  Packet p("_25._tcp.mx.example.org", RrType::TLSA);
  p.rr(ptr(kQuestion), RrType::TLSA, 300, {3, 1});
  Answer a = build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.malformed,
            "TLSA record at _25._tcp.mx.example.org: RDATA is 2 bytes, need at least 3");
  EXPECT_EQ(a.why, a.malformed);
  EXPECT_TRUE(a.tlsa.empty());
}

TEST(Wire, Txt) {
  Packet p("_smtp._tls.example.org", RrType::TXT);
  p.rr(ptr(kQuestion), RrType::TXT, 300,
       cat({Bytes{11}, Bytes{'v', '=', 'T', 'L', 'S', 'R', 'P', 'T', 'v', '1', ';'}, Bytes{0},
            Bytes{3, 'r', 'u', 'a'}}))
      .rr(ptr(kQuestion), RrType::TXT, 300, Bytes{1, 'x'});
  Answer a = build_answer({"_smtp._tls.example.org", RrType::TXT}, secure(p));
  EXPECT_EQ(a.txt, (std::vector<std::string>{"v=TLSRPTv1;rua", "x"}));
}

TEST(Wire, TxtLengthOverrunIsMalformed) {
  Packet p("example.org", RrType::TXT);
  p.rr(ptr(kQuestion), RrType::TXT, 300, Bytes{1, 'a', 5, 'b'});
  Answer a = build_answer({"example.org", RrType::TXT}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.malformed,
            "TXT record at example.org: character-string of 5 octets at RDATA offset 2 runs past "
            "the RDATA (4 bytes)");
}

TEST(Wire, RdataParsersRejectRecordsOutsideThePacket) {
  Bytes b(20, 0);
  wire::Record rr;
  rr.rdata_offset = 18;
  rr.rdlength = 4;
  EXPECT_FALSE(wire::parse_a(b, rr));
  EXPECT_FALSE(wire::parse_tlsa(b, rr));
  EXPECT_FALSE(wire::parse_txt(b, rr));
  EXPECT_FALSE(wire::parse_mx(b, rr));
}

// --- CNAME chains ----------------------------------------------------------------

TEST(Wire, FollowsCnameChainInOrder) {
  Packet p("mx.example.org", RrType::A);
  const auto first = static_cast<std::uint16_t>(p.size() + 12);  // target of the first CNAME
  p.rr(ptr(kQuestion), RrType::CNAME, 600, name("a.example.net"))
      .rr(ptr(first), RrType::CNAME, 120, name("B.example.com"))
      .rr(name("b.example.com"), RrType::A, 300, {192, 0, 2, 25})
      .rr(name("other.example.com"), RrType::A, 1, {192, 0, 2, 99});
  Answer a = build_answer({"mx.example.org", RrType::A}, secure(p));
  ASSERT_EQ(a.security, Security::secure) << a.why;
  ASSERT_EQ(a.cname_chain.size(), 2u);
  EXPECT_EQ(a.cname_chain[0].owner, "mx.example.org");
  EXPECT_EQ(a.cname_chain[0].target, "a.example.net");
  EXPECT_EQ(a.cname_chain[1].owner, "a.example.net");
  EXPECT_EQ(a.cname_chain[1].target, "b.example.com");
  EXPECT_EQ(a.cname_chain[0].ttl, 600u);
  EXPECT_EQ(a.cname_chain[1].ttl, 120u);
  EXPECT_EQ(a.canonical_name, "b.example.com");
  EXPECT_EQ(a.addresses, (std::vector<std::string>{"192.0.2.25"}));
  EXPECT_EQ(a.ttl, 300u);
}

TEST(Wire, CnameToNodataKeepsTheLinkTtlAndTheNegativeTtl) {
  Packet p("mx.example.org", RrType::TLSA);
  p.rr(ptr(kQuestion), RrType::CNAME, 600, name("a.example.net"))
      .authority(name("example.net"), kSoa, 3600, soa(300));
  Answer a = build_answer({"mx.example.org", RrType::TLSA}, secure(p, false));
  EXPECT_EQ(a.security, Security::secure);
  EXPECT_FALSE(a.havedata);
  ASSERT_EQ(a.cname_chain.size(), 1u);
  EXPECT_EQ(a.cname_chain[0].ttl, 600u);
  EXPECT_EQ(a.canonical_name, "a.example.net");
  EXPECT_EQ(a.ttl, 300u);
}

// RFC 2308 section 5: the negative TTL is the smaller of the SOA record's
// TTL and its MINIMUM field.
TEST(Wire, NegativeTtlIsTheSmallerOfSoaTtlAndMinimum) {
  Packet by_minimum("nope.example.org", RrType::MX, 3);
  by_minimum.authority(name("example.org"), kSoa, 3600, soa(300));
  EXPECT_EQ(wire::negative_ttl(by_minimum.bytes()), 300u);

  Packet by_ttl("nope.example.org", RrType::MX, 3);
  by_ttl.authority(name("example.org"), kSoa, 120, soa(86400));
  EXPECT_EQ(wire::negative_ttl(by_ttl.bytes()), 120u);

  // Answer records before it (a CNAME) are skipped; other authority records
  // (NSEC, type 47) are not SOAs; names compressed against the question.
  Packet mixed("mx.example.org", RrType::TLSA);
  mixed.rr(ptr(kQuestion), RrType::CNAME, 600, name("a.example.net"))
      .authority(ptr(kQuestion), 47, 60, Bytes{0, 0, 6, 0x40, 0, 0, 0, 3})
      .authority(ptr(kQuestion), kSoa, 900,
                 cat({ptr(kQuestion), ptr(kQuestion), Packet::u32(1), Packet::u32(2),
                      Packet::u32(3), Packet::u32(4), Packet::u32(450)}));
  EXPECT_EQ(wire::negative_ttl(mixed.bytes()), 450u);
}

TEST(Wire, NoNegativeTtlWithoutAnSoa) {
  Packet none("nope.example.org", RrType::MX, 3);
  EXPECT_EQ(wire::negative_ttl(none.bytes()), std::nullopt);
  Packet other("nope.example.org", RrType::MX, 3);
  other.authority(name("example.org"), 47, 60, Bytes{0, 0, 6, 0x40, 0, 0, 0, 3});
  EXPECT_EQ(wire::negative_ttl(other.bytes()), std::nullopt);
}

TEST(Wire, MalformedSoaGivesNoNegativeTtl) {
  Packet short_soa("nope.example.org", RrType::MX, 3);
  short_soa.authority(name("example.org"), kSoa, 3600,
                      cat({name("ns.example.org"), name("h.example.org"), Packet::u32(1)}));
  EXPECT_EQ(wire::negative_ttl(short_soa.bytes()), std::nullopt);
  Packet truncated("nope.example.org", RrType::MX, 3);
  truncated.authority(name("example.org"), kSoa, 3600, soa(300));
  Bytes cut = truncated.bytes();
  cut.resize(cut.size() - 3);
  EXPECT_EQ(wire::negative_ttl(cut), std::nullopt);
}

TEST(Wire, NxdomainAndNodataCarryTheNegativeTtl) {
  Packet nx("nope.example.org", RrType::MX, 3);
  nx.authority(name("example.org"), kSoa, 3600, soa(300));
  RawResult r = secure(nx, false);
  r.rcode = 3;
  r.nxdomain = true;
  Answer a = build_answer({"nope.example.org", RrType::MX}, r);
  EXPECT_EQ(a.security, Security::secure);
  EXPECT_TRUE(a.nxdomain);
  EXPECT_EQ(a.ttl, 300u);

  Packet nodata("_25._tcp.mx.example.org", RrType::TLSA);
  nodata.authority(name("example.org"), kSoa, 60, soa(300));
  Answer b = build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, secure(nodata, false));
  EXPECT_EQ(b.security, Security::secure);
  EXPECT_FALSE(b.havedata);
  EXPECT_EQ(b.ttl, 60u);

  // Without an SOA nothing says how long the absence may be kept.
  Packet bare("_25._tcp.mx.example.org", RrType::TLSA);
  EXPECT_EQ(build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, secure(bare, false)).ttl, 0u);
}

TEST(Wire, CnameLoopIsMalformed) {
  Packet p("a.example.org", RrType::A);
  p.rr(ptr(kQuestion), RrType::CNAME, 600, name("b.example.org"))
      .rr(name("b.example.org"), RrType::CNAME, 600, name("a.example.org"));
  Answer a = build_answer({"a.example.org", RrType::A}, secure(p, false));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_NE(a.malformed.find("CNAME loop"), std::string::npos) << a.malformed;
}

TEST(Wire, MalformedCnameIsMalformed) {
  Packet p("a.example.org", RrType::A);
  p.rr(ptr(kQuestion), RrType::CNAME, 600, Bytes{5, 'b'});
  Answer a = build_answer({"a.example.org", RrType::A}, secure(p, false));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_NE(a.malformed.find("CNAME record at a.example.org: target:"), std::string::npos)
      << a.malformed;
}

// --- NXDOMAIN / NODATA --------------------------------------------------------------

TEST(Wire, SecureNxdomainKeepsTheVerdict) {
  Packet p("nope.example.org", RrType::MX, 3);
  RawResult r = secure(p, false);
  r.rcode = 3;
  r.nxdomain = true;
  Answer a = build_answer({"nope.example.org", RrType::MX}, r);
  EXPECT_EQ(a.security, Security::secure);
  EXPECT_TRUE(a.answered());
  EXPECT_TRUE(a.nxdomain);
  EXPECT_FALSE(a.havedata);
  EXPECT_EQ(a.rcode, 3);
  EXPECT_TRUE(a.why.empty());
}

TEST(Wire, SecurelyDeniedTlsaIsSecureWithoutData) {
  Packet p("_25._tcp.mx.example.org", RrType::TLSA);
  Answer a = build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, secure(p, false));
  EXPECT_EQ(a.security, Security::secure);
  EXPECT_FALSE(a.havedata);
  EXPECT_FALSE(a.nxdomain);
  EXPECT_TRUE(a.tlsa.empty());
}

TEST(Wire, InsecureNodata) {
  Packet p("_25._tcp.mx.example.org", RrType::TLSA);
  RawResult r = secure(p, false);
  r.secure = false;
  Answer a = build_answer({"_25._tcp.mx.example.org", RrType::TLSA}, r);
  EXPECT_EQ(a.security, Security::insecure);
  EXPECT_FALSE(a.havedata);
}

TEST(Wire, HavedataWithoutRecordsIsIndeterminate) {
  Packet p("example.org", RrType::A);
  p.rr(name("elsewhere.example.org"), RrType::A, 300, {192, 0, 2, 1});
  Answer a = build_answer({"example.org", RrType::A}, secure(p));
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_FALSE(a.malformed.empty());
}

// --- security mapping -----------------------------------------------------------------

TEST(BuildAnswer, Insecure) {
  Packet p("example.org", RrType::A);
  p.rr(ptr(kQuestion), RrType::A, 300, {192, 0, 2, 1});
  RawResult r = secure(p);
  r.secure = false;
  Answer a = build_answer({"example.org", RrType::A}, r);
  EXPECT_EQ(a.security, Security::insecure);
  EXPECT_EQ(a.addresses.size(), 1u);
}

TEST(BuildAnswer, BogusCarriesWhy) {
  Packet p("example.org", RrType::A, 2);
  RawResult r;
  r.bogus = true;
  r.rcode = 2;
  r.why_bogus = "validation failure <example.org. A IN>: signature crypto failed";
  r.packet = p.bytes();
  Answer a = build_answer({"example.org", RrType::A}, r);
  EXPECT_EQ(a.security, Security::bogus);
  EXPECT_EQ(a.why, r.why_bogus);
  EXPECT_FALSE(a.answered());
}

TEST(BuildAnswer, BogusWithoutReasonStillSaysSomething) {
  RawResult r;
  r.bogus = true;
  r.rcode = 2;
  Answer a = build_answer({"example.org", RrType::A}, r);
  EXPECT_EQ(a.security, Security::bogus);
  EXPECT_FALSE(a.why.empty());
}

TEST(BuildAnswer, ServfailWithoutVerdictIsIndeterminate) {
  Packet p("lame.example", RrType::MX, 2);
  RawResult r;
  r.rcode = 2;
  r.packet = p.bytes();
  Answer a = build_answer({"lame.example", RrType::MX}, r);
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.why, "SERVFAIL from upstream");
  EXPECT_EQ(a.rcode, 2);
  EXPECT_FALSE(a.havedata);
}

TEST(BuildAnswer, RefusedIsIndeterminate) {
  RawResult r;
  r.rcode = 5;
  Answer a = build_answer({"example.org", RrType::MX}, r);
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.why, "REFUSED from upstream");
}

TEST(BuildAnswer, ResolverErrorIsIndeterminate) {
  RawResult r;
  r.err = -2;
  r.err_text = "resolver error: out of memory";
  r.secure = true;  // ignored: no result
  Answer a = build_answer({"example.org", RrType::MX}, r);
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.why, "resolver error: out of memory");
  EXPECT_EQ(a.qname, "example.org");
  EXPECT_EQ(a.qtype, RrType::MX);

  r.err_text.clear();
  EXPECT_EQ(build_answer({"example.org", RrType::MX}, r).why, "resolver error -2");
}

TEST(BuildAnswer, IndeterminateAnswer) {
  Answer a = indeterminate_answer({"example.org", RrType::TLSA}, "timeout after 30 s");
  EXPECT_EQ(a.security, Security::indeterminate);
  EXPECT_EQ(a.why, "timeout after 30 s");
  EXPECT_EQ(a.canonical_name, "example.org");
  EXPECT_FALSE(a.answered());
}

TEST(BuildAnswer, MissingPacketWithDataIsIndeterminate) {
  RawResult r;
  r.secure = true;
  r.havedata = true;
  Answer a = build_answer({"example.org", RrType::A}, r);
  EXPECT_EQ(a.security, Security::indeterminate);
}

// --- the resolver's health probe (DESIGN.md section 8) ----------------------

Answer with_security(const std::string& name, RrType type, Security sec, std::string why = "") {
  Answer a = indeterminate_answer({name, type}, std::move(why));
  a.security = sec;
  return a;
}

TEST(Probe, AsksForTheRootDnskeyOnlyAfterAFailure) {
  EXPECT_EQ(probe_query(), (Query{"", RrType::DNSKEY}));
  EXPECT_FALSE(needs_probe({with_security("example.org", RrType::MX, Security::secure),
                            with_security("example.net", RrType::MX, Security::insecure)}));
  EXPECT_TRUE(needs_probe({with_security("example.org", RrType::MX, Security::secure),
                           with_security("example.net", RrType::MX, Security::indeterminate)}));
  EXPECT_TRUE(needs_probe({with_security("example.org", RrType::MX, Security::bogus)}));
}

TEST(Probe, SecureProbeLeavesTheDestinationsFailures) {
  std::vector<Answer> answers{
      with_security("example.org", RrType::MX, Security::bogus, "signature expired"),
      with_security("example.net", RrType::MX, Security::indeterminate, "SERVFAIL from upstream")};
  apply_probe(answers, with_security("", RrType::DNSKEY, Security::secure));
  EXPECT_EQ(answers[0].security, Security::bogus);
  EXPECT_FALSE(answers[0].local_failure);
  EXPECT_EQ(answers[1].why, "SERVFAIL from upstream");
  EXPECT_FALSE(answers[1].local_failure);
}

TEST(Probe, FailedProbeMakesEveryFailureLocal) {
  std::vector<Answer> answers{
      with_security("example.org", RrType::MX, Security::indeterminate, "timeout after 5 s"),
      with_security("example.net", RrType::MX, Security::bogus, "no DNSKEY for trust anchor"),
      with_security("example.com", RrType::MX, Security::secure)};
  apply_probe(answers,
              with_security("", RrType::DNSKEY, Security::indeterminate, "timeout after 5 s"));
  EXPECT_EQ(answers[0].security, Security::indeterminate);
  EXPECT_TRUE(answers[0].local_failure);
  EXPECT_EQ(answers[0].why,
            "local DNS resolver not answering: the root DNSKEY query is indeterminate (timeout "
            "after 5 s); timeout after 5 s");
  EXPECT_EQ(answers[1].security, Security::indeterminate) << "not the destination's verdict";
  EXPECT_TRUE(answers[1].local_failure);
  EXPECT_FALSE(answers[2].local_failure);
  EXPECT_EQ(answers[2].security, Security::secure);
}

TEST(Probe, DnskeyAnswerKeepsNoRecords) {
  Packet p("", RrType::DNSKEY);
  p.rr(ptr(kQuestion), RrType::DNSKEY, 300, {1, 1, 3, 8, 0xaa, 0xbb});
  Answer a = build_answer(probe_query(), secure(p));
  EXPECT_EQ(a.security, Security::secure) << a.why;
  EXPECT_TRUE(a.malformed.empty()) << a.malformed;
}

}  // namespace
}  // namespace danemta::dns
