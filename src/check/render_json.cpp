#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "check/report.hpp"

namespace danemta::check {

namespace {

using nlohmann::json;

json outcome_json(dane::Outcome o) {
  const dane::OutcomeInfo& i = dane::info(o);
  json j{{"name", i.name},   {"code", dane::code(o, false)}, {"final_code", i.permanent_code},
         {"retry", i.retry}, {"summary", i.summary},         {"fix", i.fix}};
  j["tlsrpt_result_type"] = i.tlsrpt_result.empty() ? json(nullptr) : json(i.tlsrpt_result);
  return j;
}

json string_or_null(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

json cert_json(const tls::CertSummary& c) {
  return json{{"subject", c.subject},         {"issuer", c.issuer},
              {"dns_names", c.dns_names},     {"not_before", c.not_before},
              {"not_after", c.not_after},     {"key", c.key},
              {"spki_sha256", c.spki_sha256}, {"ca", c.is_ca}};
}

json probe_json(const AddressProbe& p) {
  json j{{"address", p.address},
         {"connected", p.connected},
         {"greeting", string_or_null(p.greeting)},
         {"starttls_offered", p.starttls_offered},
         {"tls", p.tls},
         {"protocol", p.tls ? json(p.facts.protocol) : json(nullptr)},
         {"cipher", p.tls ? json(p.facts.cipher) : json(nullptr)},
         {"sni", p.tls ? json(p.facts.sni) : json(nullptr)},
         {"chain", json::array()},
         {"tlsa_matches", json::array()},
         {"matched_depth", p.matched_depth >= 0 ? json(p.matched_depth) : json(nullptr)},
         {"matched_record", p.matched ? json(dns::to_string(*p.matched)) : json(nullptr)},
         {"names_ok", p.names_ok ? json(*p.names_ok) : json(nullptr)},
         {"rollover_ready", p.rollover_ready},
         {"authentication", dane::to_string(p.authentication)},
         {"reachable", !p.unreachable},
         {"detail", p.detail},
         {"warnings", p.warnings}};
  for (const tls::CertSummary& c : p.facts.chain) j["chain"].push_back(cert_json(c));
  for (const RecordMatch& m : p.matches)
    j["tlsa_matches"].push_back({{"record", dns::to_string(m.record)}, {"depths", m.depths}});
  j["outcome"] = p.failure ? outcome_json(*p.failure) : json(nullptr);
  return j;
}

}  // namespace

std::string render_json(const Report& r) {
  const dane::DestinationPlan& p = r.plan;
  json j;
  j["domain"] = p.domain;
  j["policy"] = config::to_string(p.policy);
  j["port"] = p.port;
  j["live"] = r.live;

  json mx{{"security", dns::to_string(p.mx_security)},
          {"ttl", r.mx_ttl},
          {"why", string_or_null(r.mx_why)},
          {"implicit", p.implicit_mx},
          {"null", p.null_mx},
          {"records", json::array()}};
  for (const dns::MxRecord& m : p.mx_records)
    mx["records"].push_back(
        {{"preference", m.preference}, {"exchange", m.exchange.empty() ? "." : m.exchange}});
  j["mx"] = mx;

  j["hosts"] = json::array();
  for (std::size_t i = 0; i < p.hosts.size(); ++i) {
    const dane::HostPlan& h = p.hosts[i];
    const HostReport& hr = r.hosts[i];
    json host{{"name", h.name},
              {"preference", h.preference},
              {"addresses", h.addresses},
              {"address_security", dns::to_string(h.address_security)},
              {"expanded_name", string_or_null(h.expanded_name)},
              {"cname_first_link_secure", h.cname_first_link_secure},
              {"tlsa_lookups", json::array()},
              {"tlsa_base_domain", string_or_null(h.tlsa_base_domain)},
              {"tlsa", json::array()},
              {"requirement", dane::to_string(h.requirement)},
              {"authentication", expected_authentication(h)},
              {"sni", h.requirement == dane::Requirement::unusable ? json(nullptr) : json(h.sni())},
              {"reference_names", h.reference_names},
              {"reason", h.reason}};
    for (const TlsaLookup& l : hr.tlsa_lookups)
      host["tlsa_lookups"].push_back({{"owner", l.owner},
                                      {"security", dns::to_string(l.security)},
                                      {"result", l.result},
                                      {"why", string_or_null(l.why)}});
    for (const dane::TlsaVerdict& v : h.tlsa)
      host["tlsa"].push_back({{"usage", v.record.usage},
                              {"selector", v.record.selector},
                              {"matching_type", v.record.mtype},
                              {"data", to_hex(v.record.data)},
                              {"usable", v.usable},
                              {"note", v.note}});
    host["outcome"] = h.failure ? outcome_json(*h.failure) : json(nullptr);
    if (r.live) {
      host["probes"] = json::array();
      for (const AddressProbe& pr : hr.probes) host["probes"].push_back(probe_json(pr));
    } else {
      host["probes"] = nullptr;
    }
    j["hosts"].push_back(std::move(host));
  }

  j["notes"] = p.notes;
  const Verdict& v = r.verdict;
  j["verdict"] = {{"status", to_string(v.status)},
                  {"outcome", v.outcome ? outcome_json(*v.outcome) : json(nullptr)},
                  {"reason", string_or_null(v.reason)},
                  {"summary", v.summary},
                  {"warnings", v.warnings},
                  {"exit_code", v.exit_code}};
  // Server greetings and certificate names are bytes from outside: what is
  // not UTF-8 becomes U+FFFD (RFC 8259 section 8.1) rather than an exception.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace danemta::check
