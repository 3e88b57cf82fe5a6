#include "check/report.hpp"

#include <algorithm>

namespace danemta::check {

using dane::Requirement;
using dns::Security;

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::deferred:
      return "deferred";
    case Status::refused:
      return "refused";
  }
  return "deferred";
}

std::string_view expected_authentication(const dane::HostPlan& h) {
  switch (h.requirement) {
    case Requirement::dane:
      return h.mx_secure ? "dane-verified" : "dane-trusted";
    case Requirement::encrypt:
      return "mandatory-unauthenticated";
    case Requirement::opportunistic:
      return "opportunistic";
    case Requirement::unusable:
      return "none";
  }
  return "none";
}

namespace {

TlsaLookup describe_lookup(const std::string& owner, const dns::Answer* a) {
  TlsaLookup l;
  l.owner = owner;
  if (!a) {
    l.result = "not looked up";
    return l;
  }
  l.security = a->security;
  l.why = a->why;
  if (!a->answered())
    l.result = "lookup failed";
  else if (a->nxdomain)
    l.result = "no such name";
  else if (a->havedata && !a->tlsa.empty())
    l.result = "records";
  else
    l.result = "no records";
  return l;
}

Verdict judge(const dane::DestinationPlan& p) {
  Verdict v;
  if (p.failure) {
    const dane::OutcomeInfo& i = dane::info(*p.failure);
    v.outcome = p.failure;
    v.status = i.retry ? Status::deferred : Status::refused;
    v.exit_code = 1;
    v.summary = i.retry ? "mail to " + p.domain + " would be deferred with " +
                              std::string(i.transient_code) + " and bounced with " +
                              std::string(i.permanent_code) + " when the queue lifetime ends"
                        : "mail to " + p.domain + " would be refused at once with " +
                              std::string(i.permanent_code);
    return v;
  }

  std::size_t dane = 0, unusable = 0;
  for (const dane::HostPlan& h : p.hosts) {
    if (h.requirement == Requirement::dane) ++dane;
    if (h.requirement == Requirement::unusable) ++unusable;
  }
  const dane::HostPlan& first =
      *std::find_if(p.hosts.begin(), p.hosts.end(),
                    [](const dane::HostPlan& h) { return h.requirement != Requirement::unusable; });
  v.summary = "mail to " + p.domain + " is delivered to " + first.name + " with " +
              std::string(expected_authentication(first)) +
              (first.requirement == Requirement::dane      ? " TLS (if the certificate matches)"
               : first.requirement == Requirement::encrypt ? " TLS"
                                                           : " TLS when offered");

  for (const dane::HostPlan& h : p.hosts)
    if (h.requirement == Requirement::unusable)
      v.warnings.push_back(h.name + " is skipped: " + h.reason);
  if (dane > 0 && dane + unusable < p.hosts.size())
    v.warnings.push_back(
        "only some MX hosts publish usable TLSA records: an attacker who blocks the DANE "
        "hosts can push mail to the others, where TLS is not authenticated");
  if (dane > 0 && !p.hosts.empty() && !first.mx_secure)
    v.warnings.push_back(
        "the MX RRset is not DNSSEC-signed: the MX host names themselves "
        "are not authenticated, so DANE matches are dane-trusted only");
  for (const dane::HostPlan& h : p.hosts) {
    if (h.requirement != Requirement::dane) continue;
    if (h.usable_tlsa.size() < 2)
      v.warnings.push_back(h.name +
                           " publishes a single usable TLSA record: a certificate or key "
                           "change will break delivery unless the next record is published "
                           "first (publish current + next, or 3 1 1 + 2 1 1)");
  }
  return v;
}

}  // namespace

Report make_report(dane::DestinationPlan plan, const dane::AnswerSet& answers) {
  Report r;
  if (const dns::Answer* mx = answers.find(plan.domain, dns::RrType::MX)) {
    r.mx_ttl = mx->ttl;
    r.mx_why = mx->why;
  }
  for (const dane::HostPlan& h : plan.hosts) {
    HostReport hr;
    for (const std::string& base : h.tlsa_candidates) {
      std::string owner = dane::tlsa_owner(base, plan.port);
      const dns::Answer* a = answers.find(owner, dns::RrType::TLSA);
      hr.tlsa_lookups.push_back(describe_lookup(owner, a));
      if (a && owner == h.tlsa_owner) hr.tlsa_ttl = a->ttl;
      if (!a) break;
    }
    r.hosts.push_back(std::move(hr));
  }
  r.verdict = judge(plan);
  r.plan = std::move(plan);
  return r;
}

}  // namespace danemta::check
