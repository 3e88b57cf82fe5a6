// The running relay: listeners for local submitters, the durable queue, the
// scheduler that hands due jobs to delivery attempts, and bounces.
//
// Flow: a submitter's message is stored durably (Spool::enqueue, fsync)
// before it gets 250; the scheduler picks due jobs (one message's recipients
// at one domain), plans the destination (dane::plan over the resolver),
// runs one delivery attempt, records every recipient's fate, retries with
// backoff, and when a recipient fails permanently or its queue lifetime ends
// sends the sender an RFC 3464 bounce with the code and what the receiving
// admin must fix.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "base/result.hpp"
#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "logging/logger.hpp"
#include "queue/spool.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace boost::asio {
class io_context;
}

namespace danemta {
class Workers;
}

namespace danemta::metrics {
class Registry;
}

namespace danemta::relay {

class Relay {
 public:
  // `resolver`, `spool` and `log` must outlive the relay, `io` too. The
  // SMTP listeners (submission and [inbound]) run on the relay's own intake
  // thread, so that accepting mail never waits behind delivery work;
  // everything else runs on `io`, spool calls on internal worker threads.
  // `now` is the clock; the intake thread calls it too.
  Relay(boost::asio::io_context& io, config::Config config, dns::Resolver& resolver,
        queue::Spool& spool, logging::Logger& log, std::function<queue::Time()> now);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Where each attempt's session results go for TLS reporting (RFC 8460);
  // null (the default): not recorded. Must outlive the relay.
  void set_tlsrpt_store(tlsrpt::Store* store);

  // Where the relay counts what it does (relay/instruments.hpp declares the
  // families); null (the default): nothing is counted. Must outlive the
  // relay.
  void set_metrics(metrics::Registry* registry);
  // The body of /metrics: the queue gauges brought up to date from the
  // spool (on its worker thread), then every family rendered.
  boost::asio::awaitable<std::string> scrape();
  // Why the relay is not healthy, for /healthz: it is stopping, or the spool
  // cannot be written (results held in memory, or the last message could
  // not be stored). Empty when it is healthy.
  std::string unhealthy() const;

  // Reads the STARTTLS certificate and the AUTH credentials, binds the
  // listeners and starts the scheduler. Errors name the file or address.
  Result<void> start();
  // Stops accepting and scheduling; attempts in flight run to their end.
  void stop();
  // Runs a scheduler pass now (e.g. after `danemta queue flush`).
  void wake();

  // Applies a new configuration (SIGHUP): TLS policies, allow lists,
  // limits, backoff, timeouts, host names, listener requirements and TLS-RPT
  // settings at once, for new connections and attempts; listeners are
  // opened and closed to match [relay] listen and [[relay.listener]]. The
  // STARTTLS certificate and the AUTH credentials are read again (also when
  // the configuration is the same); one that cannot be read is refused and
  // the one in use stays. The spool, the resolver ([dns]) and the TLS-RPT
  // store stay as they were until a restart. Returns one line per thing
  // worth logging (a listener opened or closed, a change that needs a
  // restart, a listener that could not be opened, the certificate and
  // credentials loaded or refused).
  std::vector<std::string> reload(config::Config next);

  // "ID: delivery to DOMAIN (running N s)" for each message being delivered.
  std::vector<std::string> attempts_in_flight() const;

  std::size_t in_flight() const;
  // "127.0.0.1:10025" for each listener, with the port actually bound.
  std::vector<std::string> listening() const;

  struct Impl;

 private:
  // The listeners' event loop and its thread (danemta-intake); before
  // impl_, which refers to it.
  std::unique_ptr<Workers> intake_;
  std::shared_ptr<Impl> impl_;
};

// The line for the final status of a recipient whose queue lifetime ended:
// the permanent code of the outcome (5.7.323), or 5.4.7 (delivery time
// expired, RFC 3463) after a server's own 4xx replies.
std::string expired_status(const std::string& outcome_name);

// How many "Received:" fields (RFC 5321 4.4, case-insensitive name) the
// header section of `message` holds: the hop count a mail loop drives up.
std::size_t received_fields(std::string_view message);

}  // namespace danemta::relay
