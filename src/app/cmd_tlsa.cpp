#include "app/cmd_tlsa.hpp"

#include <iostream>
#include <vector>

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

}  // namespace

int run_tlsa(const TlsaOptions& o) {
  if (o.file.empty()) {
    std::cerr << "danemta tlsa: give a certificate file or --connect HOST[:PORT]\n";
    return 2;
  }
  auto chain = tls::load_pem_chain(o.file);
  if (!chain) {
    std::cerr << "danemta tlsa: " << chain.error().message << "\n";
    return 2;
  }

  std::string host = normalize_domain(o.host);
  if (host.empty()) {
    tls::CertSummary leaf = tls::summarize(chain->front().get());
    if (leaf.dns_names.empty() || leaf.dns_names.front().starts_with("*")) {
      std::cerr << "danemta tlsa: the certificate names no host; give --host MX-HOST-NAME\n";
      return 2;
    }
    host = normalize_domain(leaf.dns_names.front());
  }
  std::string owner = dane::tlsa_owner(host, o.port);

  std::vector<Target> targets;
  if (o.all) {
    targets.push_back({3, 0});
    if (chain->size() > 1) targets.push_back({2, 1});
  } else {
    targets.push_back({o.usage, o.usage == 2 ? std::size_t{1} : std::size_t{0}});
  }
  for (const Target& t : targets) {
    if (t.depth >= chain->size()) {
      std::cerr << "danemta tlsa: " << o.file
                << " holds only the leaf certificate; a 2 x x record needs its issuer "
                   "(give the chain file, leaf first)\n";
      return 2;
    }
  }
  for (const Target& t : targets)
    print_record(std::cout, owner, (*chain)[t.depth].get(), t.usage, o.all ? 1 : o.selector,
                 o.all ? 1 : o.mtype, t.depth);
  return 0;
}

}  // namespace danemta::app
