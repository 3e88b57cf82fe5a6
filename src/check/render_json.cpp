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

}  // namespace

std::string render_json(const Report& r) {
  const dane::DestinationPlan& p = r.plan;
  json j;
  j["domain"] = p.domain;
  j["policy"] = config::to_string(p.policy);
  j["port"] = p.port;

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
    j["hosts"].push_back(std::move(host));
  }

  j["notes"] = p.notes;
  const Verdict& v = r.verdict;
  j["verdict"] = {{"status", to_string(v.status)},
                  {"outcome", v.outcome ? outcome_json(*v.outcome) : json(nullptr)},
                  {"reason", string_or_null(p.reason)},
                  {"summary", v.summary},
                  {"warnings", v.warnings},
                  {"exit_code", v.exit_code}};
  return j.dump(2) + "\n";
}

}  // namespace danemta::check
