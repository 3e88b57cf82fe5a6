// libFuzzer target: `danemta check`'s renderers on a report whose free text
// comes from outside (the server's greeting, certificate names, MX names,
// validator reasons). render_json must give valid JSON for any bytes, and
// neither renderer may crash or throw.
//
// Input: a knob byte, then NUL-separated fields (see below).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "check/report.hpp"

namespace {

using namespace danemta;

struct Fields {
  std::string_view rest;
  std::string next() {
    const std::size_t nul = rest.find('\0');
    std::string out(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    return out;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t knobs = data[0];
  Fields f{std::string_view(reinterpret_cast<const char*>(data + 1), size - 1)};

  check::Report r;
  r.live = (knobs & 1) != 0;
  dane::DestinationPlan& p = r.plan;
  p.domain = f.next();
  p.mx_records.push_back(dns::MxRecord{10, f.next()});
  r.mx_why = f.next();
  p.notes.push_back(f.next());

  dane::HostPlan h;
  h.name = p.mx_records.front().exchange;
  h.addresses.push_back(f.next());
  h.expanded_name = f.next();
  h.tlsa_base_domain = f.next();
  h.reference_names.push_back(f.next());
  h.reason = f.next();
  if ((knobs & 2) != 0) h.requirement = dane::Requirement::dane;
  p.hosts.push_back(h);

  check::HostReport hr;
  hr.tlsa_lookups.push_back({"_25._tcp." + h.name, dns::Security::secure, "records", f.next()});
  check::AddressProbe probe;
  probe.host = h.name;
  probe.address = h.addresses.front();
  probe.connected = true;
  probe.greeting = f.next();
  probe.tls = (knobs & 4) != 0;
  probe.facts.protocol = f.next();
  probe.facts.cipher = f.next();
  probe.facts.sni = h.sni();
  tls::CertSummary cert;
  cert.subject = f.next();
  cert.issuer = f.next();
  cert.dns_names.push_back(f.next());
  cert.key = f.next();
  probe.facts.chain.push_back(cert);
  probe.detail = f.next();
  probe.warnings.push_back(f.next());
  if ((knobs & 8) != 0) probe.failure = dane::Outcome::tlsa_invalid;
  hr.probes.push_back(probe);
  r.hosts.push_back(hr);

  r.verdict.status = static_cast<check::Status>((knobs >> 4) & 3);
  r.verdict.summary = f.next();
  r.verdict.reason = f.next();
  r.verdict.warnings.push_back(std::string(f.rest));

  const std::string json = check::render_json(r);
  if (!nlohmann::json::accept(json)) __builtin_trap();
  (void)check::render_text(r);
  return 0;
}
