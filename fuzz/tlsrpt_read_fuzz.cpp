// libFuzzer target: reading a received TLS report (RFC 8460), whatever the
// bytes are: JSON, gzip, or a report mail. Checks the documented result: an
// error is one non-empty line; a report's counts are never negative; the
// summary of it twice counts it once when it has a report-id.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsrpt/received.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace danemta::tlsrpt;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Smaller caps than the defaults, so a bomb costs the fuzzer little time.
  ReadLimits limits;
  limits.max_json_bytes = 1 << 20;
  limits.max_values = 20000;
  const auto report = read_report(input, limits);
  if (!report) {
    const std::string& m = report.error().message;
    if (m.empty() || m.find('\n') != std::string::npos) __builtin_trap();
    return 0;
  }
  for (const ReceivedPolicy& p : report->policies) {
    if (p.successful < 0 || p.failed < 0) __builtin_trap();
    for (const ReceivedFailure& f : p.failures)
      if (f.failed_session_count < 0) __builtin_trap();
  }
  Summariser s;
  s.add(*report, "a");
  s.add(*report, "b");
  const Summary sum = s.summary();
  if (sum.reports != (report->report_id.empty() ? 2u : 1u)) __builtin_trap();
  if (sum.duplicates.size() != (report->report_id.empty() ? 0u : 1u)) __builtin_trap();
  return 0;
}
