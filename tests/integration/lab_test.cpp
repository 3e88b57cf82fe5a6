// Tests of the lab itself: each kind of zone the spec can describe must validate
// the way tests/lab/README.md promises when libunbound forwards to the lab's NSD.
#include <gtest/gtest.h>
#include <unbound.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lab/lab.hpp"

namespace {

using danemta::lab::World;

constexpr int kA = 1;
constexpr int kCname = 5;
constexpr int kSoa = 6;
constexpr int kMx = 15;
constexpr int kTxt = 16;
constexpr int kAaaa = 28;
constexpr int kDs = 43;
constexpr int kDnskey = 48;
constexpr int kNsec3 = 50;
constexpr int kNsec3param = 51;
constexpr int kTlsa = 52;

struct ResultDeleter {
  void operator()(ub_result* r) const { ub_resolve_free(r); }
};
using Result = std::unique_ptr<ub_result, ResultDeleter>;

struct CtxDeleter {
  void operator()(ub_ctx* c) const { ub_ctx_delete(c); }
};

// A validating libunbound context forwarding to the lab, configured the way the
// lab's README says.
class Validator {
 public:
  explicit Validator(const World& world) : ctx_(ub_ctx_create()) {
    if (!ctx_) throw std::runtime_error("ub_ctx_create failed");
    check(ub_ctx_set_fwd(ctx_.get(), world.resolver().c_str()), "set_fwd");
    check(ub_ctx_set_option(ctx_.get(), "do-not-query-localhost:", "no"), "set_option");
    check(ub_ctx_add_ta_file(ctx_.get(), world.trust_anchor_file().c_str()), "add_ta_file");
  }

  Result resolve(const std::string& name, int type) {
    ub_result* raw = nullptr;
    check(ub_resolve(ctx_.get(), name.c_str(), type, 1, &raw), "resolve " + name);
    return Result(raw);
  }

 private:
  static void check(int err, const std::string& what) {
    if (err != 0) throw std::runtime_error(what + ": " + ub_strerror(err));
  }
  std::unique_ptr<ub_ctx, CtxDeleter> ctx_;
};

std::vector<std::uint8_t> rdata(const ub_result& r, int i) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(r.data[i]);
  return {p, p + r.len[i]};
}

std::string ipv4(const ub_result& r, int i) {
  const auto d = rdata(r, i);
  if (d.size() != 4) return "?";
  return std::to_string(d[0]) + "." + std::to_string(d[1]) + "." + std::to_string(d[2]) + "." +
         std::to_string(d[3]);
}

std::string describe(const ub_result& r) {
  std::ostringstream os;
  os << r.qname << " type " << r.qtype << ": rcode=" << r.rcode << " havedata=" << r.havedata
     << " nxdomain=" << r.nxdomain << " secure=" << r.secure << " bogus=" << r.bogus
     << " why_bogus=" << (r.why_bogus != nullptr ? r.why_bogus : "-");
  return os.str();
}

// Types of the authority-section records of a DNS message (RFC 1035 4.1).
std::vector<int> authority_types(const ub_result& r) {
  const auto* p = static_cast<const std::uint8_t*>(r.answer_packet);
  const auto n = static_cast<std::size_t>(r.answer_len);
  std::vector<int> types;
  if (p == nullptr || n < 12) return types;
  auto u16 = [&](std::size_t at) { return static_cast<std::size_t>((p[at] << 8) | p[at + 1]); };
  std::size_t pos = 12;
  auto skip_name = [&]() {
    while (pos < n) {
      const std::uint8_t len = p[pos];
      if ((len & 0xC0) == 0xC0) {
        pos += 2;
        return;
      }
      pos += 1u + len;
      if (len == 0) return;
    }
  };
  const std::size_t qd = u16(4), an = u16(6), ns = u16(8);
  for (std::size_t i = 0; i < qd && pos < n; ++i) {
    skip_name();
    pos += 4;
  }
  for (std::size_t i = 0; i < an + ns && pos + 10 <= n; ++i) {
    skip_name();
    if (pos + 10 > n) break;
    const auto type = static_cast<int>(u16(pos));
    const std::size_t rdlen = u16(pos + 8);
    if (i >= an) types.push_back(type);
    pos += 10 + rdlen;
  }
  return types;
}

const char* const kSpec = R"json({
  "zones": [
    {"name": "example", "signed": true},
    {"name": "good.example", "records": [
        "@ MX 10 mx1",
        "mx1 A 127.0.0.10",
        "mx1 AAAA ::1",
        "_25._tcp.mx1 TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "_25._tcp.odd TYPE52 \\# 3 030101",
        "alias CNAME mx1.other.example.",
        "@ TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@good.example\""
    ]},
    {"name": "other.example", "records": ["mx1 A 127.0.0.20"]},
    {"name": "insecure.example", "ds": false},
    {"name": "plain.example", "signed": false, "records": ["mx A 127.0.0.12"]},
    {"name": "dsmismatch.example", "faults": ["ds-mismatch"]},
    {"name": "expired.example", "faults": ["expired"]},
    {"name": "future.example", "faults": ["not-yet-valid"]},
    {"name": "lame.example", "served": false},
    {"name": "tampered.example", "records": ["@ MX 10 mx", "mx A 127.0.0.11",
        "_25._tcp.mx TLSA 3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"],
     "tamper": ["mx A", "_25._tcp.mx TLSA"]},
    {"name": "org"},
    {"name": "deep.sub.org", "records": ["www A 127.0.0.30"]},
    {"name": "shared1.example", "shared_key": true, "records": ["@ MX 10 mx", "mx A 127.0.0.41"]},
    {"name": "shared2.example", "shared_key": true, "records": ["@ MX 10 mx", "mx A 127.0.0.42",
        "_25._tcp.mx TLSA 3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"]},
    {"name": "sharedbad.example", "shared_key": true, "faults": ["ds-mismatch"],
     "records": ["mx A 127.0.0.43"]}
  ]
})json";

class LabWorld : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { world_ = new World(kSpec); }
  static void TearDownTestSuite() {
    delete world_;
    world_ = nullptr;
  }
  static World* world_;
};
World* LabWorld::world_ = nullptr;

TEST_F(LabWorld, SignedZoneAnswersAreSecure) {
  Validator v(*world_);
  auto mx = v.resolve("good.example", kMx);
  EXPECT_TRUE(mx->secure && mx->havedata) << describe(*mx);
  ASSERT_NE(mx->data[0], nullptr);
  EXPECT_EQ(rdata(*mx, 0)[1], 10) << "MX preference";

  auto a = v.resolve("mx1.good.example", kA);
  EXPECT_TRUE(a->secure && a->havedata) << describe(*a);
  EXPECT_EQ(ipv4(*a, 0), "127.0.0.10");

  auto aaaa = v.resolve("mx1.good.example", kAaaa);
  EXPECT_TRUE(aaaa->secure && aaaa->havedata) << describe(*aaaa);
  ASSERT_EQ(aaaa->len[0], 16);
  EXPECT_EQ(rdata(*aaaa, 0)[15], 1);

  auto txt = v.resolve("good.example", kTxt);
  EXPECT_TRUE(txt->secure && txt->havedata) << describe(*txt);
  const auto t = rdata(*txt, 0);
  EXPECT_EQ(std::string(t.begin() + 1, t.end()), "v=TLSRPTv1; rua=mailto:tlsrpt@good.example");

  // The ancestors the lab creates: root and implicit TLD.
  auto root = v.resolve(".", kSoa);
  EXPECT_TRUE(root->secure && root->havedata) << describe(*root);
  auto tld = v.resolve("example", kSoa);
  EXPECT_TRUE(tld->secure && tld->havedata) << describe(*tld);
}

TEST_F(LabWorld, DeeperZoneUnderImplicitAncestorIsSecure) {
  Validator v(*world_);
  auto a = v.resolve("www.deep.sub.org", kA);
  EXPECT_TRUE(a->secure && a->havedata) << describe(*a);
  EXPECT_EQ(ipv4(*a, 0), "127.0.0.30");
}

TEST_F(LabWorld, CnameAcrossZonesIsSecure) {
  Validator v(*world_);
  auto a = v.resolve("alias.good.example", kA);
  EXPECT_TRUE(a->secure && a->havedata) << describe(*a);
  EXPECT_STREQ(a->canonname, "mx1.other.example.");
  EXPECT_EQ(ipv4(*a, 0), "127.0.0.20");
}

TEST_F(LabWorld, TlsaRecordIsReadable) {
  Validator v(*world_);
  auto tlsa = v.resolve("_25._tcp.mx1.good.example", kTlsa);
  ASSERT_TRUE(tlsa->secure && tlsa->havedata) << describe(*tlsa);
  const auto d = rdata(*tlsa, 0);
  ASSERT_EQ(d.size(), 35u);
  EXPECT_EQ(d[0], 3);
  EXPECT_EQ(d[1], 1);
  EXPECT_EQ(d[2], 1);
  EXPECT_EQ(d[3], 0x01);
  EXPECT_EQ(d[34], 0xef);
}

TEST_F(LabWorld, GenericRdataPassesThrough) {
  Validator v(*world_);
  auto tlsa = v.resolve("_25._tcp.odd.good.example", kTlsa);
  ASSERT_TRUE(tlsa->secure && tlsa->havedata) << describe(*tlsa);
  EXPECT_EQ(rdata(*tlsa, 0), (std::vector<std::uint8_t>{3, 1, 1}));
}

TEST_F(LabWorld, MissingDsIsInsecure) {
  Validator v(*world_);
  auto soa = v.resolve("insecure.example", kSoa);
  EXPECT_TRUE(soa->havedata && !soa->secure && !soa->bogus) << describe(*soa);
  auto ds = v.resolve("insecure.example", kDs);  // denial of the DS is itself secure
  EXPECT_TRUE(!ds->havedata && ds->secure) << describe(*ds);
}

TEST_F(LabWorld, UnsignedZoneIsInsecure) {
  Validator v(*world_);
  auto a = v.resolve("mx.plain.example", kA);
  EXPECT_TRUE(a->havedata && !a->secure && !a->bogus) << describe(*a);
  EXPECT_EQ(ipv4(*a, 0), "127.0.0.12");
}

TEST_F(LabWorld, FaultyZonesAreBogus) {
  Validator v(*world_);
  for (const char* name : {"dsmismatch.example", "expired.example", "future.example"}) {
    auto soa = v.resolve(name, kSoa);
    EXPECT_TRUE(soa->bogus && !soa->secure) << describe(*soa);
    ASSERT_NE(soa->why_bogus, nullptr) << name;
    EXPECT_STRNE(soa->why_bogus, "") << name;
  }
  auto expired = v.resolve("expired.example", kSoa);
  EXPECT_NE(std::string(expired->why_bogus).find("expired"), std::string::npos)
      << expired->why_bogus;
  auto future = v.resolve("future.example", kSoa);
  EXPECT_NE(std::string(future->why_bogus).find("inception"), std::string::npos)
      << future->why_bogus;
}

TEST_F(LabWorld, TamperedRRsetIsBogusTheRestSecure) {
  Validator v(*world_);
  auto a = v.resolve("mx.tampered.example", kA);
  EXPECT_TRUE(a->bogus && !a->secure) << describe(*a);
  ASSERT_NE(a->why_bogus, nullptr);
  EXPECT_STRNE(a->why_bogus, "");
  auto tlsa = v.resolve("_25._tcp.mx.tampered.example", kTlsa);
  EXPECT_TRUE(tlsa->bogus && !tlsa->secure) << describe(*tlsa);
  auto mx = v.resolve("tampered.example", kMx);
  EXPECT_TRUE(mx->secure && mx->havedata && !mx->bogus) << describe(*mx);
}

TEST_F(LabWorld, NotServedZoneGivesServfail) {
  Validator v(*world_);
  auto soa = v.resolve("lame.example", kSoa);
  EXPECT_EQ(soa->rcode, 2) << describe(*soa);
  auto a = v.resolve("www.lame.example", kA);
  EXPECT_EQ(a->rcode, 2) << describe(*a);
}

TEST_F(LabWorld, NxdomainIsSecureWithNsec3) {
  Validator v(*world_);
  auto a = v.resolve("nope.good.example", kA);
  EXPECT_TRUE(a->nxdomain && a->secure && a->rcode == 3) << describe(*a);
  const auto types = authority_types(*a);
  EXPECT_NE(std::find(types.begin(), types.end(), kNsec3), types.end());
  auto param = v.resolve("good.example", kNsec3param);
  EXPECT_TRUE(param->secure && param->havedata) << describe(*param);
  auto nodata = v.resolve("mx1.good.example", kCname);
  EXPECT_TRUE(!nodata->havedata && !nodata->nxdomain && nodata->secure) << describe(*nodata);
}

// "shared_key": one key pair for several zones (fast worlds with many zones); each
// zone still has its own DNSKEY RRset, signatures and DS in the parent.
TEST_F(LabWorld, SharedKeyZonesAreSecure) {
  Validator v(*world_);
  for (const char* zone : {"shared1.example", "shared2.example"}) {
    auto mx = v.resolve(zone, kMx);
    EXPECT_TRUE(mx->secure && mx->havedata) << describe(*mx);
    auto a = v.resolve(std::string("mx.") + zone, kA);
    EXPECT_TRUE(a->secure && a->havedata) << describe(*a);
    auto nodata = v.resolve(std::string("mx.") + zone, kAaaa);
    EXPECT_TRUE(!nodata->havedata && !nodata->nxdomain && nodata->secure) << describe(*nodata);
  }
  EXPECT_EQ(ipv4(*v.resolve("mx.shared2.example", kA), 0), "127.0.0.42");
  auto tlsa = v.resolve("_25._tcp.mx.shared2.example", kTlsa);
  ASSERT_TRUE(tlsa->secure && tlsa->havedata) << describe(*tlsa);
  EXPECT_EQ(rdata(*tlsa, 0).size(), 35u);
  auto nx = v.resolve("nope.shared1.example", kA);
  EXPECT_TRUE(nx->nxdomain && nx->secure && nx->rcode == 3) << describe(*nx);
  auto ent = v.resolve("_tcp.mx.shared2.example", kA);  // an empty non-terminal
  EXPECT_TRUE(!ent->havedata && !ent->nxdomain && ent->secure) << describe(*ent);
  auto k1 = v.resolve("shared1.example", kDnskey);
  auto k2 = v.resolve("shared2.example", kDnskey);
  ASSERT_TRUE(k1->secure && k1->havedata && k2->secure && k2->havedata) << describe(*k1);
  EXPECT_EQ(rdata(*k1, 0), rdata(*k2, 0));
  auto bad = v.resolve("mx.sharedbad.example", kA);
  EXPECT_TRUE(bad->bogus && !bad->secure) << describe(*bad);
}

TEST_F(LabWorld, TrustAnchorIsTheRootKsk) {
  std::ifstream in(world_->trust_anchor_file());
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().rfind(". ", 0), 0u) << text.str();
  EXPECT_NE(text.str().find("DNSKEY 257 3 13 "), std::string::npos) << text.str();
  EXPECT_EQ(world_->resolver(), "127.0.0.1@" + std::to_string(world_->port()));
}

std::string one_a_spec(const std::string& address) {
  return R"({"zones": [{"name": "par.example", "records": ["host A )" + address + R"("]}]})";
}

TEST(Lab, ParallelWorldsDoNotCollide) {
  std::optional<World> w1, w2;
  std::string e1, e2;
  std::thread t1([&] {
    try {
      w1.emplace(one_a_spec("127.0.0.41"));
    } catch (const std::exception& e) {
      e1 = e.what();
    }
  });
  std::thread t2([&] {
    try {
      w2.emplace(one_a_spec("127.0.0.42"));
    } catch (const std::exception& e) {
      e2 = e.what();
    }
  });
  t1.join();
  t2.join();
  ASSERT_TRUE(w1 && w2) << e1 << e2;
  EXPECT_NE(w1->port(), w2->port());
  EXPECT_NE(w1->dir(), w2->dir());
  Validator v1(*w1), v2(*w2);
  auto a1 = v1.resolve("host.par.example", kA);
  auto a2 = v2.resolve("host.par.example", kA);
  ASSERT_TRUE(a1->secure && a1->havedata) << describe(*a1);
  ASSERT_TRUE(a2->secure && a2->havedata) << describe(*a2);
  EXPECT_EQ(ipv4(*a1, 0), "127.0.0.41");
  EXPECT_EQ(ipv4(*a2, 0), "127.0.0.42");
  // Each world's trust anchor is its own root: crossing them fails validation.
  EXPECT_NE(w1->trust_anchor_file(), w2->trust_anchor_file());
}

bool process_alive(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

TEST(Lab, DestructorStopsNsdAndRemovesTheDirectory) {
  std::string dir;
  long pid = 0;
  {
    World world(one_a_spec("127.0.0.43"));
    dir = world.dir();
    ASSERT_TRUE(std::filesystem::exists(dir + "/lab.json"));
    std::ifstream info(dir + "/lab.json");
    std::string text((std::istreambuf_iterator<char>(info)), std::istreambuf_iterator<char>());
    const auto at = text.find("\"nsd_pid\":");
    ASSERT_NE(at, std::string::npos) << text;
    pid = std::stol(text.substr(at + 10));
    ASSERT_TRUE(process_alive(pid));
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (process_alive(pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(process_alive(pid)) << "nsd " << pid << " still running";
}

TEST(Lab, BadSpecThrowsAClearError) {
  try {
    World world(R"({"zones": [{"name": "x.example", "faults": ["bogus-please"]}]})");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown fault 'bogus-please'"), std::string::npos)
        << e.what();
  }
  try {
    World world("{not json");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  try {
    World world(R"({"zones": [{"name": "t.example", "records": ["x A 1.2.3.4"],
                               "tamper": ["y A"]}]})");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tamper"), std::string::npos) << e.what();
  }
}

}  // namespace
