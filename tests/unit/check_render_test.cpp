#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "check/report.hpp"

namespace danemta::check {
namespace {

// A live report whose server greeting and certificate name are not UTF-8.
Report report_with_8bit_text() {
  Report r;
  r.live = true;
  r.plan.domain = "example.org";
  r.plan.mx_records.push_back(dns::MxRecord{10, "mx1.example.org"});
  dane::HostPlan h;
  h.name = "mx1.example.org";
  h.addresses.push_back("192.0.2.25");
  r.plan.hosts.push_back(h);
  HostReport hr;
  AddressProbe p;
  p.host = h.name;
  p.address = "192.0.2.25";
  p.connected = true;
  p.greeting = "220 mx1 \xff\xfe ESMTP";
  p.tls = true;
  tls::CertSummary cert;
  cert.subject = "CN=\xe9t\xe9";
  p.facts.chain.push_back(cert);
  hr.probes.push_back(p);
  r.hosts.push_back(hr);
  return r;
}

TEST(CheckRender, JsonReplacesBytesThatAreNotUtf8) {
  std::string out;
  ASSERT_NO_THROW(out = render_json(report_with_8bit_text()));
  const auto j = nlohmann::json::parse(out);
  const auto& probe = j["hosts"][0]["probes"][0];
  EXPECT_EQ(probe["greeting"], "220 mx1 \xef\xbf\xbd\xef\xbf\xbd ESMTP");
  EXPECT_EQ(probe["chain"][0]["subject"], "CN=\xef\xbf\xbdt\xef\xbf\xbd");
}

}  // namespace
}  // namespace danemta::check
