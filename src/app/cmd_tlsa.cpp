#include "app/cmd_tlsa.hpp"
#include "base/system.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>
#include <functional>
#include <iostream>
#include <optional>
#include <vector>

#include "dns/unbound_resolver.hpp"
#include "smtp/client.hpp"

#include "base/text.hpp"
#include "dane/plan.hpp"
#include "tls/certs.hpp"

namespace danemta::app {

namespace {

struct Target {
  int usage;
  std::size_t depth;
};

void print_record(std::ostream& out, const std::string& owner, x509_st* cert, int usage,
                  int selector, int mtype, std::size_t depth) {
  tls::CertSummary s = tls::summarize(cert);
  std::string names;
  for (const std::string& n : s.dns_names) names += (names.empty() ? "" : ", ") + n;
  out << "; depth " << depth << ": " << s.subject << (names.empty() ? "" : " (" + names + ")")
      << ", " << s.key << ", not after " << s.not_after << "\n";
  auto rec = tls::make_tlsa(cert, usage, selector, mtype);
  out << owner << ". IN TLSA " << dns::to_string(*rec) << "\n";
}

bool is_address(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// "host", "host:port", "[v6]:port", "v6" (bare IPv6 takes no port).
bool split_host_port(const std::string& in, std::string& host, std::uint16_t& port) {
  std::string port_text;
  if (!in.empty() && in.front() == '[') {
    auto close = in.find(']');
    if (close == std::string::npos) return false;
    host = in.substr(1, close - 1);
    if (close + 1 < in.size()) {
      if (in[close + 1] != ':') return false;
      port_text = in.substr(close + 2);
    }
  } else if (std::count(in.begin(), in.end(), ':') == 1) {
    auto colon = in.find(':');
    host = in.substr(0, colon);
    port_text = in.substr(colon + 1);
  } else {
    host = in;
  }
  if (!port_text.empty()) {
    try {
      int p = std::stoi(port_text);
      if (p < 1 || p > 65535 || std::to_string(p) != port_text) return false;
      port = static_cast<std::uint16_t>(p);
    } catch (const std::exception&) {
      return false;
    }
  }
  return !host.empty();
}

// Connects to each address in turn until one presents a chain after STARTTLS.
boost::asio::awaitable<Result<std::vector<tls::X509Ptr>>> first_chain(
    std::reference_wrapper<boost::asio::ssl::context> ctx, std::vector<std::string> addresses,
    std::uint16_t port, std::string sni) {
  auto executor = co_await boost::asio::this_coro::executor;
  auto& io = static_cast<boost::asio::io_context&>(executor.context());
  const std::string helo = local_hostname();
  // Named, not a temporary inside the co_await expression: g++ 12 destroys
  // such temporaries with non-trivial members twice.
  const std::function<bool(SSL*)> set_sni = [sni](SSL* ssl) {
    if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
    return true;
  };
  Result<std::vector<tls::X509Ptr>> result = fail("no address to connect to");
  for (const std::string& address : addresses) {
    smtp::ClientConfig cc;
    cc.connect = cc.greeting = cc.ehlo = cc.starttls = std::chrono::seconds(30);
    smtp::Client client(io, cc);
    auto greeting = co_await client.connect(address, port);
    if (!greeting) {
      result = fail(address + ": " + greeting.error().to_string());
      continue;
    }
    auto caps = co_await client.ehlo(helo);
    if (!caps || !caps->starttls) {
      result = fail(
          address + ": " +
          (caps ? std::string("the server does not offer STARTTLS") : caps.error().to_string()));
      client.close();
      continue;
    }
    auto tls = co_await client.starttls(ctx.get(), set_sni);
    if (!tls) {
      result = fail(address + ": " + tls.error().to_string());
      continue;
    }
    std::vector<tls::X509Ptr> chain;
    if (STACK_OF(X509)* peer = SSL_get_peer_cert_chain(client.ssl())) {
      for (int i = 0; i < sk_X509_num(peer); ++i) {
        X509* x = sk_X509_value(peer, i);
        X509_up_ref(x);
        chain.emplace_back(x);
      }
    }
    co_await client.quit();
    if (chain.empty()) {
      result = fail(address + ": the server presented no certificate");
      continue;
    }
    co_return chain;
  }
  co_return result;
}

// Fetches the chain a live SMTP server presents after STARTTLS. The chain
// is only printed, never trusted, so the address lookup need not be secure.
Result<std::vector<tls::X509Ptr>> fetch_chain(const config::Config& cfg, const std::string& host,
                                              std::uint16_t port) {
  boost::asio::io_context io;
  std::vector<std::string> addresses;
  if (is_address(host)) {
    addresses.push_back(host);
  } else {
    auto resolver = dns::UnboundResolver::create(io, cfg.dns);
    if (!resolver) return tl::unexpected(resolver.error());
    std::string name = normalize_domain(host);
    (*resolver)->resolve({{name, dns::RrType::A}, {name, dns::RrType::AAAA}},
                         [&addresses](std::vector<dns::Answer> answers) {
                           for (const dns::Answer& a : answers)
                             addresses.insert(addresses.end(), a.addresses.begin(),
                                              a.addresses.end());
                         });
    io.run();
    io.restart();
    if (addresses.empty()) return fail("no address found for " + host);
  }

  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  std::string sni = is_address(host) ? "" : normalize_domain(host);
  Result<std::vector<tls::X509Ptr>> result = fail("no connection was attempted");
  boost::asio::co_spawn(io, first_chain(std::ref(ctx), addresses, port, sni),
                        [&result](std::exception_ptr e, Result<std::vector<tls::X509Ptr>> r) {
                          if (!e) result = std::move(r);
                        });
  io.run();
  return result;
}

}  // namespace

int run_tlsa(const config::Config& cfg, const TlsaOptions& o) {
  if (o.file.empty() == o.connect.empty()) {
    std::cerr << "danemta tlsa: give either a certificate file or --connect HOST[:PORT]\n";
    return 2;
  }
  std::string connect_host;
  std::uint16_t connect_port = 25;
  if (!o.connect.empty() && !split_host_port(o.connect, connect_host, connect_port)) {
    std::cerr << "danemta tlsa: --connect " << o.connect << ": expected HOST[:PORT]\n";
    return 2;
  }
  auto chain =
      o.file.empty() ? fetch_chain(cfg, connect_host, connect_port) : tls::load_pem_chain(o.file);
  if (!chain) {
    std::cerr << "danemta tlsa: " << chain.error().message << "\n";
    return 2;
  }
  std::string source = o.file.empty() ? o.connect : o.file;

  std::string host = normalize_domain(o.host);
  if (host.empty() && !connect_host.empty() && !is_address(connect_host))
    host = normalize_domain(connect_host);
  if (host.empty()) {
    tls::CertSummary leaf = tls::summarize(chain->front().get());
    if (leaf.dns_names.empty() || leaf.dns_names.front().starts_with("*")) {
      std::cerr << "danemta tlsa: the certificate names no host; give --host MX-HOST-NAME\n";
      return 2;
    }
    host = normalize_domain(leaf.dns_names.front());
  }
  std::uint16_t owner_port = o.port_given || o.connect.empty() ? o.port : connect_port;
  std::string owner = dane::tlsa_owner(host, owner_port);

  std::vector<Target> targets;
  if (o.all) {
    targets.push_back({3, 0});
    if (chain->size() > 1) targets.push_back({2, 1});
  } else {
    targets.push_back({o.usage, o.usage == 2 ? std::size_t{1} : std::size_t{0}});
  }
  for (const Target& t : targets) {
    if (t.depth >= chain->size()) {
      std::cerr << "danemta tlsa: " << source
                << " holds only the leaf certificate; a 2 x x record needs its issuer "
                   "(give the chain file, leaf first, or a server that sends its chain)\n";
      return 2;
    }
  }
  for (const Target& t : targets)
    print_record(std::cout, owner, (*chain)[t.depth].get(), t.usage, o.all ? 1 : o.selector,
                 o.all ? 1 : o.mtype, t.depth);
  return 0;
}

}  // namespace danemta::app
