// The aggregate report (RFC 8460 section 4), its gzip encoding (section 5.1:
// "application/tlsrpt+gzip") and its file name (section 5.1).
#define ZLIB_CONST
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {

std::string_view to_string(PolicyType t) {
  // Section 4.3 "policy-type"; "sts" (RFC 8461) is not sent by danemta.
  switch (t) {
    case PolicyType::tlsa:
      return "tlsa";
    case PolicyType::no_policy_found:
      return "no-policy-found";
  }
  return "no-policy-found";
}

namespace {

// RFC 3339 "date-time" in UTC with a "Z" offset (section 4.3 "date-range").
std::string rfc3339(Time t) {
  using namespace std::chrono;
  const sys_seconds tp{seconds{t}};
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// Section 4.3 "policy": the policy applied to a session.
using PolicyKey = std::tuple<PolicyType, std::vector<std::string>, std::string>;

// Section 4.3 "failure-details": result-type, sending-mta-ip,
// receiving-mx-hostname, receiving-ip, failure-reason-code.
using FailureKey = std::tuple<std::string, std::string, std::string, std::string, std::string>;

struct PolicyTally {
  std::int64_t successes = 0;
  std::int64_t failures = 0;
  std::map<FailureKey, std::int64_t> details;
};

}  // namespace

std::string report_json(const ReportInput& in) {
  std::map<PolicyKey, PolicyTally> policies;
  for (const SessionResult& r : in.results) {
    std::vector<std::string> strings = r.policy_strings;
    std::sort(strings.begin(), strings.end());
    PolicyTally& tally = policies[PolicyKey{r.policy_type, std::move(strings), r.mx_host}];
    if (r.success) {
      ++tally.successes;
      continue;
    }
    ++tally.failures;
    ++tally.details[FailureKey{r.result_type, r.sending_mta_ip, r.receiving_mx_hostname,
                               r.receiving_ip, r.failure_reason_code}];
  }

  // ordered_json keeps the section 4.3 order of keys for human readers.
  using nlohmann::ordered_json;
  ordered_json policies_json = ordered_json::array();
  for (const auto& [key, tally] : policies) {
    const auto& [type, strings, mx_host] = key;
    ordered_json policy = {
        {"policy-type", to_string(type)},
        {"policy-string", strings},
        {"policy-domain", in.policy_domain},
    };
    // "mx-host" is a list of host names or patterns (Appendix B writes it
    // as an array of strings, and receivers parse it so); danemta's
    // policies apply to one MX host each.
    if (!mx_host.empty()) policy["mx-host"] = ordered_json::array({mx_host});

    ordered_json details = ordered_json::array();
    for (const auto& [fkey, count] : tally.details) {
      const auto& [result_type, sending_ip, receiving_host, receiving_ip, reason] = fkey;
      // Section 4.3: a field whose value is unknown is left out, never sent
      // as "" (an empty string is not an IP address or a host name).
      ordered_json detail = {{"result-type", result_type}};
      if (!sending_ip.empty()) detail["sending-mta-ip"] = sending_ip;
      if (!receiving_host.empty()) detail["receiving-mx-hostname"] = receiving_host;
      if (!receiving_ip.empty()) detail["receiving-ip"] = receiving_ip;
      detail["failed-session-count"] = count;
      if (!reason.empty()) detail["failure-reason-code"] = reason;
      details.push_back(std::move(detail));
    }

    policies_json.push_back({
        {"policy", std::move(policy)},
        {"summary",
         {
             {"total-successful-session-count", tally.successes},
             {"total-failure-session-count", tally.failures},
         }},
        {"failure-details", std::move(details)},
    });
  }

  const ordered_json report = {
      {"organization-name", in.organization_name},
      {"date-range",
       {
           {"start-datetime", rfc3339(in.begin)},
           {"end-datetime", rfc3339(in.end - 1)},
       }},
      {"contact-info", in.contact_info},
      {"report-id", in.report_id},
      {"policies", std::move(policies_json)},
  };
  // Free text (OpenSSL's messages, remote host names) may not be UTF-8; such
  // bytes become U+FFFD rather than an exception.
  return report.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

namespace {

// A deflate stream, ended when it goes out of scope.
class Deflater {
 public:
  Deflater() = default;
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  ~Deflater() {
    if (initialised_) deflateEnd(&stream_);
  }

  // windowBits 15 + 16: a gzip (RFC 1952) header and trailer around the
  // deflate data, as zlib's deflateInit2 documents.
  bool init() {
    initialised_ = deflateInit2(&stream_, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                                Z_DEFAULT_STRATEGY) == Z_OK;
    return initialised_;
  }
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_{};
  bool initialised_ = false;
};

}  // namespace

Result<std::string> gzip(std::string_view data) {
  Deflater deflater;
  if (!deflater.init()) return fail("gzip: deflateInit2 failed");
  z_stream& zs = deflater.stream();

  std::string out;
  char buffer[16384];
  int flush = Z_NO_FLUSH;
  while (flush != Z_FINISH) {
    // avail_in is a uInt: feed inputs larger than that in pieces.
    const std::size_t chunk = std::min<std::size_t>(data.size(), UINT_MAX);
    zs.next_in = reinterpret_cast<const Bytef*>(data.data());
    zs.avail_in = static_cast<uInt>(chunk);
    data.remove_prefix(chunk);
    flush = data.empty() ? Z_FINISH : Z_NO_FLUSH;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(buffer);
      zs.avail_out = static_cast<uInt>(sizeof buffer);
      const int rc = deflate(&zs, flush);
      if (rc == Z_STREAM_ERROR) return fail("gzip: deflate failed");
      out.append(buffer, sizeof buffer - zs.avail_out);
    } while (zs.avail_out == 0);
  }
  return out;
}

std::string report_filename(const std::string& submitter, const ReportInput& in) {
  // Section 5.1: filename = sender "!" policy-domain "!" begin-timestamp "!"
  // end-timestamp [ "!" unique-id ] "." extension. The end timestamp is the
  // last second of the range, as in "end-datetime". unique-id =
  // 1*(ALPHA / DIGIT).
  std::string unique;
  for (char c : in.report_id) {
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (keep) unique.push_back(c);
  }
  std::string name = submitter + "!" + in.policy_domain + "!" + std::to_string(in.begin) + "!" +
                     std::to_string(in.end - 1);
  if (!unique.empty()) name += "!" + unique;
  return name + ".json.gz";
}

}  // namespace danemta::tlsrpt
