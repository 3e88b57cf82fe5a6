#include "check/probe.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>

#include "delivery/session.hpp"

namespace danemta::check {

void annotate(AddressProbe& p, const dane::HostPlan& host, const ProbeOptions& o) {
  const std::vector<tls::CertSummary>& chain = p.facts.chain;
  if (!p.tls || chain.empty()) return;

  for (const dns::TlsaRecord& r : host.usable_tlsa) {
    RecordMatch m{r, {}};
    for (std::size_t d = 0; d < chain.size(); ++d) {
      // DANE-EE(3) matches only the leaf; DANE-TA(2) only an issuer (RFC 7672
      // section 3.1).
      if ((r.usage == 3) != (d == 0)) continue;
      if (tls::matches(chain[d], r)) m.depths.push_back(static_cast<int>(d));
    }
    p.matches.push_back(std::move(m));
  }

  bool ta_in_use = false;
  for (const RecordMatch& m : p.matches)
    if (m.record.usage == 2 && !m.depths.empty()) ta_in_use = true;
  if (ta_in_use) p.names_ok = tls::names_match(chain.front(), host.reference_names);

  for (std::size_t d = 0; d < chain.size(); ++d) {
    const tls::CertSummary& c = chain[d];
    if (o.now == 0 || c.not_after_epoch == 0) continue;
    std::string which =
        d == 0 ? "the server certificate" : "the certificate at depth " + std::to_string(d);
    if (c.not_after_epoch < o.now) {
      p.warnings.push_back(which + " (" + c.subject + ") expired on " + c.not_after +
                           (d == 0 && !ta_in_use
                                ? "; DANE-EE(3) ignores expiry, but senders that check it fail"
                                : ""));
    } else if (c.not_after_epoch < o.now + o.expiry_warning) {
      p.warnings.push_back(which + " (" + c.subject + ") expires on " + c.not_after +
                           ": publish the TLSA record of its successor now");
    }
  }

  if (host.requirement == dane::Requirement::dane) {
    std::size_t matching = 0;
    for (const RecordMatch& m : p.matches)
      if (!m.depths.empty()) ++matching;
    p.rollover_ready = matching > 0 && host.usable_tlsa.size() >= 2;
    for (const RecordMatch& m : p.matches)
      if (m.depths.empty() && matching > 0)
        p.warnings.push_back("TLSA " + dns::to_string(m.record).substr(0, 16) +
                             "... matches no certificate of the chain (a next key, or stale)");
  }
}

boost::asio::awaitable<std::vector<std::vector<AddressProbe>>> probe_destination(
    boost::asio::ssl::context& tls_context, dane::DestinationPlan plan, ProbeOptions options) {
  auto executor = co_await boost::asio::this_coro::executor;
  auto& io = static_cast<boost::asio::io_context&>(executor.context());

  std::vector<std::vector<AddressProbe>> out(plan.hosts.size());
  for (std::size_t i = 0; i < plan.hosts.size(); ++i) {
    const dane::HostPlan& host = plan.hosts[i];
    if (host.requirement == dane::Requirement::unusable) continue;
    for (const std::string& address : host.addresses) {
      if (options.refuse) {
        std::string why = options.refuse(host.name, address);
        if (!why.empty()) {
          AddressProbe p;
          p.host = host.name;
          p.address = address;
          p.unreachable = true;
          p.detail = std::move(why);
          if (options.probed) options.probed(p);
          out[i].push_back(std::move(p));
          continue;
        }
      }
      smtp::Client client(io, options.client);
      delivery::SessionOptions so{options.helo_name, plan.port, false};
      delivery::SessionSetup s =
          co_await delivery::establish(client, tls_context, host, address, so);
      AddressProbe p;
      p.host = host.name;
      p.address = address;
      p.connected = s.greeting.has_value();
      if (s.greeting && !s.greeting->lines.empty())
        p.greeting = std::to_string(s.greeting->code) + " " + s.greeting->lines.front();
      p.starttls_offered = s.starttls_offered;
      p.tls = s.tls;
      p.facts = s.tls_verdict.facts;
      p.matched_depth = s.tls_verdict.matched_depth;
      p.matched = s.tls_verdict.matched;
      p.authentication = s.authentication();
      p.failure = s.failure;
      p.unreachable = !s.failure && s.smtp_failure.has_value();
      p.detail = s.reason;
      annotate(p, host, options);
      if (s.ready()) co_await client.quit();
      if (options.probed) options.probed(p);
      out[i].push_back(std::move(p));
    }
  }
  co_return out;
}

}  // namespace danemta::check
