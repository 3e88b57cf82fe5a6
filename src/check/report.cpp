#include "check/report.hpp"

#include <algorithm>

namespace danemta::check {

using dane::Requirement;
using dns::Security;

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::degraded:
      return "degraded";
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

std::string where(const AddressProbe& p) {
  return p.host + "[" + p.address + "]";
}

// With live probes: mail goes to the first address, in MX order, whose
// session met its host's requirement.
void judge_live(Verdict& v, const dane::DestinationPlan& plan,
                const std::vector<HostReport>& hosts) {
  const AddressProbe* chosen = nullptr;
  const AddressProbe* first_policy_failure = nullptr;
  const AddressProbe* first_unreachable = nullptr;
  for (const HostReport& h : hosts) {
    for (const AddressProbe& p : h.probes) {
      for (const std::string& w : p.warnings) v.warnings.push_back(where(p) + ": " + w);
      if (p.failure) {
        if (!first_policy_failure) first_policy_failure = &p;
        v.warnings.push_back(where(p) + ": " + std::string(dane::code(*p.failure, false)) + " " +
                             std::string(dane::info(*p.failure).name) + ": " + p.detail);
      } else if (p.unreachable) {
        if (!first_unreachable) first_unreachable = &p;
        v.warnings.push_back(where(p) + ": not reachable: " + p.detail);
      } else if (!chosen) {
        chosen = &p;
      }
    }
  }
  if (chosen) {
    v.summary = "mail to " + plan.domain + " is delivered to " + where(*chosen) + " with " +
                std::string(dane::to_string(chosen->authentication)) +
                (chosen->tls ? " TLS" : " (no TLS)");
    if (first_policy_failure && !v.outcome) {
      v.status = Status::degraded;
      v.exit_code = 1;
      v.outcome = first_policy_failure->failure;
      v.reason = where(*first_policy_failure) + ": " + first_policy_failure->detail;
    }
    if (v.status == Status::degraded) v.summary += ", but " + v.reason;
    return;
  }
  const AddressProbe* f = first_policy_failure ? first_policy_failure : first_unreachable;
  dane::Outcome o = first_policy_failure ? *f->failure : dane::Outcome::connection_failed;
  v.outcome = o;
  v.status = Status::deferred;
  v.exit_code = 1;
  v.reason = f ? where(*f) + ": " + f->detail : "no address could be probed";
  const dane::OutcomeInfo& i = dane::info(o);
  v.summary = "mail to " + plan.domain + " would be deferred with " +
              std::string(i.transient_code) + " and bounced with " + std::string(i.permanent_code) +
              " when the queue lifetime ends";
}

Verdict judge(const dane::DestinationPlan& p) {
  Verdict v;
  if (p.failure) {
    const dane::OutcomeInfo& i = dane::info(*p.failure);
    v.outcome = p.failure;
    v.status = i.retry ? Status::deferred : Status::refused;
    v.exit_code = 1;
    v.reason = p.reason;
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

  for (const dane::HostPlan& h : p.hosts) {
    if (h.requirement != Requirement::unusable) continue;
    v.warnings.push_back(h.name + " is skipped: " + h.reason);
    // Another host takes the mail, but this one is broken by the domain's
    // own DNSSEC or policy: not healthy, whatever the fallback does.
    if (h.failure && dane::policy_failure(*h.failure) && !v.outcome) {
      v.status = Status::degraded;
      v.exit_code = 1;
      v.outcome = h.failure;
      v.reason = h.name + ": " + h.reason;
    }
  }
  if (v.status == Status::degraded) v.summary += ", but " + v.reason;
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

Report make_report(dane::DestinationPlan plan, const dane::AnswerSet& answers,
                   std::optional<std::vector<std::vector<AddressProbe>>> probes) {
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
  if (probes && !plan.failure) {
    r.live = true;
    for (std::size_t i = 0; i < r.hosts.size() && i < probes->size(); ++i)
      r.hosts[i].probes = std::move((*probes)[i]);
    // The DNS-only verdict's hedged summary and per-host warnings are
    // replaced by what the servers actually did; DNS warnings stay.
    judge_live(r.verdict, plan, r.hosts);
  }
  r.plan = std::move(plan);
  return r;
}

}  // namespace danemta::check
