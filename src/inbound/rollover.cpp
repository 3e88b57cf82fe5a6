#include "inbound/rollover.hpp"

#include <algorithm>

#include "base/system.hpp"

namespace danemta::inbound {

namespace {

std::string utc(std::int64_t t) {
  return utc_time(t, "%Y-%m-%d %H:%M:%S UTC");
}

bool any_match(const Chain& chain, const std::vector<dns::TlsaRecord>& records) {
  return std::any_of(records.begin(), records.end(),
                     [&chain](const dns::TlsaRecord& r) { return matches(chain, r); });
}

}  // namespace

bool matches(const Chain& chain, const dns::TlsaRecord& record) {
  if (chain.certs.empty()) return false;
  if (record.usage == 3) return tls::matches(chain.certs.front(), record);
  if (record.usage == 2) {
    for (std::size_t i = 1; i < chain.certs.size(); ++i)
      if (tls::matches(chain.certs[i], record)) return true;
  }
  return false;
}

std::vector<dns::TlsaRecord> records_for(const Chain& chain) {
  std::vector<dns::TlsaRecord> out;
  auto spki_record = [](const tls::CertSummary& c, std::uint8_t usage) {
    dns::TlsaRecord r;
    r.usage = usage;
    r.selector = 1;
    r.mtype = 1;
    for (std::size_t i = 0; i + 1 < c.spki_sha256.size(); i += 2)
      r.data.push_back(
          static_cast<std::uint8_t>(std::stoi(c.spki_sha256.substr(i, 2), nullptr, 16)));
    return r;
  };
  if (chain.certs.empty()) return out;
  out.push_back(spki_record(chain.certs[0], 3));
  if (chain.certs.size() > 1) out.push_back(spki_record(chain.certs[1], 2));
  return out;
}

Lookup lookup_from(const std::string& mx_name, const dns::Answer& answer) {
  Lookup l;
  l.mx_name = mx_name;
  l.owner = answer.qname;
  l.ttl = answer.ttl;
  switch (answer.security) {
    case dns::Security::secure:
      if (answer.tlsa.empty()) {
        l.problem = answer.nxdomain ? "no TLSA records (NXDOMAIN)" : "no TLSA records";
      } else {
        l.secure = true;
        l.records = answer.tlsa;
      }
      break;
    case dns::Security::insecure:
      l.problem = "insecure (not DNSSEC-signed): DANE senders ignore its TLSA records";
      break;
    case dns::Security::bogus:
      l.problem = "bogus (DNSSEC validation failed: " + answer.why + ")";
      break;
    case dns::Security::indeterminate:
      l.problem = "lookup failed: " + (answer.why.empty() ? std::string("no answer") : answer.why);
      break;
  }
  return l;
}

Decision decide(const Chain& served, const Chain* candidate, const std::vector<Lookup>& lookups,
                SlotState& state, std::int64_t now, const Params& params) {
  Decision d;
  if (candidate && candidate->fingerprint == served.fingerprint) candidate = nullptr;
  const std::string fingerprint = candidate ? candidate->fingerprint : std::string();
  if (state.candidate != fingerprint) {
    state.candidate = fingerprint;
    state.seen.clear();
  }
  d.served_published = !lookups.empty();
  d.candidate_published = candidate != nullptr && !lookups.empty();
  bool all_answered = true;
  std::vector<Sighting> seen;
  for (const Lookup& l : lookups) {
    NameStatus n;
    n.mx_name = l.mx_name;
    n.owner = l.owner;
    n.problem = l.problem;
    if (!l.secure) all_answered = all_answered && l.problem.starts_with("no TLSA");
    const std::vector<dns::TlsaRecord> none;
    const std::vector<dns::TlsaRecord>& records = l.secure ? l.records : none;
    n.served_published = any_match(served, records);
    if (candidate) {
      for (const dns::TlsaRecord& r : records) {
        if (!matches(*candidate, r)) continue;
        n.candidate_published = true;
        const std::string text = dns::to_string(r);
        auto it = std::find_if(state.seen.begin(), state.seen.end(), [&](const Sighting& s) {
          return s.mx_name == l.mx_name && s.record == text;
        });
        Sighting s = it != state.seen.end() ? *it : Sighting{l.mx_name, text, now, 0};
        s.ttl = std::max(s.ttl, l.ttl);
        seen.push_back(s);
        // One second more: `now` and the sighting are whole seconds, so the
        // record may have been seen up to a second after first_seen.
        const std::int64_t wait =
            static_cast<std::int64_t>(s.ttl) + static_cast<std::int64_t>(params.margin.count()) + 1;
        const std::int64_t ready = matches(served, r) ? s.first_seen : s.first_seen + wait;
        n.ready_at = n.ready_at == 0 ? ready : std::min(n.ready_at, ready);
      }
      if (!n.candidate_published) {
        for (const dns::TlsaRecord& r : records_for(*candidate))
          d.to_publish.push_back(l.owner + ". IN TLSA " + dns::to_string(r));
      }
    }
    d.served_published = d.served_published && n.served_published;
    d.candidate_published = d.candidate_published && n.candidate_published;
    if (n.candidate_published) d.ready_at = std::max(d.ready_at, n.ready_at);
    d.names.push_back(std::move(n));
  }
  state.seen = std::move(seen);
  if (!d.candidate_published) d.ready_at = 0;

  if (candidate) {
    if (lookups.empty()) {
      d.switch_now = true;
      d.why = "no MX names configured: the rollover guard is off";
    } else if (d.candidate_published && now >= d.ready_at) {
      d.switch_now = true;
      d.why = "a record matching it has been published at every MX name for the TTL plus " +
              std::to_string(params.margin.count()) + " s";
    } else if (d.candidate_published && !d.served_published && all_answered) {
      d.switch_now = true;
      d.why =
          "the served certificate matches no published record at some MX name, the new one "
          "matches at every one";
    } else if (d.candidate_published) {
      d.why = "published at every MX name; served from " + utc(d.ready_at) +
              " (the RRset's TTL plus " + std::to_string(params.margin.count()) +
              " s after it was first seen)";
    } else {
      d.why = "no record matching it is published at every MX name yet";
    }
  }
  const std::int64_t expires = served.certs.empty() ? 0 : served.leaf().not_after_epoch;
  if (!d.switch_now && expires - now <= static_cast<std::int64_t>(params.expiry_warning.count())) {
    d.expiring = true;
    d.expiry_problem =
        "the served certificate expires " + served.leaf().not_after + " and " +
        (candidate == nullptr    ? std::string("no new certificate is in place")
         : d.candidate_published ? "the new one is not served before " + utc(d.ready_at)
                                 : std::string("no TLSA record matching the new one is published"));
  }
  return d;
}

}  // namespace danemta::inbound
