#include "config/config.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <toml++/toml.h>

#include "base/text.hpp"

namespace danemta::config {

// config/inbound.cpp
Result<void> parse_inbound(const toml::table& t, Config& cfg, std::string_view source);

namespace {

// What a TOML value is, for "must be ..., not a float".
std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date or time";
    case toml::node_type::none:
      return "nothing";
  }
  return "something else";
}

// Every leaf of `table` as "prefix.key" -> its value in TOML syntax; arrays
// are leaves (one value).
void flatten(const toml::table& table, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (auto&& [key, node] : table) {
    std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const toml::table* sub = node.as_table()) {
      flatten(*sub, name, out);
      continue;
    }
    std::ostringstream text;
    node.visit([&text](const auto& n) { text << n; });
    out[std::move(name)] = text.str();
  }
}

}  // namespace

std::vector<std::string> changes(const Config& before, const Config& after) {
  std::vector<std::string> out;
  auto a = before.settings.begin();
  auto b = after.settings.begin();
  auto line = [&out](const std::string& key, const std::string& from, const std::string& to) {
    out.push_back(key + ": " + from + " -> " + to);
  };
  while (a != before.settings.end() || b != after.settings.end()) {
    if (b == after.settings.end() || (a != before.settings.end() && a->first < b->first)) {
      line(a->first, a->second, "(unset)");
      ++a;
    } else if (a == before.settings.end() || b->first < a->first) {
      line(b->first, "(unset)", b->second);
      ++b;
    } else {
      if (a->second != b->second) line(a->first, a->second, b->second);
      ++a;
      ++b;
    }
  }
  return out;
}

std::string_view to_string(TlsPolicy p) {
  switch (p) {
    case TlsPolicy::dane_only:
      return "dane-only";
    case TlsPolicy::dane:
      return "dane";
    case TlsPolicy::encrypt:
      return "encrypt";
    case TlsPolicy::may:
      return "may";
  }
  return "dane";
}

std::optional<TlsPolicy> parse_tls_policy(std::string_view s) {
  if (s == "dane-only") return TlsPolicy::dane_only;
  if (s == "dane") return TlsPolicy::dane;
  if (s == "encrypt") return TlsPolicy::encrypt;
  if (s == "may") return TlsPolicy::may;
  return std::nullopt;
}

TlsPolicy Config::policy_for(std::string_view domain) const {
  auto it = policies.find(normalize_domain(domain));
  return it == policies.end() ? TlsPolicy::dane : it->second;
}

const Route* Config::route_for(std::string_view domain_in) const {
  if (routes.empty()) return nullptr;
  const std::string domain = normalize_domain(domain_in);
  auto found = routes.find(domain);
  // Parent domains, nearest first: ".b.example" then ".example" for a.b.example.
  for (std::size_t dot = domain.find('.'); found == routes.end() && dot != std::string::npos;
       dot = domain.find('.', dot + 1))
    found = routes.find(domain.substr(dot));
  if (found == routes.end()) found = routes.find("*");
  if (found == routes.end() || found->second.direct) return nullptr;
  return &found->second;
}

TlsPolicy Config::policy_for(const Route& route) const {
  if (route.tls) return *route.tls;
  return route.address_literal ? TlsPolicy::dane : policy_for(route.host);
}

std::size_t Config::concurrency_for(std::string_view domain) const {
  auto it = concurrency.find(normalize_domain(domain));
  return it == concurrency.end() ? relay.max_per_destination : it->second;
}

Result<Route> parse_nexthop(std::string_view s) {
  auto bad = [s](std::string what) {
    return fail("\"" + std::string(s) + "\": " + what, Severity::permanent);
  };
  Route r;
  r.nexthop = std::string(s);
  if (s == "direct") {
    r.direct = true;
    return r;
  }
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return bad("no closing ']'");
    host = s.substr(1, close - 1);
    r.mx_lookup = false;
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') return bad("expected \":PORT\" after ']'");
      port = s.substr(close + 2);
      if (port.empty()) return bad("empty port");
    }
  } else if (auto colon = s.find(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (port.empty()) return bad("empty port");
  }
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
      return bad("the port must be 1..65535");
    r.port = static_cast<std::uint16_t>(value);
  }
  unsigned char buf[16];
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1) {
    if (r.mx_lookup) return bad("an IP address must be in brackets: \"[" + h + "]\"");
    r.address_literal = true;
    r.host = h;
    return r;
  }
  r.host = normalize_domain(host);
  if (!valid_domain(r.host))
    return bad(
        "expected \"[HOST]:PORT\", \"HOST:PORT\", \"[IP]:PORT\" (port optional) or \"direct\"");
  return r;
}

std::string Config::tlsrpt_store() const {
  if (!tlsrpt.store.empty()) return tlsrpt.store;
  auto slash = relay.spool.rfind('/');
  return (slash == std::string::npos ? std::string() : relay.spool.substr(0, slash + 1)) +
         "tlsrpt.db";
}

std::string Config::sendmail_domain(std::string_view host_name) const {
  if (!sendmail.domain.empty()) return sendmail.domain;
  if (!relay.hostname.empty()) return normalize_domain(relay.hostname);
  return normalize_domain(host_name);
}

std::string_view to_string(Requirement r) {
  switch (r) {
    case Requirement::none:
      return "none";
    case Requirement::may:
      return "may";
    case Requirement::required:
      return "required";
  }
  return "none";
}

std::vector<Listener> RelayConfig::all_listeners() const {
  std::vector<Listener> all;
  for (const std::string& l : listen)
    all.push_back(Listener{l, Requirement::none, Requirement::none});
  all.insert(all.end(), listeners.begin(), listeners.end());
  return all;
}

std::string Config::sendmail_submit() const {
  if (!sendmail.submit.empty()) return sendmail.submit;
  std::string l = "127.0.0.1:10025";
  for (const Listener& candidate : relay.all_listeners()) {
    if (candidate.auth == Requirement::none && candidate.tls != Requirement::required) {
      l = candidate.address;
      break;
    }
  }
  if (l.rfind("0.0.0.0:", 0) == 0) return "127.0.0.1:" + l.substr(8);
  if (l.rfind("[::]:", 0) == 0) return "[::1]:" + l.substr(5);
  return l;
}

bool valid_domain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else {
      const bool ldh =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ldh || (label == 0 && c == '-') || ++label > 63) return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

bool valid_forwarder(std::string_view s) {
  std::string_view host = s;
  auto at = s.rfind('@');
  if (at != std::string_view::npos) {
    host = s.substr(0, at);
    std::string_view port = s.substr(at + 1);
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535)
      return false;
  }
  std::string h(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

Result<Network> read_network(std::string_view s) {
  const std::string quoted = "\"" + std::string(s) + "\"";
  std::string addr(s);
  std::optional<int> prefix;
  auto slash = s.find('/');
  if (slash != std::string_view::npos) {
    addr = std::string(s.substr(0, slash));
    std::string_view p = s.substr(slash + 1);
    int value = 0;
    // Digits only: from_chars would take "-1".
    const bool digits = !p.empty() && p.size() <= 3 && std::all_of(p.begin(), p.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (!digits || ec != std::errc() || end != p.data() + p.size())
      return fail(quoted + ": the prefix length is not a number", Severity::permanent);
    prefix = value;
  }
  unsigned char buf[16];
  int max = -1;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) max = 32;
  if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) max = 128;
  if (max < 0)
    return fail(quoted + " is not an IPv4 or IPv6 address or ADDRESS/PREFIX", Severity::permanent);
  if (prefix && *prefix > max)
    return fail(quoted + ": the prefix length must be 0.." + std::to_string(max),
                Severity::permanent);
  return Network{addr, prefix.value_or(max)};
}

std::optional<Network> parse_network(std::string_view s) {
  auto n = read_network(s);
  if (!n) return std::nullopt;
  return *n;
}

bool contains(const Network& net, std::string_view address) {
  unsigned char a[16] = {}, n[16] = {};
  std::string text(address);
  // An IPv4-mapped IPv6 peer ("::ffff:127.0.0.1") is its IPv4 address.
  if (text.rfind("::ffff:", 0) == 0 && text.find('.') != std::string::npos) text = text.substr(7);
  int family = text.find(':') == std::string::npos ? AF_INET : AF_INET6;
  int net_family = net.address.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (family != net_family) return false;
  if (inet_pton(family, text.c_str(), a) != 1 || inet_pton(family, net.address.c_str(), n) != 1)
    return false;
  int bits = net.prefix;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    unsigned mask = bits >= 8 ? 0xffu : (0xffu << (8 - bits)) & 0xffu;
    if ((a[i] & mask) != (n[i] & mask)) return false;
  }
  return true;
}

bool valid_user_name(std::string_view s) {
  if (s.empty() || s.size() > 32 || s.front() == '-') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || (c == '$' && i + 1 == s.size());
    if (!ok) return false;
  }
  // All digits would read as a numeric id to chown(1) and friends.
  return !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool valid_listen(std::string_view s) {
  std::string host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return false;
    host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(s.substr(0, colon));
    if (host.find(':') != std::string::npos) return false;  // IPv6 needs [brackets]
    port = s.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
    return false;
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Result<Config> parse(std::string_view toml_text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source_name << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    return fail(msg.str(), Severity::permanent);
  }

  Config cfg;
  flatten(root, "", cfg.settings);
  auto bad = [&](std::string_view key, std::string_view what) {
    return fail(std::string(source_name) + ": " + std::string(key) + ": " + std::string(what),
                Severity::permanent);
  };
  // An integer key: a TOML integer in min..max. toml++'s value<int64_t>()
  // would also take 1.0 and true.
  auto integer = [&](std::string_view key, const toml::node& node, std::int64_t min,
                     std::int64_t max, std::string_view unit = {}) -> Result<std::int64_t> {
    const std::string range = std::to_string(min) + ".." + std::to_string(max) +
                              (unit.empty() ? "" : " " + std::string(unit));
    if (!node.is_integer())
      return bad(key, "must be an integer " + range + ", not " + type_name(node));
    const std::int64_t v = *node.value_exact<std::int64_t>();
    if (v < min || v > max) return bad(key, "must be " + range + ", not " + std::to_string(v));
    return v;
  };
  auto boolean = [&](std::string_view key, const toml::node& node) -> Result<bool> {
    if (!node.is_boolean()) return bad(key, "must be true or false, not " + type_name(node));
    return *node.value_exact<bool>();
  };

  for (auto&& [key, node] : root) {
    std::string_view k = key.str();
    if (k != "dns" && k != "policy" && k != "delivery" && k != "relay" && k != "tlsrpt" &&
        k != "sendmail" && k != "transport" && k != "concurrency" && k != "metrics" && k != "web" &&
        k != "inbound")
      return bad(k,
                 "unknown section (expected dns, delivery, relay, tlsrpt, sendmail, metrics, "
                 "web, policy, transport, concurrency, inbound)");
  }

  if (auto* dns = root["dns"].as_table()) {
    for (auto&& [key, node] : *dns) {
      std::string_view k = key.str();
      if (k == "forwarders") {
        auto* arr = node.as_array();
        if (!arr) return bad("dns.forwarders", "must be an array of \"IP[@PORT]\" strings");
        for (auto&& item : *arr) {
          auto v = item.value<std::string>();
          if (!v || !valid_forwarder(*v))
            return bad("dns.forwarders", "each entry must be \"IP\" or \"IP@PORT\"");
          cfg.dns.forwarders.push_back(*v);
        }
      } else if (k == "trust_anchor_file") {
        auto v = node.value<std::string>();
        if (!v || v->empty()) return bad("dns.trust_anchor_file", "must be a file path");
        cfg.dns.trust_anchor_file = *v;
      } else if (k == "timeout_seconds") {
        auto v = integer("dns.timeout_seconds", node, 1, 600, "seconds");
        if (!v) return tl::unexpected(v.error());
        cfg.dns.timeout = std::chrono::seconds(*v);
      } else if (k == "cache_mib") {
        auto v = integer("dns.cache_mib", node, 4, 65536, "MiB");
        if (!v) return tl::unexpected(v.error());
        cfg.dns.cache_mib = static_cast<std::size_t>(*v);
      } else if (k == "answer_cache_entries") {
        auto v = integer("dns.answer_cache_entries", node, 0, 10000000, "answers");
        if (!v) return tl::unexpected(v.error());
        cfg.dns.answer_cache_entries = static_cast<std::size_t>(*v);
      } else if (k == "answer_cache_max_ttl_seconds") {
        auto v = integer("dns.answer_cache_max_ttl_seconds", node, 1, 86400, "seconds");
        if (!v) return tl::unexpected(v.error());
        cfg.dns.answer_cache_max_ttl = std::chrono::seconds(*v);
      } else {
        return bad(std::string("dns.") + std::string(k), "unknown key");
      }
    }
  } else if (root.contains("dns")) {
    return bad("dns", "must be a table");
  }

  if (auto* delivery = root["delivery"].as_table()) {
    for (auto&& [key, node] : *delivery) {
      std::string_view k = key.str();
      if (k == "port") {
        auto v = integer("delivery.port", node, 1, 65535);
        if (!v) return tl::unexpected(v.error());
        cfg.smtp_port = static_cast<std::uint16_t>(*v);
      } else if (k == "helo_name") {
        auto v = node.value<std::string>();
        if (!v || v->empty() || v->find_first_of(" \t\r\n") != std::string::npos)
          return bad("delivery.helo_name", "must be a host name");
        cfg.helo_name = *v;
      } else if (k == "connection_cache_seconds" || k == "connection_reuse_seconds") {
        const bool idle = k == "connection_cache_seconds";
        auto v = integer(std::string("delivery.") + std::string(k), node, idle ? 0 : 1,
                         idle ? 300 : 3600, "seconds");
        if (!v) return tl::unexpected(v.error());
        (idle ? cfg.connection_cache_idle : cfg.connection_cache_max_age) =
            std::chrono::seconds(*v);
      } else if (k == "inet_protocols") {
        auto v = node.value<std::string>();
        if (!v || (*v != "all" && *v != "ipv4" && *v != "ipv6"))
          return bad("delivery.inet_protocols", "must be \"all\", \"ipv4\" or \"ipv6\"");
        cfg.deliver_ipv4 = *v != "ipv6";
        cfg.deliver_ipv6 = *v != "ipv4";
      } else if (k == "source_address" || k == "source_address6") {
        const bool six = k == "source_address6";
        auto v = node.value<std::string>();
        unsigned char buf[16];
        if (!v || inet_pton(six ? AF_INET6 : AF_INET, v->c_str(), buf) != 1)
          return bad(std::string("delivery.") + std::string(k),
                     six ? "must be an IPv6 address" : "must be an IPv4 address");
        (six ? cfg.source_address6 : cfg.source_address) = *v;
      } else if (k == "timeouts") {
        auto* t = node.as_table();
        if (!t) return bad("delivery.timeouts", "must be a table of seconds");
        const std::pair<const char*, std::chrono::seconds*> fields[] = {
            {"connect", &cfg.timeouts.connect},
            {"greeting", &cfg.timeouts.greeting},
            {"ehlo", &cfg.timeouts.ehlo},
            {"starttls", &cfg.timeouts.starttls},
            {"mail", &cfg.timeouts.mail},
            {"rcpt", &cfg.timeouts.rcpt},
            {"data_init", &cfg.timeouts.data_init},
            {"data_block", &cfg.timeouts.data_block},
            {"dot", &cfg.timeouts.dot}};
        for (auto&& [tkey, tnode] : *t) {
          const std::string_view tk = tkey.str();
          std::string name = "delivery.timeouts." + std::string(tk);
          auto field = std::find_if(std::begin(fields), std::end(fields),
                                    [tk](const auto& f) { return tk == f.first; });
          if (field == std::end(fields)) return bad(name, "unknown key");
          auto v = integer(name, tnode, 1, 3600, "seconds");
          if (!v) return tl::unexpected(v.error());
          *field->second = std::chrono::seconds(*v);
        }
      } else {
        return bad(std::string("delivery.") + std::string(k), "unknown key");
      }
    }
  } else if (root.contains("delivery")) {
    return bad("delivery", "must be a table");
  }

  if (auto* relay = root["relay"].as_table()) {
    RelayConfig& rc = cfg.relay;
    auto seconds = [&](std::string_view key, const toml::node& node, std::int64_t min,
                       std::int64_t max, std::chrono::seconds& out) -> Result<void> {
      auto v = integer("relay." + std::string(key), node, min, max, "seconds");
      if (!v) return tl::unexpected(v.error());
      out = std::chrono::seconds(*v);
      return {};
    };
    // Counts and limits: the key, its field and its range.
    const struct {
      const char* key;
      std::size_t* field;
      std::int64_t min;
      std::int64_t max;
    } counts[] = {
        {"max_deliveries", &rc.max_deliveries, 1, 100000},
        {"max_per_destination", &rc.max_per_destination, 1, 100000},
        {"max_message_bytes", &rc.max_message_bytes, 1024, 1LL << 31},
        {"max_connections", &rc.max_connections, 1, 100000},
        {"max_connections_per_client", &rc.max_connections_per_client, 1, 100000},
        {"max_junk_commands", &rc.max_junk_commands, 1, 100000},
        {"max_received_headers", &rc.max_received_headers, 1, 1000},
        {"max_recipients", &rc.max_recipients, 1, 100000},
    };
    auto requirement = [&](const std::string& key, const toml::node& node) -> Result<Requirement> {
      auto v = node.value<std::string>();
      if (v && *v == "none") return Requirement::none;
      if (v && *v == "may") return Requirement::may;
      if (v && *v == "required") return Requirement::required;
      return bad(key, "must be \"none\", \"may\" or \"required\"");
    };
    bool listen_given = false;
    for (auto&& [key, node] : *relay) {
      std::string_view k = key.str();
      std::string name = "relay." + std::string(k);
      if (k == "listener") {
        const auto* arr = node.as_array();
        if (!arr || !arr->is_array_of_tables())
          return bad(name, "must be [[relay.listener]] tables");
        std::size_t index = 0;
        for (auto&& item : *arr) {
          const std::string where = name + "[" + std::to_string(index++) + "]";
          Listener l;
          bool has_address = false;
          for (auto&& [lkey, lnode] : *item.as_table()) {
            const std::string_view lk = lkey.str();
            const std::string lname = where + "." + std::string(lk);
            if (lk == "address") {
              auto v = lnode.value<std::string>();
              if (!v || !valid_listen(*v))
                return bad(lname, "must be \"IP:PORT\" or \"[IPv6]:PORT\"");
              l.address = *v;
              has_address = true;
            } else if (lk == "tls" || lk == "auth") {
              auto r = requirement(lname, lnode);
              if (!r) return tl::unexpected(r.error());
              (lk == "tls" ? l.tls : l.auth) = *r;
            } else {
              return bad(lname, "unknown key (expected address, tls, auth)");
            }
          }
          if (!has_address) return bad(where, "needs an address (\"IP:PORT\")");
          if (l.auth != Requirement::none && l.tls == Requirement::none)
            return bad(where + ".auth",
                       "AUTH is offered only over TLS: set tls = \"may\" or \"required\"");
          rc.listeners.push_back(std::move(l));
        }
      } else if (k == "tls_cert_file" || k == "tls_key_file" || k == "credentials_file") {
        auto v = node.value<std::string>();
        if (!v || v->empty()) return bad(name, "must be a file path");
        (k == "tls_cert_file"  ? rc.tls_cert_file
         : k == "tls_key_file" ? rc.tls_key_file
                               : rc.credentials_file) = *v;
      } else if (k == "received_auth_user") {
        auto v = boolean(name, node);
        if (!v) return tl::unexpected(v.error());
        rc.received_auth_user = *v;
      } else if (k == "listen" || k == "allow") {
        auto* arr = node.as_array();
        if (!arr) return bad(name, "must be an array of strings");
        std::vector<std::string> items;
        for (auto&& item : *arr) {
          auto v = item.value<std::string>();
          if (!v) return bad(name, "must be an array of strings");
          items.push_back(*v);
        }
        if (k == "listen") {
          for (const std::string& l : items)
            if (!valid_listen(l))
              return bad(name, "each entry must be \"IP:PORT\" or \"[IPv6]:PORT\"");
          rc.listen = items;
          listen_given = true;
        } else {
          rc.allow.clear();
          for (const std::string& a : items) {
            auto n = read_network(a);
            if (!n) return bad(name, n.error().message);
            rc.allow.push_back(*n);
          }
        }
      } else if (k == "spool") {
        auto v = node.value<std::string>();
        if (!v || v->empty()) return bad(name, "must be a file path");
        rc.spool = *v;
      } else if (k == "hostname") {
        auto v = node.value<std::string>();
        if (!v || v->empty() || v->find_first_of(" \t\r\n") != std::string::npos)
          return bad(name, "must be a host name");
        rc.hostname = *v;
      } else if (k == "queue_lifetime_seconds") {
        if (auto r = seconds(k, node, 1, 30L * 86400, rc.queue_lifetime); !r)
          return tl::unexpected(r.error());
      } else if (k == "finished_retention_seconds") {
        if (auto r = seconds(k, node, 0, 365L * 86400, rc.finished_retention); !r)
          return tl::unexpected(r.error());
      } else if (k == "min_backoff_seconds") {
        if (auto r = seconds(k, node, 1, 86400, rc.min_backoff); !r)
          return tl::unexpected(r.error());
      } else if (k == "max_backoff_seconds") {
        if (auto r = seconds(k, node, 1, 86400, rc.max_backoff); !r)
          return tl::unexpected(r.error());
      } else if (k == "storage_retry_seconds") {
        if (auto r = seconds(k, node, 1, 3600, rc.storage_retry); !r)
          return tl::unexpected(r.error());
      } else if (k == "delay_warning_seconds") {
        if (auto r = seconds(k, node, 0, 365 * 86400, rc.delay_warning); !r)
          return tl::unexpected(r.error());
      } else if (k == "shutdown_grace_seconds") {
        if (auto r = seconds(k, node, 0, 3600, rc.shutdown_grace); !r)
          return tl::unexpected(r.error());
      } else if (auto count = std::find_if(std::begin(counts), std::end(counts),
                                           [k](const auto& c) { return k == c.key; });
                 count != std::end(counts)) {
        auto v = integer(name, node, count->min, count->max);
        if (!v) return tl::unexpected(v.error());
        *count->field = static_cast<std::size_t>(*v);
      } else if (k == "open_relay") {
        auto v = boolean(name, node);
        if (!v) return tl::unexpected(v.error());
        rc.open_relay = *v;
      } else if (k == "user") {
        auto v = node.value<std::string>();
        if (!v || !valid_user_name(*v))
          return bad(name, "must be a user name (letters, digits, '.', '_', '-'; not a number)");
        rc.user = *v;
      } else if (k == "log_format") {
        auto v = node.value<std::string>();
        if (!v || (*v != "text" && *v != "json")) return bad(name, "must be \"text\" or \"json\"");
        rc.log_json = *v == "json";
      } else if (k == "log") {
        auto v = node.value<std::string>();
        if (!v || (*v != "stdout" && *v != "syslog"))
          return bad(name, "must be \"stdout\" or \"syslog\"");
        rc.log = *v == "syslog" ? RelayConfig::LogTo::syslog : RelayConfig::LogTo::standard_output;
      } else if (k == "log_prefix") {
        auto v = node.value<std::string>();
        if (!v || (*v != "auto" && *v != "syslog" && *v != "none"))
          return bad(name, "must be \"auto\", \"syslog\" or \"none\"");
        rc.log_prefix = *v == "syslog" ? RelayConfig::LogPrefix::syslog
                        : *v == "none" ? RelayConfig::LogPrefix::none
                                       : RelayConfig::LogPrefix::automatic;
      } else {
        return bad(name, "unknown key");
      }
    }
    if (rc.min_backoff > rc.max_backoff)
      return bad("relay.min_backoff_seconds", "must not exceed max_backoff_seconds");
    // The default `listen` is for a configuration that names no listener.
    if (!listen_given && !rc.listeners.empty()) rc.listen.clear();
    const std::vector<Listener> all = rc.all_listeners();
    for (std::size_t i = 0; i < all.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j)
        if (all[j].address == all[i].address)
          return bad("relay.listener", all[i].address +
                                           " is given twice (listen and listener "
                                           "addresses must differ)");
      if (all[i].tls != Requirement::none && rc.tls_cert_file.empty())
        return bad("relay.tls_cert_file", "needed: the listener on " + all[i].address +
                                              " offers STARTTLS (tls = \"" +
                                              std::string(to_string(all[i].tls)) + "\")");
      if (all[i].auth != Requirement::none && rc.credentials_file.empty())
        return bad("relay.credentials_file", "needed: the listener on " + all[i].address +
                                                 " offers AUTH (auth = \"" +
                                                 std::string(to_string(all[i].auth)) + "\")");
    }
    // Keys come in sorted order, so open_relay is known only now.
    for (const Network& n : rc.allow) {
      if (n.prefix == 0 && !rc.open_relay)
        return bad("relay.allow", "\"" + n.address +
                                      "/0\" admits every client: this would make the relay an "
                                      "open relay; set [relay] open_relay = true if that is meant");
    }
  } else if (root.contains("relay")) {
    return bad("relay", "must be a table");
  }

  if (auto* t = root["tlsrpt"].as_table()) {
    TlsRptConfig& tc = cfg.tlsrpt;
    const std::pair<const char*, std::string*> strings[] = {
        {"store", &tc.store},
        {"organization_name", &tc.organization_name},
        {"submitter", &tc.submitter},
        {"contact_info", &tc.contact_info},
        {"mail_from", &tc.mail_from},
        {"dkim_domain", &tc.dkim_domain},
        {"dkim_selector", &tc.dkim_selector},
        {"dkim_key_file", &tc.dkim_key_file},
        {"https_ca_file", &tc.https_ca_file}};
    for (auto&& [key, node] : *t) {
      const std::string_view k = key.str();
      const std::string name = "tlsrpt." + std::string(k);
      if (k == "enabled") {
        auto v = boolean(name, node);
        if (!v) return tl::unexpected(v.error());
        tc.enabled = *v;
        continue;
      }
      if (k == "send_interval_seconds" || k == "send_delay_max_seconds") {
        const bool interval = k == "send_interval_seconds";
        auto v = integer(name, node, 0, interval ? 86400 : 3600, "seconds");
        if (!v) return tl::unexpected(v.error());
        (interval ? tc.send_interval : tc.send_delay_max) = std::chrono::seconds(*v);
        continue;
      }
      if (k == "retention_days") {
        auto v = integer(name, node, 2, 3650, "days");
        if (!v) return tl::unexpected(v.error());
        tc.retention = std::chrono::seconds(*v * 86400);
        continue;
      }
      auto field = std::find_if(std::begin(strings), std::end(strings),
                                [k](const auto& f) { return k == f.first; });
      if (field == std::end(strings)) return bad(name, "unknown key");
      auto v = node.value<std::string>();
      if (!v || v->empty()) return bad(name, "must be a non-empty string");
      *field->second = *v;
    }
    const bool any_dkim =
        !tc.dkim_domain.empty() || !tc.dkim_selector.empty() || !tc.dkim_key_file.empty();
    const bool all_dkim =
        !tc.dkim_domain.empty() && !tc.dkim_selector.empty() && !tc.dkim_key_file.empty();
    if (any_dkim && !all_dkim)
      return bad("tlsrpt.dkim_domain", "dkim_domain, dkim_selector and dkim_key_file go together");
  } else if (root.contains("tlsrpt")) {
    return bad("tlsrpt", "must be a table");
  }

  if (auto* t = root["sendmail"].as_table()) {
    for (auto&& [key, node] : *t) {
      const std::string_view k = key.str();
      const std::string name = "sendmail." + std::string(k);
      auto v = node.value<std::string>();
      if (k == "domain") {
        if (!v || !valid_domain(normalize_domain(*v)))
          return bad(name, "must be a domain name (letters, digits, hyphens and dots)");
        cfg.sendmail.domain = normalize_domain(*v);
      } else if (k == "submit") {
        if (!v || !valid_listen(*v)) return bad(name, "must be \"IP:PORT\" or \"[IPv6]:PORT\"");
        cfg.sendmail.submit = *v;
      } else {
        return bad(name, "unknown key");
      }
    }
  } else if (root.contains("sendmail")) {
    return bad("sendmail", "must be a table");
  }

  if (auto* t = root["metrics"].as_table()) {
    for (auto&& [key, node] : *t) {
      const std::string_view k = key.str();
      const std::string name = "metrics." + std::string(k);
      if (k == "listen") {
        auto v = node.value<std::string>();
        if (!v || (!v->empty() && !valid_listen(*v)))
          return bad(name, "must be \"IP:PORT\" or \"[IPv6]:PORT\" (\"\": no endpoint)");
        cfg.metrics.listen = *v;
      } else if (k == "top_destinations") {
        auto v = integer(name, node, 0, 1000);
        if (!v) return tl::unexpected(v.error());
        cfg.metrics.top_destinations = static_cast<std::size_t>(*v);
      } else {
        return bad(name, "unknown key");
      }
    }
  } else if (root.contains("metrics")) {
    return bad("metrics", "must be a table");
  }

  if (auto* t = root["web"].as_table()) {
    for (auto&& [key, node] : *t) {
      const std::string_view k = key.str();
      const std::string name = "web." + std::string(k);
      // Structured bindings cannot be captured (clang 14): the node is passed.
      auto seconds = [&](const toml::node& n, std::chrono::seconds& out,
                         std::int64_t max) -> Result<void> {
        auto v = integer(name, n, 1, max, "seconds");
        if (!v) return tl::unexpected(v.error());
        out = std::chrono::seconds(*v);
        return {};
      };
      auto count = [&](const toml::node& n, std::size_t& out, std::int64_t max) -> Result<void> {
        auto v = integer(name, n, 1, max);
        if (!v) return tl::unexpected(v.error());
        out = static_cast<std::size_t>(*v);
        return {};
      };
      Result<void> ok;
      if (k == "listen") {
        auto v = node.value<std::string>();
        if (!v || !valid_listen(*v)) return bad(name, "must be \"IP:PORT\" or \"[IPv6]:PORT\"");
        cfg.web.listen = *v;
      } else if (k == "tls_cert_file" || k == "tls_key_file") {
        auto v = node.value<std::string>();
        if (!v) return bad(name, "must be a file name");
        (k == "tls_cert_file" ? cfg.web.tls_cert_file : cfg.web.tls_key_file) = *v;
      } else if (k == "allowed_ports") {
        auto* arr = node.as_array();
        if (!arr || arr->empty()) return bad(name, "must be a non-empty array of ports");
        cfg.web.allowed_ports.clear();
        for (auto&& item : *arr) {
          auto v = integer(name, item, 1, 65535);
          if (!v) return tl::unexpected(v.error());
          cfg.web.allowed_ports.push_back(static_cast<std::uint16_t>(*v));
        }
      } else if (k == "allow_private_targets") {
        auto v = boolean(name, node);
        if (!v) return tl::unexpected(v.error());
        cfg.web.allow_private_targets = *v;
      } else if (k == "max_concurrent") {
        ok = count(node, cfg.web.max_concurrent, 1000);
      } else if (k == "client_checks") {
        ok = count(node, cfg.web.client_checks, 100000);
      } else if (k == "client_window_seconds") {
        ok = seconds(node, cfg.web.client_window, 86400);
      } else if (k == "check_timeout_seconds") {
        ok = seconds(node, cfg.web.check_timeout, 600);
      } else if (k == "probe_timeout_seconds") {
        ok = seconds(node, cfg.web.probe_timeout, 300);
      } else if (k == "trusted_proxies") {
        auto* arr = node.as_array();
        if (!arr) return bad(name, "must be an array of addresses or networks");
        cfg.web.trusted_proxies.clear();
        for (auto&& item : *arr) {
          auto v = item.value<std::string>();
          if (!v) return bad(name, "must be an array of addresses or networks");
          auto net = read_network(*v);
          if (!net) return bad(name, net.error().message);
          cfg.web.trusted_proxies.push_back(*net);
        }
      } else {
        return bad(name, "unknown key");
      }
      if (!ok) return tl::unexpected(ok.error());
    }
    if (cfg.web.tls_cert_file.empty() != cfg.web.tls_key_file.empty())
      return bad("web.tls_cert_file", "tls_cert_file and tls_key_file go together");
  } else if (root.contains("web")) {
    return bad("web", "must be a table");
  }

  if (auto* policy = root["policy"].as_table()) {
    for (auto&& [key, node] : *policy) {
      std::string domain = normalize_domain(key.str());
      auto v = node.value<std::string>();
      auto p = v ? parse_tls_policy(*v) : std::nullopt;
      if (domain.empty() || !p)
        return bad(std::string("policy.\"") + std::string(key.str()) + "\"",
                   "must be one of dane-only, dane, encrypt, may");
      cfg.policies[domain] = *p;
    }
  } else if (root.contains("policy")) {
    return bad("policy", "must be a table");
  }

  if (auto* t = root["transport"].as_table()) {
    for (auto&& [key, node] : *t) {
      const std::string raw(key.str());
      const std::string name = "transport.\"" + raw + "\"";
      std::string domain = raw == "*" ? raw : normalize_domain(raw);
      const std::string bare = !domain.empty() && domain.front() == '.' ? domain.substr(1) : domain;
      if (domain != "*" && !valid_domain(bare))
        return bad(name, "the key must be a domain, \".domain\" (its subdomains) or \"*\"");
      const toml::table* entry = node.as_table();
      std::optional<std::string> nexthop =
          entry ? (*entry)["nexthop"].value<std::string>() : node.value<std::string>();
      if (!nexthop)
        return bad(name,
                   "must be a next hop (\"[host]:port\", \"host\", \"direct\") or a table "
                   "{ nexthop = ..., tls = ..., concurrency = ... }");
      auto route = parse_nexthop(*nexthop);
      if (!route) return bad(name, route.error().message);
      if (entry) {
        for (auto&& [rkey, rnode] : *entry) {
          const std::string_view rk = rkey.str();
          const std::string rname = name + "." + std::string(rk);
          if (rk == "nexthop") continue;
          if (rk == "tls") {
            auto v = rnode.value<std::string>();
            auto p = v ? parse_tls_policy(*v) : std::nullopt;
            if (!p) return bad(rname, "must be one of dane-only, dane, encrypt, may");
            route->tls = *p;
          } else if (rk == "concurrency") {
            auto v = integer(rname, rnode, 1, 100000);
            if (!v) return tl::unexpected(v.error());
            route->concurrency = static_cast<std::size_t>(*v);
          } else {
            return bad(rname, "unknown key (expected nexthop, tls, concurrency)");
          }
        }
        if (route->direct && (route->tls || route->concurrency))
          return bad(name,
                     "\"direct\" takes no tls or concurrency: use [policy] and [concurrency]");
      }
      if (route->address_literal && route->tls == TlsPolicy::dane_only)
        return bad(name,
                   "an IP address has no TLSA records, so dane-only can never be met: name the "
                   "host, or use tls = \"encrypt\"");
      cfg.routes[domain] = std::move(*route);
    }
  } else if (root.contains("transport")) {
    return bad("transport", "must be a table");
  }

  if (auto* t = root["concurrency"].as_table()) {
    for (auto&& [key, node] : *t) {
      const std::string name = "concurrency.\"" + std::string(key.str()) + "\"";
      const std::string domain = normalize_domain(key.str());
      if (!valid_domain(domain)) return bad(name, "the key must be a domain name");
      auto v = integer(name, node, 1, 100000);
      if (!v) return tl::unexpected(v.error());
      cfg.concurrency[domain] = static_cast<std::size_t>(*v);
    }
  } else if (root.contains("concurrency")) {
    return bad("concurrency", "must be a table");
  }

  if (auto* t = root["inbound"].as_table()) {
    if (auto ok = parse_inbound(*t, cfg, source_name); !ok) return tl::unexpected(ok.error());
  } else if (root.contains("inbound")) {
    return bad("inbound", "must be a table");
  }
  return cfg;
}

Result<Config> load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fail("cannot read configuration file " + path + ": " + std::strerror(errno),
                Severity::permanent);
  if (S_ISDIR(st.st_mode)) return fail("config " + path + ": is a directory", Severity::permanent);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail("cannot read configuration file " + path + ": " + std::strerror(errno),
                Severity::permanent);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

}  // namespace danemta::config
