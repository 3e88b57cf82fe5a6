// Internationalized domain names (IDNA2008, RFC 5890-5891, with the UTS #46
// non-transitional mapping): DNS is asked in A-labels ("xn--..."), whatever
// form an address or a visitor used.
#pragma once

#include <string>
#include <string_view>

#include "base/result.hpp"

namespace danemta {

// True when `domain` holds a byte outside ASCII (a U-label somewhere).
bool has_non_ascii(std::string_view domain);

// `domain` in lower case with every label as an A-label, no trailing dot.
// An all-ASCII name is only lower-cased (normalize_domain); a name with
// U-labels is mapped (UTS #46: case folded, NFC) and converted. A name that
// is not valid UTF-8 or not a valid IDN is a permanent error whose message
// says why, e.g. "not a valid internationalized domain name: string contains
// a disallowed character".
Result<std::string> to_a_labels(std::string_view domain);

}  // namespace danemta
