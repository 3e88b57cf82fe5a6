#include "dane/plan.hpp"

#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include "base/idna.hpp"
#include "base/text.hpp"
#include "dane/tlsa_data.hpp"

namespace danemta::dane {

using dns::Answer;
using dns::RrType;
using dns::Security;

void AnswerSet::add(Answer a) {
  dns::Query key{a.qname, a.qtype};
  answers_.insert_or_assign(std::move(key), std::move(a));
}

const Answer* AnswerSet::find(std::string_view name, RrType type) const {
  auto it = answers_.find(dns::Query{std::string(name), type});
  return it == answers_.end() ? nullptr : &it->second;
}

std::string_view to_string(Requirement r) {
  switch (r) {
    case Requirement::dane:
      return "dane";
    case Requirement::encrypt:
      return "encrypt";
    case Requirement::opportunistic:
      return "opportunistic";
    case Requirement::unusable:
      return "unusable";
  }
  return "unusable";
}

std::string tlsa_owner(std::string_view base_domain, std::uint16_t port) {
  return "_" + std::to_string(port) + "._tcp." + normalize_domain(base_domain);
}

namespace {

// The outcome of a failed lookup: the validator's verdict, a lookup that
// failed at the destination, or danemta's own resolver not answering.
Outcome failure_of(const Answer& a) {
  if (a.local_failure) return Outcome::local_dns_failed;
  return a.security == Security::bogus ? Outcome::dnssec_invalid : Outcome::dns_failed;
}

std::string describe_failure(const Answer& a) {
  std::string s = std::string(dns::to_string(a.qtype)) + " lookup for " + a.qname + " is " +
                  std::string(dns::to_string(a.security));
  if (!a.why.empty()) s += ": " + a.why;
  return s;
}

std::string_view mtype_name(std::uint8_t m) {
  switch (m) {
    case 0:
      return "full data";
    case 1:
      return "SHA2-256";
    case 2:
      return "SHA2-512";
    default:
      return "unknown matching type";
  }
}

class Lookups {
 public:
  Lookups(const AnswerSet& answers, std::vector<dns::Query>& missing)
      : answers_(answers), missing_(missing) {}

  // The answer, or nullptr after noting the query as still needed.
  const Answer* get(const std::string& name, RrType type) {
    if (const Answer* a = answers_.find(name, type)) return a;
    dns::Query q{name, type};
    if (std::find(missing_.begin(), missing_.end(), q) == missing_.end()) missing_.push_back(q);
    return nullptr;
  }

 private:
  const AnswerSet& answers_;
  std::vector<dns::Query>& missing_;
};

void make_unusable(HostPlan& h, Outcome o, std::string reason) {
  h.requirement = Requirement::unusable;
  h.failure = o;
  h.reason = std::move(reason);
}

// Address records first (RFC 7672 section 2.2.2): their security decides
// whether TLSA records are looked up at all. Returns false while answers
// are missing.
bool plan_addresses(Lookups& dns, HostPlan& h, const DestinationPlan& d,
                    std::vector<std::string>& notes) {
  // Only the families mail goes over ([delivery] inet_protocols).
  std::vector<const Answer*> lookups;
  bool missing = false;
  for (auto [wanted, type] : {std::pair{d.ipv4, RrType::A}, std::pair{d.ipv6, RrType::AAAA}}) {
    if (!wanted) continue;
    const Answer* a = dns.get(h.name, type);
    if (a)
      lookups.push_back(a);
    else
      missing = true;
  }
  if (missing) return false;

  for (const Answer* a : lookups) {
    if (a->security == Security::bogus) {
      make_unusable(h, Outcome::dnssec_invalid, describe_failure(*a));
      return true;
    }
  }
  std::vector<const Answer*> answered;
  for (const Answer* a : lookups)
    if (a->answered()) answered.push_back(a);
  if (answered.empty()) {
    // A failure of danemta's own resolver decides; else the last family's.
    const Answer* local = nullptr;
    std::string why;
    for (const Answer* a : lookups) {
      why += (why.empty() ? "" : "; ") + describe_failure(*a);
      if (a->local_failure && !local) local = a;
    }
    const Answer* decisive = local ? local : lookups.back();
    make_unusable(h, failure_of(*decisive), why);
    return true;
  }
  for (const Answer* a : lookups)
    if (!a->answered())
      notes.push_back(describe_failure(*a) + "; " + h.name +
                      " is used over the other address family");

  h.address_security = Security::secure;
  for (const Answer* a : answered) {
    if (a->security != Security::secure) h.address_security = Security::insecure;
    h.addresses.insert(h.addresses.end(), a->addresses.begin(), a->addresses.end());
    if (!a->cname_chain.empty() && h.expanded_name.empty()) h.expanded_name = a->canonical_name;
  }
  if (h.addresses.empty()) {
    bool nx =
        std::any_of(answered.begin(), answered.end(), [](const Answer* a) { return a->nxdomain; });
    make_unusable(h, Outcome::no_address,
                  h.name + (nx ? " does not exist" : " has no A or AAAA records"));
    return true;
  }
  return true;
}

// Which names may carry TLSA records for this host (RFC 7672 section 2.2.2).
// Returns false while answers are missing.
bool tlsa_candidates(Lookups& dns, HostPlan& h) {
  bool alias = !h.expanded_name.empty() && h.expanded_name != h.name;
  if (h.address_security == Security::secure) {
    // Whole chain validated: the expanded name first, then the original.
    if (alias) h.tlsa_candidates.push_back(h.expanded_name);
    h.tlsa_candidates.push_back(h.name);
    return true;
  }
  if (!alias) return true;  // insecure, not an alias: no TLSA lookup

  // Insecure answer through an alias: if the first CNAME is itself secure,
  // the original name is still a TLSA base domain; skipping it would let the
  // unsigned target zone downgrade the host.
  const Answer* c = dns.get(h.name, RrType::CNAME);
  if (!c) return false;
  switch (c->security) {
    case Security::secure:
      if (c->havedata) {
        h.cname_first_link_secure = true;
        h.tlsa_candidates.push_back(h.name);
      }
      return true;
    case Security::insecure:
      return true;
    case Security::bogus:
      make_unusable(h, Outcome::dnssec_invalid, describe_failure(*c));
      return true;
    case Security::indeterminate:
      make_unusable(h, failure_of(*c), describe_failure(*c));
      return true;
  }
  return true;
}

void apply_policy(HostPlan& h, config::TlsPolicy policy) {
  if (h.requirement == Requirement::unusable) return;
  switch (policy) {
    case config::TlsPolicy::dane_only:
      if (h.requirement != Requirement::dane)
        make_unusable(
            h, Outcome::dane_required,
            "policy dane-only, but " + h.name + " has no usable TLSA records (" + h.reason + ")");
      return;
    case config::TlsPolicy::encrypt:
      if (h.requirement == Requirement::opportunistic) {
        h.requirement = Requirement::encrypt;
        h.reason = "policy encrypt: TLS mandatory (" + h.reason + ")";
      }
      return;
    case config::TlsPolicy::dane:
    case config::TlsPolicy::may:
      return;
  }
}

bool plan_host(Lookups& dns, HostPlan& h, const DestinationPlan& d,
               std::vector<std::string>& notes) {
  if (!plan_addresses(dns, h, d, notes)) return false;
  if (h.failure) return true;

  if (d.policy == config::TlsPolicy::may) {
    h.requirement = Requirement::opportunistic;
    h.reason = "policy may: TLSA records not looked up, opportunistic TLS";
    return true;
  }

  if (!tlsa_candidates(dns, h)) return false;
  if (h.failure) return true;

  const Answer* found = nullptr;
  for (const std::string& base : h.tlsa_candidates) {
    const Answer* t = dns.get(tlsa_owner(base, d.port), RrType::TLSA);
    if (!t) return false;
    // A failed lookup at one candidate never falls back to the next: that
    // would let an attacker who breaks the first lookup choose the policy.
    if (t->security == Security::bogus) {
      make_unusable(h, Outcome::dnssec_invalid, describe_failure(*t));
      return true;
    }
    if (t->security == Security::indeterminate) {
      make_unusable(h, failure_of(*t), describe_failure(*t));
      return true;
    }
    if (t->security == Security::secure && t->havedata && !t->tlsa.empty()) {
      found = t;
      h.tlsa_base_domain = base;
      break;
    }
  }

  if (!found) {
    h.requirement = Requirement::opportunistic;
    if (h.address_security != Security::secure && !h.cname_first_link_secure)
      h.reason = "address records are DNSSEC-insecure: no TLSA lookup, opportunistic TLS";
    else
      h.reason = "no secure TLSA records: opportunistic TLS";
    apply_policy(h, d.policy);
    return true;
  }

  h.tlsa_owner = found->qname;
  h.tlsa_security = found->security;
  h.tlsa = judge_tlsa(found->tlsa);
  for (const TlsaVerdict& v : h.tlsa)
    if (v.usable) h.usable_tlsa.push_back(v.record);

  if (h.usable_tlsa.empty()) {
    // RFC 7672 section 2.2: secure TLSA, none usable: encrypt, do not authenticate.
    h.requirement = Requirement::encrypt;
    h.reason = "TLSA RRset at " + h.tlsa_owner +
               " is secure but no record is usable: TLS mandatory, certificate not "
               "authenticated";
    apply_policy(h, d.policy);
    return true;
  }

  h.requirement = Requirement::dane;
  // RFC 7672 section 3.2.2: DANE-TA reference identifiers.
  h.reference_names.push_back(h.tlsa_base_domain);
  if (h.tlsa_base_domain != h.name && h.address_security == Security::secure)
    h.reference_names.push_back(h.name);
  if (h.mx_secure && !d.implicit_mx &&
      std::find(h.reference_names.begin(), h.reference_names.end(), d.domain) ==
          h.reference_names.end())
    h.reference_names.push_back(d.domain);

  h.reason = "DANE: " + std::to_string(h.usable_tlsa.size()) + " usable TLSA record" +
             (h.usable_tlsa.size() == 1 ? "" : "s") + " at " + h.tlsa_owner;
  if (!h.mx_secure)
    h.reason += " (MX RRset is DNSSEC-insecure: a match is dane-trusted, not dane-verified)";
  apply_policy(h, d.policy);
  return true;
}

}  // namespace

std::vector<TlsaVerdict> judge_tlsa(const std::vector<dns::TlsaRecord>& rrset) {
  std::vector<TlsaVerdict> out;
  out.reserve(rrset.size());
  // Strongest well-formed digest per (usage, selector): RFC 7671 section 9.
  std::map<std::pair<int, int>, int> strongest;
  for (const dns::TlsaRecord& r : rrset) {
    TlsaVerdict v{r, false, ""};
    if (r.usage == 0 || r.usage == 1) {
      v.note = "usage " + std::to_string(r.usage) + (r.usage == 0 ? " (PKIX-TA)" : " (PKIX-EE)") +
               " is not usable for SMTP (RFC 7672 section 3.1.3)";
    } else if (r.usage != 2 && r.usage != 3) {
      v.note = "unknown usage " + std::to_string(r.usage);
    } else if (r.selector > 1) {
      v.note = "unknown selector " + std::to_string(r.selector);
    } else if (r.mtype > 2) {
      v.note = "unknown matching type " + std::to_string(r.mtype);
    } else if (r.data.empty()) {
      // RFC 6698 section 2.1: RDATA of 3 octets is a record, not a DNS failure.
      v.note = "empty certificate association data";
    } else if (r.mtype == 1 && r.data.size() != 32) {
      v.note = "SHA2-256 digest is " + std::to_string(r.data.size()) + " bytes, must be 32";
    } else if (r.mtype == 2 && r.data.size() != 64) {
      v.note = "SHA2-512 digest is " + std::to_string(r.data.size()) + " bytes, must be 64";
    } else if (auto problem = full_data_problem(r)) {
      v.note = std::move(*problem);
    } else {
      v.usable = true;
      if (r.mtype != 0) {
        int& best = strongest[{r.usage, r.selector}];
        best = std::max(best, static_cast<int>(r.mtype));
      }
    }
    out.push_back(std::move(v));
  }
  for (TlsaVerdict& v : out) {
    if (!v.usable) continue;
    const dns::TlsaRecord& r = v.record;
    if (r.mtype == 0) {
      v.note = r.usage == 3 ? "usable: DANE-EE, full data" : "usable: DANE-TA, full data";
      continue;
    }
    int best = strongest[{r.usage, r.selector}];
    if (r.mtype < best) {
      v.usable = false;
      v.note = "ignored: a " + std::string(mtype_name(static_cast<std::uint8_t>(best))) +
               " record is published for " + std::to_string(r.usage) + " " +
               std::to_string(r.selector) + " (digest agility, RFC 7671 section 9)";
    } else {
      v.note = std::string("usable: ") + (r.usage == 3 ? "DANE-EE" : "DANE-TA") + ", " +
               (r.selector == 1 ? "public key" : "full certificate") + ", " +
               std::string(mtype_name(r.mtype));
    }
  }
  return out;
}

PlanStep plan(std::string_view domain_in, const AnswerSet& answers, const PlanOptions& options) {
  PlanStep step;
  DestinationPlan& d = step.plan;
  d.domain = normalize_domain(domain_in);
  // RFC 5891 section 5.4: DNS is asked in A-labels, so mail to
  // user@bücher.example goes to the MX of xn--bcher-kva.example.
  if (has_non_ascii(d.domain)) {
    auto a_labels = to_a_labels(d.domain);
    if (!a_labels) {
      d.failure = Outcome::domain_not_found;
      d.reason = d.domain + " is " + a_labels.error().message;
      return step;
    }
    d.notes.push_back(d.domain + " is looked up as " + *a_labels + " (IDNA A-labels)");
    d.domain = std::move(*a_labels);
  }
  d.policy = options.policy;
  d.port = options.port;
  d.ipv4 = options.ipv4;
  d.ipv6 = options.ipv6;
  Lookups dns(answers, step.missing);

  if (options.address_literal) {
    HostPlan h;
    h.name = d.domain;
    h.addresses.push_back(d.domain);
    h.address_security = Security::insecure;
    h.requirement = Requirement::opportunistic;
    h.reason = "next hop is an IP address: no TLSA records, opportunistic TLS";
    apply_policy(h, d.policy);
    d.mx_security = Security::insecure;
    d.notes.push_back("next hop " + d.domain + " is configured by address: no DNS lookups");
    if (h.failure) {
      d.failure = h.failure;
      d.reason = h.reason;
    }
    d.hosts.push_back(std::move(h));
    return step;
  }
  if (!options.mx_lookup) {
    HostPlan h;
    h.name = d.domain;
    h.mx_secure = true;
    d.mx_security = Security::secure;
    d.notes.push_back("next hop " + d.domain +
                      " is configured ([transport]): its MX records are not looked up");
    d.hosts.push_back(std::move(h));
  } else {
    const Answer* mx = dns.get(d.domain, RrType::MX);
    if (!mx) return step;
    d.mx_security = mx->security;

    // RFC 7672 section 2.2.1: a failed MX lookup defers the whole destination;
    // never fall back to address records.
    switch (mx->security) {
      case Security::bogus:
        d.failure = Outcome::dnssec_invalid;
        d.reason = describe_failure(*mx);
        return step;
      case Security::indeterminate:
        d.failure = failure_of(*mx);
        d.reason = describe_failure(*mx);
        return step;
      case Security::secure:
      case Security::insecure:
        break;
    }
    if (mx->nxdomain) {
      d.failure = Outcome::domain_not_found;
      d.reason = d.domain + " does not exist (NXDOMAIN, " +
                 std::string(dns::to_string(mx->security)) + ")";
      return step;
    }

    std::vector<dns::MxRecord> records = mx->havedata ? mx->mx : std::vector<dns::MxRecord>{};
    d.mx_records = records;
    if (records.empty()) {
      d.implicit_mx = true;  // RFC 5321 section 5.1
      records.push_back(dns::MxRecord{0, d.domain});
    }
    bool all_null = std::all_of(records.begin(), records.end(),
                                [](const dns::MxRecord& r) { return r.exchange.empty(); });
    if (all_null) {
      d.null_mx = true;
      d.failure = Outcome::null_mx;
      d.reason = d.domain + " publishes a null MX (RFC 7505): it accepts no mail";
      return step;
    }
    if (records.size() > 1 &&
        std::any_of(records.begin(), records.end(),
                    [](const dns::MxRecord& r) { return r.exchange.empty(); }))
      d.notes.push_back(
          "a null MX is published together with other MX records (RFC 7505 "
          "section 3 forbids this); the null MX record is ignored");

    std::stable_sort(
        records.begin(), records.end(),
        [](const dns::MxRecord& a, const dns::MxRecord& b) { return a.preference < b.preference; });
    std::set<std::string> seen;
    for (const dns::MxRecord& r : records) {
      std::string name = normalize_domain(r.exchange);
      if (name.empty() || !seen.insert(name).second) continue;
      HostPlan h;
      h.name = std::move(name);
      h.preference = r.preference;
      h.mx_secure = mx->security == Security::secure;
      d.hosts.push_back(std::move(h));
    }
  }

  bool complete = true;
  for (HostPlan& h : d.hosts) complete = plan_host(dns, h, d, d.notes) && complete;
  if (!complete) return step;

  auto usable = std::find_if(d.hosts.begin(), d.hosts.end(), [](const HostPlan& h) {
    return h.requirement != Requirement::unusable;
  });
  if (usable == d.hosts.end() && !d.hosts.empty()) {
    const HostPlan& first = d.hosts.front();
    d.failure = first.failure;
    d.reason = d.hosts.size() == 1
                   ? first.reason
                   : "no usable MX host; most preferred (" + first.name + "): " + first.reason;
  }
  return step;
}

namespace {

// One destination's lookups: each round asks, concurrently, every query the
// planner needs next. RFC 7672 planning needs at most MX, addresses, one
// CNAME check and two TLSA rounds; the bound only guards against a planner bug.
class PlanDriver : public std::enable_shared_from_this<PlanDriver> {
 public:
  PlanDriver(dns::Resolver& resolver, std::string domain, PlanOptions options,
             std::function<void(DestinationPlan, AnswerSet)> done)
      : resolver_(resolver),
        domain_(std::move(domain)),
        options_(options),
        done_(std::move(done)) {}

  void next() {
    PlanStep s = plan(domain_, answers_, options_);
    if (!s.complete() && ++rounds_ > 16) {
      s.plan.failure = Outcome::dns_failed;
      s.plan.reason = "DNS lookups for " + domain_ + " did not converge";
      s.missing.clear();
    }
    if (s.complete()) {
      done_(std::move(s.plan), std::move(answers_));
      return;
    }
    resolver_.resolve(std::move(s.missing), [self = shared_from_this()](std::vector<Answer> got) {
      for (Answer& a : got) self->answers_.add(std::move(a));
      self->next();
    });
  }

 private:
  dns::Resolver& resolver_;
  std::string domain_;
  PlanOptions options_;
  std::function<void(DestinationPlan, AnswerSet)> done_;
  AnswerSet answers_;
  int rounds_ = 0;
};

}  // namespace

void plan_destination(dns::Resolver& resolver, std::string domain, PlanOptions options,
                      std::function<void(DestinationPlan, AnswerSet)> done) {
  std::make_shared<PlanDriver>(resolver, std::move(domain), options, std::move(done))->next();
}

}  // namespace danemta::dane
