#include "app/cmd_deliver.hpp"
#include "app/input.hpp"
#include "base/system.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

#include "base/text.hpp"
#include "dane/plan.hpp"
#include "delivery/deliver.hpp"
#include "delivery/log.hpp"
#include "dns/unbound_resolver.hpp"
#include "tls/context.hpp"

namespace danemta::app {

namespace {

std::string domain_of(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? "" : normalize_domain(address.substr(at + 1));
}

}  // namespace

int run_deliver(const config::Config& cfg, const DeliverOptions& o) {
  if (o.recipients.empty()) {
    std::cerr << "danemta deliver: give at least one recipient\n";
    return 2;
  }
  std::string domain = domain_of(o.recipients.front());
  for (const std::string& r : o.recipients) {
    if (domain_of(r).empty() || domain_of(r) != domain) {
      std::cerr << "danemta deliver: recipients must be addresses in one domain (" << r << ")\n";
      return 2;
    }
  }

  std::string data;
  auto read = read_message(o.message_file);
  if (!read) {
    std::cerr << "danemta deliver: cannot read " << o.message_file << "\n";
    return 2;
  }
  data = std::move(*read);

  boost::asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) {
    std::cerr << "danemta deliver: " << resolver.error().message << "\n";
    return 2;
  }
  boost::asio::ssl::context tls_context(boost::asio::ssl::context::tls_client);
  if (auto ok = tls::configure_client_context(tls_context.native_handle()); !ok) {
    std::cerr << "danemta deliver: " << ok.error().message << "\n";
    return 2;
  }

  delivery::Message message{"direct", o.from, o.recipients, std::move(data)};
  delivery::DeliveryOptions options;
  options.helo_name = o.helo_name.empty() ? cfg.helo_name : o.helo_name;
  options.client = delivery::client_config(cfg);
  if (options.helo_name.empty()) options.helo_name = local_hostname();

  std::optional<delivery::AttemptResult> result;
  // The same delays= as the relay's lines, without a queue.
  const auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration planning{};
  const delivery::Target target = delivery::target_for(cfg, domain);
  dane::plan_destination(
      **resolver, target.name, target.options, [&](dane::DestinationPlan plan, dane::AnswerSet) {
        planning = std::chrono::steady_clock::now() - start;
        boost::asio::co_spawn(io, delivery::deliver(tls_context, std::move(plan), message, options),
                              [&result](std::exception_ptr e, delivery::AttemptResult r) {
                                if (!e) result = std::move(r);
                              });
      });
  io.run();
  if (!result) {
    std::cerr << "danemta deliver: the attempt did not complete\n";
    return 2;
  }
  using seconds = std::chrono::duration<double>;
  const delivery::Delays delays = delivery::delays_of(
      0, seconds(std::chrono::steady_clock::now() - start).count(),
      seconds(planning + result->setup).count(), seconds(result->transmission).count());
  for (const delivery::AddressAttempt& a : result->tried)
    if (!a.mail_sent) std::cout << delivery::log_attempt(message.id, a) << "\n";
  bool all = true;
  for (const delivery::RecipientResult& r : result->recipients) {
    std::cout << delivery::log_line(message.id, r, delays) << "\n";
    all = all && r.status == delivery::Status::delivered;
  }
  return all ? 0 : 1;
}

}  // namespace danemta::app
