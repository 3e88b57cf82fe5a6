// libFuzzer target: config::parse on arbitrary text, and the small value
// parsers it uses. Malformed input is an error value, never a crash or an
// exception; what parses holds the documented forms.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/text.hpp"
#include "config/config.hpp"

namespace {

using namespace danemta::config;

void check_network(const Network& n) {
  const int max = n.address.find(':') != std::string::npos ? 128 : 32;
  if (n.prefix < 0 || n.prefix > max) __builtin_trap();
  (void)contains(n, "192.0.2.1");
  (void)contains(n, "2001:db8::1");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (size < 256) {
    if (auto p = parse_tls_policy(text)) {
      if (parse_tls_policy(to_string(*p)) != p) __builtin_trap();
    }
    if (auto n = parse_network(text)) check_network(*n);
    (void)valid_listen(text);
    (void)valid_forwarder(text);
  }

  const auto cfg = parse(text, "fuzz");
  if (!cfg) {
    if (cfg.error().message.empty()) __builtin_trap();
    return 0;
  }
  for (const std::string& l : cfg->relay.listen) {
    if (!valid_listen(l)) __builtin_trap();
  }
  for (const std::string& f : cfg->dns.forwarders) {
    if (!valid_forwarder(f)) __builtin_trap();
  }
  for (const Network& n : cfg->relay.allow) check_network(n);
  for (const auto& [domain, policy] : cfg->policies) {
    // Keys are stored normalized; "a.." keeps one dot and is found as "a.".
    if (danemta::normalize_domain(domain) == domain && cfg->policy_for(domain) != policy) {
      __builtin_trap();
    }
  }
  (void)cfg->policy_for("example.org");
  (void)cfg->tlsrpt_store();
  return 0;
}
