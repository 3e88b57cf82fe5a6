// `danemta deliver`: one delivery attempt of one message, now, with no queue
// and no retry; for testing a route with the relay's own rules.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace danemta::app {

struct DeliverOptions {
  std::string from;                     // envelope sender; "" = null sender
  std::vector<std::string> recipients;  // all in one domain
  std::string message_file;             // "-" or empty: standard input
  std::string helo_name;                // default: this host's name
};

// Logs one line per address tried and per recipient on stdout. Exit: 0 all
// delivered, 1 some deferred or bounced, 2 usage or local error.
int run_deliver(const config::Config& cfg, const DeliverOptions& options);

}  // namespace danemta::app
