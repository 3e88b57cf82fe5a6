#include "app/cmd_check.hpp"
#include "base/system.hpp"

#include <unistd.h>

#include <ctime>
#include <iostream>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include "check/probe.hpp"
#include "check/report.hpp"
#include "dane/plan.hpp"
#include "dns/unbound_resolver.hpp"
#include "tls/context.hpp"

namespace danemta::app {

Result<check::Report> check_report(const config::Config& cfg, const CheckOptions& options) {
  boost::asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) return tl::unexpected(resolver.error());
  boost::asio::ssl::context tls_context(boost::asio::ssl::context::tls_client);
  if (auto ok = tls::configure_client_context(tls_context.native_handle()); !ok)
    return tl::unexpected(ok.error());

  check::ProbeOptions probe_options;
  probe_options.helo_name = cfg.helo_name.empty() ? local_hostname() : cfg.helo_name;
  probe_options.now = static_cast<std::int64_t>(std::time(nullptr));
  auto& c = probe_options.client;
  c.connect = c.greeting = c.ehlo = c.starttls = c.quit = options.smtp_timeout;

  std::optional<check::Report> report;
  dane::PlanOptions plan_options{cfg.policy_for(options.domain), cfg.smtp_port};
  dane::plan_destination(
      **resolver, options.domain, plan_options,
      [&](dane::DestinationPlan plan, dane::AnswerSet answers) {
        if (!options.connect || plan.failure) {
          report = check::make_report(std::move(plan), answers);
          return;
        }
        boost::asio::co_spawn(
            io, check::probe_destination(tls_context, plan, probe_options),
            [&report, plan, answers = std::move(answers)](
                std::exception_ptr e, std::vector<std::vector<check::AddressProbe>> probes) {
              if (e) return;
              report = check::make_report(plan, answers, std::move(probes));
            });
      });
  io.run();
  if (!report) return fail("the check did not complete");
  return std::move(*report);
}

int run_check(const config::Config& cfg, const CheckOptions& options) {
  auto report = check_report(cfg, options);
  if (!report) {
    std::cerr << "danemta check: " << report.error().message << "\n";
    return 2;
  }
  std::cout << (options.json ? check::render_json(*report) : check::render_text(*report));
  std::cout.flush();
  return report->verdict.exit_code;
}

}  // namespace danemta::app
