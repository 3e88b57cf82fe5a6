#include "relay/reporting.hpp"

#include <algorithm>
#include <limits>

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

const dane::HostPlan* find_host(const dane::DestinationPlan& plan, const std::string& name) {
  auto it = std::find_if(plan.hosts.begin(), plan.hosts.end(),
                         [&name](const dane::HostPlan& h) { return h.name == name; });
  return it == plan.hosts.end() ? nullptr : &*it;
}

// A session that carried a transaction: the delivery code copies the
// session's attempt into a message's `tried` with mail_sent set for each
// message it sent over it.
bool carried_mail(const delivery::BatchResult& batch, const delivery::AddressAttempt& a) {
  for (const delivery::AttemptResult& m : batch.messages)
    for (const delivery::AddressAttempt& t : m.tried)
      if (t.mail_sent && t.host == a.host && t.address == a.address) return true;
  return false;
}

// Whether delivery reached an unusable host (one with no session to record).
// Hosts are tried in preference order (RFC 5321 section 5.1) until every
// message is done, so a host was reached when some message was not sent
// over a host of lower preference. Hosts of equal preference are tried in
// random order: when one of them carried a message, an unusable peer may
// not have been reached and is not counted (a report must not claim a
// failed session that did not happen).
bool reached(const dane::DestinationPlan& plan, const delivery::BatchResult& batch,
             const dane::HostPlan& host) {
  if (batch.messages.empty()) return true;
  for (const delivery::AttemptResult& m : batch.messages) {
    int sent_at = std::numeric_limits<int>::max();
    for (const delivery::AddressAttempt& t : m.tried) {
      if (!t.mail_sent) continue;
      if (const dane::HostPlan* h = find_host(plan, t.host))
        sent_at = std::min<int>(sent_at, h->preference);
    }
    if (host.preference < sent_at) return true;
  }
  return false;
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
    // Each MX host's own failure when the plan has hosts (e.g. a bogus TLSA
    // RRset on the only MX), so the report names the host (section 4.3
    // "mx-host", "receiving-mx-hostname"); the destination's failure when
    // there is no host to name (e.g. a bogus MX RRset).
    for (const dane::HostPlan& h : plan.hosts)
      if (h.requirement == dane::Requirement::unusable && h.failure)
        decided(*h.failure, &h, h.reason);
    if (out.empty()) decided(*plan.failure, nullptr, plan.reason);
    return out;
  }
  for (const dane::HostPlan& h : plan.hosts)
    if (h.requirement == dane::Requirement::unusable && h.failure && reached(plan, batch, h))
      decided(*h.failure, &h, h.reason);

  for (const delivery::AddressAttempt& a : batch.sessions) {
    if (!a.connected) continue;
    tlsrpt::SessionResult r = base(plan, find_host(plan, a.host), now);
    r.sending_mta_ip = a.local_address;
    r.receiving_ip = a.address;
    if (a.failure) {
      std::string_view type = dane::info(*a.failure).tlsrpt_result;
      if (type.empty()) continue;
      r.result_type = std::string(type);
      r.failure_reason_code = a.detail;
    } else if (a.tls == dane::Authentication::none) {
      // A session in clear without a policy failure. RFC 8460 section
      // 4.3.2.1's result types describe TLS negotiation; a session that
      // carried mail in clear did so because STARTTLS was not offered
      // ("starttls-not-supported") or because it was offered and the
      // handshake failed, so opportunistic TLS fell back to clear
      // ("validation-failure", the general negotiation failure, with the
      // handshake's error as the reason). A session that ended before
      // that (421 at EHLO, a timeout, a dropped connection) tells nothing
      // about the receiver's TLS and is not reported: it is neither a
      // success nor a TLS failure.
      if (!carried_mail(batch, a)) continue;
      r.result_type = a.starttls_offered ? "validation-failure" : "starttls-not-supported";
      r.failure_reason_code = a.detail;
    } else {
      r.success = true;
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace danemta::relay
