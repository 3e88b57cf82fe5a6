#include "web/guard.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <iterator>

#include <boost/asio/ip/address.hpp>

#include "base/idna.hpp"
#include "base/text.hpp"

namespace danemta::web {

namespace {

bool ldh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

Result<std::string> validate_domain(std::string_view input) {
  while (!input.empty() && (input.front() == ' ' || input.front() == '\t')) input.remove_prefix(1);
  while (!input.empty() && (input.back() == ' ' || input.back() == '\t')) input.remove_suffix(1);
  if (input.empty()) return fail("Enter a domain name.", Severity::permanent);
  if (input.size() > 300) return fail("That is too long for a domain name.", Severity::permanent);
  std::string d;
  if (has_non_ascii(input)) {
    // A name typed in Unicode is checked in its A-label form, as DNS has it.
    auto a_labels = to_a_labels(input);
    if (!a_labels) return fail("That is " + a_labels.error().message + ".", Severity::permanent);
    d = std::move(*a_labels);
    if (d.empty()) return fail("Enter a domain name.", Severity::permanent);
  } else {
    for (char c : input) d += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  if (d.back() == '.') d.pop_back();
  if (d.empty() || d.size() > 253)
    return fail("A domain name has 1 to 253 characters.", Severity::permanent);
  std::size_t start = 0;
  std::size_t labels = 0;
  while (start <= d.size()) {
    std::size_t end = d.find('.', start);
    if (end == std::string::npos) end = d.size();
    const std::string_view label = std::string_view(d).substr(start, end - start);
    if (label.empty() || label.size() > 63)
      return fail("Each label of a domain name has 1 to 63 characters.", Severity::permanent);
    for (char c : label)
      if (!ldh(c))
        return fail("A domain name has letters, digits, hyphens and dots only.",
                    Severity::permanent);
    if (label.front() == '-' || label.back() == '-')
      return fail("A label does not begin or end with a hyphen.", Severity::permanent);
    if (label.size() >= 4 && label.substr(2, 2) == "--" &&
        (label.substr(0, 2) != "xn" || label.size() == 4))
      return fail(
          "A label with \"--\" in its third and fourth place must be an IDNA A-label (xn--...).",
          Severity::permanent);
    ++labels;
    start = end + 1;
  }
  if (labels < 2)
    return fail("Enter a domain with at least two labels (example.org).", Severity::permanent);
  return d;
}

Result<std::uint16_t> validate_port(std::string_view input,
                                    const std::vector<std::uint16_t>& allowed) {
  if (input.empty()) return allowed.empty() ? std::uint16_t{25} : allowed.front();
  unsigned v = 0;
  auto [end, ec] = std::from_chars(input.data(), input.data() + input.size(), v);
  if (ec != std::errc() || end != input.data() + input.size() || v == 0 || v > 65535)
    return fail("A port is a number from 1 to 65535.", Severity::permanent);
  for (std::uint16_t p : allowed)
    if (p == v) return p;
  std::string list;
  for (std::uint16_t p : allowed) list += (list.empty() ? "" : ", ") + std::to_string(p);
  return fail("Port " + std::to_string(v) + " is not checked here (allowed: " + list + ").",
              Severity::permanent);
}

std::string private_target(const std::string& address) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(address, ec);
  if (ec) return "not an IP address";
  if (a.is_v6()) {
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped())
      return private_target(
          boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string());
    const auto b = v6.to_bytes();
    if (v6.is_loopback()) return "a loopback address";
    if (v6.is_unspecified()) return "the unspecified address";
    if (v6.is_link_local()) return "a link-local address";
    if (v6.is_multicast()) return "a multicast address";
    if ((b[0] & 0xfe) == 0xfc) return "a private (unique local) address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "a site-local address";
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
      return "a documentation address";
    if ((b[0] & 0xe0) != 0x20) return "not a global unicast address";
    return "";
  }
  const auto b = a.to_v4().to_bytes();
  if (b[0] == 127) return "a loopback address";
  if (b[0] == 0) return "an address of \"this network\"";
  if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168))
    return "a private address";
  if (b[0] == 169 && b[1] == 254) return "a link-local address";
  if (b[0] == 100 && (b[1] & 0xc0) == 64) return "a shared (carrier-grade NAT) address";
  if (b[0] == 192 && b[1] == 0 && b[2] == 0) return "an IETF protocol address";
  if ((b[0] == 192 && b[1] == 0 && b[2] == 2) || (b[0] == 198 && b[1] == 51 && b[2] == 100) ||
      (b[0] == 203 && b[1] == 0 && b[2] == 113))
    return "a documentation address";
  if (b[0] == 198 && (b[1] & 0xfe) == 18) return "a benchmarking address";
  if (b[0] >= 224) return "a multicast or reserved address";
  return "";
}

std::string client_key(const std::string& address) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(address, ec);
  if (ec || a.is_v4()) return address;
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  for (std::size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

std::string forwarded_client(const std::string& peer, std::string_view forwarded_for,
                             const std::vector<config::Network>& trusted_proxies) {
  const auto trusted = [&](const std::string& address) {
    for (const config::Network& n : trusted_proxies)
      if (config::contains(n, address)) return true;
    return false;
  };
  std::string client = peer;
  while (trusted(client)) {
    forwarded_for = trim(forwarded_for);
    if (forwarded_for.empty()) break;
    const std::size_t comma = forwarded_for.rfind(',');
    const std::string_view entry =
        trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for =
        comma == std::string_view::npos ? std::string_view() : forwarded_for.substr(0, comma);
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(std::string(entry), ec);
    if (ec) break;
    client = address.to_string();
  }
  return client;
}

void RateLimiter::prune(clock::time_point now) {
  for (auto it = seen_.begin(); it != seen_.end();) {
    auto& q = it->second;
    while (!q.empty() && q.front() + window_ <= now) q.pop_front();
    it = q.empty() ? seen_.erase(it) : std::next(it);
  }
}

bool RateLimiter::limited(const std::string& key, clock::time_point now) {
  prune(now);
  auto it = seen_.find(key);
  return it != seen_.end() && it->second.size() >= limit_;
}

bool RateLimiter::take(const std::string& key, clock::time_point now) {
  if (limited(key, now)) return false;
  seen_[key].push_back(now);
  return true;
}

std::int64_t RateLimiter::retry_after(const std::string& key, clock::time_point now) {
  if (!limited(key, now)) return 0;
  const auto wait = seen_[key].front() + window_ - now;
  return std::chrono::ceil<std::chrono::seconds>(wait).count();
}

std::string query_value(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    const std::string_view raw = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        out += ' ';
      } else if (raw[i] == '%' && i + 2 < raw.size()) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(raw.data() + i + 1, raw.data() + i + 3, v, 16);
        if (ec != std::errc() || end != raw.data() + i + 3) {
          out += '%';
          continue;
        }
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += raw[i];
      }
    }
    return out;
  }
  return "";
}

}  // namespace danemta::web
