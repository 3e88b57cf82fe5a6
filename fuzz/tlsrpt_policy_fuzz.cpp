// libFuzzer target: the `_smtp._tls` TXT record parser (RFC 8460 section 3).
// The input is the TXT RRset, one record per line. Checks the documented
// result: exactly one record starts with the version, rua is not empty, and
// every URI is mailto: with an address or https: with something after it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tlsrpt/tlsrpt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> records;
  std::size_t versions = 0;
  for (;;) {
    const std::size_t nl = input.find('\n');
    records.emplace_back(input.substr(0, nl));
    if (records.back().starts_with("v=TLSRPTv1")) ++versions;
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  const auto policy = danemta::tlsrpt::parse_policy(records);
  if (!policy) {
    if (policy.error().message.empty()) __builtin_trap();
    return 0;
  }
  if (versions == 0 || policy->rua.empty()) __builtin_trap();
  for (const std::string& uri : policy->rua) {
    if (uri.starts_with("mailto:")) {
      const std::string_view address = std::string_view(uri).substr(7);
      if (address.find('@') == std::string_view::npos) __builtin_trap();
      if (address.find_first_of("!?") != std::string_view::npos) __builtin_trap();
    } else if (!uri.starts_with("https:") || uri.size() == 6) {
      __builtin_trap();
    }
  }
  return 0;
}
