// libFuzzer target: the trust anchor file reader on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dns/trust_anchor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace danemta::dns;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = parse_trust_anchors(text, "fuzz");
  if (r) {
    // Whatever is accepted has the shape RFC 4034 gives it.
    for (const TrustAnchor& a : *r) {
      if (a.owner.empty() || a.owner.back() != '.' || a.algorithm == 0) __builtin_trap();
      if (a.type == AnchorType::ds && a.digest.size() != 20 && a.digest.size() != 32 &&
          a.digest.size() != 48)
        __builtin_trap();
      if (a.type == AnchorType::dnskey && a.public_key.empty()) __builtin_trap();
    }
  } else if (r.error().message.empty()) {
    __builtin_trap();
  }
  return 0;
}
