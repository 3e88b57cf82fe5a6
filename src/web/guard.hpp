// What `danemta web` refuses, as pure functions: bad input, targets outside
// the public Internet, clients over their rate.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"

namespace danemta::web {

// A domain as typed into the form: trimmed, lower-cased, one final dot
// dropped. Letter-digit-hyphen labels of 1..63 octets, at most 253 octets,
// two labels at least; a label with "--" in its third and fourth position
// must be an IDNA A-label ("xn--"). A name typed in Unicode is converted to
// A-labels first (base/idna; IDNA2008), and checked and returned in that
// form. The error is one sentence for the page.
Result<std::string> validate_domain(std::string_view input);

// A port as typed ("" is `allowed.front()`): digits, and one of `allowed`.
Result<std::uint16_t> validate_port(std::string_view input,
                                    const std::vector<std::uint16_t>& allowed);

// Why `address` (IPv4 or IPv6 text) is not probed from a public service:
// loopback, private, link-local, shared, multicast, unspecified or reserved
// ranges; empty when it is a public unicast address.
std::string private_target(const std::string& address);

// The rate-limit key of a client: its IPv4 address, or its IPv6 /64.
std::string client_key(const std::string& address);

// The client a request is counted against. `peer` (the TCP peer) itself,
// unless it lies in one of `trusted_proxies` and the request carries
// X-Forwarded-For (`forwarded_for`: every such header's value, joined by
// ","): then the header is read from its end, each entry being the address
// the previous (trusted) hop saw, and the first one that is not a trusted
// proxy is the client. A malformed or missing entry stops the walk at the
// last trusted hop. Entries a client wrote itself (to the left of what its
// first trusted proxy added) are never reached.
std::string forwarded_client(const std::string& peer, std::string_view forwarded_for,
                             const std::vector<config::Network>& trusted_proxies);

// At most `limit` checks per client in any `window`.
class RateLimiter {
 public:
  using clock = std::chrono::steady_clock;
  RateLimiter(std::size_t limit, std::chrono::seconds window) : limit_(limit), window_(window) {}
  // Counts one check for `key` when it is under its limit; false otherwise.
  bool take(const std::string& key, clock::time_point now);
  // Whether take() would refuse now (nothing is counted).
  bool limited(const std::string& key, clock::time_point now);
  // Seconds until `key` may check again (0 when it may now).
  std::int64_t retry_after(const std::string& key, clock::time_point now);

 private:
  void prune(clock::time_point now);
  std::size_t limit_;
  std::chrono::seconds window_;
  std::map<std::string, std::deque<clock::time_point>> seen_;
};

// A URL query string's value for `name` (percent-decoded, '+' is a space);
// empty when absent.
std::string query_value(std::string_view target, std::string_view name);

}  // namespace danemta::web
