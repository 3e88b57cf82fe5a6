// The TLSRPT policy record (RFC 8460 section 3):
//
//   tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//   field-delim      = *WSP ";" *WSP
//   tlsrpt-version   = %s"v=TLSRPTv1"
//   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "tlsrpt/tlsrpt.hpp"

namespace danemta::tlsrpt {

namespace {

constexpr std::string_view kVersion = "v=TLSRPTv1";

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_wsp(std::string_view s) {
  while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

// Section 3: a record is a TLSRPT record when it begins with the
// (case-sensitive) version followed by a field delimiter or nothing; a
// record such as "v=TLSRPTv10" belongs to some other version and is ignored.
bool is_tlsrpt_record(std::string_view record) {
  if (!record.starts_with(kVersion)) return false;
  std::string_view rest = record.substr(kVersion.size());
  while (!rest.empty() && is_wsp(rest.front())) rest.remove_prefix(1);
  return rest.empty() || rest.front() == ';';
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// One rua URI: the scheme (case-insensitive, RFC 3986 section 3.1) must be
// mailto (section 5.3) or https (section 5.4). A mailto URI keeps only its
// address: a "!size" limit (as in DMARC's rua) or "?headers" part is dropped.
Result<std::string> parse_uri(std::string_view uri) {
  if (starts_with_ci(uri, "mailto:")) {
    std::string_view address = uri.substr(7);
    address = address.substr(0, address.find_first_of("!?"));
    if (address.empty() || address.find('@') == std::string_view::npos) {
      return fail("TLSRPT rua \"" + std::string(uri) + "\" has no mail address",
                  Severity::permanent);
    }
    return "mailto:" + std::string(address);
  }
  if (starts_with_ci(uri, "https:")) {
    if (uri.size() == 6) {
      return fail("TLSRPT rua \"" + std::string(uri) + "\" has no host", Severity::permanent);
    }
    return "https:" + std::string(uri.substr(6));
  }
  return fail("TLSRPT rua \"" + std::string(uri) + "\" is neither a mailto: nor an https: URI",
              Severity::permanent);
}

Result<std::vector<std::string>> parse_rua(std::string_view value) {
  std::vector<std::string> out;
  for (;;) {
    const std::size_t comma = value.find(',');
    const std::string_view item = trim_wsp(value.substr(0, comma));
    if (item.empty()) return fail("TLSRPT rua has an empty URI", Severity::permanent);
    auto uri = parse_uri(item);
    if (!uri) return tl::unexpected(uri.error());
    out.push_back(std::move(*uri));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

Result<ReportingPolicy> parse_record(std::string_view record) {
  ReportingPolicy policy;
  bool have_rua = false;
  std::string_view rest = record.substr(kVersion.size());
  while (!rest.empty()) {
    const std::size_t semi = rest.find(';');
    const std::string_view field = trim_wsp(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    if (field.empty()) continue;  // the optional trailing delimiter, or before the first field
    if (!field.starts_with("rua=")) continue;  // an extension (section 3): ignored
    if (have_rua) return fail("TLSRPT record has more than one rua field", Severity::permanent);
    have_rua = true;
    const std::string_view value = trim_wsp(field.substr(4));
    if (value.empty()) return fail("TLSRPT record has an empty rua field", Severity::permanent);
    auto uris = parse_rua(value);
    if (!uris) return tl::unexpected(uris.error());
    policy.rua = std::move(*uris);
  }
  if (!have_rua) return fail("TLSRPT record has no rua field", Severity::permanent);
  return policy;
}

}  // namespace

Result<ReportingPolicy> parse_policy(const std::vector<std::string>& txt_records) {
  const std::string* found = nullptr;
  std::size_t count = 0;
  for (const std::string& record : txt_records) {
    if (!is_tlsrpt_record(record)) continue;
    ++count;
    if (found == nullptr) found = &record;
  }
  // Section 3: "If the number of resulting records is not one, senders MUST
  // assume the recipient domain does not implement TLSRPT."
  if (count == 0) return fail("no v=TLSRPTv1 TXT record", Severity::permanent);
  if (count > 1) {
    return fail(std::to_string(count) + " v=TLSRPTv1 TXT records (exactly one is allowed)",
                Severity::permanent);
  }
  return parse_record(*found);
}

}  // namespace danemta::tlsrpt
