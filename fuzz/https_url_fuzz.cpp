// libFuzzer target: the https: rua URI parser of TLSRPT submission. Checks
// the parts against the documented forms.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsrpt/https_url.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view url(reinterpret_cast<const char*>(data), size);
  const auto u = danemta::tlsrpt::parse_https_url(url);
  if (!u) {
    if (u.error().severity != danemta::Severity::permanent) __builtin_trap();
    return 0;
  }
  if (u->host.empty() || u->target.empty() || u->target.front() != '/') __builtin_trap();
  if (u->target.find('#') != std::string::npos) __builtin_trap();
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(u->port.data(), u->port.data() + u->port.size(), port);
  if (ec != std::errc{} || end != u->port.data() + u->port.size() || port == 0 || port > 65535) {
    __builtin_trap();
  }
  // Nothing that could split or extend the request line or the Host field.
  for (const std::string_view s : {std::string_view(u->host_header), std::string_view(u->target)}) {
    for (const char c : s) {
      const auto b = static_cast<unsigned char>(c);
      if (b <= 0x20 || b >= 0x7f) __builtin_trap();
    }
  }
  if (u->host.find_first_of("@/?#") != std::string::npos) __builtin_trap();
  return 0;
}
