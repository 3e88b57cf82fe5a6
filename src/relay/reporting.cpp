#include "relay/reporting.hpp"

#include <algorithm>

namespace danemta::relay {

namespace {

tlsrpt::SessionResult base(const dane::DestinationPlan& plan, const dane::HostPlan* host,
                           tlsrpt::Time now) {
  tlsrpt::SessionResult r;
  r.at = now;
  r.policy_domain = plan.domain;
  if (host && host->requirement == dane::Requirement::dane) {
    r.policy_type = tlsrpt::PolicyType::tlsa;
    for (const dns::TlsaRecord& t : host->usable_tlsa)
      r.policy_strings.push_back(dns::to_string(t));
  }
  if (host) {
    r.mx_host = host->name;
    r.receiving_mx_hostname = host->name;
  }
  return r;
}

}  // namespace

std::vector<tlsrpt::SessionResult> session_results(const dane::DestinationPlan& plan,
                                                   const delivery::BatchResult& batch,
                                                   tlsrpt::Time now) {
  std::vector<tlsrpt::SessionResult> out;
  // RFC 8460 section 4.3.1.1: DNSSEC and DANE failures found before any
  // session belong to the "tlsa" policy type.
  auto decided = [&](dane::Outcome o, const dane::HostPlan* host, const std::string& why) {
    std::string_view type = dane::info(o).tlsrpt_result;
    if (type.empty()) return;
    tlsrpt::SessionResult r = base(plan, host, now);
    r.policy_type = tlsrpt::PolicyType::tlsa;
    r.success = false;
    r.result_type = std::string(type);
    r.failure_reason_code = why;
    out.push_back(std::move(r));
  };
  if (plan.failure) {
    decided(*plan.failure, nullptr, plan.reason);
    return out;
  }
  for (const dane::HostPlan& h : plan.hosts)
    if (h.requirement == dane::Requirement::unusable && h.failure)
      decided(*h.failure, &h, h.reason);

  for (const delivery::AddressAttempt& a : batch.sessions) {
    if (!a.connected) continue;
    auto host = std::find_if(plan.hosts.begin(), plan.hosts.end(),
                             [&a](const dane::HostPlan& h) { return h.name == a.host; });
    tlsrpt::SessionResult r = base(plan, host == plan.hosts.end() ? nullptr : &*host, now);
    r.sending_mta_ip = a.local_address;
    r.receiving_ip = a.address;
    if (a.failure) {
      std::string_view type = dane::info(*a.failure).tlsrpt_result;
      if (type.empty()) continue;
      r.result_type = std::string(type);
      r.failure_reason_code = a.detail;
    } else if (a.tls == dane::Authentication::none) {
      // Opportunistic delivery in clear: STARTTLS was not offered or failed.
      r.result_type = "starttls-not-supported";
      r.failure_reason_code = a.detail;
    } else {
      r.success = true;
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace danemta::relay
