// dns::Resolver on libunbound, driven by a Boost.Asio io_context. DNSSEC is
// validated in-process (DESIGN.md section 2); a forwarder's AD bit is never used.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"
#include "dns/resolver.hpp"

namespace boost::asio {
class io_context;
}

namespace danemta::dns {

// Single-threaded: create, resolve and destroy on the thread running `io`, and
// `io` must outlive the resolver. libunbound runs its own worker thread
// (ub_ctx_async(ctx, 1)); results come back through ub_fd, pumped by `io`.
// Each query is cancelled after config timeout and answered indeterminate
// ("timeout after N s"). Destroying the resolver cancels outstanding queries;
// their `done` callbacks are then never called.
class UnboundResolver final : public Resolver {
 public:
  // Permanent errors for bad configuration: "bad forwarder ...", "cannot read
  // trust anchor file ...". No forwarders: full recursion from the root. No
  // trust anchor file: the IANA root KSK DS records (KSK-2017, KSK-2024).
  // Nothing is read from /etc (no resolv.conf, no hosts, no unbound.conf).
  static Result<std::unique_ptr<UnboundResolver>> create(boost::asio::io_context& io,
                                                         const config::DnsConfig& cfg);

  ~UnboundResolver() override;
  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  void resolve(std::vector<Query> queries, std::function<void(std::vector<Answer>)> done) override;

  struct Impl;

 private:
  explicit UnboundResolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // handlers hold weak_ptrs: nothing runs after destruction
};

}  // namespace danemta::dns
