// Configuration, parsed once from TOML into immutable structs with defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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
  // The validator's caches in MiB, all together (libunbound's own defaults
  // are 4-8 MiB, too small for a relay): a quarter for messages, half for
  // RRsets, a quarter for validated keys. About 6 KiB per destination domain
  // (MX, A, AAAA, TLSA and their signatures), so 64 MiB keeps ~10,000.
  std::size_t cache_mib = 64;
  // danemta's own cache of validated answers in front of the validator's
  // (dns/caching_resolver.hpp), whose hits and misses the relay reports:
  // at most this many answers (0: no such cache), each for its TTL and at
  // most answer_cache_max_ttl.
  std::size_t answer_cache_entries = 100000;
  std::chrono::seconds answer_cache_max_ttl{3600};
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

// A client network allowed to submit mail: address and prefix length.
struct Network {
  std::string address;  // "127.0.0.0", "::1"
  int prefix = 0;
  friend bool operator==(const Network&, const Network&) = default;
};

// "127.0.0.0/8", "::1/128", "192.0.2.7" (a host): nullopt when malformed,
// including a prefix beyond the family's length (32, 128).
std::optional<Network> parse_network(std::string_view s);
// The same, with what is wrong when malformed.
Result<Network> read_network(std::string_view s);
// Whether `address` (text form) lies inside `net`.
bool contains(const Network& net, std::string_view address);

// What a listener asks of its clients for STARTTLS (RFC 3207) or AUTH
// (RFC 4954).
enum class Requirement {
  none,      // not offered
  may,       // offered; the client chooses
  required,  // MAIL is refused (530 5.7.0) until the client has done it
};
std::string_view to_string(Requirement r);

// One SMTP listener of the relay ([[relay.listener]]; each [relay] listen
// entry is one with tls and auth "none").
//
// Who may send mail through it:
// - auth "none": clients in [relay] allow; others are refused when they
//   connect (554 5.7.1), as on a `listen` address.
// - auth "may": anyone may connect; MAIL needs AUTH unless the client is in
//   [relay] allow (Postfix: permit_mynetworks, permit_sasl_authenticated,
//   reject).
// - auth "required": MAIL needs AUTH from every client, [relay] allow
//   included (Postfix's submission service).
// AUTH is offered only over TLS, so auth other than "none" needs tls other
// than "none" (and [relay] credentials_file); tls other than "none" needs
// [relay] tls_cert_file.
struct Listener {
  std::string address;  // "IP:PORT" or "[IPv6]:PORT"
  Requirement tls = Requirement::none;
  Requirement auth = Requirement::none;
  friend bool operator==(const Listener&, const Listener&) = default;
};

// [relay]: the daemon.
struct RelayConfig {
  // Where local submitters connect: "IP:PORT" or "[IPv6]:PORT", without
  // STARTTLS or AUTH. The default applies when neither `listen` nor a
  // [[relay.listener]] table is given.
  std::vector<std::string> listen = {"127.0.0.1:10025"};
  // [[relay.listener]]: listeners with their own requirements.
  std::vector<Listener> listeners;
  // Client networks allowed to submit without AUTH; on a listener without
  // AUTH anyone else gets 554 5.7.1. Loopback only by default: never an
  // open relay.
  std::vector<Network> allow = {{"127.0.0.0", 8}, {"::1", 128}};
  // The STARTTLS certificate chain (PEM, leaf first) and its private key
  // (PEM; empty: in tls_cert_file too). Read at start and on SIGHUP.
  std::string tls_cert_file;
  std::string tls_key_file;
  // The users AUTH accepts: "user:crypt(3) hash" lines (auth/credentials.hpp).
  // Read at start and on SIGHUP.
  std::string credentials_file;
  // Name the authenticated user in the Received: field ("Authenticated
  // sender: alice"), as Postfix's smtpd_sasl_authenticated_header does. Off
  // by default: recipients would learn login names.
  bool received_auth_user = false;
  // A network with prefix 0 in `allow` (every client) is refused unless this
  // is set: it would make the relay an open relay.
  bool open_relay = false;
  std::string spool = "/var/spool/danemta/queue.db";
  std::string hostname;  // greeting and bounces; empty: this host's name
  std::chrono::seconds queue_lifetime{5 * 24 * 3600};
  // How long a finished message (every recipient delivered or bounced, its
  // bounce already queued) stays in the spool for `danemta queue show`
  // before the relay removes it (0: at its next pass). A day: enough to
  // look at today's mail, while the spool stays the size of a day's traffic
  // (the log keeps the record for longer).
  std::chrono::seconds finished_retention{24 * 3600};
  // A recipient still deferred this long after arrival gets the sender one
  // RFC 3464 "delayed" notice (0: never).
  std::chrono::seconds delay_warning{4 * 3600};
  std::chrono::seconds min_backoff{300};
  std::chrono::seconds max_backoff{3600};
  std::size_t max_deliveries = 100;      // concurrent delivery attempts
  std::size_t max_per_destination = 20;  // concurrent attempts per domain
  std::size_t max_message_bytes = 50 * 1024 * 1024;
  std::size_t max_connections = 100;            // concurrent client connections, all listeners
  std::size_t max_connections_per_client = 20;  // concurrent connections from one IP address
  // NOOP, RSET, VRFY, HELP and unknown commands in one session before 421.
  std::size_t max_junk_commands = 100;
  // A message with more Received: fields is refused as a mail loop (5.4.6,
  // RFC 5321 section 6.3).
  std::size_t max_received_headers = 50;
  std::size_t max_recipients = 1000;  // per message (RFC 5321 section 4.5.3.1.8)
  // While the spool cannot be written (full disk): how often writing the
  // results is retried, and how often the condition is logged.
  std::chrono::seconds storage_retry{10};
  // SIGTERM: how long attempts in flight may run on before they are cut off
  // (their recipients stay queued and are retried at the next start).
  std::chrono::seconds shutdown_grace{30};
  // The account the relay runs as. Started as root, `danemta relay` binds its
  // listeners and then switches to it for good; started as root without it,
  // the relay refuses to run ("root" is the explicit way to run as root).
  // `danemta queue` and `danemta tlsrpt` run as root switch to it before they
  // open the spool. Empty: whoever starts danemta.
  std::string user;
  // Where log lines go (`log`): the process's standard output (under
  // systemd, the journal) or syslog(3) with the LOG_MAIL facility.
  enum class LogTo { standard_output, syslog };
  LogTo log = LogTo::standard_output;
  bool log_json = false;  // log_format = "json": one JSON object per line
  // What precedes a text line on standard output (`log_prefix`): "auto" =
  // nothing but the journal's level marker when standard output is the
  // journal, else the syslog-style prefix; "syslog" = always the prefix
  // ("2026-11-29T20:37:31.123Z host danemta/smtp[pid]: "); "none" = bare.
  enum class LogPrefix { automatic, syslog, none };
  LogPrefix log_prefix = LogPrefix::automatic;

  // Every listener: the `listen` entries (tls and auth "none"), then the
  // [[relay.listener]] tables.
  std::vector<Listener> all_listeners() const;
  // tls_key_file, or tls_cert_file when it is empty.
  const std::string& tls_key() const { return tls_key_file.empty() ? tls_cert_file : tls_key_file; }
};

// [tlsrpt]: SMTP TLS Reporting (RFC 8460).
struct TlsRptConfig {
  bool enabled = true;  // record session results (cheap); reports go out with `danemta tlsrpt send`
  std::string store;    // empty: "tlsrpt.db" next to the relay's spool (see tlsrpt_store())
  std::string organization_name;  // default: the relay's host name
  std::string submitter;          // the sending domain (section 5.3); default: host name
  std::string contact_info;       // e.g. "postmaster@sender.example"
  std::string mail_from;          // envelope and From: of mailed reports
  // DKIM key for mailed reports (RFC 8460 section 5.3 requires a signature);
  // without one, mailto: destinations are skipped with a log line.
  std::string dkim_domain;
  std::string dkim_selector;
  std::string dkim_key_file;
  std::string https_ca_file;  // CA bundle for https: destinations; empty: system store
  // The relay runs `tlsrpt send` itself every this often (0: never, leave
  // it to cron), at a random offset of up to send_delay_max within the
  // interval: so yesterday's reports go out soon after midnight UTC and
  // failed https: destinations are retried.
  std::chrono::seconds send_interval{3600};
  std::chrono::seconds send_delay_max{1800};
  // Session results and report records older than this are deleted by
  // `tlsrpt send` (and so by the relay's own runs of it).
  std::chrono::seconds retention{14 * 86400};
};

// [sendmail]: the sendmail command (`danemta sendmail`, or the binary
// invoked as sendmail), which submits to the running relay over SMTP.
struct SendmailConfig {
  // Added to addresses without "@" (recipients, -f, the default sender
  // USER@domain), like Postfix's myorigin. Empty: [relay] hostname, else
  // this host's name (see sendmail_domain()).
  std::string domain;
  // "IP:PORT" or "[IPv6]:PORT" the command connects to. Empty: the first
  // [relay] listen address, a wildcard address meaning loopback.
  std::string submit;
};

// [transport]: where mail for some domains goes instead of their MX hosts (a
// smarthost), like Postfix's transport(5) with its smtp transport. Keys:
// "example.org" (that domain), ".example.org" (its subdomains), "*" (every
// domain); the most specific key wins.
struct Route {
  std::string nexthop;  // as configured: "[relay.example.net]:587", "mx.example.net", "direct"
  // "direct": the domain's own MX hosts (exempts a domain from a wider entry).
  bool direct = false;
  std::string host;              // a host name, or an IP address ("[192.0.2.1]")
  std::uint16_t port = 0;        // 0: [delivery] port
  bool mx_lookup = true;         // "host": its MX records are looked up; "[host]": not
  bool address_literal = false;  // host is an IP address: no DNS, no TLSA
  // The route's TLS policy; unset: the [policy] entry for `host`, else dane.
  std::optional<TlsPolicy> tls;
  // At most this many attempts at once through this route, whatever the
  // recipient domains (0: only the per-domain limits apply).
  std::size_t concurrency = 0;
};

// "[host]:port", "[host]", "host:port", "host", "[192.0.2.1]:25",
// "[2001:db8::1]" or "direct": what is wrong when malformed.
Result<Route> parse_nexthop(std::string_view s);

// [metrics]: the monitoring endpoint (/metrics for Prometheus, /healthz).
// Off unless `listen` is set; it has no authentication: bind it to loopback
// or a management network only.
struct MetricsConfig {
  std::string listen;  // "IP:PORT" or "[IPv6]:PORT"; empty: no endpoint
  // danemta_queue_destination_recipients shows this many destinations (the
  // ones with the most pending recipients), so a queue of mail to many
  // domains does not make thousands of series.
  std::size_t top_destinations = 20;
};

// [web]: `danemta web`, the validation test as a web page and a JSON API
// (docs/web.md). Safe to expose: it probes only allowed ports, only
// addresses from the domain's own DNS, public ones unless told otherwise.
struct WebConfig {
  std::string listen = "127.0.0.1:8025";  // "IP:PORT" or "[IPv6]:PORT"
  std::string tls_cert_file;              // both set: HTTPS; neither: plain HTTP
  std::string tls_key_file;
  std::vector<std::uint16_t> allowed_ports{25};  // the first is the form's default
  bool allow_private_targets = false;            // probe loopback, private, link-local (a lab)
  std::size_t max_concurrent = 4;                // checks at once, all clients; then 503
  std::size_t client_checks = 10;                // checks per client (IPv4 address, IPv6 /64) ...
  std::chrono::seconds client_window{60};        // ... in this window; then 429
  std::chrono::seconds check_timeout{60};        // one whole check
  std::chrono::seconds probe_timeout{15};        // each SMTP step of a probe
  // Reverse proxies in front of the page: a request from one of these is
  // counted against the address its X-Forwarded-For names (the last one
  // that is not itself a trusted proxy). Empty: the header is ignored.
  std::vector<Network> trusted_proxies;
};

// [inbound]: danemta as a receiving MX (off unless `listen` is set). Mail
// for `local_domains` is accepted from anyone on the internet (no AUTH;
// every other recipient is refused: never an open relay), queued, and
// delivered to `deliver_to`, which becomes the [transport] route of every
// local domain. The STARTTLS certificates are guarded: see the rollover
// settings and docs/adr/0007-rollover-guard.md.
struct InboundCertificate {
  std::string cert_file;  // PEM chain, leaf first
  std::string key_file;   // PEM private key; empty: in cert_file
  const std::string& key() const { return key_file.empty() ? cert_file : key_file; }
  friend bool operator==(const InboundCertificate&, const InboundCertificate&) = default;
};

struct InboundConfig {
  std::vector<std::string> listen;         // "IP:PORT", "[IPv6]:PORT"; empty: no inbound
  std::string hostname;                    // greeting; empty: [relay] hostname
  std::vector<std::string> local_domains;  // normalized
  std::string deliver_to;                  // the internal mailbox server, as a next hop
  std::optional<TlsPolicy> deliver_tls;    // its TLS policy; unset: as [transport]
  // [[inbound.certificate]]: one per key type (RSA and ECDSA at once).
  std::vector<InboundCertificate> certificates;
  // The names in this server's MX records: the guard looks up
  // _PORT._tcp.NAME TLSA for each. Empty: no guard (files served as they are).
  std::vector<std::string> mx_names;
  std::uint16_t tlsa_port = 25;
  // A new certificate is served once a TLSA record matching it has been
  // seen published (DNSSEC-secure) at every MX name for the RRset's TTL
  // plus this margin.
  std::chrono::seconds rollover_margin{300};
  std::chrono::seconds check_interval{300};    // how often files and DNS are checked
  std::chrono::seconds remind_interval{3600};  // "publish this record" at most this often
  // The served certificate expiring within this while the next one is not
  // yet servable: an error in the log and in metrics.
  std::chrono::seconds expiry_warning{14 * 86400};
  // Where the guard keeps the served certificate and its first-seen times;
  // empty: "inbound" next to [relay] spool (see Config::inbound_state_dir()).
  std::string state_dir;
  bool enabled() const { return !listen.empty(); }
};

struct Config {
  DnsConfig dns;
  RelayConfig relay;
  TlsRptConfig tlsrpt;
  SendmailConfig sendmail;
  MetricsConfig metrics;
  WebConfig web;
  InboundConfig inbound;
  std::uint16_t smtp_port = 25;  // destination port; the TLSA owner name follows it
  std::string helo_name;         // EHLO name; empty: this host's name
  SmtpTimeouts timeouts;
  // [delivery] source_address / source_address6: the local address outgoing
  // connections to IPv4 / IPv6 servers are made from (Postfix's
  // smtp_bind_address). Empty: the kernel chooses.
  std::string source_address;
  std::string source_address6;
  // [delivery] inet_protocols ("all", "ipv4", "ipv6"): the address families
  // mail is delivered over; the other family's records are not looked up.
  bool deliver_ipv4 = true;
  bool deliver_ipv6 = true;
  // [delivery] connection_cache_seconds: how long a session that carried
  // mail stays open for the next attempt to the same destination under the
  // same plan (0: QUIT at once), and connection_reuse_seconds: how long
  // after it was opened it may still be handed on (Postfix: 2 s and 300 s).
  std::chrono::seconds connection_cache_idle{2};
  std::chrono::seconds connection_cache_max_age{300};
  std::map<std::string, TlsPolicy> policies;  // key: normalized domain
  std::map<std::string, Route> routes;  // [transport]; key: "example.org", ".example.org", "*"
  // [concurrency]: per-destination limits that replace [relay]
  // max_per_destination for these domains.
  std::map<std::string, std::size_t> concurrency;
  // Every key the file set, flattened: "relay.max_deliveries" -> "100",
  // "policy.example.org" -> "\"dane-only\"" (values in TOML syntax). What
  // changes() compares; keys not set keep their defaults.
  std::map<std::string, std::string> settings;

  TlsPolicy policy_for(std::string_view domain) const;
  // The [transport] entry for a recipient domain (most specific key first),
  // or nullptr when its mail goes to its own MX hosts ("direct" included).
  const Route* route_for(std::string_view domain) const;
  // The TLS policy of mail on `route`: its own, else [policy] for its host.
  TlsPolicy policy_for(const Route& route) const;
  // [concurrency] for the domain, else [relay] max_per_destination.
  std::size_t concurrency_for(std::string_view domain) const;
  // [tlsrpt] store, or "tlsrpt.db" in the directory of [relay] spool.
  std::string tlsrpt_store() const;
  // [inbound] state_dir, or "inbound" in the directory of [relay] spool.
  std::string inbound_state_dir() const;
  // Whether `domain` is one of [inbound] local_domains.
  bool is_local_domain(std::string_view domain) const;
  // [sendmail] domain, or [relay] hostname, or `host_name` (this host's name).
  std::string sendmail_domain(std::string_view host_name) const;
  // [sendmail] submit, or the first [relay] listener without AUTH and
  // without required TLS, with 0.0.0.0 and [::] replaced by 127.0.0.1 and
  // [::1] (127.0.0.1:10025 when there is none).
  std::string sendmail_submit() const;
};

// Parses a TOML document. Errors name the key and say what is wrong; integer
// keys take TOML integers only (no floats, strings or booleans).
Result<Config> parse(std::string_view toml_text, std::string_view source_name = "config");
// Reads and parses the file; a missing file or a directory is an error naming it.
Result<Config> load(const std::string& path);

// What differs between two configurations' files, one line per key in key
// order: "relay.max_deliveries: 100 -> 50", "policy.example.org: (unset) ->
// \"dane-only\"" (unset: the default applies).
std::vector<std::string> changes(const Config& before, const Config& after);

// "127.0.0.1:10025", "[::1]:10025": checks the syntax of a listen address.
bool valid_listen(std::string_view s);

// A host or domain name of letter-digit-hyphen labels (RFC 1035 2.3.1,
// RFC 1123 2.1), at most 253 octets without a trailing dot.
bool valid_domain(std::string_view s);
// A user name as useradd accepts it by default: letters, digits, '.', '_',
// '-' (not first), an optional final '$', at most 32 characters.
bool valid_user_name(std::string_view s);

// "192.0.2.1", "192.0.2.1@5353", "2001:db8::1@53": checks the syntax.
bool valid_forwarder(std::string_view s);

}  // namespace danemta::config
