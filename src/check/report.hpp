// `danemta check`: the validation test a receiving domain's admin runs. It
// uses the planner delivery uses, so "check says OK" means "the relay would
// deliver". This header is the plain Report; rendering is separate.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "check/probe.hpp"
#include "dane/plan.hpp"

namespace danemta::check {

// One TLSA lookup made for a host (a base domain tried), with its answer.
struct TlsaLookup {
  std::string owner;  // "_25._tcp.<base>"
  dns::Security security = dns::Security::indeterminate;
  std::string result;  // "records", "no records", "no such name", "lookup failed"
  std::string why;
};

enum class Status {
  ok,        // mail is delivered with the best protection the domain publishes
  degraded,  // mail is delivered, but a host fails the domain's own DANE/DNSSEC policy
  deferred,  // mail would be queued and retried, then bounced
  refused,   // mail would be bounced at once
};

std::string_view to_string(Status s);

struct Verdict {
  Status status = Status::ok;
  std::optional<dane::Outcome> outcome;
  std::string summary;  // one line
  std::string reason;   // the specific failure, when there is one
  std::vector<std::string> warnings;
  int exit_code = 0;  // 0 ok, 1 degraded, deferred or refused
};

// What the report adds to a dane::HostPlan (same index in Report::hosts).
struct HostReport {
  std::vector<TlsaLookup> tlsa_lookups;
  std::uint32_t tlsa_ttl = 0;
  std::vector<AddressProbe> probes;  // live half; empty with --no-connect
};

struct Report {
  dane::DestinationPlan plan;
  std::uint32_t mx_ttl = 0;
  std::string mx_why;             // validator reason when the MX lookup failed
  std::vector<HostReport> hosts;  // parallel to plan.hosts
  bool live = false;              // the servers were probed
  Verdict verdict;
};

// Builds the report from a complete plan and the answers it was made from,
// and, for the live check, the probes (one vector per host of the plan).
Report make_report(dane::DestinationPlan plan, const dane::AnswerSet& answers,
                   std::optional<std::vector<std::vector<AddressProbe>>> probes = std::nullopt);

// The authentication level a successful delivery to this host reaches
// before any connection ("dane-verified" needs a matching chain later).
std::string_view expected_authentication(const dane::HostPlan& h);

std::string render_text(const Report& r);
std::string render_json(const Report& r);

}  // namespace danemta::check
