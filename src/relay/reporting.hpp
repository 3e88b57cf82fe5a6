// What one delivery attempt tells TLS reporting (RFC 8460 section 4.3): one
// SessionResult per session tried, plus one per DNSSEC/DANE failure decided
// before any connection. Pure.
#pragma once

#include <vector>

#include "dane/plan.hpp"
#include "delivery/deliver.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::relay {

// Sessions that never connected, sessions in clear that ended before any
// transaction (421 at EHLO, timeouts, dropped connections), unusable hosts
// delivery did not reach (a backup MX when the primary delivered), and
// outcomes RFC 8460 has no result type for (dns-failed, connection-failed,
// ...) are not reported. When the whole plan failed, each unusable host's
// failure is reported with its name.
std::vector<tlsrpt::SessionResult> session_results(const dane::DestinationPlan& plan,
                                                   const delivery::BatchResult& batch,
                                                   tlsrpt::Time now);

}  // namespace danemta::relay
