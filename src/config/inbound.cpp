// [inbound]: parsed after [transport], whose routes it extends with one per
// local domain.
#include <toml++/toml.h>

#include "base/text.hpp"
#include "config/config.hpp"

namespace danemta::config {

std::string Config::inbound_state_dir() const {
  if (!inbound.state_dir.empty()) return inbound.state_dir;
  auto slash = relay.spool.rfind('/');
  return (slash == std::string::npos ? std::string() : relay.spool.substr(0, slash + 1)) +
         "inbound";
}

bool Config::is_local_domain(std::string_view domain) const {
  const std::string d = normalize_domain(domain);
  for (const std::string& l : inbound.local_domains)
    if (l == d) return true;
  return false;
}

Result<void> parse_inbound(const toml::table& t, Config& cfg, std::string_view source) {
  InboundConfig& in = cfg.inbound;
  auto bad = [&](std::string_view key, std::string_view what) {
    return fail(std::string(source) + ": inbound." + std::string(key) + ": " + std::string(what),
                Severity::permanent);
  };
  auto seconds = [&](std::string_view key, const toml::node& node, std::int64_t min,
                     std::int64_t max) -> Result<std::chrono::seconds> {
    if (!node.is_integer() || *node.value_exact<std::int64_t>() < min ||
        *node.value_exact<std::int64_t>() > max)
      return bad(key, "must be an integer " + std::to_string(min) + ".." + std::to_string(max));
    return std::chrono::seconds(*node.value_exact<std::int64_t>());
  };
  auto strings = [&](std::string_view key, const toml::node& node,
                     std::vector<std::string>& out) -> Result<void> {
    const toml::array* arr = node.as_array();
    if (!arr) return bad(key, "must be an array of strings");
    for (auto&& item : *arr) {
      auto v = item.value<std::string>();
      if (!v || v->empty()) return bad(key, "must be an array of non-empty strings");
      out.push_back(*v);
    }
    return {};
  };
  std::optional<std::string> deliver_tls;
  for (auto&& [key, node] : t) {
    const std::string_view k = key.str();
    if (k == "listen") {
      if (auto ok = strings(k, node, in.listen); !ok) return ok;
      for (const std::string& l : in.listen)
        if (!valid_listen(l)) return bad(k, "\"" + l + "\" is not \"IP:PORT\" or \"[IPv6]:PORT\"");
    } else if (k == "hostname") {
      auto v = node.value<std::string>();
      if (!v || !valid_domain(normalize_domain(*v))) return bad(k, "must be a host name");
      in.hostname = normalize_domain(*v);
    } else if (k == "local_domains" || k == "mx_names") {
      std::vector<std::string> names;
      if (auto ok = strings(k, node, names); !ok) return ok;
      for (std::string& n : names) {
        n = normalize_domain(n);
        if (!valid_domain(n)) return bad(k, "\"" + n + "\" is not a domain name");
      }
      (k == "mx_names" ? in.mx_names : in.local_domains) = std::move(names);
    } else if (k == "deliver_to") {
      auto v = node.value<std::string>();
      if (!v) return bad(k, "must be a next hop such as \"[mail.internal]:25\"");
      in.deliver_to = *v;
    } else if (k == "deliver_tls") {
      auto v = node.value<std::string>();
      if (!v || !parse_tls_policy(*v))
        return bad(k, "must be one of dane-only, dane, encrypt, may");
      deliver_tls = *v;
      in.deliver_tls = parse_tls_policy(*v);
    } else if (k == "certificate") {
      const toml::array* arr = node.as_array();
      if (!arr) return bad(k, "must be [[inbound.certificate]] tables");
      for (auto&& item : *arr) {
        const toml::table* c = item.as_table();
        if (!c) return bad(k, "must be [[inbound.certificate]] tables");
        InboundCertificate cert;
        for (auto&& [ck, cn] : *c) {
          auto v = cn.value<std::string>();
          if (!v || v->empty())
            return bad("certificate." + std::string(ck.str()), "must be a file path");
          if (ck.str() == "cert_file")
            cert.cert_file = *v;
          else if (ck.str() == "key_file")
            cert.key_file = *v;
          else
            return bad("certificate." + std::string(ck.str()),
                       "unknown key (expected cert_file, key_file)");
        }
        if (cert.cert_file.empty()) return bad("certificate", "each needs cert_file");
        for (const InboundCertificate& other : in.certificates)
          if (other.cert_file == cert.cert_file)
            return bad("certificate", cert.cert_file + " is given twice");
        in.certificates.push_back(std::move(cert));
      }
    } else if (k == "tlsa_port") {
      if (!node.is_integer() || *node.value_exact<std::int64_t>() < 1 ||
          *node.value_exact<std::int64_t>() > 65535)
        return bad(k, "must be an integer 1..65535");
      in.tlsa_port = static_cast<std::uint16_t>(*node.value_exact<std::int64_t>());
    } else if (k == "rollover_margin_seconds") {
      auto v = seconds(k, node, 0, 7 * 86400);
      if (!v) return tl::unexpected(v.error());
      in.rollover_margin = *v;
    } else if (k == "check_interval_seconds") {
      auto v = seconds(k, node, 1, 86400);
      if (!v) return tl::unexpected(v.error());
      in.check_interval = *v;
    } else if (k == "remind_interval_seconds") {
      auto v = seconds(k, node, 1, 7 * 86400);
      if (!v) return tl::unexpected(v.error());
      in.remind_interval = *v;
    } else if (k == "expiry_warning_days") {
      auto v = seconds(k, node, 0, 3650);
      if (!v) return tl::unexpected(v.error());
      in.expiry_warning = *v * 86400;
    } else if (k == "state_dir") {
      auto v = node.value<std::string>();
      if (!v || v->empty()) return bad(k, "must be a directory path");
      in.state_dir = *v;
    } else {
      return bad(k, "unknown key");
    }
  }
  if (in.listen.empty()) return {};
  if (in.local_domains.empty())
    return bad("local_domains", "needed: the domains this server accepts mail for");
  if (in.deliver_to.empty())
    return bad("deliver_to", "needed: where accepted mail goes (\"[mail.internal]:25\")");
  if (in.certificates.empty())
    return bad("certificate", "needed: at least one [[inbound.certificate]] (STARTTLS)");
  auto route = parse_nexthop(in.deliver_to);
  if (!route || route->direct)
    return bad("deliver_to",
               route ? "\"direct\" would loop back to this server" : route.error().message);
  route->tls = in.deliver_tls;
  if (route->address_literal && route->tls == TlsPolicy::dane_only)
    return bad("deliver_tls", "an IP address has no TLSA records: dane-only can never be met");
  for (const std::string& d : in.local_domains) {
    if (cfg.routes.count(d))
      return bad("local_domains", d + " also has a [transport] entry: its mail goes to deliver_to");
    cfg.routes[d] = *route;
  }
  for (const std::string& l : in.listen) {
    for (const Listener& r : cfg.relay.all_listeners())
      if (r.address == l) return bad("listen", l + " is also a [relay] listener");
  }
  return {};
}

}  // namespace danemta::config
