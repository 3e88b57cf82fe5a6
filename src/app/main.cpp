// danemta: command-line entry point (composition root).
#include <sys/stat.h>
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "app/cmd_check.hpp"
#include "app/cmd_deliver.hpp"
#include "app/cmd_inbound.hpp"
#include "app/cmd_passwd.hpp"
#include "app/cmd_queue.hpp"
#include "app/cmd_relay.hpp"
#include "app/cmd_sendmail.hpp"
#include "app/cmd_tlsa.hpp"
#include "app/cmd_tlsrpt.hpp"
#include "app/cmd_web.hpp"
#include "app/privileges.hpp"
#include "base/text.hpp"
#include "config/config.hpp"

namespace {

// RFC 1035 section 2.3.4 lengths and the LDH characters (underscore allowed:
// the checker may be pointed at service names).
bool plausible_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t label = 0;
  for (char c : d) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace danemta;
  // Everything danemta creates (spool, TLS-RPT store, their -wal and -shm
  // files, message bodies) is for its own account only.
  ::umask(077);

  // The sendmail command has sendmail's flag syntax, not CLI11's: invoked
  // as sendmail or mailq (a symlink), or as `danemta [--config FILE]
  // sendmail ...`, it takes its arguments as they are.
  {
    const std::string program = argc > 0 ? argv[0] : "danemta";
    const std::string base = program.substr(program.rfind('/') + 1);
    if (base == "sendmail" || base == "mailq")
      return app::run_sendmail(std::vector<std::string>(argv + 1, argv + argc), "", base,
                               base == "mailq");
    std::string config;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if ((a == "-c" || a == "--config") && i + 1 < argc) {
        config = argv[++i];
      } else if (a.rfind("--config=", 0) == 0) {
        config = a.substr(9);
      } else {
        if (a == "sendmail")
          return app::run_sendmail(std::vector<std::string>(argv + i + 1, argv + argc), config,
                                   "danemta sendmail", false);
        break;
      }
    }
  }

  CLI::App app{"danemta: outbound SMTP relay with DNSSEC and DANE (RFC 7672)"};
  app.set_version_flag("--version", "danemta 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();  // --config may follow the subcommand too

  std::string config_path;
  app.add_option("-c,--config", config_path,
                 "configuration file (TOML; default " DANEMTA_CONFIG_FILE
                 ", required by relay, optional elsewhere)");

  app::CheckOptions check;
  std::vector<std::string> resolvers;
  std::string trust_anchor;
  int port = 0;
  std::string policy;
  int timeout = 0;
  CLI::App* cmd_check = app.add_subcommand(
      "check", "validate a domain's DNSSEC and DANE setup as the relay would see it");
  cmd_check->add_option("domain", check.domain, "the domain that receives mail");
  bool check_self = false;
  cmd_check->add_flag("--self", check_self,
                      "check this server's own [inbound] MX: TLSA for every MX name, the served "
                      "and next certificate, rollover readiness, then each local domain");
  cmd_check->add_flag("--json", check.json, "print the report as JSON (docs/check-json.md)");
  bool no_connect = false;
  cmd_check->add_flag("--no-connect", no_connect,
                      "DNS only: do not connect to the MX hosts (the live probe is the default)");
  cmd_check
      ->add_option("--resolver", resolvers,
                   "forwarder IP[@PORT] (repeatable); answers are validated locally")
      ->allow_extra_args(false);
  cmd_check->add_option(
      "--trust-anchor", trust_anchor,
      "trust anchor file (DS or DNSKEY records) instead of the built-in root KSKs");
  cmd_check->add_option("--port", port, "SMTP port (TLSA records are looked up at _PORT._tcp)")
      ->check(CLI::Range(1, 65535));
  cmd_check->add_option("--policy", policy, "TLS policy to apply: dane-only, dane, encrypt, may");
  cmd_check->add_option("--timeout", timeout, "DNS query and SMTP step timeout in seconds")
      ->check(CLI::Range(1, 600));

  app::TlsaOptions tlsa;
  int tlsa_port = 25;
  CLI::App* cmd_tlsa = app.add_subcommand(
      "tlsa", "print TLSA records for a certificate, a chain file or a live server");
  cmd_tlsa->add_option("file", tlsa.file, "PEM certificate or chain file (leaf first)");
  cmd_tlsa->add_option("--host", tlsa.host,
                       "MX host name for the owner name (default: the certificate's first name)");
  cmd_tlsa->add_option("--port", tlsa_port, "SMTP port for the owner name (_PORT._tcp.HOST)")
      ->check(CLI::Range(1, 65535));
  cmd_tlsa
      ->add_option("--usage", tlsa.usage, "3: the leaf (DANE-EE, default); 2: its issuer (DANE-TA)")
      ->check(CLI::IsMember({2, 3}));
  cmd_tlsa->add_option("--selector", tlsa.selector, "1: public key (default); 0: certificate")
      ->check(CLI::IsMember({0, 1}));
  cmd_tlsa->add_option("--mtype", tlsa.mtype, "1: SHA2-256 (default); 2: SHA2-512; 0: full")
      ->check(CLI::IsMember({0, 1, 2}));
  cmd_tlsa->add_flag("--all", tlsa.all, "3 1 1 for the leaf and 2 1 1 for its issuer");
  bool tlsa_rollover = false;
  cmd_tlsa->add_flag("--rollover", tlsa_rollover,
                     "FILE is the next [inbound] certificate: the records to publish for it and "
                     "where the rollover guard stands");
  cmd_tlsa->add_option("--connect", tlsa.connect,
                       "fetch the chain from a live SMTP server HOST[:PORT] (default port 25)");
  cmd_tlsa->add_flag("--starttls", tlsa.starttls, "use STARTTLS with --connect (the only mode)");
  std::vector<std::string> tlsa_resolvers;
  cmd_tlsa->add_option("--resolver", tlsa_resolvers, "forwarder IP[@PORT] to find HOST's address")
      ->allow_extra_args(false);

  app::DeliverOptions deliver;
  std::vector<std::string> deliver_resolvers;
  std::string deliver_trust_anchor;
  int deliver_port = 0;
  CLI::App* cmd_deliver = app.add_subcommand(
      "deliver", "deliver one message now (one attempt, no queue, no retry) and log the result");
  cmd_deliver->add_option("--from", deliver.from, "envelope sender (default: null sender)");
  cmd_deliver->add_option("--to", deliver.recipients, "recipient (repeatable, one domain)")
      ->required()
      ->allow_extra_args(false);
  cmd_deliver->add_option("message", deliver.message_file,
                          "RFC 5322 message file (default: standard input)");
  cmd_deliver->add_option("--helo", deliver.helo_name, "EHLO name (default: this host's name)");
  cmd_deliver->add_option("--resolver", deliver_resolvers, "forwarder IP[@PORT] (repeatable)")
      ->allow_extra_args(false);
  cmd_deliver->add_option("--trust-anchor", deliver_trust_anchor, "trust anchor file");
  cmd_deliver->add_option("--port", deliver_port, "destination SMTP port (TLSA at _PORT._tcp)")
      ->check(CLI::Range(1, 65535));

  CLI::App* cmd_relay = app.add_subcommand(
      "relay", "run the relay: accept local submissions, queue durably, deliver with DANE");

  app::QueueOptions queue_opts;
  CLI::App* cmd_queue = app::add_queue_command(app, queue_opts);

  app::SendOptions send;
  CLI::App* cmd_send =
      app.add_subcommand("send", "submit a message (standard input) to the local relay as it is");
  cmd_send->add_option("-f,--from", send.from, "envelope sender");
  cmd_send->add_option("recipients", send.recipients, "recipient addresses")->required();
  cmd_send->add_option("--file", send.message_file, "message file instead of standard input");

  std::string passwd_user;
  CLI::App* cmd_passwd = app.add_subcommand(
      "passwd", "print a [relay] credentials_file line for SMTP AUTH (password on standard input)");
  cmd_passwd->add_option("user", passwd_user, "the user name clients give to AUTH")->required();

  // Listed for --help only: main() hands `sendmail` over before CLI11 parses.
  app.add_subcommand("sendmail",
                     "the sendmail command for applications (-t, -i, -f, -F ...; "
                     "docs/operations.md)")
      ->allow_extras()
      ->prefix_command();

  app::TlsRptOptions tlsrpt;
  CLI::App* cmd_tlsrpt = app.add_subcommand(
      "tlsrpt",
      "SMTP TLS reports (RFC 8460): send ours from what the relay recorded, read others'");
  CLI::App* cmd_tlsrpt_send = cmd_tlsrpt->add_subcommand(
      "send", "build each domain's daily report and send it to its _smtp._tls rua addresses");
  cmd_tlsrpt->require_subcommand(1);
  cmd_tlsrpt_send->add_option("--date", tlsrpt.date, "UTC day YYYY-MM-DD (default: yesterday)");
  cmd_tlsrpt_send->add_option("--domain", tlsrpt.domain, "only this policy domain");
  cmd_tlsrpt_send->add_flag("--print", tlsrpt.print, "print the JSON reports, send nothing");
  cmd_tlsrpt_send->add_flag("--retry", tlsrpt.retry,
                            "retry failed https destinations now, not after their backoff");
  cmd_tlsrpt_send->add_flag("--quiet", tlsrpt.quiet,
                            "print only reports sent and failures (for scheduled runs)");
  app::TlsRptReadOptions tlsrpt_read;
  CLI::App* cmd_tlsrpt_read = cmd_tlsrpt->add_subcommand(
      "read", "summarise received reports (.json, .json.gz, report mails; directories walked)");
  cmd_tlsrpt_read->add_option("paths", tlsrpt_read.paths, "report files and directories")
      ->required();
  cmd_tlsrpt_read->add_flag("--json", tlsrpt_read.json,
                            "print the summary as JSON (docs/tlsrpt-read.md)");
  cmd_tlsrpt_read
      ->add_option("--max-files", tlsrpt_read.max_files,
                   "read at most this many files from directories (default 100000)")
      ->check(CLI::PositiveNumber);

  std::string web_listen;
  CLI::App* cmd_web = app.add_subcommand(
      "web", "serve the validation test as a web page and a JSON API ([web]; docs/web.md)");
  cmd_web->add_option("--listen", web_listen, "IP:PORT to serve on (default: [web] listen)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "danemta: " << e.what() << " (see danemta --help)\n";
    return 2;
  }

  // Needs no configuration.
  if (cmd_passwd->parsed()) return app::run_passwd(passwd_user);
  if (cmd_tlsrpt_read->parsed()) return app::run_tlsrpt_read(tlsrpt_read);

  // Without --config: the installed file. The relay needs one (it would
  // otherwise run on built-in defaults nobody chose); the other commands use
  // it when it is there.
  const bool default_config = config_path.empty();
  if (default_config) {
    struct stat st {};
    if (cmd_relay->parsed() || ::stat(DANEMTA_CONFIG_FILE, &st) == 0)
      config_path = DANEMTA_CONFIG_FILE;
  }
  config::Config cfg;
  if (!config_path.empty()) {
    auto loaded = config::load(config_path);
    if (!loaded) {
      std::cerr << "danemta: " << loaded.error().message
                << (default_config ? " (the default; give --config FILE)" : "") << "\n";
      return 2;
    }
    cfg = std::move(*loaded);
  }

  if (cmd_check->parsed() && check_self) {
    if (!check.domain.empty()) {
      std::cerr << "danemta check: --self takes no domain (it checks [inbound] local_domains)\n";
      return 2;
    }
    if (timeout != 0) {
      cfg.dns.timeout = std::chrono::seconds(timeout);
      check.smtp_timeout = std::chrono::seconds(timeout);
    }
    check.connect = !no_connect;
    return app::run_check_self(cfg, check);
  }
  if (cmd_check->parsed()) {
    if (check.domain.empty()) {
      std::cerr << "danemta check: a domain is required (or --self)\n";
      return 2;
    }
    check.domain = normalize_domain(check.domain);
    if (!plausible_domain(check.domain)) {
      std::cerr << "danemta check: \"" << check.domain << "\" is not a domain name\n";
      return 2;
    }
    for (const std::string& r : resolvers) {
      if (!config::valid_forwarder(r)) {
        std::cerr << "danemta check: --resolver " << r << ": expected IP or IP@PORT\n";
        return 2;
      }
    }
    if (!resolvers.empty()) cfg.dns.forwarders = resolvers;
    if (!trust_anchor.empty()) cfg.dns.trust_anchor_file = trust_anchor;
    if (port != 0) cfg.smtp_port = static_cast<std::uint16_t>(port);
    if (timeout != 0) {
      cfg.dns.timeout = std::chrono::seconds(timeout);
      check.smtp_timeout = std::chrono::seconds(timeout);
    }
    check.connect = !no_connect;
    if (!policy.empty()) {
      auto p = config::parse_tls_policy(policy);
      if (!p) {
        std::cerr << "danemta check: --policy " << policy
                  << ": expected dane-only, dane, encrypt or may\n";
        return 2;
      }
      cfg.policies[check.domain] = *p;
    }
    return app::run_check(cfg, check);
  }
  if (cmd_deliver->parsed()) {
    for (const std::string& r : deliver_resolvers) {
      if (!config::valid_forwarder(r)) {
        std::cerr << "danemta deliver: --resolver " << r << ": expected IP or IP@PORT\n";
        return 2;
      }
    }
    if (!deliver_resolvers.empty()) cfg.dns.forwarders = deliver_resolvers;
    if (!deliver_trust_anchor.empty()) cfg.dns.trust_anchor_file = deliver_trust_anchor;
    if (deliver_port != 0) cfg.smtp_port = static_cast<std::uint16_t>(deliver_port);
    return app::run_deliver(cfg, deliver);
  }
  if (cmd_relay->parsed()) return app::run_relay(cfg, config_path);
  if (cmd_web->parsed()) {
    if (!web_listen.empty()) {
      if (!config::valid_listen(web_listen)) {
        std::cerr << "danemta web: --listen " << web_listen
                  << ": expected IP:PORT or [IPv6]:PORT\n";
        return 2;
      }
      cfg.web.listen = web_listen;
    }
    return app::run_web(cfg);
  }
  // Run as root, the spool tools become the relay's account first, so the
  // files they create are the relay's.
  if (cmd_tlsrpt_send->parsed() || cmd_queue->parsed()) {
    if (auto as = app::enter_as_relay_user(cfg); !as) {
      std::cerr << "danemta: " << as.error().message << "\n";
      return 2;
    }
  }
  if (cmd_tlsrpt_send->parsed()) return app::run_tlsrpt(cfg, tlsrpt);
  if (cmd_queue->parsed()) return app::run_queue(cfg, queue_opts);
  if (cmd_send->parsed()) return app::run_send(cfg, send);
  if (cmd_tlsa->parsed()) {
    tlsa.port = static_cast<std::uint16_t>(tlsa_port);
    tlsa.port_given = cmd_tlsa->count("--port") > 0;
    for (const std::string& r : tlsa_resolvers) {
      if (!config::valid_forwarder(r)) {
        std::cerr << "danemta tlsa: --resolver " << r << ": expected IP or IP@PORT\n";
        return 2;
      }
    }
    if (!tlsa_resolvers.empty()) cfg.dns.forwarders = tlsa_resolvers;
    if (tlsa_rollover) {
      if (tlsa.file.empty()) {
        std::cerr << "danemta tlsa: --rollover needs the new certificate's file\n";
        return 2;
      }
      return app::run_tlsa_rollover(cfg, tlsa.file);
    }
    return app::run_tlsa(cfg, tlsa);
  }
  return 2;
}
