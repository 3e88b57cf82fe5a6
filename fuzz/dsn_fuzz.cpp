// libFuzzer target: the DSN builder (dsn::make_bounce, dsn::header_section)
// on fuzzed addresses, diagnostics and original message text. Checks the
// form dsn.hpp promises: CRLF lines of at most 998 octets, the boundary only
// on its delimiter lines, the notification and delivery-status parts 7-bit.
//
// Input: a knob byte, then NUL-separated fields (reporting MTA, queue id,
// sender, boundary seed, then per recipient: address, status, remote MTA,
// diagnostic, outcome, summary, fix); what follows the last field is the
// original message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsn/dsn.hpp"

namespace {

using namespace danemta::dsn;

struct Fields {
  std::string_view rest;
  std::string next() {
    const std::size_t nul = rest.find('\0');
    std::string out(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    return out;
  }
};

// Every line ends in CRLF, has no other CR or LF and at most 998 octets.
void check_lines(std::string_view s) {
  while (!s.empty()) {
    const std::size_t lf = s.find('\n');
    if (lf == std::string_view::npos || lf == 0 || s[lf - 1] != '\r') __builtin_trap();
    const std::string_view line = s.substr(0, lf - 1);
    if (line.size() > 998 || line.find('\r') != std::string_view::npos) __builtin_trap();
    s.remove_prefix(lf + 1);
  }
}

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

void check_bounce(const std::string& out) {
  check_lines(out);
  // The To field before it may hold any text: find the parameter in the field.
  const std::size_t field = out.find("\r\nContent-Type: multipart/report;");
  if (field == std::string::npos) __builtin_trap();
  constexpr std::string_view kParam = "boundary=\"";
  const std::size_t b = out.find(kParam, field);
  if (b == std::string::npos) __builtin_trap();
  const std::size_t start = b + kParam.size();
  const std::size_t end = out.find('"', start);
  if (end == std::string::npos || end == start || end - start > 70) __builtin_trap();
  const std::string delimiter = "\r\n--" + out.substr(start, end - start);
  // The three part delimiters and the close delimiter, nothing else.
  std::vector<std::size_t> at;
  for (std::size_t p = out.find(delimiter); p != std::string::npos;
       p = out.find(delimiter, p + 1)) {
    at.push_back(p);
  }
  if (at.size() != 4) __builtin_trap();
  if (out.compare(at[3] + delimiter.size(), std::string::npos, "--\r\n") != 0) __builtin_trap();
  // The notification (7bit or quoted-printable) and message/delivery-status.
  if (!is_ascii(std::string_view(out).substr(at[0], at[2] - at[0]))) __builtin_trap();
}

void check_header_section(const std::string& message) {
  const std::string h = header_section(message);
  check_lines(h);
  if (h.size() > 64 * 1024) __builtin_trap();
  if (h.find('\0') != std::string::npos || h.find("\r\n\r\n") != std::string::npos ||
      h.starts_with("\r\n")) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t knobs = data[0];
  Fields f{std::string_view(reinterpret_cast<const char*>(data + 1), size - 1)};

  BounceInput in;
  in.reporting_mta = f.next();
  in.original_id = f.next();
  in.original_sender = f.next();
  in.boundary_seed = f.next();
  in.now = 1700000000 + (knobs >> 4);
  in.arrival_date = (knobs & 1) ? 0 : in.now - 3600;
  const std::size_t recipients = (knobs >> 1) & 3;
  for (std::size_t i = 0; i < recipients; ++i) {
    FailedRecipient r;
    r.address = f.next();
    r.action = ((knobs >> 3) & 1) != 0 && i == 0 ? Action::delayed : Action::failed;
    r.status = f.next();
    r.remote_mta = f.next();
    r.diagnostic = f.next();
    r.diagnostic_is_smtp = (i & 1) == 0;
    r.outcome = f.next();
    r.summary = f.next();
    r.fix = f.next();
    r.last_attempt = i == 1 ? 0 : in.now - 60;
    in.recipients.push_back(std::move(r));
  }
  in.original_headers = std::string(f.rest);

  check_header_section(in.original_headers);
  check_bounce(make_bounce(in));
  return 0;
}
