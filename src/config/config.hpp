// Configuration, parsed once from TOML into immutable structs with defaults.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace danemta::config {

// [dns]: how danemta resolves and validates. Validation is always local;
// forwarders are only asked for data, their AD bit is never trusted.
struct DnsConfig {
  // "IP" or "IP@PORT" (IPv4 or IPv6). Empty: full recursion from the root.
  std::vector<std::string> forwarders;
  // File of DS or DNSKEY records (zone-file syntax). Empty: the IANA root
  // KSKs built into danemta.
  std::string trust_anchor_file;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// Per-destination TLS policy ([policy] table: "example.org" = "dane-only").
enum class TlsPolicy {
  dane_only,  // every MX host must be DANE-authenticated; no usable TLSA is a failure
  dane,       // default: DANE where published, opportunistic TLS elsewhere
  encrypt,    // TLS mandatory everywhere (DANE still enforced where published)
  may,        // opportunistic TLS only; TLSA records are not looked up
};

std::string_view to_string(TlsPolicy p);
std::optional<TlsPolicy> parse_tls_policy(std::string_view s);

// [delivery.timeouts]: RFC 5321 section 4.5.3.2 values by default; each
// covers a whole reply (or one write of message text), in seconds.
struct SmtpTimeouts {
  std::chrono::seconds connect{30};
  std::chrono::seconds greeting{300};
  std::chrono::seconds ehlo{300};
  std::chrono::seconds starttls{120};
  std::chrono::seconds mail{300};
  std::chrono::seconds rcpt{300};
  std::chrono::seconds data_init{120};
  std::chrono::seconds data_block{180};
  std::chrono::seconds dot{600};
};

struct Config {
  DnsConfig dns;
  std::uint16_t smtp_port = 25;  // destination port; the TLSA owner name follows it
  std::string helo_name;         // EHLO name; empty: this host's name
  SmtpTimeouts timeouts;
  std::map<std::string, TlsPolicy> policies;  // key: normalized domain

  TlsPolicy policy_for(std::string_view domain) const;
};

// Parses a TOML document. Errors name the key and say what is wrong.
Result<Config> parse(std::string_view toml_text, std::string_view source_name = "config");
Result<Config> load(const std::string& path);

// "192.0.2.1", "192.0.2.1@5353", "2001:db8::1@53": checks the syntax.
bool valid_forwarder(std::string_view s);

}  // namespace danemta::config
