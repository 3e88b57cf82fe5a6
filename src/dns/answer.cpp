#include "dns/answer.hpp"

#include "base/text.hpp"

namespace danemta::dns {

std::string_view to_string(Security s) {
  switch (s) {
    case Security::secure:
      return "secure";
    case Security::insecure:
      return "insecure";
    case Security::bogus:
      return "bogus";
    case Security::indeterminate:
      return "indeterminate";
  }
  return "indeterminate";
}

std::string_view to_string(RrType t) {
  switch (t) {
    case RrType::A:
      return "A";
    case RrType::CNAME:
      return "CNAME";
    case RrType::MX:
      return "MX";
    case RrType::TXT:
      return "TXT";
    case RrType::AAAA:
      return "AAAA";
    case RrType::TLSA:
      return "TLSA";
    case RrType::DNSKEY:
      return "DNSKEY";
  }
  return "?";
}

std::string to_string(const TlsaRecord& r) {
  return std::to_string(r.usage) + " " + std::to_string(r.selector) + " " +
         std::to_string(r.mtype) + " " + to_hex(r.data);
}

}  // namespace danemta::dns
