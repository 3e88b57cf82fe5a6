// The https: rua URI of a TLSRPT policy (RFC 8460 section 5.4), split into
// what an HTTPS POST needs. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>

#include "base/result.hpp"

namespace danemta::tlsrpt {

struct HttpsUrl {
  std::string host;  // without brackets for an IPv6 literal
  std::string port;
  std::string target;       // path and query, at least "/"
  std::string host_header;  // RFC 9110 section 7.2
  bool ip_literal = false;
};

// "https://host[:port][/path][?query]" (RFC 3986 section 3; the host may be
// an IPv6 literal in brackets; the scheme is case-insensitive). A fragment
// is dropped; userinfo, controls, spaces and non-ASCII are refused
// (permanent errors). port is "1".."65535", "443" when absent.
Result<HttpsUrl> parse_https_url(std::string_view url);

}  // namespace danemta::tlsrpt
