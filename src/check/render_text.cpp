#include <sstream>

#include "base/text.hpp"
#include "check/report.hpp"

namespace danemta::check {

namespace {

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string outcome_label(dane::Outcome o, bool final_attempt) {
  const dane::OutcomeInfo& i = dane::info(o);
  return std::string(dane::code(o, final_attempt)) + " " + std::string(i.name);
}

std::string short_hex(const std::string& hex) {
  return hex.size() > 16 ? hex.substr(0, 16) + "..." : hex;
}

void render_probe(std::ostringstream& out, const AddressProbe& p) {
  out << "  probe       " << p.address;
  if (!p.connected) {
    out << "  not reachable: " << p.detail << "\n";
    return;
  }
  out << "  " << p.greeting << "\n";
  out << "              STARTTLS " << (p.starttls_offered ? "offered" : "NOT offered");
  if (p.tls) out << "; " << p.facts.protocol << " " << p.facts.cipher << "; SNI " << p.facts.sni;
  out << "\n";
  for (std::size_t d = 0; d < p.facts.chain.size(); ++d) {
    const tls::CertSummary& c = p.facts.chain[d];
    out << "              cert " << d << "  " << c.subject;
    if (!c.dns_names.empty()) out << "  [" << join(c.dns_names, ", ") << "]";
    out << "\n                      issuer " << c.issuer << "; " << c.key << "; not after "
        << c.not_after << "; SPKI SHA-256 " << short_hex(c.spki_sha256) << "\n";
  }
  for (const RecordMatch& m : p.matches) {
    out << "              TLSA " << short_hex(dns::to_string(m.record)) << "  ";
    if (m.depths.empty()) {
      out << "matches no certificate\n";
    } else {
      out << "matches depth";
      for (int d : m.depths) out << " " << d;
      out << "\n";
    }
  }
  if (!p.matches.empty())
    out << "              rollover    "
        << (p.rollover_ready ? "ready (another usable TLSA record is published)"
                             : "NOT ready (publish the next key's TLSA record first)")
        << "\n";
  if (p.names_ok)
    out << "              DANE-TA name check " << (*p.names_ok ? "ok" : "FAILED") << "\n";
  if (p.failure)
    out << "              result      FAIL " << outcome_label(*p.failure, false) << ": " << p.detail
        << "\n";
  else if (p.unreachable)
    out << "              result      not usable: " << p.detail << "\n";
  else
    out << "              result      " << dane::to_string(p.authentication)
        << (p.detail.empty() ? "" : ": " + p.detail) << "\n";
  for (const std::string& w : p.warnings) out << "              warning: " << w << "\n";
}

}  // namespace

std::string render_text(const Report& r) {
  const dane::DestinationPlan& p = r.plan;
  std::ostringstream out;
  out << "danemta check " << p.domain << "  (policy " << config::to_string(p.policy) << ", port "
      << p.port << ")\n\n";

  out << "MX      " << dns::to_string(p.mx_security);
  if (!p.mx_records.empty()) out << ", TTL " << r.mx_ttl;
  out << "\n";
  if (!r.mx_why.empty()) out << "        reason: " << r.mx_why << "\n";
  for (const dns::MxRecord& m : p.mx_records)
    out << "        " << m.preference << " " << (m.exchange.empty() ? "." : m.exchange) << "\n";
  if (p.implicit_mx) out << "        no MX records: " << p.domain << " is its own mail host\n";
  if (p.null_mx) out << "        null MX (RFC 7505): the domain accepts no mail\n";

  for (std::size_t i = 0; i < p.hosts.size(); ++i) {
    const dane::HostPlan& h = p.hosts[i];
    const HostReport& hr = r.hosts[i];
    out << "\nHost    " << h.name << "  (preference " << h.preference << ")\n";
    if (!h.expanded_name.empty())
      out << "  alias       CNAME to " << h.expanded_name
          << (h.cname_first_link_secure ? " (first link secure)" : "") << "\n";
    out << "  addresses   " << dns::to_string(h.address_security);
    if (!h.addresses.empty()) out << "  " << join(h.addresses, ", ");
    out << "\n";
    for (const TlsaLookup& l : hr.tlsa_lookups) {
      out << "  TLSA        " << l.owner << "  " << dns::to_string(l.security) << ", " << l.result;
      if (l.owner == h.tlsa_owner) out << ", TTL " << hr.tlsa_ttl;
      out << "\n";
      if (!l.why.empty()) out << "              reason: " << l.why << "\n";
    }
    if (hr.tlsa_lookups.empty() && h.requirement != dane::Requirement::unusable)
      out << "  TLSA        not looked up\n";
    for (const dane::TlsaVerdict& v : h.tlsa) {
      out << "              " << dns::to_string(v.record) << "\n";
      out << "                " << (v.usable ? "+ " : "- ") << v.note << "\n";
    }
    out << "  verdict     ";
    switch (h.requirement) {
      case dane::Requirement::dane:
        out << "DANE required (" << expected_authentication(h) << " on a match), SNI " << h.sni()
            << "\n";
        out << "              DANE-TA names: " << join(h.reference_names, ", ") << "\n";
        break;
      case dane::Requirement::encrypt:
        out << "TLS required, certificate not authenticated, SNI " << h.sni() << "\n";
        break;
      case dane::Requirement::opportunistic:
        out << "opportunistic TLS\n";
        break;
      case dane::Requirement::unusable:
        out << "not used: " << outcome_label(*h.failure, false) << "\n";
        break;
    }
    out << "              " << h.reason << "\n";
    for (const AddressProbe& pr : hr.probes) render_probe(out, pr);
  }

  for (const std::string& n : p.notes) out << "\nnote: " << n << "\n";

  const Verdict& v = r.verdict;
  out << "\nResult  ";
  if (v.status == Status::ok) {
    out << "OK: " << v.summary << "\n";
  } else if (v.status == Status::degraded) {
    const dane::OutcomeInfo& i = dane::info(*v.outcome);
    out << "DEGRADED " << outcome_label(*v.outcome, false) << ": " << i.summary << "\n";
    out << "        " << v.summary << "\n";
    out << "        fix: " << i.fix << "\n";
  } else {
    const dane::OutcomeInfo& i = dane::info(*v.outcome);
    out << "FAIL " << outcome_label(*v.outcome, v.status == Status::refused) << ": " << i.summary
        << "\n";
    out << "        " << v.reason << "\n";
    out << "        " << v.summary << "\n";
    out << "        fix: " << i.fix << "\n";
  }
  for (const std::string& w : v.warnings) out << "warning: " << w << "\n";
  return out.str();
}

}  // namespace danemta::check
