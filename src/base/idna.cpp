#include "base/idna.hpp"

#include <idn2.h>

#include <cstdint>

#include "base/text.hpp"

namespace danemta {

bool has_non_ascii(std::string_view domain) {
  for (const char c : domain) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

Result<std::string> to_a_labels(std::string_view domain) {
  if (!has_non_ascii(domain)) return normalize_domain(domain);
  const std::string input(domain);
  char* out = nullptr;
  const int rc =
      idn2_lookup_u8(reinterpret_cast<const std::uint8_t*>(input.c_str()),
                     reinterpret_cast<std::uint8_t**>(&out), IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) {
    return fail(std::string("not a valid internationalized domain name: ") + idn2_strerror(rc),
                Severity::permanent);
  }
  std::string converted(out);
  idn2_free(out);
  return normalize_domain(converted);
}

}  // namespace danemta
