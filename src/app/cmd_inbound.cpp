#include "app/cmd_inbound.hpp"

#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <ctime>
#include <iostream>
#include <optional>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/system.hpp"
#include "base/text.hpp"
#include "dns/unbound_resolver.hpp"
#include "inbound/guard.hpp"
#include "tls/certs.hpp"

namespace danemta::app {

namespace {

// The TLSA RRsets of every MX name, looked up with validation.
Result<std::vector<inbound::Lookup>> look_up(const config::Config& cfg) {
  boost::asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) return tl::unexpected(resolver.error());
  std::vector<dns::Answer> answers;
  (*resolver)->resolve(inbound::tlsa_queries(cfg.inbound),
                       [&answers](std::vector<dns::Answer> a) { answers = std::move(a); });
  io.run();
  return inbound::lookups(cfg.inbound, answers);
}

// A certificate chain without its key (what `tlsa --rollover` is given).
Result<inbound::Chain> chain_of(const std::string& path) {
  auto certs = tls::load_pem_chain(path);
  if (!certs) return tl::unexpected(certs.error());
  inbound::Chain c;
  for (const tls::X509Ptr& x : *certs) c.certs.push_back(tls::summarize(x.get()));
  auto digest = tls::association_data((*certs)[0].get(), 0, 1);
  if (!digest) return tl::unexpected(digest.error());
  c.fingerprint = to_hex(*digest);
  return c;
}

std::string utc(std::int64_t t) {
  return utc_time(t, "%Y-%m-%d %H:%M:%S UTC");
}

inbound::Params params_of(const config::Config& cfg) {
  inbound::Params p;
  p.margin = cfg.inbound.rollover_margin;
  p.expiry_warning = cfg.inbound.expiry_warning;
  return p;
}

// The key family, "RSA" or "EC", of a certificate summary's key text.
std::string family(const tls::CertSummary& c) {
  return c.key.substr(0, c.key.find(' '));
}

bool needs_inbound(const config::Config& cfg, const char* command) {
  if (cfg.inbound.enabled()) return true;
  std::cerr << "danemta " << command
            << ": the configuration has no [inbound] section with listen addresses\n";
  return false;
}

// One slot's per-name findings, as lines starting with "  ".
void print_names(std::ostream& out, const inbound::Decision& d, bool with_candidate) {
  for (const inbound::NameStatus& n : d.names) {
    out << "  " << n.owner << ": ";
    if (!n.problem.empty()) {
      out << n.problem << "\n";
      continue;
    }
    out << "served certificate " << (n.served_published ? "published" : "NOT published");
    if (with_candidate) {
      out << ", next certificate ";
      if (!n.candidate_published)
        out << "NOT published";
      else
        out << "published, servable from " << utc(n.ready_at);
    }
    out << "\n";
  }
}

}  // namespace

int run_tlsa_rollover(const config::Config& cfg, const std::string& new_pem) {
  if (!needs_inbound(cfg, "tlsa --rollover")) return 2;
  auto next = chain_of(new_pem);
  if (!next) {
    std::cerr << "danemta tlsa: " << next.error().message << "\n";
    return 2;
  }
  std::vector<std::string> notes;
  auto slots = inbound::load_slots(cfg, false, notes);
  if (!slots || slots->empty()) {
    std::cerr << "danemta tlsa: " << (slots ? "no [[inbound.certificate]]" : slots.error().message)
              << "\n";
    return 2;
  }
  // The slot it replaces: the one serving the same key type, else the first.
  auto slot = std::find_if(slots->begin(), slots->end(), [&next](const inbound::Slot& s) {
    return family(s.served.leaf()) == family(next->leaf());
  });
  if (slot == slots->end()) slot = slots->begin();
  auto lookups = look_up(cfg);
  if (!lookups) {
    std::cerr << "danemta tlsa: " << lookups.error().message << "\n";
    return 2;
  }
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  inbound::SlotState state = slot->state;  // read only: the relay keeps the real one
  const inbound::Decision d =
      inbound::decide(slot->served, &*next, *lookups, state, now, params_of(cfg));
  std::cout << "; new certificate " << inbound::describe(*next) << " from " << new_pem << "\n"
            << "; replaces [inbound] certificate " << slot->files.cert_file
            << ", served now: " << inbound::describe(slot->served) << "\n";
  if (slot->candidate && slot->candidate->fingerprint != next->fingerprint)
    std::cout << "; note: the relay's files hold another new certificate: "
              << inbound::describe(*slot->candidate) << "\n";
  std::cout << "; publish (DNSSEC-signed), keeping the served certificate's records until the "
               "new one is served:\n";
  for (const inbound::Lookup& l : *lookups)
    for (const dns::TlsaRecord& r : inbound::records_for(*next)) {
      const bool there =
          l.secure && std::find(l.records.begin(), l.records.end(), r) != l.records.end();
      std::cout << l.owner << ". IN TLSA " << dns::to_string(r) << (there ? " ; published" : "")
                << "\n";
    }
  std::cout << "; state:\n";
  std::ostringstream names;
  print_names(names, d, true);
  std::string text = names.str();
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at);
    std::cout << ";" << text.substr(at, end - at) << "\n";
    at = end + 1;
  }
  if (cfg.inbound.mx_names.empty())
    std::cout << "; no [inbound] mx_names: the rollover guard is off, the relay serves new files "
                 "at once\n";
  std::cout << "; verdict: "
            << (d.switch_now ? "can be served now (" + d.why + ")" : "not yet: " + d.why) << "\n";
  if (d.expiring) std::cout << "; warning: " << d.expiry_problem << "\n";
  return d.switch_now ? 0 : 1;
}

namespace {

// One [inbound] certificate as `check --self` sees it.
struct SelfSlot {
  inbound::Slot slot;
  inbound::Decision decision;
  std::vector<std::string> problems;  // in words, one per problem
};

// The inbound side of `check --self`, decided once for both renderings.
struct SelfCheck {
  std::vector<std::string> problems;  // not about one certificate
  std::vector<SelfSlot> slots;
  bool problem() const {
    return !problems.empty() || std::any_of(slots.begin(), slots.end(),
                                            [](const SelfSlot& s) { return !s.problems.empty(); });
  }
};

const char* const kNoMxNames =
    "no [inbound] mx_names: TLSA records are not checked and the rollover guard is off";

SelfCheck decide_self(const config::Config& cfg, std::vector<inbound::Slot> slots,
                      const std::vector<inbound::Lookup>& lookups, std::int64_t now) {
  SelfCheck self;
  if (cfg.inbound.mx_names.empty()) self.problems.emplace_back(kNoMxNames);
  for (inbound::Slot& slot : slots) {
    SelfSlot s;
    inbound::SlotState state = slot.state;  // read only: the relay keeps the real one
    s.decision = inbound::decide(slot.served, slot.candidate ? &*slot.candidate : nullptr, lookups,
                                 state, now, params_of(cfg));
    if (!slot.files_problem.empty()) s.problems.push_back(slot.files_problem);
    for (const inbound::NameStatus& n : s.decision.names) {
      if (!n.problem.empty())
        s.problems.push_back(n.owner + ": " + n.problem);
      else if (!n.served_published)
        s.problems.push_back(n.owner + ": served certificate NOT published");
    }
    if (slot.candidate && !s.decision.candidate_published)
      s.problems.push_back("next certificate not published at every MX name: " + s.decision.why);
    if (s.decision.expiring) s.problems.push_back(s.decision.expiry_problem);
    s.slot = std::move(slot);
    self.slots.push_back(std::move(s));
  }
  return self;
}

void print_self(const config::Config& cfg, const SelfCheck& self) {
  std::cout << "Inbound MX (" << cfg.inbound.listen.size() << " listener(s), local domains";
  for (const std::string& d : cfg.inbound.local_domains) std::cout << " " << d;
  std::cout << ")\n";
  if (cfg.inbound.mx_names.empty()) std::cout << "  PROBLEM: " << kNoMxNames << "\n";
  for (const SelfSlot& s : self.slots) {
    const inbound::Slot& slot = s.slot;
    const inbound::Decision& d = s.decision;
    std::cout << "Certificate " << slot.files.cert_file
              << "\n  served: " << inbound::describe(slot.served) << "\n";
    if (slot.candidate) std::cout << "  next:   " << inbound::describe(*slot.candidate) << "\n";
    if (!slot.files_problem.empty()) std::cout << "  PROBLEM: " << slot.files_problem << "\n";
    print_names(std::cout, d, slot.candidate.has_value());
    if (slot.candidate) {
      std::cout << "  rollover: " << (d.switch_now ? "ready (" : "not ready (") << d.why << ")\n";
      for (const std::string& r : d.to_publish) std::cout << "  publish: " << r << "\n";
    } else if (!d.names.empty()) {
      // Readiness for the next rollover: a DANE-TA(2) record (or a second
      // 3 1 1 for a pre-made key) lets a new certificate in without a wait.
      std::cout << "  rollover: no new certificate in " << slot.files.cert_file << "\n";
    }
    if (d.expiring) std::cout << "  PROBLEM: " << d.expiry_problem << "\n";
  }
  std::cout << "\n";
}

using nlohmann::json;

json null_or(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

// UTC in the form of the certificates' times ("2026-11-29 12:00:00 UTC");
// null for 0 (not published).
json time_json(std::int64_t t) {
  return t == 0 ? json(nullptr) : json(utc(t));
}

json chain_json(const inbound::Chain& c) {
  const tls::CertSummary& leaf = c.leaf();
  return json{{"description", inbound::describe(c)},
              {"fingerprint_sha256", c.fingerprint},
              {"subject", leaf.subject},
              {"issuer", leaf.issuer},
              {"dns_names", leaf.dns_names},
              {"not_before", leaf.not_before},
              {"not_after", leaf.not_after},
              {"key", leaf.key},
              {"spki_sha256", leaf.spki_sha256},
              {"chain_length", c.certs.size()}};
}

json slot_json(const SelfSlot& s) {
  const inbound::Slot& slot = s.slot;
  const inbound::Decision& d = s.decision;
  const bool next = slot.candidate.has_value();
  json names = json::array();
  for (const inbound::NameStatus& n : d.names) {
    const bool looked_up = n.problem.empty();
    names.push_back(
        {{"mx_name", n.mx_name},
         {"owner", n.owner},
         {"problem", null_or(n.problem)},
         {"served_published", n.served_published},
         {"next_published", next && looked_up ? json(n.candidate_published) : json(nullptr)},
         {"next_servable_from", next && looked_up ? time_json(n.ready_at) : json(nullptr)}});
  }
  std::string rollover = "none";
  if (next) rollover = d.switch_now ? "ready" : "waiting";
  return json{{"cert_file", slot.files.cert_file},
              {"served", chain_json(slot.served)},
              {"next", next ? chain_json(*slot.candidate) : json(nullptr)},
              {"files_problem", null_or(slot.files_problem)},
              {"names", names},
              {"rollover",
               {{"status", rollover},
                {"reason", next ? json(d.why) : json(nullptr)},
                {"servable_from", next ? time_json(d.ready_at) : json(nullptr)},
                {"publish", next ? d.to_publish : std::vector<std::string>{}}}},
              {"expiring", d.expiring},
              {"expiry_problem", null_or(d.expiry_problem)},
              {"problems", s.problems}};
}

}  // namespace

int run_check_self(const config::Config& cfg, const CheckOptions& options) {
  if (!needs_inbound(cfg, "check --self")) return 2;
  std::vector<std::string> notes;
  auto slots = inbound::load_slots(cfg, false, notes);
  if (!slots) {
    std::cerr << "danemta check: " << slots.error().message << "\n";
    return 2;
  }
  auto lookups = look_up(cfg);
  if (!lookups) {
    std::cerr << "danemta check: " << lookups.error().message << "\n";
    return 2;
  }
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  const SelfCheck self = decide_self(cfg, std::move(*slots), *lookups, now);
  int worst = self.problem() ? 1 : 0;
  if (!options.json) print_self(cfg, self);
  json domains = json::array();
  // The sender's view of each local domain: MX, DNSSEC, TLSA and the live
  // servers, as `danemta check DOMAIN` reports it, with dane-only.
  for (const std::string& domain : cfg.inbound.local_domains) {
    CheckOptions o = options;
    o.domain = domain;
    config::Config c = cfg;
    c.policies[domain] = config::TlsPolicy::dane_only;
    if (!options.json) {
      std::cout << "== danemta check " << domain << "\n";
      std::cout.flush();
      worst = std::max(worst, run_check(c, o));
      continue;
    }
    auto report = check_report(c, o);
    const int status = report ? report->verdict.exit_code : 2;
    worst = std::max(worst, status);
    domains.push_back(
        {{"domain", domain},
         {"exit_code", status},
         {"report", report ? json::parse(check::render_json(*report)) : json(nullptr)},
         {"error", report ? json(nullptr) : json(report.error().message)}});
  }
  if (!options.json) return worst;

  json j;
  j["inbound"] = {{"listen", cfg.inbound.listen},
                  {"local_domains", cfg.inbound.local_domains},
                  {"mx_names", cfg.inbound.mx_names},
                  {"tlsa_port", cfg.inbound.tlsa_port}};
  j["certificates"] = json::array();
  std::vector<std::string> problems = self.problems;
  for (const SelfSlot& s : self.slots) {
    j["certificates"].push_back(slot_json(s));
    for (const std::string& p : s.problems) problems.push_back(s.slot.files.cert_file + ": " + p);
  }
  j["domains"] = domains;
  j["verdict"] = {{"status", worst == 0   ? "ok"
                             : worst == 1 ? "problem"
                                          : "error"},
                  {"problems", problems},
                  {"exit_code", worst}};
  // Certificate names and server greetings are bytes from outside: what is
  // not UTF-8 becomes U+FFFD (RFC 8259 section 8.1).
  std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  std::cout.flush();
  return worst;
}

}  // namespace danemta::app
