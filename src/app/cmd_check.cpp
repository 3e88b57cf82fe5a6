#include "app/cmd_check.hpp"

#include <cstdio>
#include <iostream>
#include <optional>

#include <boost/asio/io_context.hpp>

#include "check/report.hpp"
#include "dane/plan.hpp"
#include "dns/unbound_resolver.hpp"

namespace danemta::app {

int run_check(const config::Config& cfg, const CheckOptions& options) {
  boost::asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) {
    std::cerr << "danemta check: " << resolver.error().message << "\n";
    return 2;
  }

  std::optional<check::Report> report;
  dane::PlanOptions plan_options{cfg.policy_for(options.domain), cfg.smtp_port};
  dane::plan_destination(**resolver, options.domain, plan_options,
                         [&report](dane::DestinationPlan plan, dane::AnswerSet answers) {
                           report = check::make_report(std::move(plan), answers);
                         });
  io.run();
  if (!report) {
    std::cerr << "danemta check: the DNS lookups did not complete\n";
    return 2;
  }
  std::cout << (options.json ? check::render_json(*report) : check::render_text(*report));
  std::cout.flush();
  return report->verdict.exit_code;
}

}  // namespace danemta::app
