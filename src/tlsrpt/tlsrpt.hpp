// SMTP TLS Reporting (RFC 8460): what danemta saw when delivering to a
// domain, reported to that domain once a day.
//
// The relay records one SessionResult per attempted session (or per
// destination that failed before any session, e.g. DNSSEC-bogus MX) into a
// Store; `danemta tlsrpt send` builds one report per policy domain and day
// (section 4), and submits it to each rua URI of the domain's
// `_smtp._tls.<domain>` TXT record (section 3): https (section 5.4) or
// mailto (section 5.3, DKIM-signed).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"

namespace danemta::tlsrpt {

using Time = std::int64_t;  // seconds since the epoch, UTC

// ---- the _smtp._tls TXT record (RFC 8460 section 3) -------------------------

struct ReportingPolicy {
  std::vector<std::string> rua;  // "mailto:reports@example.org", "https://..."
};

// Parses the TXT RRset of `_smtp._tls.<domain>` (each element one TXT RR,
// strings joined). Exactly one record must start with "v=TLSRPTv1"
// (followed by ";" or the end); others are ignored. rua is required and not
// empty; each URI is mailto: or https:, a mailto: keeps only its address
// (a "!size" or "?..." suffix is dropped). Errors say what is wrong (permanent).
Result<ReportingPolicy> parse_policy(const std::vector<std::string>& txt_records);

// ---- what a session looked like (RFC 8460 section 4.3) ----------------------

enum class PolicyType { tlsa, no_policy_found };
std::string_view to_string(PolicyType t);

struct SessionResult {
  Time at = 0;
  std::string policy_domain;  // the recipient domain
  PolicyType policy_type = PolicyType::no_policy_found;
  std::vector<std::string> policy_strings;  // TLSA records in presentation form, for tlsa
  std::string mx_host;                      // the MX host the policy applies to ("" if none)
  bool success = false;
  std::string result_type;  // for failures: "tlsa-invalid", "dnssec-invalid", ... (4.3.1)
  std::string sending_mta_ip;
  std::string receiving_mx_hostname;
  std::string receiving_ip;
  std::string failure_reason_code;  // free text (e.g. OpenSSL's verify error)
};

// ---- durable store of session results ----------------------------------------

// One report's delivery to one rua URI.
struct RuaState {
  std::string policy_domain;
  Time day = 0;
  std::string rua;
  bool sent = false;        // posted (2xx) or queued in the spool (mailto:)
  int failed_attempts = 0;  // https POSTs that failed
  Time first_attempt = 0;
  Time next_attempt = 0;  // no retry before this
  std::string last_error;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual Result<void> record(const SessionResult& r) = 0;
  // Policy domains with results in [begin, end).
  virtual Result<std::vector<std::string>> domains(Time begin, Time end) = 0;
  virtual Result<std::vector<SessionResult>> results(const std::string& policy_domain, Time begin,
                                                     Time end) = 0;
  // Deletes results older than `before`, and the records of reports for
  // days that ended before it. Returns how many results.
  virtual Result<std::size_t> expire(Time before) = 0;

  // ---- reports produced and where they went (RFC 8460 section 5) ----

  // The report id of (policy domain, day): the one recorded first, or
  // `proposed`, which is then recorded. A report sent again (a retry) keeps
  // its id.
  virtual Result<std::string> report_id(const std::string& policy_domain, Time day,
                                        const std::string& proposed) = 0;
  // The delivery state of the day's report to one rua URI; nullopt if it
  // was never attempted.
  virtual Result<std::optional<RuaState>> rua_state(const std::string& policy_domain, Time day,
                                                    const std::string& rua) = 0;
  virtual Result<void> set_rua_state(const RuaState& state) = 0;
  // Days (start of the UTC day) and policy domains with a delivery not yet
  // sent whose first attempt was at or after `since`.
  virtual Result<std::vector<std::pair<Time, std::string>>> unsent(Time since) = 0;
};

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

// ---- the report (RFC 8460 section 4) -----------------------------------------

struct ReportInput {
  std::string organization_name;
  std::string contact_info;  // e.g. "postmaster@sender.example" (Appendix B)
  std::string report_id;     // unique
  Time begin = 0;            // start of the UTC day
  Time end = 0;              // end (exclusive)
  std::string policy_domain;
  std::vector<SessionResult> results;
};

// The JSON report (section 4.3): sessions grouped into policies by (policy
// type, sorted policy strings, mx host), summary counts, failure details
// grouped by (result type, sending ip, receiving hostname, receiving ip,
// reason); groups in ascending order of those keys. "policy-domain" is
// in.policy_domain; "mx-host" is an array of the one MX host name;
// "mx-host", "sending-mta-ip", "receiving-mx-hostname", "receiving-ip" and
// "failure-reason-code" are left out when empty; "end-datetime" is
// in.end - 1 (e.g. 23:59:59Z).
// Bytes that are not UTF-8 in free text become U+FFFD.
std::string report_json(const ReportInput& in);

// gzip (RFC 1952) of `data`.
Result<std::string> gzip(std::string_view data);

// Section 5.1: "submitter!policy-domain!begin!end!unique-id.json.gz", the
// timestamps in seconds since the epoch with end = in.end - 1 (the last
// second covered, as in "end-datetime"); unique-id is in.report_id without
// characters outside [A-Za-z0-9] (the section 5.1 grammar; "!unique-id" is
// left out if that is empty).
std::string report_filename(const std::string& submitter, const ReportInput& in);

}  // namespace danemta::tlsrpt
