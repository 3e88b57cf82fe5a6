// Reading TLS reports that other organisations sent us (RFC 8460): the
// receiving side of `danemta tlsrpt send`. Pure: bytes in, a parsed report
// or an error out; no I/O.
//
// read_report() takes the bytes of one file as a report arrives: the JSON
// (section 4.3, "application/tlsrpt+json"), its gzip (section 5.1,
// "application/tlsrpt+gzip"), or the whole report mail (section 5.3:
// multipart/report; report-type=tlsrpt with the report as an attachment).
// What it is is decided from the bytes, never from a file name.
//
// Real senders vary, and what varies without changing the counts is
// accepted: "mx-host" as a string or an array, "policy-string" absent or a
// string, counts written as strings ("12"), unknown fields, absent optional
// fields (failure-details, sending-mta-ip, ...). What is accepted that way
// is noted in ReceivedReport::notes. The counts themselves (section 4.3
// "summary") are required: a report without them is an error, because a
// guessed count is a wrong count.
//
// Every resource hostile input could claim is capped (ReadLimits): the
// decompressed size (a gzip bomb stops at the cap), the JSON nesting depth
// and number of values, MIME nesting and parts. Errors are one line, say
// what was wrong and, for JSON, where ("policies[2].summary: ...").
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/result.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {

struct ReadLimits {
  // The report JSON after decompression and MIME decoding.
  std::size_t max_json_bytes = 16 * 1024 * 1024;
  // Arrays and objects inside one another.
  std::size_t max_depth = 32;
  // Values (objects, arrays, strings, numbers, literals) in one report.
  std::size_t max_values = 500000;
  // Multipart inside multipart, and body parts over the whole message.
  std::size_t max_mime_depth = 8;
  std::size_t max_mime_parts = 200;
};

// Section 4.3 "failure-details": one entry.
struct ReceivedFailure {
  std::string result_type;  // "" when the sender left it out
  std::string sending_mta_ip;
  std::string receiving_mx_hostname;
  std::string receiving_ip;
  std::string failure_reason_code;
  std::int64_t failed_session_count = 0;
};

// Section 4.3 "policies": one policy with its counts.
struct ReceivedPolicy {
  std::string policy_type;  // "tlsa", "sts", "no-policy-found", or what the sender wrote
  std::vector<std::string> policy_strings;
  std::string policy_domain;
  std::vector<std::string> mx_hosts;  // "mx-host" (one string becomes one element)
  std::int64_t successful = 0;        // total-successful-session-count
  std::int64_t failed = 0;            // total-failure-session-count
  std::vector<ReceivedFailure> failures;
};

struct ReceivedReport {
  std::string organization_name;
  std::string contact_info;
  std::string report_id;  // "" when absent: such a report is never a duplicate
  // The date range (section 4.3 "date-range"), seconds since the epoch;
  // has_range false when the sender left it out.
  bool has_range = false;
  Time begin = 0;
  Time end = 0;
  std::vector<ReceivedPolicy> policies;
  // Where the report differs from RFC 8460 in a way that was accepted
  // (e.g. "mx-host given as a string"), once each.
  std::vector<std::string> notes;
};

// One file's bytes, whatever they are (see above).
Result<ReceivedReport> read_report(std::string_view bytes, const ReadLimits& limits = {});

// The layers, for tests and callers that know what they hold.
Result<ReceivedReport> parse_report_json(std::string_view json, const ReadLimits& limits = {});
// gzip (RFC 1952; concatenated members too) or zlib data, inflated; an
// error as soon as the output would pass max_bytes.
Result<std::string> gunzip(std::string_view data, std::size_t max_bytes);
// The report attachment of a section 5.3 mail, decoded from its
// Content-Transfer-Encoding (base64, quoted-printable, 7bit, 8bit,
// binary): the JSON or its gzip.
Result<std::string> report_from_mail(std::string_view mail, const ReadLimits& limits = {});
// RFC 3339 date-time ("2016-04-01T00:00:00Z", "...T02:00:00.123+02:00") to
// seconds since the epoch; false when it is not one.
bool parse_rfc3339(std::string_view s, Time& out);

// ---- many reports summarised (`danemta tlsrpt read`) ------------------------

struct FailureRow {
  std::string result_type;
  std::string sending_mta_ip;
  std::string receiving_mx_hostname;
  std::int64_t sessions = 0;
};

struct PolicyRow {
  std::string policy_type;
  std::string policy_domain;
  std::vector<std::string> mx_hosts;  // sorted
  std::int64_t successful = 0;
  std::int64_t failed = 0;
  std::vector<FailureRow> failures;  // ascending by (result type, ip, host)
};

struct ReportRef {
  std::string report_id;
  std::string source;  // the file it was read from
  bool has_range = false;
  Time begin = 0;
  Time end = 0;
};

struct OrganizationSummary {
  std::string organization_name;
  std::string contact_info;
  std::vector<ReportRef> reports;   // in the order read
  bool has_range = false;           // some report had a date range
  Time begin = 0;                   // earliest start-datetime
  Time end = 0;                     // latest end-datetime
  std::vector<PolicyRow> policies;  // ascending by (type, domain, mx hosts)
  std::vector<std::string> notes;   // the reports' notes, once each
};

struct Duplicate {
  std::string report_id;
  std::string source;        // the file skipped
  std::string first_source;  // the file that was counted
};

struct Summary {
  std::vector<OrganizationSummary> organizations;  // ascending by (name, contact)
  std::vector<Duplicate> duplicates;
  std::size_t reports = 0;  // counted (duplicates not included)
};

// Adds one report read from `source`. A report whose report-id (non-empty)
// was already added is not counted again: it becomes a Duplicate. Counts
// add up saturating at the largest int64.
class Summariser {
 public:
  void add(const ReceivedReport& report, const std::string& source);
  Summary summary() const;

 private:
  using FailureKey = std::tuple<std::string, std::string, std::string>;
  struct PolicyTotals {
    std::int64_t successful = 0;
    std::int64_t failed = 0;
    std::map<FailureKey, std::int64_t> failures;
  };
  using PolicyKey = std::tuple<std::string, std::string, std::vector<std::string>>;
  struct Organization {
    std::vector<ReportRef> reports;
    std::map<PolicyKey, PolicyTotals> policies;
    std::vector<std::string> notes;
  };
  std::map<std::pair<std::string, std::string>, Organization> organizations_;
  std::map<std::string, std::string> seen_;  // report-id -> the file it was counted from
  std::vector<Duplicate> duplicates_;
  std::size_t reports_ = 0;
};

}  // namespace danemta::tlsrpt
